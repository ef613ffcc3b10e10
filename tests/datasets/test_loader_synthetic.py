"""Multi-sweep aggregation on the synthetic world, which has every sweep (the real fixture has none) and a known
truth: the devkit's multi-sweep chain as oracle, static objects that must stay put, radar Doppler that must
match the annotated velocities."""
import json
import shutil

import numpy as np
import pytest
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import LidarPointCloud, RadarPointCloud
from nuscenes.utils.geometry_utils import points_in_box, transform_matrix
from pyquaternion import Quaternion

from perception.datasets.io import RADAR_PCD_FIELDS
from perception.datasets.loader import NuScenesFrames, load_frame
from perception.datasets.records import open_nuscenes
from perception.datasets.splits import evenly_spread, split_sample_tokens, split_scenes
from perception.datasets.synthetic import TRAIN_SPLIT, VAL_SPLIT
from perception.datasets.synthetic import scenes_by_split
from perception.sensors import LIDAR_CHANNEL, RADAR_CHANNELS
from tests.conftest import TINY_WORLD

LIDAR_RANGE_NOISE_M = 0.02
"""The synthetic LiDAR's range noise (perception.datasets.synthetic.lidar.RANGE_NOISE_STD_M)."""
RADAR_VELOCITY_NOISE_M_S = 0.08
"""The synthetic radar's Doppler noise (perception.datasets.synthetic.radar.VELOCITY_NOISE_STD_M_S)."""


@pytest.fixture(scope="module")
def frames(synthetic_root, nusc_synthetic):
    """Every keyframe of the tiny world with 10 LiDAR and 6 radar sweeps, no cameras."""
    dataset = NuScenesFrames(synthetic_root, TINY_WORLD["version"], "all", cameras=False, nusc=nusc_synthetic,
                             cache_dir=None, progress=False)
    return [dataset[i] for i in range(len(dataset))]


def _ego_from_sensor(nusc, sample_data_token) -> np.ndarray:
    record = nusc.get("calibrated_sensor", nusc.get("sample_data", sample_data_token)["calibrated_sensor_token"])
    return transform_matrix(record["translation"], Quaternion(record["rotation"]))


def _grown(box, margin_m: float):
    grown = box.copy()
    grown.wlh = box.wlh + 2 * margin_m
    return grown


def test_custom_splits_come_from_splits_json(nusc_synthetic):
    written = scenes_by_split(TINY_WORLD["num_scenes"])
    assert written[TRAIN_SPLIT] and written[VAL_SPLIT]
    assert split_scenes(nusc_synthetic, TRAIN_SPLIT) == written[TRAIN_SPLIT]
    assert split_scenes(nusc_synthetic, VAL_SPLIT) == written[VAL_SPLIT]
    assert split_scenes(nusc_synthetic, "all") == written[TRAIN_SPLIT] + written[VAL_SPLIT]
    tokens = split_sample_tokens(nusc_synthetic, VAL_SPLIT)
    samples = [nusc_synthetic.get("sample", t) for t in tokens]
    assert len(tokens) == TINY_WORLD["samples_per_scene"]
    assert all(a["next"] == b["token"] and a["timestamp"] < b["timestamp"] for a, b in zip(samples, samples[1:]))
    with pytest.raises(ValueError, match="nope"):
        split_scenes(nusc_synthetic, "nope")


def test_a_split_listing_a_scene_twice_is_an_error(synthetic_root, tmp_path):
    """(Its keyframes were evaluated twice: frames_evaluated and the decision rates counted them twice.)"""
    version = TINY_WORLD["version"]
    shutil.copytree(synthetic_root / version, tmp_path / version)
    (tmp_path / "maps").symlink_to(synthetic_root / "maps")
    splits = json.loads((tmp_path / version / "splits.json").read_text())
    twice = splits[VAL_SPLIT][0]
    splits["twice"] = [twice, twice]
    (tmp_path / version / "splits.json").write_text(json.dumps(splits))
    with pytest.raises(ValueError, match=f"split 'twice' of {version} at .* lists {twice} more than once"):
        split_scenes(open_nuscenes(str(tmp_path), version), "twice")


