"""The logged ego poses around a keyframe against a plain filter of the devkit's tables, and the promise that the
past reader touches no record later than the keyframe."""
import numpy as np
import pytest

from perception.datasets.ego_log import (OTHER_SENSORS_BEFORE_S, ego_track, keyframe_lidar_pose, lidar_poses_between,
                                       past_ego_poses, track_from_poses)
from perception.decision import EgoState
from perception.geometry import EgoPose, RigidTransform, rotation_from_vector
from perception.sensors import LIDAR_CHANNEL


class _RaisesOnTheFuture:
    """A NuScenes whose ``get`` fails on any record of ``tables`` (None: every table) stamped later than
    ``limit_us``."""

    def __init__(self, nusc, limit_us: int, tables=None):
        self.nusc, self.limit_us, self.tables = nusc, limit_us, tables

    def get(self, table: str, token: str) -> dict:
        record = self.nusc.get(table, token)
        if (self.tables is None or table in self.tables) and record.get("timestamp", -1) > self.limit_us:
            raise AssertionError(f"read {table} {token} at {record['timestamp']}, after {self.limit_us}")
        return record


def _oracle_times(nusc, sample_token, start_us, end_us):
    """Timestamps of the scene's LIDAR_TOP sample_data within [start_us, end_us], by scanning the whole table."""
    scene = nusc.get("sample", sample_token)["scene_token"]
    return sorted(record["timestamp"] for record in nusc.sample_data
                  if record["channel"] == LIDAR_CHANNEL and start_us <= record["timestamp"] <= end_us
                  and nusc.get("sample", record["sample_token"])["scene_token"] == scene)


def _check(nusc, sample_token):
    keyframe = keyframe_lidar_pose(nusc, sample_token)
    guarded = _RaisesOnTheFuture(nusc, keyframe.timestamp_us)
    past = past_ego_poses(guarded, sample_token, history_s=1.0)
    assert [p.timestamp_us for p in past] == _oracle_times(nusc, sample_token, keyframe.timestamp_us - 1_000_000,
                                                           keyframe.timestamp_us)
    assert EgoState.from_poses(past) == EgoState.from_poses(past_ego_poses(guarded, sample_token, 0.5))
    both = lidar_poses_between(nusc, sample_token, -0.6, 1.2)
    assert [p.timestamp_us for p in both] == _oracle_times(nusc, sample_token, keyframe.timestamp_us - 600_000,
                                                           keyframe.timestamp_us + 1_200_000)
    with pytest.raises(AssertionError, match="after"):  # the guard itself works
        lidar_poses_between(guarded, sample_token, 0.0, 1.0)


def test_synthetic_sweeps(nusc_synthetic):
    scene = nusc_synthetic.scene[0]
    first = scene["first_sample_token"]
    second = nusc_synthetic.get("sample", first)["next"]
    _check(nusc_synthetic, second)
    # the first keyframe's history is the 0.5 s of sweeps before it: a moving state, not the rest of an empty past
    past = past_ego_poses(nusc_synthetic, first)
    assert len(past) == 11 and EgoState.from_poses(past).speed_mps > 1.0


def test_real_keyframes_without_sweeps(nusc_real):
    tokens = [sample["token"] for sample in sorted(nusc_real.sample, key=lambda s: s["timestamp"])]
    _check(nusc_real, tokens[1])


