"""The tiny synthetic world (tests/conftest.py TINY_WORLD) read back with nuscenes-devkit, the independent oracle:
tables load and chain, point counts equal the devkit's points_in_box, radar Doppler agrees with the devkit's box
velocities, boxes project onto their objects' pixels, and ground truth scores perfectly in DetectionEval."""
import json

import cv2
import numpy as np
import pytest
from nuscenes.eval.common.config import config_factory
from nuscenes.eval.common.loaders import get_samples_of_custom_split, load_gt_of_sample_tokens
from nuscenes.eval.detection.data_classes import DetectionBox
from nuscenes.eval.detection.evaluate import DetectionEval
from nuscenes.utils.data_classes import Box, LidarPointCloud, RadarPointCloud
from nuscenes.utils.geometry_utils import points_in_box, view_points
from nuscenes.utils.splits import get_scenes_of_custom_split
from pyquaternion import Quaternion

from perception.classes import DETECTION_CLASSES
from perception.datasets.synthetic import camera
from perception.datasets.synthetic.scene import build_scene
from perception.datasets.synthetic.world import namespace
from perception.datasets.synthetic.writer import instance_token
from perception.geometry import EgoPose, SensorCalibration
from perception.sensors import CAMERA_CHANNELS, LIDAR_CHANNEL, RADAR_CHANNELS
from tests.conftest import TINY_WORLD

CHANNELS = (LIDAR_CHANNEL,) + RADAR_CHANNELS + CAMERA_CHANNELS
UNDEFINED_TP_ERRORS = {"traffic_cone": ("attr_err", "vel_err", "orient_err"), "barrier": ("attr_err", "vel_err")}
"""TP errors the devkit's DetectionEval sets to NaN by design (nuscenes/eval/detection/algo.py ``accumulate``)."""


def _sensor_to_global(nusc, sample_data_token):
    record = nusc.get("sample_data", sample_data_token)
    calibration = SensorCalibration.from_record(
        record["channel"], nusc.get("calibrated_sensor", record["calibrated_sensor_token"]),
        (record["width"], record["height"]) if record["width"] else None)
    pose = EgoPose.from_record(nusc.get("ego_pose", record["ego_pose_token"]))
    return calibration, calibration.sensor_to_global(pose)


def test_devkit_loads_tables_splits_and_chains(nusc_synthetic, synthetic_root):
    assert all(len(getattr(nusc_synthetic, table)) > 0 for table in nusc_synthetic.table_names)
    names = [scene["name"] for scene in nusc_synthetic.scene]
    assert names == ["synth-0000", "synth-0001"]
    assert get_scenes_of_custom_split("synth_train", nusc_synthetic) == ["synth-0000"]
    assert get_scenes_of_custom_split("synth_val", nusc_synthetic) == ["synth-0001"]
    for sample in nusc_synthetic.sample:
        assert set(sample["data"]) == set(CHANNELS)
        assert sample["anns"]
        lidar = nusc_synthetic.get("sample_data", sample["data"][LIDAR_CHANNEL])
        assert lidar["timestamp"] == sample["timestamp"]
    for scene in nusc_synthetic.scene:
        samples = [nusc_synthetic.get("sample", scene["first_sample_token"])]
        while samples[-1]["next"]:
            samples.append(nusc_synthetic.get("sample", samples[-1]["next"]))
        assert len(samples) == scene["nbr_samples"] == TINY_WORLD["samples_per_scene"]
        assert np.all(np.diff([s["timestamp"] for s in samples]) == 500_000)
        first = samples[0]
        for channel in CHANNELS:  # walk each channel's sample_data chain: sweeps between keyframes, time ordered
            record = nusc_synthetic.get("sample_data", first["data"][channel])
            while record["prev"]:
                record = nusc_synthetic.get("sample_data", record["prev"])
            chain = [record]
            while chain[-1]["next"]:
                chain.append(nusc_synthetic.get("sample_data", chain[-1]["next"]))
            times = np.array([r["timestamp"] for r in chain])
            assert np.all(np.diff(times) > 0)
            keyframes = [r for r in chain if r["is_key_frame"]]
            assert [r["sample_token"] for r in keyframes] == [s["token"] for s in samples]
            assert len(chain) > len(keyframes)
            rate_hz = (len(chain) - 1) / ((times[-1] - times[0]) * 1e-6)
            expected = {"lidar": 20.0, "radar": 13.0, "camera": 12.0}[chain[0]["sensor_modality"]]
            assert rate_hz == pytest.approx(expected, rel=0.05)
            for r in chain:
                pose = nusc_synthetic.get("ego_pose", r["ego_pose_token"])
                assert pose["timestamp"] == r["timestamp"]
                assert (synthetic_root / r["filename"]).is_file()
                if r["sensor_modality"] == "camera":
                    assert (r["width"], r["height"]) == TINY_WORLD["image_size"]
    for instance in nusc_synthetic.instance:
        annotation = nusc_synthetic.get("sample_annotation", instance["first_annotation_token"])
        count = 1
        while annotation["next"]:
            annotation = nusc_synthetic.get("sample_annotation", annotation["next"])
            count += 1
        assert count == instance["nbr_annotations"] and annotation["token"] == instance["last_annotation_token"]
    image = cv2.imread(str(synthetic_root / nusc_synthetic.sample_data[-1]["filename"]))
    assert image is not None


