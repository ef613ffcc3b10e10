"""Decision metrics: agreement with the decision on ground truth, critical misses, false brakes, and the plan's
open-loop L2 and collision rate against the logged future, in both conventions of the literature.

Per frame the same planner (perception.decision.decide) runs twice: on the detector's boxes ("predicted") and
on the ground-truth boxes ("ground_truth"). The logged future (``logged_future``) holds, at the plan's step times
(0.5 s .. 3.0 s), the ego positions the car actually drove and the ground-truth boxes, both in the ego frame of
the frame's LiDAR keyframe:

- ego positions: the LIDAR_TOP ego poses of the scene (sweeps included when the dataset has them, else the
  keyframes), interpolated to the exact step times (``perception.geometry.interpolate_pose``);
- ground-truth boxes: the annotations of the two keyframes around each step time (keyframes are 2 Hz, so they
  nearly coincide with the steps), matched by instance token and interpolated linearly to the step time; an
  instance annotated in only one of the two keyframes is taken as annotated there. Boxes of the 10 detection
  classes only (``perception.datasets.ground_truth.sample_ground_truth``), not rolled out by velocity.

A step later than the scene's last pose (or last keyframe, for boxes) by more than ``time_tolerance_s`` is
masked. Horizons: a frame counts at horizon t only when every step up to t is valid, in both conventions:

- UniAD: the value at exactly t (the step at t), averaged over frames;
- ST-P3 / VAD: the mean over the steps 0.5 s .. t of each frame, averaged over frames.

Collisions: the ego footprint (PlannerConfig.ego_length_m x ego_width_m, centred rear_axle_to_center_m ahead of
the rear axle, heading along the plan) overlaps (positive area) a ground-truth box's footprint at the step.
Rates: the critical-miss rate is over frames whose ground-truth decision is BRAKE or STOP, the false-brake rate
over the other frames; a rate with no frame to count is None.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from nuscenes.nuscenes import NuScenes

from perception.datasets.ground_truth import sample_ground_truth
from perception.decision import Decision, EgoState, Maneuver, PlannerConfig, decide
from perception.geometry import Boxes3D, EgoPose, interpolate_pose

HORIZONS_S = (1.0, 2.0, 3.0)
"""The horizons every planning metric is reported at."""
UNIAD = "uniad_at_t"
STP3_VAD = "stp3_vad_mean_to_t"
CONVENTIONS = {
    UNIAD: "UniAD: the value at exactly t",
    STP3_VAD: "ST-P3 / VAD: the mean over the steps 0.5 s .. t",
}
LIDAR_CHANNEL = "LIDAR_TOP"


@dataclass(frozen=True, eq=False)
class LoggedFuture:
    """What happened after a keyframe, in its ego frame, at ``times_s`` (T,) [s] after it.

    ego_xy (T, 2) [x, y] m of the ego origin (NaN where ``ego_valid`` (T,) is False); boxes: T Boxes3D, the
    ground truth at each step time (empty where ``boxes_valid`` (T,) is False).
    """

    sample_token: str
    times_s: np.ndarray
    ego_xy: np.ndarray
    ego_valid: np.ndarray
    boxes: Tuple[Boxes3D, ...]
    boxes_valid: np.ndarray

    def __post_init__(self) -> None:
        steps = len(self.times_s)
        if (self.ego_xy.shape != (steps, 2) or self.ego_valid.shape != (steps,) or len(self.boxes) != steps
                or self.boxes_valid.shape != (steps,)):
            raise ValueError(f"LoggedFuture {self.sample_token}: ego_xy {self.ego_xy.shape}, ego_valid "
                             f"{self.ego_valid.shape}, {len(self.boxes)} box sets and boxes_valid "
                             f"{self.boxes_valid.shape} must all cover the {steps} step times")


@dataclass(frozen=True)
class DecisionRecord:
    """One frame: the decision on the detector's boxes, the decision on ground truth, the logged future."""

    predicted: Decision
    ground_truth: Decision
    future: LoggedFuture


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