def test_multisweep_lidar_equals_devkit(nusc_synthetic, monkeypatch):
    read_float32 = LidarPointCloud.from_file
    monkeypatch.setattr(LidarPointCloud, "from_file", classmethod(
        lambda cls, path: LidarPointCloud(read_float32(path).points.astype(np.float64))))
    sample = nusc_synthetic.sample[2]
    frame = load_frame(nusc_synthetic, sample["token"], lidar_sweeps=10, radar_sweeps=1, cameras=False,
                       sweep_min_distance_m=0.0)
    cloud, times = LidarPointCloud.from_file_multisweep(nusc_synthetic, sample, LIDAR_CHANNEL, LIDAR_CHANNEL,
                                                        nsweeps=10, min_distance=0.0)
    devkit = cloud.points[:3].T @ _ego_from_sensor(nusc_synthetic, sample["data"][LIDAR_CHANNEL])[:3, :3].T
    devkit += _ego_from_sensor(nusc_synthetic, sample["data"][LIDAR_CHANNEL])[:3, 3]
    assert frame.lidar.num_sweeps == 10 and len(np.unique(frame.lidar.points[:, 4])) == 10
    np.testing.assert_allclose(frame.lidar.points[:, :3], devkit, rtol=0, atol=1e-5)  # float32 output
    # The devkit subtracts two timestamps in seconds (~1.5e9, rounding ~2e-7 s); ours subtracts the integer us.
    np.testing.assert_allclose(frame.lidar.points[:, 4], times[0], rtol=0, atol=1e-6)
    # By default the past sweeps lose the returns within 1 m of the sensor; the keyframe sweep stays whole.
    default = load_frame(nusc_synthetic, sample["token"], lidar_sweeps=10, radar_sweeps=1, cameras=False)
    key = frame.lidar.points[:, 4] == 0
    np.testing.assert_array_equal(default.lidar.points[default.lidar.points[:, 4] == 0], frame.lidar.points[key])


def _world_copy(synthetic_root, destination, edit_sample_data) -> NuScenes:
    """The tiny world with its tables copied (sensor folders linked) and sample_data.json edited in place by
    ``edit_sample_data(records by token)``; the devkit on the copy."""
    version = TINY_WORLD["version"]
    shutil.copytree(synthetic_root / version, destination / version)
    for folder in ("maps", "samples", "sweeps"):
        (destination / folder).symlink_to(synthetic_root / folder)
    path = destination / version / "sample_data.json"
    records = json.loads(path.read_text())
    edit_sample_data({record["token"]: record for record in records})
    path.write_text(json.dumps(records))
    return NuScenes(version, str(destination), verbose=False)