def test_all_detection_classes_and_attributes_occur(nusc_synthetic):
    from perception.classes import category_to_detection_name

    classes = {category_to_detection_name(a["category_name"]) for a in nusc_synthetic.sample_annotation}
    assert classes == set(DETECTION_CLASSES)
    attributes = {nusc_synthetic.get("attribute", t)["name"] for a in nusc_synthetic.sample_annotation
                  for t in a["attribute_tokens"]}
    assert {"vehicle.moving", "vehicle.parked", "pedestrian.moving", "pedestrian.standing", "cycle.with_rider",
            "cycle.without_rider"} <= attributes


def test_num_lidar_pts_equals_devkit_points_in_box(nusc_synthetic):
    checked = with_points = 0
    for sample in nusc_synthetic.sample:
        path, boxes, _ = nusc_synthetic.get_sample_data(sample["data"][LIDAR_CHANNEL])
        points = LidarPointCloud.from_file(path).points  # x, y, z, intensity (the devkit drops the ring)
        raw = np.fromfile(path, dtype=np.float32).reshape(-1, 5)
        assert 25_000 < len(raw) < 36_000 and set(np.unique(raw[:, 4])) <= set(range(32))
        assert np.all((raw[:, 3] >= 0) & (raw[:, 3] <= 255))
        for box in boxes:
            expected = nusc_synthetic.get("sample_annotation", box.token)["num_lidar_pts"]
            assert int(points_in_box(box, points[:3]).sum()) == expected, box
            checked += 1
            with_points += expected > 0
    assert checked == len(nusc_synthetic.sample_annotation) and with_points > 0.5 * checked


@pytest.mark.parametrize("world", ["nusc_synthetic", "nusc_real"])
def test_num_radar_pts_equals_devkit_points_in_box_of_every_return(world, request):
    """nuScenes' schema: num_radar_pts is "summed across all radar sensors without any invalid point filtering";
    the real keyframes hold to it (with the devkit's default filters 15 of their 133 boxes count otherwise), and so
    does the synthetic world."""
    nusc = request.getfixturevalue(world)
    every_state = dict(invalid_states=range(18), dynprop_states=range(18), ambig_states=range(18))
    total = 0
    for sample in nusc.sample:
        counts = {token: 0 for token in sample["anns"]}
        for channel in RADAR_CHANNELS:
            path, boxes, _ = nusc.get_sample_data(sample["data"][channel])
            points = RadarPointCloud.from_file(path, **every_state).points
            for box in boxes:
                counts[box.token] += int(points_in_box(box, points[:3]).sum())
        for token, count in counts.items():
            assert count == nusc.get("sample_annotation", token)["num_radar_pts"], token
            total += count
    assert total > 20