def test_a_first_keyframe_takes_its_motion_from_the_earlier_records_of_other_sensors(nusc_real):
    first = min(nusc_real.sample, key=lambda s: s["timestamp"])["token"]
    keyframe = keyframe_lidar_pose(nusc_real, first)
    # no earlier LiDAR pose: the start of a log
    assert [p.timestamp_us for p in lidar_poses_between(nusc_real, first, -1.0, 0.0)] == [keyframe.timestamp_us]
    # the oracle: a plain scan of the tables for the other sensors' records of the last OTHER_SENSORS_BEFORE_S
    earliest = min((r for r in nusc_real.sample_data if r["channel"] != LIDAR_CHANNEL
                    and keyframe.timestamp_us - OTHER_SENSORS_BEFORE_S * 1e6 <= r["timestamp"] < keyframe.timestamp_us),
                   key=lambda r: r["timestamp"])
    assert earliest["channel"].startswith("CAM_")  # nuScenes' cameras fire before the LiDAR's timestamp
    guarded = _RaisesOnTheFuture(nusc_real, keyframe.timestamp_us, tables=("ego_pose",))
    past = past_ego_poses(guarded, first)  # reads no later pose
    assert [p.timestamp_us for p in past] == [earliest["timestamp"], keyframe.timestamp_us]
    start = np.array(nusc_real.get("ego_pose", earliest["ego_pose_token"])["translation"][:2])
    end = keyframe.ego_to_global.translation[:2]
    heading = keyframe.ego_to_global.rotation[:2, 0] / np.linalg.norm(keyframe.ego_to_global.rotation[:2, 0])
    seconds = (keyframe.timestamp_us - earliest["timestamp"]) * 1e-6
    state = EgoState.from_poses(past)
    assert state.speed_mps == pytest.approx(float((end - start) @ heading) / seconds, rel=1e-9)
    assert state.speed_mps > 3.0 and state.acceleration_mps2 is None  # moving, as the next keyframe shows


def global_xy_at(poses, timestamp_us, tolerance_us=50_000):
    """track_from_poses' position at ``timestamp_us`` seen from the global frame's origin (an identity pose), or None
    where its track is not valid."""
    origin = EgoPose(1_000_000, RigidTransform.identity())
    xy, _, valid = track_from_poses(poses, origin, [(timestamp_us - origin.timestamp_us) / 1e6], tolerance_us / 1e6)
    return list(xy[0]) if valid[0] else None


def test_the_track_interpolates_and_never_pads(nusc_synthetic):
    token = nusc_synthetic.scene[0]["first_sample_token"]
    poses = lidar_poses_between(nusc_synthetic, token, -0.5, 1.0)
    middle = (poses[3].timestamp_us + poses[4].timestamp_us) // 2
    halfway = (poses[3].ego_to_global.translation + poses[4].ego_to_global.translation) / 2
    assert global_xy_at(poses, middle) == pytest.approx(halfway[:2], abs=1e-3)
    assert global_xy_at(poses, poses[-1].timestamp_us + 200_000) is None
    assert global_xy_at(poses[:1], poses[0].timestamp_us) is None


def test_a_missing_ego_pose_names_the_sample(nusc_synthetic):
    class NoEgoPoses:
        def get(self, table, token):
            if table == "ego_pose":
                raise KeyError(token)
            return nusc_synthetic.get(table, token)

    token = nusc_synthetic.scene[0]["first_sample_token"]
    with pytest.raises(ValueError, match=f"sample {token}: sample_data .*: its ego pose .* is missing"):
        past_ego_poses(NoEgoPoses(), token)


def test_a_link_to_no_record_names_the_sample(nusc_synthetic):
    """A sweep's prev, or a keyframe's, naming a record the tables lack (tables not opened by open_nuscenes, whose
    check_references would name it first): a ValueError naming the sample, not the devkit's bare KeyError."""
    token = nusc_synthetic.scene[0]["first_sample_token"]
    for _ in range(2):
        token = nusc_synthetic.get("sample", token)["next"]
    lidar = nusc_synthetic.get("sample", token)["data"][LIDAR_CHANNEL]
    for table, gone in (("sample_data", nusc_synthetic.get("sample_data", lidar)["prev"]),
                        ("sample", nusc_synthetic.get("sample", token)["prev"])):
        class Dangling:
            def get(self, name, record_token, table=table, gone=gone):
                if (name, record_token) == (table, gone):
                    raise KeyError(record_token)
                return nusc_synthetic.get(name, record_token)

        with pytest.raises(ValueError, match=f"sample {token}: {table} {gone} is missing from the tables"):
            past_ego_poses(Dangling(), token)


