"""The loader against nuscenes-devkit on the three real keyframes (skipped when the fixture is absent).

Oracles: the devkit's own readers and transforms. The devkit stores LiDAR points in float32; its chains are
fed the files' values as float64 here (the same code, monkeypatched reader), so the only difference left is our
float32 output: coordinates below ~120 m round by at most 4e-6 m, hence atol 1e-5 m.
"""
from functools import reduce

import cv2
import numpy as np
import pytest
from nuscenes.eval.common.utils import quaternion_yaw
from nuscenes.utils.data_classes import LidarPointCloud, RadarPointCloud
from nuscenes.utils.geometry_utils import transform_matrix
from pyquaternion import Quaternion

from perception.classes import ATTRIBUTES, DETECTION_CLASSES, category_to_detection_name
from perception.datasets.io import RADAR_PCD_FIELDS, read_radar_pcd
from perception.datasets.loader import load_frame
from perception.datasets.records import sample_data_calibration, sample_data_path
from perception.geometry import EgoPose
from perception.sensors import CAMERA_CHANNELS, LIDAR_CHANNEL, RADAR_CHANNELS

FLOAT32_ATOL_M = 1e-5
NO_RADAR_FILTERS = {"invalid_state": tuple(range(18)), "dyn_prop": tuple(range(8)), "ambig_state": tuple(range(5))}
"""read_radar_pcd's filters keeping every return (the devkit's RadarPointCloud.disable_filters)."""


@pytest.fixture
def devkit_reads_float64(monkeypatch):
    read_float32 = LidarPointCloud.from_file
    monkeypatch.setattr(LidarPointCloud, "from_file", classmethod(
        lambda cls, path: LidarPointCloud(read_float32(path).points.astype(np.float64))))


def _ego_from_sensor(nusc, sample_data_token) -> np.ndarray:
    record = nusc.get("calibrated_sensor", nusc.get("sample_data", sample_data_token)["calibrated_sensor_token"])
    return transform_matrix(record["translation"], Quaternion(record["rotation"]))


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def test_one_sweep_lidar_equals_devkit(nusc_real, devkit_reads_float64):
    for sample in nusc_real.sample:
        frame = load_frame(nusc_real, sample["token"], lidar_sweeps=1, radar_sweeps=1, cameras=False)
        # The devkit's multi-sweep chain (sensor -> ego -> global -> ego -> reference sensor), then sensor -> ego.
        cloud, times = LidarPointCloud.from_file_multisweep(nusc_real, sample, LIDAR_CHANNEL, LIDAR_CHANNEL,
                                                            nsweeps=1, min_distance=0.0)
        devkit = _apply(_ego_from_sensor(nusc_real, sample["data"][LIDAR_CHANNEL]), cloud.points[:3].T)
        assert frame.lidar.num_sweeps == 1 and frame.lidar.points.dtype == np.float32
        assert len(frame.lidar.points) == len(devkit) > 30000
        np.testing.assert_allclose(frame.lidar.points[:, :3], devkit, rtol=0, atol=FLOAT32_ATOL_M)
        np.testing.assert_array_equal(frame.lidar.points[:, 3], cloud.points[3])
        np.testing.assert_array_equal(frame.lidar.points[:, 4], times[0])


def test_sweeps_beyond_the_fixture_are_counted_not_invented(nusc_real):
    frame = load_frame(nusc_real, nusc_real.sample[1]["token"], lidar_sweeps=10, radar_sweeps=6, cameras=False)
    single = load_frame(nusc_real, nusc_real.sample[1]["token"], lidar_sweeps=1, radar_sweeps=1, cameras=False)
    assert frame.lidar.num_sweeps == 1 and frame.radar.num_sweeps == 1
    np.testing.assert_array_equal(frame.lidar.points, single.lidar.points)
    np.testing.assert_array_equal(frame.radar.points, single.radar.points)


@pytest.mark.parametrize("filters", ["default", "none"])
def test_radar_reader_equals_devkit(nusc_real, filters):
    compared = 0
    for record in nusc_real.sample_data:
        if not record["filename"].endswith(".pcd"):
            continue
        path = sample_data_path(nusc_real, record["token"])
        try:
            if filters == "none":
                RadarPointCloud.disable_filters()
            devkit = RadarPointCloud.from_file(path).points.T
        finally:
            RadarPointCloud.default_filters()
        ours = read_radar_pcd(path, NO_RADAR_FILTERS) if filters == "none" else read_radar_pcd(path)
        np.testing.assert_array_equal(ours, devkit)
        compared += 1
    assert compared == 3 * len(RADAR_CHANNELS)