def test_radar_doppler_agrees_with_box_velocities(nusc_synthetic):
    """Each radar point in a moving object's box: its ego-compensated radial velocity equals the devkit's box
    velocity (from neighbouring annotations) projected on the line of sight; static returns read ~0."""
    errors, static_speeds = [], []
    for sample in nusc_synthetic.sample:
        boxes = []
        for token in sample["anns"]:
            annotation = nusc_synthetic.get("sample_annotation", token)
            boxes.append((Box(annotation["translation"], annotation["size"], Quaternion(annotation["rotation"])),
                          nusc_synthetic.box_velocity(token)))
        for channel in RADAR_CHANNELS:
            token = sample["data"][channel]
            points = RadarPointCloud.from_file(nusc_synthetic.get_sample_data_path(token)).points
            _, to_global = _sensor_to_global(nusc_synthetic, token)
            xyz = to_global.apply(points[:3].T)
            velocity = to_global.apply_rotation(np.c_[points[8:10].T, np.zeros(points.shape[1])])
            line_of_sight = xyz - to_global.translation
            line_of_sight[:, 2] = 0.0
            line_of_sight /= np.linalg.norm(line_of_sight, axis=1, keepdims=True)
            measured = np.einsum("nd,nd->n", velocity, line_of_sight)
            in_any_box = np.zeros(len(xyz), bool)
            for box, box_velocity in boxes:
                inside = points_in_box(box, xyz.T, wlh_factor=1.2)
                in_any_box |= inside
                if inside.any() and np.linalg.norm(box_velocity[:2]) > 1.0:
                    expected = line_of_sight[inside, :2] @ box_velocity[:2]
                    errors += list(np.abs(measured[inside] - expected))
            stationary = ~in_any_box & (points[3] == 1)  # dyn_prop 'stationary', outside every box
            static_speeds += list(np.abs(measured[stationary]))
    errors, static_speeds = np.array(errors), np.array(static_speeds)
    assert len(errors) >= 10 and len(static_speeds) >= 50
    assert np.mean(errors < 0.5) > 0.95, np.sort(errors)[-10:]
    assert np.mean(static_speeds < 0.4) > 0.95, np.sort(static_speeds)[-10:]


def test_projected_boxes_land_on_their_objects_pixels(nusc_synthetic, synthetic_root):
    """Re-render the keyframe cameras from the recorded calibration and poses: the re-render matches the JPEG on
    disk, and each object's pixels lie inside its annotated box projected with the devkit (moved by the devkit's
    box velocity over the camera's time offset)."""
    checked = 0
    for scene in nusc_synthetic.scene:
        index = int(scene["name"].split("-")[1])
        model = build_scene(TINY_WORLD["seed"], index, TINY_WORLD["samples_per_scene"])
        sample = nusc_synthetic.get("sample", scene["first_sample_token"])
        by_instance = {nusc_synthetic.get("sample_annotation", t)["instance_token"]: t for t in sample["anns"]}
        for channel in CAMERA_CHANNELS:
            token = sample["data"][channel]
            record = nusc_synthetic.get("sample_data", token)
            calibration, to_global = _sensor_to_global(nusc_synthetic, token)
            t_s = (record["timestamp"] - sample["timestamp"]) * 1e-6
            size = (record["width"], record["height"])
            image, owners = camera.render(model.snapshot(t_s), to_global,
                                          camera.pixel_rays(calibration.intrinsics.matrix, size), size,
                                          model.sun_direction, model.frenet,
                                          np.random.default_rng(0), with_owners=True)
            on_disk = cv2.imread(str(synthetic_root / record["filename"])).astype(np.int16)
            assert np.mean(np.abs(on_disk - image)) < 6.0
            to_camera = to_global.inverse()
            for actor in np.unique(owners[owners >= 0]):
                pixels = np.argwhere(owners == actor)[:, ::-1] + 0.5  # (u, v) pixel centres
                annotation_token = by_instance.get(instance_token(namespace(TINY_WORLD["version"], TINY_WORLD["seed"]),
                                                                  scene["name"], int(actor)))
                if len(pixels) < 30 or annotation_token is None:
                    continue
                annotation = nusc_synthetic.get("sample_annotation", annotation_token)
                centre = np.array(annotation["translation"]) + np.nan_to_num(
                    nusc_synthetic.box_velocity(annotation_token)) * t_s
                box = Box(centre, annotation["size"], Quaternion(annotation["rotation"]))
                corners = to_camera.apply(box.corners().T)
                if np.any(corners[:, 2] < 0.5):
                    continue
                projected = view_points(corners.T, calibration.intrinsics.matrix, normalize=True)[:2].T
                low, high = projected.min(axis=0) - 2.0, projected.max(axis=0) + 2.0
                inside = np.all((pixels >= low) & (pixels <= high), axis=1)
                assert inside.mean() > 0.99, (channel, annotation["category_name"], inside.mean())
                checked += 1
    assert checked >= 10