def test_a_pose_stamped_at_another_time_than_its_record_names_both(nusc_synthetic, monkeypatch):
    # the logged drive read the pose's time, the loader the record's: 40 ms apart, 37 decision metrics moved
    sample = nusc_synthetic.sample[3]
    lidar = nusc_synthetic.get("sample_data", sample["data"][LIDAR_CHANNEL])
    pose = nusc_synthetic.get("ego_pose", lidar["ego_pose_token"])
    monkeypatch.setitem(pose, "timestamp", pose["timestamp"] + 40_000)
    with pytest.raises(ValueError, match=f"sample {sample['token']}: sample_data {lidar['token']} .*: stamped "
                                         f"{lidar['timestamp']} us, its ego pose"):
        past_ego_poses(nusc_synthetic, sample["token"])


class _KeyframeWithoutLidar:
    """A NuScenes whose keyframe ``hidden`` lists no LIDAR_TOP record (the loader's documented degradation)."""

    def __init__(self, nusc, hidden: str):
        self.nusc, self.hidden = nusc, hidden

    def get(self, table: str, token: str) -> dict:
        record = self.nusc.get(table, token)
        if table == "sample" and token == self.hidden:
            record = dict(record, data={k: v for k, v in record["data"].items() if k != LIDAR_CHANNEL})
        return record


def test_a_keyframe_without_lidar_takes_the_pose_of_its_nearest_record(nusc_synthetic):
    scene = nusc_synthetic.scene[0]
    first = nusc_synthetic.get("sample", scene["first_sample_token"])
    second = nusc_synthetic.get("sample", first["next"])
    target = nusc_synthetic.get("sample", second["next"])  # the third keyframe: two before it, 0.5 and 1.0 s back
    nusc = _KeyframeWithoutLidar(nusc_synthetic, target["token"])
    records = [nusc_synthetic.get("sample_data", token) for channel, token in target["data"].items()
               if channel != LIDAR_CHANNEL]
    nearest = min(records, key=lambda record: abs(record["timestamp"] - target["timestamp"]))
    key = keyframe_lidar_pose(nusc, target["token"])
    assert key.timestamp_us == nearest["timestamp"]
    # the earlier keyframes' LiDAR poses within the second, then the key's; no sweep chain from a missing record
    earlier = [keyframe_lidar_pose(nusc_synthetic, sample["token"]) for sample in (first, second)]
    expected = [pose.timestamp_us for pose in earlier if pose.timestamp_us >= key.timestamp_us - 1_000_000]
    assert [pose.timestamp_us for pose in past_ego_poses(nusc, target["token"])] == expected + [key.timestamp_us]
    # the next keyframe's history reads its sweeps back through the missing keyframe's time as before
    following = target["next"]
    assert ([p.timestamp_us for p in past_ego_poses(nusc, following)]
            == [p.timestamp_us for p in past_ego_poses(nusc_synthetic, following)])


def test_a_pose_exactly_at_either_end_of_the_window_is_read(nusc_synthetic):
    # The window's ends are inclusive: an offset that lands exactly on a sweep's timestamp reads that sweep (the
    # oracle: the scene's LIDAR_TOP records of the table at and after / before the keyframe).
    token = nusc_synthetic.get("sample", nusc_synthetic.scene[0]["first_sample_token"])["next"]
    keyframe = keyframe_lidar_pose(nusc_synthetic, token).timestamp_us
    later = _oracle_times(nusc_synthetic, token, keyframe + 1, keyframe + 1_000_000)
    earlier = _oracle_times(nusc_synthetic, token, keyframe - 400_000, keyframe - 1)
    end_us, start_us = later[5], earlier[2]
    read = lidar_poses_between(nusc_synthetic, token, (start_us - keyframe) / 1e6, (end_us - keyframe) / 1e6)
    assert [p.timestamp_us for p in read] == _oracle_times(nusc_synthetic, token, start_us, end_us)
    assert read[0].timestamp_us == start_us and read[-1].timestamp_us == end_us


def _pose(timestamp_us, x, y, yaw):
    rotation = rotation_from_vector(np.array([0.0, 0.0, yaw]))
    return EgoPose(timestamp_us, RigidTransform.from_rotation_translation(rotation, [x, y, 0.0]))