def test_radar_frame_equals_devkit_chain(nusc_real, devkit_reads_float64):
    columns = {name: RADAR_PCD_FIELDS.index(name) for name in ("rcs", "vx_comp", "vy_comp")}
    for sample in nusc_real.sample:
        frame = load_frame(nusc_real, sample["token"], lidar_sweeps=1, radar_sweeps=1, cameras=False)
        lidar_record = nusc_real.get("sample_data", sample["data"][LIDAR_CHANNEL])
        key_pose = nusc_real.get("ego_pose", lidar_record["ego_pose_token"])
        ego_from_global = transform_matrix(key_pose["translation"], Quaternion(key_pose["rotation"]), inverse=True)
        expected = []
        for channel in RADAR_CHANNELS:
            token = sample["data"][channel]
            cloud, times = RadarPointCloud.from_file_multisweep(nusc_real, sample, channel, LIDAR_CHANNEL,
                                                                nsweeps=1, min_distance=0.0)
            xyz = _apply(_ego_from_sensor(nusc_real, sample["data"][LIDAR_CHANNEL]), cloud.points[:3].T)
            record = nusc_real.get("sample_data", token)
            pose = nusc_real.get("ego_pose", record["ego_pose_token"])
            rotation = reduce(np.dot, [ego_from_global[:3, :3], Quaternion(pose["rotation"]).rotation_matrix,
                                       _ego_from_sensor(nusc_real, token)[:3, :3]])
            fields = cloud.points.T
            velocity = np.stack([fields[:, columns["vx_comp"]], fields[:, columns["vy_comp"]],
                                 np.zeros(len(fields))], axis=1) @ rotation.T
            time_lag = times[0][:, None]
            xyz[:, :2] += velocity[:, :2] * time_lag
            expected.append(np.concatenate([xyz, fields[:, [columns["rcs"]]], velocity[:, :2], time_lag], axis=1))
        expected = np.concatenate(expected)
        assert frame.radar.points.shape == expected.shape and len(expected) > 100
        np.testing.assert_allclose(frame.radar.points[:, :3], expected[:, :3], rtol=0, atol=FLOAT32_ATOL_M)
        np.testing.assert_array_equal(frame.radar.points[:, 3], expected[:, 3])
        np.testing.assert_allclose(frame.radar.points[:, 4:], expected[:, 4:], rtol=1e-6, atol=1e-7)