def test_ground_truth_as_predictions_scores_perfectly(nusc_synthetic, tmp_path):
    """The devkit's unmodified DetectionEval on synth_val: AP 1 for every class present, TP errors 0 (NaN only
    where the devkit defines none, UNDEFINED_TP_ERRORS)."""
    ground_truth = load_gt_of_sample_tokens(nusc_synthetic, get_samples_of_custom_split("synth_val", nusc_synthetic),
                                            DetectionBox)
    results = {}
    for sample_token in ground_truth.sample_tokens:
        results[sample_token] = [{
            "sample_token": sample_token, "translation": list(b.translation), "size": list(b.size),
            "rotation": list(b.rotation), "velocity": [float(v) for v in b.velocity],
            "detection_name": b.detection_name, "detection_score": 1.0, "attribute_name": b.attribute_name,
        } for b in ground_truth[sample_token] if b.num_pts > 0]
    result_path = tmp_path / "results.json"
    meta = {"use_camera": False, "use_lidar": True, "use_radar": False, "use_map": False, "use_external": False}
    result_path.write_text(json.dumps({"meta": meta, "results": results}))
    evaluation = DetectionEval(nusc_synthetic, config_factory("detection_cvpr_2019"), str(result_path),
                               eval_set="synth_val", output_dir=str(tmp_path), verbose=False)
    metrics, _ = evaluation.evaluate()
    summary = metrics.serialize()
    present = {b.detection_name for b in evaluation.gt_boxes.all}
    assert len(present) >= 6, present
    for name in present:
        assert summary["mean_dist_aps"][name] == pytest.approx(1.0), name
        for metric, value in summary["label_tp_errors"][name].items():
            if metric in UNDEFINED_TP_ERRORS.get(name, ()):
                assert np.isnan(value)
            else:
                assert value == pytest.approx(0.0, abs=1e-9), (name, metric, value)


def test_radar_uncompensated_doppler_is_the_compensated_one_less_the_sensors_own_motion(nusc_synthetic):
    """vx, vy (relative to the moving radar) = vx_comp, vy_comp minus the radar's own velocity on the line of sight:
    on a stationary return (vx_comp ~ 0) the radial speed is -(line of sight . sensor velocity), the sensor's
    velocity from its global positions at the neighbouring radar sweeps (the devkit's poses and calibrations)."""
    errors, speeds = [], []
    for sample in nusc_synthetic.sample:
        for channel in RADAR_CHANNELS:
            token = sample["data"][channel]
            record = nusc_synthetic.get("sample_data", token)
            if not (record["prev"] and record["next"]):
                continue
            neighbours = [nusc_synthetic.get("sample_data", record[side]) for side in ("prev", "next")]
            (_, before), (_, after) = (_sensor_to_global(nusc_synthetic, r["token"]) for r in neighbours)
            velocity_global = (after.translation - before.translation) / (
                (neighbours[1]["timestamp"] - neighbours[0]["timestamp"]) * 1e-6)
            _, to_global = _sensor_to_global(nusc_synthetic, token)
            velocity = to_global.inverse().apply_rotation(velocity_global)[:2]
            points = RadarPointCloud.from_file(nusc_synthetic.get_sample_data_path(token)).points
            stationary = points[3] == 1  # dyn_prop 'stationary'
            line_of_sight = points[:2, stationary].T / np.linalg.norm(points[:2, stationary].T, axis=1, keepdims=True)
            relative = np.einsum("nd,nd->n", points[6:8, stationary].T, line_of_sight)
            errors += list(np.abs(relative + line_of_sight @ velocity))
            speeds += list(np.abs(line_of_sight @ velocity))
    errors, speeds = np.array(errors), np.array(speeds)
    assert len(errors) >= 50 and np.median(speeds) > 1.0  # the ego moves: the two terms differ
    assert np.mean(errors < 0.4) > 0.95, np.sort(errors)[-10:]