def ego_footprints(trajectory: np.ndarray, config: PlannerConfig = PlannerConfig()) -> np.ndarray:
    """(T, 2) rear-axle waypoints [x, y] from the origin -> (T, 4, 2) ego footprint corners (Boxes3D.bev_corners
    order). The heading at a waypoint is the direction from the previous one (from the origin for the first;
    the previous heading, initially 0, when the ego did not move)."""
    trajectory = np.asarray(trajectory, dtype=np.float64)
    previous = np.vstack([[0.0, 0.0], trajectory[:-1]])
    headings = np.zeros(len(trajectory))
    heading = 0.0
    for step, (start, end) in enumerate(zip(previous, trajectory)):
        motion = end - start
        if np.hypot(*motion) > 1e-3:
            heading = float(np.arctan2(motion[1], motion[0]))
        headings[step] = heading
    centers = trajectory + config.rear_axle_to_center_m * np.stack([np.cos(headings), np.sin(headings)], axis=1)
    footprints = Boxes3D(
        centers=np.concatenate([centers, np.zeros((len(centers), 1))], axis=1),
        sizes=np.tile([config.ego_width_m, config.ego_length_m, 1.0], (len(centers), 1)),
        yaws=headings,
    )
    return footprints.bev_corners()


def footprints_overlap(polygon: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(4, 2) convex footprint and (M, 4, 2) convex footprints (corners in order) -> (M,) bool: the interiors
    overlap (separating-axis test over every edge normal; touching edges do not count)."""
    others = np.asarray(others, dtype=np.float64).reshape(-1, 4, 2)
    polygon = np.broadcast_to(np.asarray(polygon, dtype=np.float64), others.shape)
    separated = np.zeros(len(others), dtype=bool)
    for shape in (polygon, others):
        edges = np.roll(shape, -1, axis=1) - shape  # (M, 4, 2)
        normals = np.stack([-edges[..., 1], edges[..., 0]], axis=-1)  # (M, 4, 2)
        projected_a = np.einsum("mkd,mad->mak", normals, polygon)  # (M, 4 corners, 4 axes)
        projected_b = np.einsum("mkd,mad->mak", normals, others)
        gap = np.maximum(projected_a.min(1) - projected_b.max(1), projected_b.min(1) - projected_a.max(1))
        separated |= np.any(gap >= 0, axis=1)
    return ~separated


def plan_collisions(trajectory: np.ndarray, future: LoggedFuture,
                    config: PlannerConfig = PlannerConfig()) -> np.ndarray:
    """(T,) bool: the ego footprint at each planned waypoint overlaps a ground-truth box of the same step."""
    footprints = ego_footprints(trajectory, config)
    return np.array([
        bool(len(boxes)) and bool(np.any(footprints_overlap(footprint, boxes.bev_corners())))
        for footprint, boxes in zip(footprints, future.boxes)
    ])


def make_decision_record(predicted_boxes: Boxes3D, gt_boxes: Boxes3D, ego: EgoState, future: LoggedFuture,
                         config: PlannerConfig = PlannerConfig()) -> DecisionRecord:
    """Runs the planner on the detections and on the ground truth of one frame (both in its ego frame)."""
    return DecisionRecord(decide(predicted_boxes, ego, config), decide(gt_boxes, ego, config), future)


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


def _mean_or_none(values: Sequence[float]) -> Optional[float]:
    return float(np.mean(values)) if len(values) else None


def _by_horizon(per_frame: np.ndarray, valid: np.ndarray, times_s: np.ndarray) -> Dict[str, dict]:
    """(F, T) values and validity at step times (T,) -> both conventions and frame counts per horizon."""
    result = {UNIAD: {}, STP3_VAD: {}, "num_frames": {}}
    for horizon in HORIZONS_S:
        key = f"{horizon:g}s"
        steps = np.flatnonzero(np.isclose(times_s, horizon))
        if not len(steps):
            result[UNIAD][key] = result[STP3_VAD][key] = None
            result["num_frames"][key] = 0
            continue
        count = int(steps[0]) + 1
        eligible = valid[:, :count].all(axis=1)
        result[UNIAD][key] = _mean_or_none(per_frame[eligible, count - 1])
        result[STP3_VAD][key] = _mean_or_none(per_frame[eligible, :count].mean(axis=1))
        result["num_frames"][key] = int(eligible.sum())
    return result


def _planning_metrics(trajectories: List[np.ndarray], records: Sequence[DecisionRecord],
                      config: PlannerConfig) -> dict:
    times_s = records[0].future.times_s
    l2 = np.stack([np.linalg.norm(plan - record.future.ego_xy, axis=1)
                   for plan, record in zip(trajectories, records)])
    ego_valid = np.stack([record.future.ego_valid for record in records])
    collisions = np.stack([plan_collisions(plan, record.future, config) for plan, record in zip(trajectories, records)])
    boxes_valid = np.stack([record.future.boxes_valid for record in records])
    return {
        "l2_m": _by_horizon(np.where(ego_valid, l2, 0.0), ego_valid, times_s),
        "collision_rate": _by_horizon(collisions.astype(np.float64), boxes_valid, times_s),
    }


def evaluate_decisions(records: Sequence[DecisionRecord], config: PlannerConfig = PlannerConfig()) -> dict:
    """The decision metrics of the module docstring as a JSON-serialisable dict.

    ``maneuver_agreement.confusion_matrix[i][j]`` counts frames whose ground-truth decision is labels[i] and whose
    predicted decision is labels[j]; ``planning.predicted`` scores the plans on the detections,
    ``planning.ground_truth`` the plans on ground truth (the planner's own floor). ``config`` gives the ego
    footprint. Raises ValueError when records disagree on the step times or a plan does not cover them.
    """
    if not records:
        raise ValueError("evaluate_decisions: no records")
    times_s = records[0].future.times_s
    for record in records:
        if not np.allclose(record.future.times_s, times_s):
            raise ValueError(f"sample {record.future.sample_token}: step times {record.future.times_s.tolist()} "
                             f"differ from {times_s.tolist()}")
        for name, decision in (("predicted", record.predicted), ("ground_truth", record.ground_truth)):
            if decision.trajectory.shape != (len(times_s), 2):
                raise ValueError(f"sample {record.future.sample_token}: {name} trajectory has shape "
                                 f"{decision.trajectory.shape}, the logged future {len(times_s)} steps")
    labels = list(Maneuver)
    index = {maneuver: i for i, maneuver in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for record in records:
        confusion[index[record.ground_truth.maneuver], index[record.predicted.maneuver]] += 1
    gt_brakes = np.array([record.ground_truth.maneuver.is_braking for record in records])
    predicted_brakes = np.array([record.predicted.maneuver.is_braking for record in records])
    return {
        "num_frames": len(records),
        "maneuver_agreement": {
            "labels": [maneuver.value for maneuver in labels],
            "confusion_matrix": confusion.tolist(),
            "accuracy": float(np.trace(confusion) / len(records)),
        },
        "critical_miss_rate": _mean_or_none(~predicted_brakes[gt_brakes]),
        "num_frames_gt_brake_or_stop": int(gt_brakes.sum()),
        "false_brake_rate": _mean_or_none(predicted_brakes[~gt_brakes]),
        "num_frames_gt_other": int((~gt_brakes).sum()),
        "conventions": dict(CONVENTIONS),
        "planning": {
            "predicted": _planning_metrics([r.predicted.trajectory for r in records], records, config),
            "ground_truth": _planning_metrics([r.ground_truth.trajectory for r in records], records, config),
        },
    }


def _number(value: Optional[float], digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def decision_report_markdown(metrics: dict) -> str:
    """Markdown tables of ``evaluate_decisions``'s output."""
    agreement = metrics["maneuver_agreement"]
    labels = agreement["labels"]
    lines = [
        "## Decisions",
        "",
        f"{metrics['num_frames']} frames. Maneuver agreement with the decision on ground truth: "
        f"{_number(agreement['accuracy'])}.",
        "",
        f"- critical-miss rate (ground truth BRAKE/STOP, prediction not): {_number(metrics['critical_miss_rate'])} "
        f"over {metrics['num_frames_gt_brake_or_stop']} frames",
        f"- false-brake rate (prediction BRAKE/STOP, ground truth not): {_number(metrics['false_brake_rate'])} "
        f"over {metrics['num_frames_gt_other']} frames",
        "",
        "Confusion matrix (rows: ground truth, columns: prediction):",
        "",
        "| ground truth \\ prediction | " + " | ".join(labels) + " |",
        "| --- |" + " ---: |" * len(labels),
    ]
    for label, row in zip(labels, agreement["confusion_matrix"]):
        lines.append(f"| {label} | " + " | ".join(str(count) for count in row) + " |")
    horizons = [f"{horizon:g}s" for horizon in HORIZONS_S]
    for source, title in (("predicted", "plan on the detections"), ("ground_truth", "plan on ground truth")):
        planning = metrics["planning"][source]
        lines += ["", f"### Open-loop planning: {title}", "",
                  "| metric | convention | " + " | ".join(horizons) + " |", "| --- | --- |" + " ---: |" * len(horizons)]
        for metric, name in (("l2_m", "L2 (m)"), ("collision_rate", "collision rate")):
            for convention, description in metrics["conventions"].items():
                values = [_number(planning[metric][convention][h]) for h in horizons]
                lines.append(f"| {name} | {description} | " + " | ".join(values) + " |")
            counts = [str(planning[metric]["num_frames"][h]) for h in horizons]
            lines.append(f"| {name} | frames counted | " + " | ".join(counts) + " |")
    return "\n".join(lines) + "\n"
