"""The logged ego poses around a keyframe against a plain filter of the devkit's tables, and the promise that the
past reader touches no record later than the keyframe."""
import numpy as np
import pytest

from perception.datasets.ego_log import (OTHER_SENSORS_BEFORE_S, keyframe_lidar_pose, lidar_poses_between,
                                       past_ego_poses, pose_at)
from perception.decision import EgoState
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


def test_pose_at_interpolates_and_never_pads(nusc_synthetic):
    token = nusc_synthetic.scene[0]["first_sample_token"]
    poses = lidar_poses_between(nusc_synthetic, token, -0.5, 1.0)
    middle = (poses[3].timestamp_us + poses[4].timestamp_us) // 2
    halfway = (poses[3].ego_to_global.translation + poses[4].ego_to_global.translation) / 2
    assert pose_at(poses, middle).ego_to_global.translation == pytest.approx(halfway, abs=1e-3)
    assert pose_at(poses, poses[-1].timestamp_us + 200_000) is None
    assert pose_at(poses[:1], poses[0].timestamp_us) is None


def test_a_missing_ego_pose_names_the_sample(nusc_synthetic):
    class NoEgoPoses:
        def get(self, table, token):
            if table == "ego_pose":
                raise KeyError(token)
            return nusc_synthetic.get(table, token)

    token = nusc_synthetic.scene[0]["first_sample_token"]
    with pytest.raises(ValueError, match=f"sample {token}: the ego pose"):
        past_ego_poses(NoEgoPoses(), token)


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
