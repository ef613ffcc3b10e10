"""The logged drive in the nuScenes tables, as the decision metrics (perception.eval.decision_metrics) grade
against it: the ego state at a keyframe (from the past only), every planner's plan there
(``planned_frame_for_sample``), the maneuver label derived from the log (perception.datasets.maneuver_labels), and
what happened after it (``logged_future``) at the plan's step times (0.5 s .. 3.0 s), in the ego frame of the
keyframe's LiDAR timestamp:

- ego positions: the LIDAR_TOP ego poses of the scene (sweeps included when the dataset has them, else the
  keyframes), interpolated to the exact step times (perception.datasets.ego_log.ego_track);
- ground-truth boxes: the annotations of the two keyframes around each step time (keyframes are 2 Hz, so they
  nearly coincide with the steps), matched by instance token and interpolated linearly to the step time; an
  instance annotated in only one of the two keyframes is taken as annotated there when that keyframe is the nearer
  one (the earlier at halfway), else left out (a step on a keyframe reads that keyframe's annotations). Boxes of
  the 10 detection classes only (``perception.datasets.ground_truth.sample_ground_truth``), not rolled out by
  velocity.

A step later than the scene's last pose (or last keyframe, for boxes) by more than ``time_tolerance_s`` is
masked.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from nuscenes.nuscenes import NuScenes

from perception.datasets.ego_log import ego_track, keyframe_lidar_pose
from perception.datasets.ground_truth import sample_ground_truth
from perception.datasets.lane_map import LaneCentres, keyframe_lanes
from perception.datasets.maneuver_labels import ManeuverLabelConfig, lane_reached, logged_maneuver
from perception.decision import Decision, EgoState, PlannerConfig, decide
from perception.decision.baselines import constant_velocity_plan
from perception.decision.learned import (check_plan_grid, checked_plan, ego_history, ego_mlp_plan, judged_feasible,
                                         trajectory_and_maneuver)
from perception.decision.safety import check_plan
from perception.decision.tracking import AgentTracker, TrackedAgents, TrackerConfig
from perception.eval.decision_metrics import CONSTANT_VELOCITY, LoggedFuture, PlannedFrame
from perception.geometry import Boxes3D, EgoPose
from perception.maneuvers import Maneuver
from perception.models.ego_mlp import EgoMLP
from perception.models.planning_types import PlanningOutputs

RULES_ON_DETECTIONS = "rules_on_detections"
RULES_ON_GROUND_TRUTH = "rules_on_ground_truth"
EGO_MLP = "ego_mlp"
EGO_MLP_WITH_SAFETY = "ego_mlp_with_safety"
LEARNED = "learned"
LEARNED_WITH_SAFETY = "learned_with_safety"
"""The planners' names in metrics.json's decisions.planners and decisions.maneuvers."""


def _future_keyframes(nusc: NuScenes, sample_token: str, end_us: int) -> List[dict]:
    """The sample and the following ones of its scene, up to the first at or after ``end_us``."""
    samples = [nusc.get("sample", sample_token)]
    while samples[-1]["next"] and samples[-1]["timestamp"] < end_us:
        samples.append(nusc.get("sample", samples[-1]["next"]))
    return samples


def _bracket(timestamps_us: np.ndarray, time_us: int, tolerance_us: int) -> Optional[Tuple[int, int]]:
    """Indices (before, after) of sorted ``timestamps_us`` around ``time_us`` (the last two when it lies up to
    ``tolerance_us`` past the end; (last, last) when only one exists); None when out of reach: more than
    ``tolerance_us`` past the end, or before the first (no slack there: logged_future's first is the keyframe
    itself)."""
    if time_us > timestamps_us[-1] + tolerance_us or time_us < timestamps_us[0]:
        return None
    after = int(np.searchsorted(timestamps_us, time_us, side="right"))
    if after < len(timestamps_us):
        return after - 1, after
    last = len(timestamps_us) - 1
    return max(last - 1, 0), last


def keyframe_inputs(nusc: NuScenes, sample_token: str
                    ) -> Tuple[List[EgoPose], Optional[LaneCentres], EgoState, Boxes3D]:
    """What every planner at a keyframe starts from, and what training's targets are judged from: its past poses
    (``ego_history``, the poses the learned planners read: the LIDAR_TOP sweeps when present, else the earlier
    keyframes, else the keyframe's own earlier records of other sensors), its map's lanes in the ego frame of its
    LiDAR timestamp (None without a lane map), the ego state from those poses only and its ground truth in that
    frame."""
    past_poses = ego_history(nusc, sample_token)
    lanes = keyframe_lanes(nusc, sample_token, past_poses[-1].ego_to_global.inverse())
    truth = sample_ground_truth(nusc, sample_token, keyframe_lidar_pose(nusc, sample_token).ego_to_global).boxes
    return past_poses, lanes, EgoState.from_poses(past_poses), truth


def _interpolate_boxes(before: Tuple[Boxes3D, List[str]], after: Tuple[Boxes3D, List[str]], alpha: float) -> Boxes3D:
    """Boxes matched by instance token interpolated at ``alpha`` in [0, 1] (0: ``before``); the unmatched ones
    as annotated in the nearer keyframe (``before``'s up to alpha 0.5, ``after``'s beyond), none from the other."""
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
    nearer, matched_nearer = ((boxes_before, {i for i, _ in matched}) if alpha <= 0.5
                              else (boxes_after, {j for _, j in matched}))
    parts.append(nearer[np.array([k for k in range(len(nearer)) if k not in matched_nearer], dtype=int)])
    return Boxes3D.concatenate(parts)


def logged_future(nusc: NuScenes, sample_token: str, config: PlannerConfig = PlannerConfig(),
                  time_tolerance_s: float = 0.05) -> LoggedFuture:
    """The logged ego future and ground-truth boxes after a keyframe (module docstring), in the ego frame of the
    keyframe's LIDAR_TOP timestamp, at the plans' step times (config.step_times_s)."""
    current = keyframe_lidar_pose(nusc, sample_token)
    times_s = config.step_times_s
    horizon_steps = len(times_s)
    ego_xy, _, ego_valid = ego_track(nusc, sample_token, times_s, time_tolerance_s)
    step_times_us = current.timestamp_us + np.round(times_s * 1e6).astype(np.int64)
    tolerance_us = int(round(time_tolerance_s * 1e6))
    keyframes = _future_keyframes(nusc, sample_token, int(step_times_us[-1]) + tolerance_us)

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


def planned_frame_for_sample(nusc: NuScenes, sample_token: str, predicted_boxes: Boxes3D,
                             config: PlannerConfig = PlannerConfig(), ego_mlp: Optional[EgoMLP] = None,
                             learned_plan: Optional[PlanningOutputs] = None, with_learned: bool = False,
                             agent_accelerations_mps2: Optional[np.ndarray] = None) -> PlannedFrame:
    """Every planner at one keyframe, from the ego state of ``keyframe_inputs``: ``constant_velocity``; the
    rule planner on ``predicted_boxes`` (the detector's, in the ego frame of the keyframe's LiDAR timestamp, or
    as tracked: tracked_agents; ``rules_on_detections``) and on the keyframe's ground truth
    (``rules_on_ground_truth``); with ``ego_mlp``, its plan (``ego_mlp``) and that plan through the safety layer
    on the detections (``ego_mlp_with_safety``); with
    ``with_learned``, the planning head's ``learned_plan`` (``learned``) and that plan through the safety layer
    (``learned_with_safety``); a frame without one (unreadable files, no network output) gets the
    constant-velocity plan, KEEP_LANE, there. A learned plan's maneuver is its plan_maneuver
    (perception.decision.learned). ``agent_accelerations_mps2``: the detections' tracked accelerations
    (tracked_agents), for every planner on the detections. With the keyframe's ``logged_future`` at the
    config's steps and its ``logged_maneuver`` label; lane-change feasibility as judged by the gap check on the
    detections (``rules_on_detections``; the safety layer's decisions carry the same) and by the planning head
    (``learned``, where it gave an output), and the gap check on the ground truth; with a lane map, whether a
    labelled lane change is under way (perception.datasets.maneuver_labels.lane_reached)."""
    past_poses, lanes, ego, truth = keyframe_inputs(nusc, sample_token)
    accelerations = agent_accelerations_mps2
    on_detections = decide(predicted_boxes, ego, config, agent_accelerations_mps2=accelerations, lanes=lanes)
    on_truth = decide(truth, ego, config, lanes=lanes)
    plans = {CONSTANT_VELOCITY: (constant_velocity_plan(ego, config), None),
             RULES_ON_DETECTIONS: (on_detections.trajectory, on_detections.maneuver),
             RULES_ON_GROUND_TRUTH: (on_truth.trajectory, on_truth.maneuver)}
    feasibility = {RULES_ON_DETECTIONS: (on_detections.lane_change_left_ok, on_detections.lane_change_right_ok)}
    if ego_mlp is not None:
        check_plan_grid("the ego MLP", (ego_mlp.horizon_steps, ego_mlp.step_s), config)
        trajectory, head_maneuver = ego_mlp_plan(ego_mlp, past_poses)
        maneuver, checked = checked_plan(trajectory, head_maneuver, predicted_boxes, ego, past_poses, config,
                                         accelerations, lanes)
        plans.update({EGO_MLP: (trajectory, maneuver), EGO_MLP_WITH_SAFETY: (checked.trajectory, checked.maneuver)})
    if with_learned:
        if learned_plan is None:
            trajectory, maneuver = plans[CONSTANT_VELOCITY][0], Maneuver.KEEP_LANE
            checked = check_plan(trajectory, maneuver, predicted_boxes, ego, config,
                                 agent_accelerations_mps2=accelerations, lanes=lanes)
        else:
            trajectory, head_maneuver = trajectory_and_maneuver(learned_plan)
            if trajectory.shape != (config.horizon_steps, 2):
                raise ValueError(f"sample {sample_token}: the learned plan has shape {trajectory.shape}, the "
                                 f"planner config asks for ({config.horizon_steps}, 2)")
            if not np.all(np.isfinite(trajectory)):  # replay decides on; a grade of it would mean nothing
                raise ValueError(f"sample {sample_token}: the learned plan has "
                                 f"{np.count_nonzero(~np.isfinite(trajectory))} values not finite")
            maneuver, checked = checked_plan(trajectory, head_maneuver, predicted_boxes, ego, past_poses, config,
                                             accelerations, lanes)
            feasibility[LEARNED] = judged_feasible(learned_plan)
        plans.update({LEARNED: (trajectory, maneuver), LEARNED_WITH_SAFETY: (checked.trajectory, checked.maneuver)})
    future = logged_future(nusc, sample_token, config)
    label = logged_maneuver(nusc, sample_token)
    under_way = False
    if lanes is not None and label is not None and label.is_lane_change:
        times = ManeuverLabelConfig().window_times_s
        under_way = lane_reached(times, *ego_track(nusc, sample_token, times)[:2], lanes)
    return PlannedFrame(future, label, plans, feasibility, (on_truth.lane_change_left_ok,
                                                            on_truth.lane_change_right_ok), under_way)


def tracked_agents(nusc: NuScenes, ego_boxes: Mapping[str, Boxes3D], sample_tokens: Sequence[str],
                   config: TrackerConfig = TrackerConfig()) -> Dict[str, TrackedAgents]:
    """sample token -> its ``ego_boxes`` as the planners see them (perception.decision.tracking: tracked velocities
    and accelerations), one AgentTracker per scene run over the given keyframes in time order, each in the ego
    frame of its LiDAR timestamp: causal, each keyframe's estimate reads its own and earlier keyframes only."""
    by_scene: Dict[str, List[Tuple[int, str]]] = {}
    for token in sample_tokens:
        sample = nusc.get("sample", token)
        by_scene.setdefault(sample["scene_token"], []).append((int(sample["timestamp"]), token))
    tracked = {}
    for keyframes in by_scene.values():
        tracker = AgentTracker(config)
        for _, token in sorted(keyframes):
            tracked[token] = tracker.update(ego_boxes[token], keyframe_lidar_pose(nusc, token))
    return tracked


def logged_drive_verdict(nusc: NuScenes, sample_token: str, config: PlannerConfig = PlannerConfig()
                         ) -> Optional[Decision]:
    """The safety layer (perception.decision.safety.check_plan) on the logged drive at a keyframe: the logged ego
    positions at the plan's steps (ego_track) with the keyframe's logged_maneuver label, against the keyframe's
    ground truth and its map's lanes, from the ego state of ``keyframe_inputs``. An oracle for false vetoes:
    the logged drive is a safe plan (in the synthetic world it never collides, and changes lanes only into mapped
    lanes of its direction), so every veto of it is a flaw of the rules. None when the keyframe has no label or
    the log does not cover the horizon."""
    label = logged_maneuver(nusc, sample_token)
    ego_xy, _, valid = ego_track(nusc, sample_token, config.step_times_s)
    if label is None or not valid.all():
        return None
    _, lanes, ego, truth = keyframe_inputs(nusc, sample_token)
    return check_plan(ego_xy, label, truth, ego, config, lanes=lanes)