def test_the_track_extrapolates_within_the_tolerance_only():
    # Two poses 100 ms apart along global +x, 1 m: 30 ms past the last one (within the 50 ms tolerance) the pose is
    # extrapolated at the same speed, x = 1.3 m; 60 ms past, None; 30 ms before the first, x = -0.3 m.
    poses = [_pose(1_000_000, 0.0, 0.0, 0.0), _pose(1_100_000, 1.0, 0.0, 0.0)]
    assert global_xy_at(poses, 1_130_000) == pytest.approx([1.3, 0.0])
    assert global_xy_at(poses, 970_000) == pytest.approx([-0.3, 0.0])
    assert global_xy_at(poses, 1_160_000) is None and global_xy_at(poses, 940_000) is None
    assert global_xy_at(poses, 1_160_000, tolerance_us=60_000) is not None


def test_the_track_before_the_first_pose_extrapolates_from_the_first_two():
    # three poses 100 ms apart, (0, 0), (1, 0), (2, 1): 30 ms before the first the ego goes on back along the first
    # step, x = -0.3, y = 0 (a chord from the last pose would give y = -0.15)
    poses = [_pose(1_000_000, 0.0, 0.0, 0.0), _pose(1_100_000, 1.0, 0.0, 0.0), _pose(1_200_000, 2.0, 1.0, 0.0)]
    assert global_xy_at(poses, 970_000) == pytest.approx([-0.3, 0.0])


def test_the_track_is_in_the_keyframe_ego_frame_by_hand():
    """The ego at global (100, 50) heading +y (yaw 90 deg) at the keyframe; 1 s later at (100, 60) heading -x (yaw
    180 deg), 1 s earlier at (95, 50) heading +y. In the keyframe's ego frame (x forward = global +y, y left = global
    -x): later (10, 0) [m], yaw +90 deg; earlier (0, 5), yaw 0; halfway ahead, by linear interpolation, (5, 0)."""
    current = _pose(10_000_000, 100.0, 50.0, np.pi / 2)
    poses = [_pose(9_000_000, 95.0, 50.0, np.pi / 2), current, _pose(11_000_000, 100.0, 60.0, np.pi)]
    xy, yaw, valid = track_from_poses(poses, current, np.array([-1.0, 0.0, 0.5, 1.0, 1.2]))
    assert valid.tolist() == [True, True, True, True, False]
    assert np.allclose(xy[:4], [[0.0, 5.0], [0.0, 0.0], [5.0, 0.0], [10.0, 0.0]], atol=1e-9)
    assert np.allclose(yaw[:4], [0.0, 0.0, np.pi / 4, np.pi / 2], atol=1e-9) and np.isnan(xy[4]).all()


def test_a_track_between_keyframes_reads_the_keyframes_around_it(nusc_real):
    """Keyframes only (2 Hz): a time 0.25 s before or after the middle keyframe lies between two keyframes, which
    ego_track reads (BRACKET_MARGIN_S beyond its times) and interpolates. The oracle: the devkit's ego_pose records
    of the three LIDAR_TOP keyframes, the halfway point of two of them put into the middle one's ego frame with
    pyquaternion."""
    from pyquaternion import Quaternion

    samples = sorted(nusc_real.sample, key=lambda s: s["timestamp"])
    records = [nusc_real.get("ego_pose", nusc_real.get("sample_data", s["data"][LIDAR_CHANNEL])["ego_pose_token"])
               for s in samples]
    t0 = records[1]["timestamp"]
    times = np.array([records[0]["timestamp"] + records[1]["timestamp"], records[1]["timestamp"]
                      + records[2]["timestamp"]]) / 2
    xy, _, valid = ego_track(nusc_real, samples[1]["token"], (times - t0) / 1e6)
    assert valid.all()
    to_ego = Quaternion(records[1]["rotation"]).inverse
    for k, (a, b) in enumerate([(0, 1), (1, 2)]):
        halfway = (np.array(records[a]["translation"]) + np.array(records[b]["translation"])) / 2
        local = to_ego.rotate(halfway - np.array(records[1]["translation"]))
        assert xy[k] == pytest.approx(local[:2], abs=1e-3)