def test_past_sweeps_lose_self_returns_as_devkit_min_distance(nusc_synthetic, synthetic_root, tmp_path, monkeypatch):
    """The default 1 m filter on the past sweeps is the devkit's remove_close (|x| < 1 and |y| < 1 in the sensor
    frame). The synthetic LiDAR sees no ego vehicle (no return has both |x| and |y| < 1: nothing to drop, while
    ~5,500 per sweep have one of them < 1), so the first past sweep of keyframe 2 is swapped for six hand-made
    points [x, y, 0, intensity, 0]: (0.5, 0.5) and (-0.99, 0.99) are dropped; (0.5, 3), (3, -0.5), (1.0, 0.2)
    (|x| not < 1) and (4, 4) are kept: intensities 2, 3, 5, 6. The past sweeps equal the devkit's
    from_file_multisweep(min_distance=1.0) after both chains (which also filters the keyframe sweep; we do not)."""
    handmade = np.array([[0.5, 0.5, 0, 1, 0], [0.5, 3.0, 0, 2, 0], [3.0, -0.5, 0, 3, 0], [-0.99, 0.99, 0, 4, 0],
                         [1.0, 0.2, 0, 5, 0], [4.0, 4.0, 0, 6, 0]], np.float32)
    (tmp_path / "handmade").mkdir()
    handmade.tofile(tmp_path / "handmade" / "sweep.pcd.bin")
    sample_token = nusc_synthetic.sample[2]["token"]
    first_past = nusc_synthetic.get("sample_data", nusc_synthetic.sample[2]["data"][LIDAR_CHANNEL])["prev"]

    def swap_first_past_sweep(records):
        records[first_past]["filename"] = "handmade/sweep.pcd.bin"

    nusc = _world_copy(synthetic_root, tmp_path, swap_first_past_sweep)
    read_float32 = LidarPointCloud.from_file
    monkeypatch.setattr(LidarPointCloud, "from_file", classmethod(
        lambda cls, path: LidarPointCloud(read_float32(path).points.astype(np.float64))))
    sample = nusc.get("sample", sample_token)
    frame = load_frame(nusc, sample_token, lidar_sweeps=10, radar_sweeps=1, cameras=False)
    cloud, times = LidarPointCloud.from_file_multisweep(nusc, sample, LIDAR_CHANNEL, LIDAR_CHANNEL, nsweeps=10,
                                                        min_distance=1.0)
    devkit = cloud.points[:3].T @ _ego_from_sensor(nusc, sample["data"][LIDAR_CHANNEL])[:3, :3].T
    devkit += _ego_from_sensor(nusc, sample["data"][LIDAR_CHANNEL])[:3, 3]
    past, devkit_past = frame.lidar.points[:, 4] > 0, times[0] > 0
    lags = np.unique(frame.lidar.points[past, 4])
    assert frame.lidar.num_sweeps == 10 and len(lags) == 9 and devkit_past.sum() > 8 * 25000
    np.testing.assert_allclose(frame.lidar.points[past, :3], devkit[devkit_past], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(frame.lidar.points[past, 3], cloud.points[3, devkit_past])
    swapped = frame.lidar.points[:, 4] == lags[0]  # the newest past sweep
    assert frame.lidar.points[swapped, 3].tolist() == [2, 3, 5, 6]


def test_radar_num_sweeps_is_the_fewest_any_radar_read(nusc_synthetic, synthetic_root, tmp_path):
    """Keyframe 0 has 7 records per radar (6 read when 6 are asked). In the copy RADAR_FRONT's chain ends at its
    3rd record (its prev emptied): RADAR_FRONT reads 3 sweeps, the other four 6 each -> num_sweeps 3. The points
    are as many as the devkit's from_file_multisweep(nsweeps=6) gives over the radars (3 + 4 x 6 sweeps)."""
    sample_token = nusc_synthetic.sample[0]["token"]
    token = nusc_synthetic.sample[0]["data"]["RADAR_FRONT"]
    for _ in range(2):
        token = nusc_synthetic.get("sample_data", token)["prev"]
    third_front = token

    def cut_front_chain(records):
        assert records[third_front]["prev"]
        records[third_front]["prev"] = ""

    nusc = _world_copy(synthetic_root, tmp_path, cut_front_chain)
    frame = load_frame(nusc, sample_token, lidar_sweeps=1, radar_sweeps=6, cameras=False)
    sample = nusc.get("sample", sample_token)
    devkit = [RadarPointCloud.from_file_multisweep(nusc, sample, channel, LIDAR_CHANNEL, nsweeps=6)
              for channel in RADAR_CHANNELS]
    assert [len(np.unique(times)) for _, times in devkit] == [6 if c != "RADAR_FRONT" else 3 for c in RADAR_CHANNELS]
    assert frame.radar.num_sweeps == 3 and frame.missing == {"camera"}
    assert len(frame.radar.points) == sum(cloud.nbr_points() for cloud, _ in devkit)


def test_multisweep_radar_equals_devkit_then_advanced(nusc_synthetic):
    sample = nusc_synthetic.sample[5]
    frame = load_frame(nusc_synthetic, sample["token"], lidar_sweeps=1, radar_sweeps=6, cameras=False)
    lidar_token = sample["data"][LIDAR_CHANNEL]
    key_pose = nusc_synthetic.get("ego_pose", nusc_synthetic.get("sample_data", lidar_token)["ego_pose_token"])
    expected = []
    for channel in RADAR_CHANNELS:
        cloud, times = RadarPointCloud.from_file_multisweep(nusc_synthetic, sample, channel, LIDAR_CHANNEL,
                                                            nsweeps=6, min_distance=0.0)
        xyz = cloud.points[:3].T @ _ego_from_sensor(nusc_synthetic, lidar_token)[:3, :3].T
        xyz += _ego_from_sensor(nusc_synthetic, lidar_token)[:3, 3]
        # Velocities: the devkit leaves them in each sweep's sensor frame; rotate them with each sweep's chain.
        rotations, token = [], sample["data"][channel]
        for _ in range(6):
            record = nusc_synthetic.get("sample_data", token)
            pose = nusc_synthetic.get("ego_pose", record["ego_pose_token"])
            rotation = (Quaternion(key_pose["rotation"]).inverse * Quaternion(pose["rotation"])).rotation_matrix
            count = len(RadarPointCloud.from_file(nusc_synthetic.get_sample_data_path(token)).points.T)
            rotations += [rotation @ _ego_from_sensor(nusc_synthetic, token)[:3, :3]] * count
            token = record["prev"]
            assert token, "the synthetic world has every sweep"
        fields = cloud.points.T
        velocity = np.stack([fields[:, RADAR_PCD_FIELDS.index("vx_comp")], fields[:, RADAR_PCD_FIELDS.index("vy_comp")],
                             np.zeros(len(fields))], axis=1)
        velocity = np.einsum("nij,nj->ni", np.array(rotations).reshape(-1, 3, 3), velocity)[:, :2]
        xyz[:, :2] += velocity * times[0][:, None]
        expected.append(np.concatenate([xyz, fields[:, [RADAR_PCD_FIELDS.index("rcs")]], velocity,
                                        times[0][:, None]], axis=1))
    expected = np.concatenate(expected)
    assert frame.radar.num_sweeps == 6 and len(np.unique(frame.radar.points[:, 6])) >= 6 * len(RADAR_CHANNELS) - 5
    np.testing.assert_allclose(frame.radar.points, expected, rtol=1e-6, atol=1e-5)


def test_static_objects_from_ten_sweeps_coincide(frames, nusc_synthetic):
    """Returns near a static annotated object (within 0.5 m of its box, above the 0.15 m kerbs) from all 10
    sweeps lie inside the box grown by 0.1 m (5 sigma of the range noise; the meshes sit 3 cm inside their box).
    The ego moves > 3 m over the sweeps, so uncompensated sweeps would miss by metres (checked: 5-25% outside)."""
    margin = 5 * LIDAR_RANGE_NOISE_M
    for frame in frames:
        sample = nusc_synthetic.get("sample", frame.sample_token)
        oldest = nusc_synthetic.get("sample_data", sample["data"][LIDAR_CHANNEL])
        for _ in range(9):
            oldest = nusc_synthetic.get("sample_data", oldest["prev"])
        oldest_pose = nusc_synthetic.get("ego_pose", oldest["ego_pose_token"])
        assert np.linalg.norm(np.subtract(oldest_pose["translation"], frame.ego_pose.ego_to_global.translation)) > 3
        points = frame.lidar.points[:, :3].astype(np.float64)
        above_kerb = frame.ego_pose.ego_to_global.apply(points)[:, 2] > 0.3
        static = np.linalg.norm(frame.gt_boxes.velocities, axis=1) < 0.05
        near_total, outside_total, sweeps_seen = 0, 0, set()
        for box, is_static in zip(frame.gt_boxes.to_devkit(), static):
            if not is_static:
                continue
            around = np.flatnonzero(above_kerb & (np.linalg.norm(points[:, :2] - box.center[:2], axis=1)
                                                  < np.linalg.norm(box.wlh[:2]) / 2 + 1.0))
            near = points_in_box(_grown(box, 0.5), points[around].T)
            inside = points_in_box(_grown(box, margin), points[around].T)
            near_total += near.sum()
            outside_total += (near & ~inside).sum()
            sweeps_seen |= set(frame.lidar.points[around[near & inside], 4].tolist())
        assert near_total > 1000 and len(sweeps_seen) == 10
        assert outside_total / near_total < 0.02, (frame.sample_token, outside_total, near_total)


def test_radar_velocities_match_ground_truth(frames):
    """The synthetic radar measures radial velocity over ground: a return on a moving object carries the
    projection of the object's velocity on its own direction, up to the Doppler noise; the static world ~0."""
    residuals, static_speeds = [], []
    for frame in frames:
        radar = frame.radar.points.astype(np.float64)
        velocity = radar[:, 4:6]
        speed = np.linalg.norm(velocity, axis=1)
        owner = np.full(len(radar), -1)
        for index, box in enumerate(frame.gt_boxes.to_devkit()):
            owner[points_in_box(_grown(box, 0.5), radar[:, :3].T)] = index
        box_velocity = frame.gt_boxes.velocities[np.maximum(owner, 0)]
        moving = (owner >= 0) & (np.linalg.norm(box_velocity, axis=1) > 1.0) & (speed > 0.5)
        direction = velocity[moving] / speed[moving, None]
        residuals.append(speed[moving] - np.sum(box_velocity[moving] * direction, axis=1))
        static_speeds.append(speed[owner < 0])
    residuals, static_speeds = np.concatenate(residuals), np.concatenate(static_speeds)
    assert len(residuals) > 500
    # |N(0, s)| has median 0.67 s; allow for the objects' acceleration over the 0.4 s of sweeps.
    assert np.median(np.abs(residuals)) < 1.5 * RADAR_VELOCITY_NOISE_M_S
    assert np.percentile(np.abs(residuals), 95) < 5 * RADAR_VELOCITY_NOISE_M_S
    assert np.median(static_speeds) < 1.5 * RADAR_VELOCITY_NOISE_M_S


def test_evenly_spread_reaches_from_the_first_to_the_last_item():
    assert evenly_spread(29, 8) == [0, 4, 8, 12, 16, 20, 24, 28]  # 28 / 7 = 4 apart
    assert evenly_spread(12, 32) == list(range(12))  # asked for more than there are: every one
    assert evenly_spread(5, 1) == [0] and evenly_spread(0, 3) == []


def test_evenly_spread_rounds_uneven_steps_to_the_nearest_index():
    # 4 / 3 apart: i x 4/3 = 0, 1.33, 2.67, 4 round to 0, 1, 3, 4 (truncating would give 0, 1, 2, 4)
    assert evenly_spread(5, 4) == [0, 1, 3, 4]