def test_ground_truth_equals_devkit_boxes_in_ego(nusc_real):
    attribute_names = {a["token"]: a["name"] for a in nusc_real.attribute}
    for sample in nusc_real.sample:
        lidar_token = sample["data"][LIDAR_CHANNEL]
        frame = load_frame(nusc_real, sample["token"], lidar_sweeps=1, radar_sweeps=1, cameras=False)
        _, devkit_boxes, _ = nusc_real.get_sample_data(lidar_token)
        cs = nusc_real.get("calibrated_sensor", nusc_real.get("sample_data", lidar_token)["calibrated_sensor_token"])
        pose = nusc_real.get("ego_pose", nusc_real.get("sample_data", lidar_token)["ego_pose_token"])
        kept = [b for b in devkit_boxes if category_to_detection_name(b.name) is not None]
        for box in kept:  # sensor frame -> ego frame, the devkit's way
            box.rotate(Quaternion(cs["rotation"]))
            box.translate(np.array(cs["translation"]))
        boxes = frame.gt_boxes
        assert len(boxes) == len(kept) > 30 and len(kept) < len(devkit_boxes)
        np.testing.assert_allclose(boxes.centers, [b.center for b in kept], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(boxes.sizes, [b.wlh for b in kept])
        devkit_yaws = np.array([quaternion_yaw(b.orientation) for b in kept])  # the evaluation's yaw
        np.testing.assert_allclose(np.angle(np.exp(1j * (boxes.yaws - devkit_yaws))), 0, atol=1e-9)
        assert [DETECTION_CLASSES[i] for i in boxes.labels] == [category_to_detection_name(b.name) for b in kept]
        records = [nusc_real.get("sample_annotation", b.token) for b in kept]
        # Our convention (mmdetection3d's converter too): vz is dropped before rotating into the ego frame.
        horizontal = [np.nan_to_num(nusc_real.box_velocity(b.token)) * [1, 1, 0] for b in kept]
        velocities = [Quaternion(pose["rotation"]).inverse.rotate(v)[:2] for v in horizontal]
        np.testing.assert_allclose(boxes.velocities, velocities, rtol=0, atol=1e-9)
        assert np.abs(boxes.velocities).max() > 1.0  # some boxes do move
        assert [ATTRIBUTES[i] if i >= 0 else "" for i in boxes.attributes] == [
            attribute_names[r["attribute_tokens"][0]] if r["attribute_tokens"] else "" for r in records]
        np.testing.assert_array_equal(frame.gt_num_lidar_points, [r["num_lidar_pts"] for r in records])
        np.testing.assert_array_equal(frame.gt_num_radar_points, [r["num_radar_pts"] for r in records])


def test_cameras_equal_devkit_calibration_chain(nusc_real):
    sample = nusc_real.sample[2]
    frame = load_frame(nusc_real, sample["token"], lidar_sweeps=1, radar_sweeps=1, image_size=(400, 225))
    key_pose = EgoPose.from_record(nusc_real.get(
        "ego_pose", nusc_real.get("sample_data", sample["data"][LIDAR_CHANNEL])["ego_pose_token"]))
    assert list(frame.cameras) == list(CAMERA_CHANNELS) and not frame.missing
    for channel, view in frame.cameras.items():
        calibration, pose = sample_data_calibration(nusc_real, sample["data"][channel])
        expected = key_pose.ego_to_global.inverse() @ pose.ego_to_global @ calibration.sensor_to_ego
        np.testing.assert_allclose(view.camera_to_ego.matrix, expected.matrix, atol=1e-9)
        assert view.image.shape == (225, 400, 3) and view.image.dtype == np.uint8
        k = np.array(nusc_real.get("calibrated_sensor", nusc_real.get(
            "sample_data", sample["data"][channel])["calibrated_sensor_token"])["camera_intrinsic"])
        np.testing.assert_allclose(view.intrinsics.matrix, np.diag([0.25, 0.25, 1]) @ k, atol=1e-9)
        assert (view.intrinsics.width, view.intrinsics.height) == (400, 225)
        assert view.timestamp_us == nusc_real.get("sample_data", sample["data"][channel])["timestamp"]


@pytest.mark.parametrize("size", [(800, 450), (400, 225), (704, 396)])
def test_reduced_jpeg_decode_matches_full_decode_then_resize(nusc_real, size):
    """For a target at most half the image, the loader decodes JPEGs at 1/2 or 1/4 size (3x faster); the result
    is the full-size decode resized, to within JPEG's own rounding."""
    sample = nusc_real.sample[0]
    frame = load_frame(nusc_real, sample["token"], lidar_sweeps=1, radar_sweeps=1, image_size=size)
    for channel in ("CAM_FRONT", "CAM_BACK_LEFT"):
        full = cv2.cvtColor(cv2.imread(sample_data_path(nusc_real, sample["data"][channel])), cv2.COLOR_BGR2RGB)
        expected = cv2.resize(full, size, interpolation=cv2.INTER_AREA).astype(int)
        difference = np.abs(frame.cameras[channel].image.astype(int) - expected)
        assert difference.mean() < 1.0 and np.percentile(difference, 99) <= 6


def test_a_reduced_target_is_decoded_reduced_by_the_jpeg_decoder(nusc_real):
    """400 x 225 is 1600 x 900 / 4: the image is OpenCV's 1/4 decode (IMREAD_REDUCED_COLOR_4), pixel for pixel,
    not a full decode shrunk (3x slower, and other pixels)."""
    sample = nusc_real.sample[1]
    frame = load_frame(nusc_real, sample["token"], lidar_sweeps=1, radar_sweeps=1, image_size=(400, 225))
    for channel in ("CAM_FRONT", "CAM_BACK_RIGHT"):
        path = sample_data_path(nusc_real, sample["data"][channel])
        reduced = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_REDUCED_COLOR_4), cv2.COLOR_BGR2RGB)
        assert reduced.shape == (225, 400, 3)
        np.testing.assert_array_equal(frame.cameras[channel].image, reduced)