class _Tables:
    """A NuScenes stand-in over hand-written records: ``get(table, token)``."""

    def __init__(self, **tables):
        self.tables = tables

    def get(self, table: str, token: str) -> dict:
        return self.tables[table][token]


def test_a_first_keyframe_reads_other_sensors_back_to_0_1_s_only():
    # A log's first keyframe at t = 1.0 s, its LiDAR record the only one of its chain; its camera fired at 0.98 s,
    # 0.93 s and 0.88 s. Within OTHER_SENSORS_BEFORE_S = 0.1 s before the LiDAR: 0.98 and 0.93 s; the earliest of
    # them, 0.93 s (70 ms back), gives the motion; the 0.88 s record (120 ms back) is too old.
    def data(token, timestamp_us, prev):
        return {"token": token, "timestamp": timestamp_us, "ego_pose_token": f"pose-{token}", "prev": prev, "next": "",
                "sample_token": "key", "is_key_frame": token in ("lidar", "cam0")}

    def pose(token, timestamp_us):
        return {"token": f"pose-{token}", "timestamp": timestamp_us, "rotation": [1.0, 0.0, 0.0, 0.0],
                "translation": [8.0 * timestamp_us / 1e6, 0.0, 0.0]}

    times = {"lidar": 1_000_000, "cam0": 980_000, "cam1": 930_000, "cam2": 880_000}
    previous = {"lidar": "", "cam0": "cam1", "cam1": "cam2", "cam2": ""}
    nusc = _Tables(sample={"key": {"token": "key", "timestamp": 1_000_000, "prev": "", "next": "",
                                   "data": {LIDAR_CHANNEL: "lidar", "CAM_FRONT": "cam0"}}},
                   sample_data={token: data(token, t, previous[token]) for token, t in times.items()},
                   ego_pose={f"pose-{token}": pose(token, t) for token, t in times.items()})
    assert OTHER_SENSORS_BEFORE_S == 0.1
    past = past_ego_poses(nusc, "key")
    assert [p.timestamp_us for p in past] == [930_000, 1_000_000]
    assert EgoState.from_poses(past).speed_mps == pytest.approx(8.0)  # 0.56 m in 0.07 s


def test_the_track_tolerance_is_in_seconds():
    # Poses at 0 and 0.5 s at global x = 0 and 5 m, heading +x (10 m/s). 0.53 s after the first is 30 ms past the
    # last pose, within the default 0.05 s = 50 000 us: extrapolated, x = 10 m/s x 0.53 s = 5.3 m, y = 0.
    current = _pose(0, 0.0, 0.0, 0.0)
    xy, yaw, valid = track_from_poses([current, _pose(500_000, 5.0, 0.0, 0.0)], current, np.array([0.53]))
    assert valid.tolist() == [True]
    assert np.allclose(xy, [[5.3, 0.0]], atol=1e-9) and np.allclose(yaw, [0.0], atol=1e-9)


@pytest.mark.parametrize("offset_us", [40_000, -40_000], ids=["pose later", "pose earlier"])
def test_a_pose_stamped_before_or_after_its_record_is_named_by_both_readers(nusc_synthetic, monkeypatch, offset_us):
    """A pose stamped 40 ms before its record is as wrong as one 40 ms after it, for the past poses and for a
    record's calibration and pose (records.sample_data_calibration) alike."""
    from perception.datasets.records import sample_data_calibration

    sample = nusc_synthetic.sample[3]
    lidar = nusc_synthetic.get("sample_data", sample["data"][LIDAR_CHANNEL])
    pose = nusc_synthetic.get("ego_pose", lidar["ego_pose_token"])
    stamped = pose["timestamp"] + offset_us
    monkeypatch.setitem(pose, "timestamp", stamped)
    message = (f"sample_data {lidar['token']} .*: stamped {lidar['timestamp']} us, its ego pose {pose['token']} "
               f"{stamped} us")
    with pytest.raises(ValueError, match=message):
        past_ego_poses(nusc_synthetic, sample["token"])
    with pytest.raises(ValueError, match=message):
        sample_data_calibration(nusc_synthetic, lidar["token"])


