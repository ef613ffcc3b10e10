"""The logged drive in the nuScenes tables, as the decision metrics (perception.eval.decision_metrics) grade
against it: the ego state at a keyframe, and what happened after it (``logged_future``) at the plan's step times
(0.5 s .. 3.0 s), in the ego frame of the keyframe's LiDAR timestamp:

- ego positions: the LIDAR_TOP ego poses of the scene (sweeps included when the dataset has them, else the
  keyframes), interpolated to the exact step times (``perception.geometry.interpolate_pose``);
- ground-truth boxes: the annotations of the two keyframes around each step time (keyframes are 2 Hz, so they
  nearly coincide with the steps), matched by instance token and interpolated linearly to the step time; an
  instance annotated in only one of the two keyframes is taken as annotated there. Boxes of the 10 detection
  classes only (``perception.datasets.ground_truth.sample_ground_truth``), not rolled out by velocity.

A step later than the scene's last pose (or last keyframe, for boxes) by more than ``time_tolerance_s`` is
masked.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Optional, Tuple

import numpy as np
from nuscenes.nuscenes import NuScenes

from perception.datasets.ground_truth import sample_ground_truth
from perception.decision import EgoState, PlannerConfig
from perception.eval.decision_metrics import DecisionRecord, LoggedFuture, make_decision_record
from perception.geometry import Boxes3D, EgoPose, interpolate_pose
from perception.sensors import LIDAR_CHANNEL


def _lidar_pose(nusc: NuScenes, sample_data_token: str) -> EgoPose:
    return EgoPose.from_record(nusc.get("ego_pose", nusc.get("sample_data", sample_data_token)["ego_pose_token"]))


def _future_keyframes(nusc: NuScenes, sample_token: str, end_us: int) -> List[dict]:
    """The sample and the following ones of its scene, up to the first at or after ``end_us``."""
    samples = [nusc.get("sample", sample_token)]
    while samples[-1]["next"] and samples[-1]["timestamp"] < end_us:
        samples.append(nusc.get("sample", samples[-1]["next"]))
    return samples


def _future_lidar_poses(nusc: NuScenes, keyframes: List[dict], end_us: int) -> List[EgoPose]:
    """LIDAR_TOP ego poses from the first keyframe on (its sweeps when present, and every keyframe), sorted."""
    tokens = {sample["data"][LIDAR_CHANNEL] for sample in keyframes}
    token = keyframes[0]["data"][LIDAR_CHANNEL]
    while token:
        record = nusc.get("sample_data", token)
        tokens.add(token)
        if record["timestamp"] >= end_us:
            break
        token = record["next"]
    poses = {}
    for token in tokens:
        pose = _lidar_pose(nusc, token)
        poses[pose.timestamp_us] = pose
    return [poses[t] for t in sorted(poses)]


def _bracket(timestamps_us: np.ndarray, time_us: int, tolerance_us: int) -> Optional[Tuple[int, int]]:
    """Indices (before, after) of sorted ``timestamps_us`` around ``time_us`` (the last two when it lies up to
    ``tolerance_us`` past the end; (last, last) when only one exists); None when out of reach."""
    if time_us > timestamps_us[-1] + tolerance_us or time_us < timestamps_us[0]:
        return None
    after = int(np.searchsorted(timestamps_us, time_us, side="right"))
    if after < len(timestamps_us):
        return after - 1, after
    last = len(timestamps_us) - 1
    return max(last - 1, 0), last


def ego_state_at_sample(nusc: NuScenes, sample_token: str) -> EgoState:
    """The ego state at a keyframe's LIDAR_TOP timestamp from its neighbouring LIDAR_TOP poses (the adjacent
    sweeps when present, else the adjacent keyframes; a lone keyframe gives a state at rest)."""
    sample = nusc.get("sample", sample_token)
    token = sample["data"][LIDAR_CHANNEL]
    record = nusc.get("sample_data", token)
    neighbours = []
    for link in ("prev", "next"):
        neighbour = record[link]
        if not neighbour and sample[link]:
            neighbour = nusc.get("sample", sample[link])["data"][LIDAR_CHANNEL]
        if neighbour:
            neighbours.append(neighbour)
    poses = sorted([_lidar_pose(nusc, t) for t in [token, *neighbours]], key=lambda pose: pose.timestamp_us)
    index = [pose.timestamp_us for pose in poses].index(record["timestamp"])
    return EgoState.from_poses(poses, index)


def _interpolate_boxes(before: Tuple[Boxes3D, List[str]], after: Tuple[Boxes3D, List[str]], alpha: float) -> Boxes3D:
    """Boxes matched by instance token interpolated at ``alpha`` in [0, 1] (0: ``before``); the unmatched ones
    as annotated."""
    boxes_before, instances_before = before
    boxes_after, instances_after = after
    position_after = {instance: i for i, instance in enumerate(instances_after)}
    matched = [(i, position_after[instance]) for i, instance in enumerate(instances_before)
               if instance in position_after]
    parts = []
    if matched:
        rows_before, rows_after = (np.array(rows) for rows in zip(*matched))
        first, second = boxes_before[rows_before], boxes_after[rows_after]
        yaw_change = np.remainder(second.yaws - first.yaws + np.pi, 2 * np.pi) - np.pi
        parts.append(replace(
            first,
            centers=(1 - alpha) * first.centers + alpha * second.centers,
            sizes=(1 - alpha) * first.sizes + alpha * second.sizes,
            yaws=first.yaws + alpha * yaw_change,
            velocities=(1 - alpha) * first.velocities + alpha * second.velocities,
        ))
    matched_before = {i for i, _ in matched}
    matched_after = {j for _, j in matched}
    parts.append(boxes_before[np.array([i for i in range(len(boxes_before)) if i not in matched_before], dtype=int)])
    parts.append(boxes_after[np.array([j for j in range(len(boxes_after)) if j not in matched_after], dtype=int)])
    return Boxes3D.concatenate(parts)


def logged_future(nusc: NuScenes, sample_token: str, horizon_steps: int = 6, step_s: float = 0.5,
                  time_tolerance_s: float = 0.05) -> LoggedFuture:
    """The logged ego future and ground-truth boxes after a keyframe (module docstring), in the ego frame of the
    keyframe's LIDAR_TOP timestamp, at step_s, 2 * step_s, ..., horizon_steps * step_s."""
    sample = nusc.get("sample", sample_token)
    current = _lidar_pose(nusc, sample["data"][LIDAR_CHANNEL])
    global_to_current = current.ego_to_global.inverse()
    times_s = step_s * np.arange(1, horizon_steps + 1)
    step_times_us = current.timestamp_us + np.round(times_s * 1e6).astype(np.int64)
    tolerance_us = int(round(time_tolerance_s * 1e6))
    end_us = int(step_times_us[-1]) + tolerance_us
    keyframes = _future_keyframes(nusc, sample_token, end_us)
    poses = _future_lidar_poses(nusc, keyframes, end_us)

    pose_times = np.array([pose.timestamp_us for pose in poses], dtype=np.int64)
    ego_xy = np.full((horizon_steps, 2), np.nan)
    ego_valid = np.zeros(horizon_steps, dtype=bool)
    for step, time_us in enumerate(step_times_us):
        bracket = _bracket(pose_times, int(time_us), tolerance_us)
        if bracket is None or bracket[0] == bracket[1]:
            continue
        pose = interpolate_pose(poses[bracket[0]], poses[bracket[1]], int(time_us))
        ego_xy[step] = global_to_current.apply(pose.ego_to_global.translation[None])[0, :2]
        ego_valid[step] = True

    annotated: Dict[int, Tuple[Boxes3D, List[str]]] = {}

    def keyframe_boxes(index: int) -> Tuple[Boxes3D, List[str]]:
        if index not in annotated:
            truth = sample_ground_truth(nusc, keyframes[index]["token"], current.ego_to_global)
            instances = [nusc.get("sample_annotation", token)["instance_token"] for token in truth.tokens]
            annotated[index] = (truth.boxes, instances)
        return annotated[index]

    keyframe_times = np.array([keyframe["timestamp"] for keyframe in keyframes], dtype=np.int64)
    boxes: List[Boxes3D] = []
    boxes_valid = np.zeros(horizon_steps, dtype=bool)
    for step, time_us in enumerate(step_times_us):
        bracket = _bracket(keyframe_times, int(time_us), tolerance_us)
        if bracket is None:
            boxes.append(Boxes3D.empty())
            continue
        before, after = bracket
        if time_us >= keyframe_times[after]:  # at or just past the last keyframe: as annotated there
            boxes.append(keyframe_boxes(after)[0])
        else:
            alpha = (time_us - keyframe_times[before]) / (keyframe_times[after] - keyframe_times[before])
            boxes.append(_interpolate_boxes(keyframe_boxes(before), keyframe_boxes(after), float(alpha)))
        boxes_valid[step] = True
    return LoggedFuture(sample_token, times_s, ego_xy, ego_valid, tuple(boxes), boxes_valid)


def decision_record_for_sample(nusc: NuScenes, sample_token: str, predicted_boxes: Boxes3D,
                               config: PlannerConfig = PlannerConfig()) -> DecisionRecord:
    """The record of one keyframe: ``predicted_boxes`` (the detector's, in the ego frame of the keyframe's LiDAR
    timestamp) and all its ground-truth boxes of the detection classes, each through the planner with the ego
    state of ``ego_state_at_sample``, and its ``logged_future`` at the config's steps."""
    sample = nusc.get("sample", sample_token)
    pose = _lidar_pose(nusc, sample["data"][LIDAR_CHANNEL])
    truth = sample_ground_truth(nusc, sample_token, pose.ego_to_global).boxes
    future = logged_future(nusc, sample_token, config.horizon_steps, config.step_s)
    return make_decision_record(predicted_boxes, truth, ego_state_at_sample(nusc, sample_token), future, config)
