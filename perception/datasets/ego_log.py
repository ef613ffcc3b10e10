"""The ego's logged LIDAR_TOP poses around a keyframe, read from the nuScenes tables.

Poses are those of the LIDAR_TOP sample_data of the keyframe's scene: every sweep where the tables have them
(nuScenes: 20 Hz), and every keyframe (2 Hz; the only poses of a table without sweeps). ``past_ego_poses``
reads no pose later than the keyframe, so what it returns is what the car knew at that instant.
``lidar_poses_between`` reads both ways, for the logged drive's ground truth (labels, open-loop grading).
A sample_data whose ego pose is missing from the tables raises a ValueError naming the sample. A keyframe without
a LIDAR_TOP record (the loader lists the LiDAR as missing) takes the pose of its sample_data nearest in time
(``keyframe_sample_data``), and the walks skip such keyframes.
"""
from __future__ import annotations

import numbers
from typing import Dict, List, Optional, Tuple

import numpy as np
from nuscenes.nuscenes import NuScenes

from perception.geometry import EgoPose, interpolate_pose
from perception.geometry.values import is_number, record_fields
from perception.sensors import LIDAR_CHANNEL


def sample_data_pose_record(nusc: NuScenes, sample_data: dict) -> dict:
    """The ego_pose record of ``sample_data``; ValueError naming the record when its timestamp is not an integer
    [us], naming both when the table lacks the pose or stamps it at another time than the record (nuScenes stamps a
    record's pose at the record's time)."""
    if not is_number(sample_data["timestamp"], numbers.Integral):
        raise ValueError(f"sample_data {sample_data['token']} ({sample_data['filename']}): timestamp must be an "
                         f"integer [us], got {sample_data['timestamp']!r}")
    try:
        pose = nusc.get("ego_pose", sample_data["ego_pose_token"])
    except KeyError:
        raise ValueError(f"sample_data {sample_data['token']} ({sample_data['filename']}): its ego pose "
                         f"{sample_data['ego_pose_token']} is missing from the ego_pose table") from None
    pose_timestamp, = record_fields(pose, ("timestamp",), f"ego_pose {pose['token']}")
    if pose_timestamp != sample_data["timestamp"]:
        raise ValueError(f"sample_data {sample_data['token']} ({sample_data['filename']}): stamped "
                         f"{sample_data['timestamp']} us, its ego pose {pose['token']} {pose_timestamp} us")
    return pose


def _record(nusc: NuScenes, sample_token: str, table: str, token: str) -> dict:
    """``nusc.get(table, token)``; a ValueError naming sample ``sample_token`` (whose poses are being read) when the
    tables lack it (a link to no record, in tables not checked by records.check_references)."""
    try:
        return nusc.get(table, token)
    except KeyError:
        raise ValueError(f"sample {sample_token}: {table} {token} is missing from the tables") from None


def sample_data_pose(nusc: NuScenes, sample_token: str, sample_data_token: str) -> EgoPose:
    """The ego pose of one sample_data record (of sample ``sample_token``, named in the error)."""
    record = _record(nusc, sample_token, "sample_data", sample_data_token)
    try:
        return EgoPose.from_record(sample_data_pose_record(nusc, record))
    except ValueError as error:
        raise ValueError(f"sample {sample_token}: {error}") from None


def _walk(nusc: NuScenes, sample_token: str, link: str, limit_us: int, poses: Dict[int, EgoPose]) -> None:
    """Adds the LIDAR_TOP poses from the keyframe along ``link`` ('prev' or 'next') while their timestamps stay
    within ``limit_us``: the sample chain (keyframes) and the sample_data chain (sweeps), each stopping at its
    first record past the limit."""
    later = link == "next"

    def within(timestamp_us: int) -> bool:
        return timestamp_us <= limit_us if later else timestamp_us >= limit_us

    sample = nusc.get("sample", sample_token)
    while sample[link]:
        sample = _record(nusc, sample_token, "sample", sample[link])
        if not within(int(sample["timestamp"])):
            break
        if LIDAR_CHANNEL not in sample["data"]:
            continue
        pose = sample_data_pose(nusc, sample_token, sample["data"][LIDAR_CHANNEL])
        if within(pose.timestamp_us):
            poses[pose.timestamp_us] = pose
    keyframe_lidar = nusc.get("sample", sample_token)["data"].get(LIDAR_CHANNEL)
    token = nusc.get("sample_data", keyframe_lidar)[link] if keyframe_lidar else None
    while token:
        record = _record(nusc, sample_token, "sample_data", token)
        if not within(int(record["timestamp"])):
            break
        poses[int(record["timestamp"])] = sample_data_pose(nusc, sample_token, token)
        token = record[link]


def lidar_poses_between(nusc: NuScenes, sample_token: str, start_offset_s: float, end_offset_s: float
                        ) -> List[EgoPose]:
    """The logged LIDAR_TOP poses from ``start_offset_s`` (<= 0) to ``end_offset_s`` (>= 0) around the keyframe's
    LIDAR_TOP timestamp, sorted by time (the keyframe's own included)."""
    current = keyframe_lidar_pose(nusc, sample_token)
    poses: Dict[int, EgoPose] = {current.timestamp_us: current}
    if start_offset_s < 0:
        _walk(nusc, sample_token, "prev", current.timestamp_us + int(round(start_offset_s * 1e6)), poses)
    if end_offset_s > 0:
        _walk(nusc, sample_token, "next", current.timestamp_us + int(round(end_offset_s * 1e6)), poses)
    return [poses[t] for t in sorted(poses)]


OTHER_SENSORS_BEFORE_S = 0.1
"""How far before a keyframe's LIDAR_TOP timestamp its other sensors' records may lie to give the ego's motion where
no earlier LiDAR pose exists (nuScenes' cameras fire 0-45 ms before it)."""