def _one_keyframe(times, previous, data) -> _Tables:
    """A log's only keyframe "key" at t = 1.0 s listing ``data`` (channel -> token; its LiDAR record "lidar"), the
    sample_data ``times`` (token -> [us]) linked back by ``previous`` (token -> prev token), each with an ego pose
    stamped at its time, the ego driving along global +x at 8 m/s."""
    records = {token: {"token": token, "timestamp": t, "ego_pose_token": f"pose-{token}", "prev": previous[token],
                       "next": "", "filename": f"{token}.bin"} for token, t in times.items()}
    poses = {f"pose-{token}": {"token": f"pose-{token}", "timestamp": t, "rotation": [1.0, 0.0, 0.0, 0.0],
                               "translation": [8.0 * t / 1e6, 0.0, 0.0]} for token, t in times.items()}
    sample = {"token": "key", "timestamp": 1_000_000, "prev": "", "next": "", "data": {LIDAR_CHANNEL: "lidar", **data}}
    return _Tables(sample={"key": sample}, sample_data=records, ego_pose=poses)


def test_a_record_of_another_sensor_at_the_keyframe_time_is_not_earlier():
    # The camera fired at exactly the LiDAR's 1.0 s and never before: no pose precedes the keyframe's, and its past
    # is that pose alone (the camera's, 0 s earlier, would make a speed of 0 m in 0 s).
    nusc = _one_keyframe({"lidar": 1_000_000, "cam0": 1_000_000}, {"lidar": "", "cam0": ""}, {"CAM_FRONT": "cam0"})
    assert [p.timestamp_us for p in past_ego_poses(nusc, "key")] == [1_000_000]
    # one more camera record 20 ms back is earlier: it gives the motion (8 m/s)
    nusc = _one_keyframe({"lidar": 1_000_000, "cam0": 1_000_000, "cam1": 980_000},
                         {"lidar": "", "cam0": "cam1", "cam1": ""}, {"CAM_FRONT": "cam0"})
    past = past_ego_poses(nusc, "key")
    assert [p.timestamp_us for p in past] == [980_000, 1_000_000]
    assert EgoState.from_poses(past).speed_mps == pytest.approx(8.0)


def test_a_record_of_another_sensor_exactly_0_1_s_before_the_keyframe_is_read():
    # The other sensors' window is [t - 0.1 s, t): closed at its start. Camera records at 0.95 s, 0.9 s (exactly
    # 100 000 us before the LiDAR's 1.0 s) and 0.899999 s (1 us too old): the earliest within, 0.9 s, comes first.
    nusc = _one_keyframe({"lidar": 1_000_000, "cam0": 950_000, "cam1": 900_000, "cam2": 899_999},
                         {"lidar": "", "cam0": "cam1", "cam1": "cam2", "cam2": ""}, {"CAM_FRONT": "cam0"})
    assert [p.timestamp_us for p in past_ego_poses(nusc, "key")] == [900_000, 1_000_000]


def test_a_lidar_sweep_older_than_the_history_is_not_read_as_another_sensor():
    # A LiDAR sweep at 0.95 s, a camera record at 0.98 s. With history_s = 0.1 the sweep is within the history: the
    # past is the LiDAR's two poses. With history_s = 0.02 the sweep (50 ms back) is outside it: no LiDAR pose
    # precedes the keyframe's, and the motion comes from the other sensors' records, the camera's 0.98 s, not from
    # the LiDAR's own older sweep.
    nusc = _one_keyframe({"lidar": 1_000_000, "sweep": 950_000, "cam0": 980_000},
                         {"lidar": "sweep", "sweep": "", "cam0": ""}, {"CAM_FRONT": "cam0"})
    assert [p.timestamp_us for p in past_ego_poses(nusc, "key", history_s=0.1)] == [950_000, 1_000_000]
    assert [p.timestamp_us for p in past_ego_poses(nusc, "key", history_s=0.02)] == [980_000, 1_000_000]