def test_radar_dynamic_property_oncoming_approaches_and_moving_recedes(nusc_synthetic):
    """ARS408 dyn_prop: 0 'moving' (away from the radar), 2 'oncoming' (towards it): the sign of the compensated
    radial velocity (vx_comp, vy_comp) . line of sight, read back through the devkit."""
    radial = {0: [], 2: []}
    for sample in nusc_synthetic.sample:
        for channel in RADAR_CHANNELS:
            points = RadarPointCloud.from_file(nusc_synthetic.get_sample_data_path(sample["data"][channel])).points
            line_of_sight = points[:2].T / np.linalg.norm(points[:2].T, axis=1, keepdims=True)
            speed = np.einsum("nd,nd->n", points[8:10].T, line_of_sight)
            for state in radial:
                radial[state] += list(speed[points[3] == state])
    assert len(radial[0]) >= 5 and len(radial[2]) >= 5, {k: len(v) for k, v in radial.items()}
    assert np.all(np.array(radial[0]) > 0) and np.all(np.array(radial[2]) < 0)


def test_radar_rcs_of_car_returns_is_the_cars_cross_section(nusc_synthetic):
    """Returns in car boxes carry the default population's car RCS, 8 dBsm (CLASS_SPECS), +-2 dB noise: their mean
    lies within 1 dB of it; clutter, pedestrians and cones read lower."""
    from perception.classes import category_to_detection_name

    rcs = []
    for sample in nusc_synthetic.sample:
        boxes = [Box(a["translation"], a["size"], Quaternion(a["rotation"]))
                 for a in (nusc_synthetic.get("sample_annotation", t) for t in sample["anns"])
                 if category_to_detection_name(a["category_name"]) == "car"]
        for channel in RADAR_CHANNELS:
            token = sample["data"][channel]
            points = RadarPointCloud.from_file(nusc_synthetic.get_sample_data_path(token)).points
            _, to_global = _sensor_to_global(nusc_synthetic, token)
            xyz = to_global.apply(points[:3].T)
            for box in boxes:
                rcs += list(points[5, points_in_box(box, xyz.T, wlh_factor=1.2)])
    assert len(rcs) >= 20 and abs(np.mean(rcs) - 8.0) < 1.0, (len(rcs), np.mean(rcs))


def test_radar_clutter_carries_states_each_default_filter_drops(nusc_synthetic):
    """Some returns (the clutter) are invalid or ambiguous, states the devkit's default filters (invalid_state 0,
    ambig_state 3) drop; each of the two drops some, and from_file drops them all (the tiny world has no
    'stopped' return for the dyn_prop filter: test_radar_dynamic_property_by_hand)."""
    every, kept, rejected = 0, 0, {"invalid_state": 0, "ambig_state": 0}
    rows = {"ambig_state": 11, "invalid_state": 14}
    for sample_data in nusc_synthetic.sample_data:
        if sample_data["channel"] not in RADAR_CHANNELS:
            continue
        path = nusc_synthetic.get_sample_data_path(sample_data["token"])
        points = RadarPointCloud.from_file(path, invalid_states=range(18), dynprop_states=range(8),
                                           ambig_states=range(5)).points
        every += points.shape[1]
        kept += RadarPointCloud.from_file(path).points.shape[1]
        rejected["invalid_state"] += int(np.sum(points[rows["invalid_state"]] != 0))
        rejected["ambig_state"] += int(np.sum(points[rows["ambig_state"]] != 3))
    assert all(count > 0 for count in rejected.values()), rejected
    assert every - kept >= max(rejected.values()) and kept > 0.5 * every