def past_ego_poses(nusc: NuScenes, sample_token: str, history_s: float = 1.0) -> List[EgoPose]:
    """The LIDAR_TOP poses of the last ``history_s`` up to and including the keyframe, sorted by time (the ego
    state at the keyframe is ``EgoState.from_poses(past_ego_poses(...))``). Where none precedes the keyframe's own
    (the first keyframe of a log, or of a table without sweeps), the earliest pose of the other sensors' records
    stamped within OTHER_SENSORS_BEFORE_S before it comes first, so that the ego's speed is known there too. No
    pose later than the keyframe is read (the keyframe's records of other sensors are read for their timestamps,
    a later one's pose never)."""
    poses = lidar_poses_between(nusc, sample_token, -history_s, 0.0)
    if len(poses) > 1:
        return poses
    current_us = poses[0].timestamp_us
    start_us = current_us - OTHER_SENSORS_BEFORE_S * 1e6
    earlier = []  # (timestamp, token) of the other sensors' records in [start_us, current_us)
    for channel, token in nusc.get("sample", sample_token)["data"].items():
        if channel == LIDAR_CHANNEL:
            continue
        while token:
            record = _record(nusc, sample_token, "sample_data", token)
            if int(record["timestamp"]) < start_us:
                break
            if int(record["timestamp"]) < current_us:
                earlier.append((int(record["timestamp"]), token))
            token = record["prev"]
    return [sample_data_pose(nusc, sample_token, min(earlier)[1])] + poses if earlier else poses


def keyframe_sample_data(nusc: NuScenes, sample: dict) -> dict:
    """The sample_data record whose pose is the keyframe's: its LIDAR_TOP; without one, the record nearest the
    keyframe's timestamp. ValueError naming the sample when it has none."""
    if LIDAR_CHANNEL in sample["data"]:
        return nusc.get("sample_data", sample["data"][LIDAR_CHANNEL])
    candidates = [nusc.get("sample_data", token) for token in sample["data"].values()]
    if not candidates:
        raise ValueError(f"sample {sample['token']}: no sample_data at all")
    return min(candidates, key=lambda record: abs(record["timestamp"] - sample["timestamp"]))


def keyframe_lidar_pose(nusc: NuScenes, sample_token: str) -> EgoPose:
    """The ego pose at the keyframe's LIDAR_TOP timestamp (the frame the network and the decisions work in; without
    a LIDAR_TOP record, keyframe_sample_data's)."""
    return sample_data_pose(nusc, sample_token,
                            keyframe_sample_data(nusc, nusc.get("sample", sample_token))["token"])


def _pose_at(poses: List[EgoPose], times_us: np.ndarray, timestamp_us: int, tolerance_us: int) -> Optional[EgoPose]:
    """The pose at ``timestamp_us`` interpolated between the two sorted ``poses`` (their timestamps ``times_us``
    (len(poses),) [us]) around it (up to ``tolerance_us`` past either end it is extrapolated from the two nearest);
    None when farther or when fewer than two poses exist (never padded)."""
    if len(times_us) < 2 or not times_us[0] - tolerance_us <= timestamp_us <= times_us[-1] + tolerance_us:
        return None
    after = int(np.clip(np.searchsorted(times_us, timestamp_us, side="right"), 1, len(times_us) - 1))
    return interpolate_pose(poses[after - 1], poses[after], int(timestamp_us))


BRACKET_MARGIN_S = 0.6
"""ego_track reads this far beyond its times, so that a time between two keyframes (0.5 s apart) is bracketed."""


def ego_track(nusc: NuScenes, sample_token: str, times_s: np.ndarray, tolerance_s: float = 0.05
              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The logged ego at ``times_s`` (K,) [s from the keyframe's LIDAR_TOP timestamp, sorted], in the keyframe's
    ego frame: xy (K, 2) [m] of the rear axle and yaw (K,) [rad], NaN where ``valid`` (K,) is False (the log ends
    more than ``tolerance_s`` before the time, or begins after it). Reads the poses within the times' span and
    BRACKET_MARGIN_S beyond it, but never past the keyframe when no time is."""
    times_s = np.asarray(times_s, dtype=np.float64)
    current = keyframe_lidar_pose(nusc, sample_token)
    first, last = float(times_s.min()), float(times_s.max())
    poses = lidar_poses_between(nusc, sample_token, min(first - BRACKET_MARGIN_S, 0.0) if first < 0 else 0.0,
                                max(last + BRACKET_MARGIN_S, 0.0) if last > 0 else 0.0)
    return track_from_poses(poses, current, times_s, tolerance_s)


def track_from_poses(poses: List[EgoPose], current: EgoPose, times_s: np.ndarray, tolerance_s: float = 0.05
                     ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ego_track's (xy, yaw, valid) from the sorted ``poses`` given, at ``times_s`` from ``current``'s timestamp,
    in ``current``'s ego frame (interpolated, extrapolated up to ``tolerance_s`` past the poses, never padded)."""
    to_ego = current.ego_to_global.inverse()
    times_s = np.asarray(times_s, dtype=np.float64)
    times_us = np.array([pose.timestamp_us for pose in poses], dtype=np.int64)
    xy, yaw = np.full((len(times_s), 2), np.nan), np.full(len(times_s), np.nan)
    for k, time_s in enumerate(times_s):
        pose = _pose_at(poses, times_us, current.timestamp_us + int(round(time_s * 1e6)), int(round(tolerance_s * 1e6)))
        if pose is not None:
            local = to_ego @ pose.ego_to_global
            xy[k], yaw[k] = local.translation[:2], local.yaw
    return xy, yaw, ~np.isnan(yaw)
