"""Plans from learned models, with their inputs taken from the past only: the ego-state-only MLP
(perception.models.ego_mlp) and the planning head (perception.models.planning_head) share one ego input.

``ego_features(past_poses)``: EGO_FEATURES at the last of a list of poses, read from that list only (the one
computation: training data, evaluation and replay call it); ``ego_history(nusc, token)``: the poses it reads at a
keyframe (perception.datasets.ego_log.past_ego_poses of the last EGO_FEATURE_HISTORY_S);
``past_ego_features(nusc, tokens)``: the features of keyframes from their ego_history; ``trajectory_and_maneuver``:
a planner's trajectory and its head's most likely maneuver; ``plan_maneuver``: the maneuver the plan carries out,
by the logged drive's label rules;
``learned_decision``: the plan with that maneuver through the safety layer (perception.decision.safety.check_plan),
which a learned plan passes before it is acted on.
"""
from __future__ import annotations

from dataclasses import replace
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from nuscenes.nuscenes import NuScenes

from perception.datasets.ego_log import BRACKET_MARGIN_S, past_ego_poses, track_from_poses
from perception.datasets.lane_map import LaneCentres
from perception.datasets.maneuver_labels import ManeuverLabelConfig
from perception.decision.ego_state import EgoState
from perception.decision.safety import check_plan, checked_rule_decision, plan_label
from perception.decision.types import Decision, PlannerConfig
from perception.geometry import Boxes3D, EgoPose
from perception.maneuvers import Maneuver
from perception.models.ego_mlp import EgoMLP
from perception.models.planning_types import EGO_FEATURES, EGO_HISTORY_S, PlanningOutputs

MANEUVERS = list(Maneuver)
"""The learned planners' class order."""
EGO_FEATURE_HISTORY_S = max(EGO_HISTORY_S) + BRACKET_MARGIN_S
"""How far back ego_features reads poses [s]: the oldest past position and the poses that bracket it."""


def ego_state_row(state: EgoState) -> List[float]:
    """An EgoState as the columns EGO_STATE_CHANNELS (perception.models.planning_types)."""
    known = state.acceleration_mps2 is not None
    return [state.speed_mps, state.yaw_rate_rps, state.acceleration_mps2 if known else 0.0, float(known)]


def ego_features(past_poses: Sequence[EgoPose]) -> np.ndarray:
    """(len(EGO_FEATURES),) float32 at ``past_poses[-1]`` from ``past_poses`` only (sorted by strictly increasing
    time): ``EgoState.from_poses``, the positions EGO_HISTORY_S before it in its ego frame (perception.datasets.
    ego_log.track_from_poses; unknown where the poses do not reach back that far) and the speed gained since each
    earlier history step (speed_gained_mps)."""
    poses = list(past_poses)
    state = EgoState.from_poses(poses)
    xy, _, known = track_from_poses(poses, poses[-1], -np.array(EGO_HISTORY_S))
    history = np.c_[np.nan_to_num(xy), known.astype(np.float64)].reshape(-1)
    return np.concatenate([ego_state_row(state), history, speed_gained_mps(xy, known)]).astype(np.float32)


def speed_gained_mps(past_xy: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(len(EGO_HISTORY_S) - 1,) the speed gained since each history step before the latest one [m/s]
    (perception.models.planning_types), from the positions (len(EGO_HISTORY_S), 2) [m] EGO_HISTORY_S ago in the
    current ego frame and whether each is known: the latest step's mean speed along x minus each earlier step's, 0
    unless the ends of both steps are known."""
    along = np.r_[0.0, np.where(known, past_xy[:, 0], 0.0)]  # now, then EGO_HISTORY_S ago
    ends_known = np.r_[True, known]
    step_speeds = (along[:-1] - along[1:]) / np.diff(np.r_[0.0, EGO_HISTORY_S])
    step_known = ends_known[:-1] & ends_known[1:]
    return np.where(step_known[0] & step_known[1:], step_speeds[0] - step_speeds[1:], 0.0)


def ego_history(nusc: NuScenes, sample_token: str) -> List[EgoPose]:
    """The poses the ego input reads at a keyframe: ``past_ego_poses`` of the last EGO_FEATURE_HISTORY_S, oldest
    first (what replay's streaming state holds there, StreamingState.recent_poses)."""
    return past_ego_poses(nusc, sample_token, EGO_FEATURE_HISTORY_S)


def past_ego_features(nusc: NuScenes, sample_tokens: Sequence[str]) -> np.ndarray:
    """(len(sample_tokens), len(EGO_FEATURES)) float32: each keyframe's ego_features from its ego_history."""
    rows = [ego_features(ego_history(nusc, token)) for token in sample_tokens]
    return np.asarray(rows, dtype=np.float32).reshape(len(sample_tokens), len(EGO_FEATURES))


def trajectory_and_maneuver(outputs: PlanningOutputs) -> Tuple[np.ndarray, Maneuver]:
    """One frame's PlanningOutputs row -> its trajectory (T, 2) [m] float64 and most likely maneuver."""
    return (outputs.trajectory.detach().cpu().numpy().astype(np.float64),
            MANEUVERS[int(outputs.maneuver_logits.argmax())])


def judged_feasible(outputs: PlanningOutputs) -> Tuple[bool, bool]:
    """One frame's PlanningOutputs row -> whether the network judges a lane change left / right feasible (its
    probability, the sigmoid of the logit, at least one half)."""
    left, right = (bool(logit >= 0.0) for logit in outputs.lane_change_logits.detach().cpu().tolist())
    return left, right


def plan_maneuver(trajectory: np.ndarray, head_maneuver: Maneuver, past_poses: Sequence[EgoPose], boxes: Boxes3D,
                  config: PlannerConfig = PlannerConfig(), labels: ManeuverLabelConfig = ManeuverLabelConfig(),
                  lanes: Optional[LaneCentres] = None) -> Maneuver:
    """The maneuver of a learned plan: its motion named by the rules that label the logged drive
    (perception.decision.safety.plan_label) on the ego's ``past_poses`` (sorted, the last one now;
    as far back as the rules read, else from the first) followed by the planned trajectory (T, 2) [m] at
    config.step_times_s (heading along its tangent, as plan_label reads it), with the detected vehicles (``boxes``, ego
    frame, scores >= config.min_score) as the road users and the map's ``lanes`` (ego frame) where there is a
    lane map; but the head's own ``head_maneuver`` when that is BRAKE or STOP and the rules name no braking
    (safety first: the regressed trajectory, a mean over the drives it imitates, smooths a brake below the label's
    threshold).

    Why not the head's most likely maneuver alone: the plan is graded against labels those rules give the logged
    drive, and the plan's own motion named by them says what the plan does (KEEP_LANE on a free road where the
    logits said FOLLOW). Measured on the unseen seed-11 world (benchmarks/RESULTS.md, "The safety layer's false
    vetoes and a plan's maneuver"): right on 0.77 of its 48 labelled keyframes against 0.65, no more missed
    brakes; on synth_train, where the logits were fitted, 0.89 against 0.92."""
    poses = list(past_poses)
    window = labels.window_times_s
    past_xy, past_yaw, known = track_from_poses(poses, poses[-1], window[window < 0])
    first = 0 if known.all() else len(known) - int(np.argmin(known[::-1]))  # the known past ending now
    labelled = plan_label(np.asarray(trajectory, dtype=np.float64), boxes, config, labels, past_xy[first:],
                          past_yaw[first:], lanes)
    return head_maneuver if head_maneuver.is_braking and not labelled.is_braking else labelled


def check_plan_grid(planner: str, grid: Tuple[int, float], config: PlannerConfig = PlannerConfig()) -> None:
    """ValueError naming ``planner`` (a learned planner: its checkpoint, or what it is) when its ``grid``, (waypoints,
    seconds between them), is not ``config``'s, at whose step times its plans are checked, named and graded (a plan of
    0.25 s steps would be read as one of 0.5 s steps, at half its speed)."""
    steps, step_s = grid
    if steps != config.horizon_steps or not np.isclose(step_s, config.step_s):
        raise ValueError(f"{planner} plans {steps} waypoints {step_s:g} s apart; the decisions plan "
                         f"{config.horizon_steps} waypoints {config.step_s:g} s apart (PlannerConfig)")


def checked_plan(trajectory: np.ndarray, head_maneuver: Maneuver, boxes: Boxes3D, ego: EgoState,
                 past_poses: Sequence[EgoPose], config: PlannerConfig = PlannerConfig(),
                 agent_accelerations_mps2: Optional[np.ndarray] = None, lanes: Optional[LaneCentres] = None
                 ) -> Tuple[Maneuver, Decision]:
    """A learned plan (``trajectory`` (T, 2) [m] and the network's ``head_maneuver``) as learned_decision takes it:
    its plan_maneuver, and the plan with that maneuver through the safety layer (check_plan), both with the map's
    ``lanes`` (ego frame) where there is a lane map."""
    maneuver = plan_maneuver(trajectory, head_maneuver, past_poses, boxes, config, lanes=lanes)
    return maneuver, check_plan(trajectory, maneuver, boxes, ego, config,
                                agent_accelerations_mps2=agent_accelerations_mps2, lanes=lanes)


def learned_decision(outputs: PlanningOutputs, boxes: Boxes3D, ego: EgoState, past_poses: Sequence[EgoPose],
                     config: PlannerConfig = PlannerConfig(),
                     agent_accelerations_mps2: Optional[np.ndarray] = None,
                     lanes: Optional[LaneCentres] = None) -> Tuple[Maneuver, Decision]:
    """One frame's learned plan: its trajectory's plan_maneuver (from ``past_poses``, the poses ``ego`` was
    estimated from, and the map's ``lanes`` in the ego frame where there is a lane map) and the decision, the plan
    checked by the safety layer against ``boxes`` (the detections in the ego frame, or as tracked:
    perception.decision.tracking; with their tracked accelerations when given): kept with the closest agent's gap
    and TTC as its reason, or refused / vetoed with why. A plan with values that are not finite (a network's NaN)
    cannot be checked or named: the head's most likely maneuver and the rule planner's decision through the safety
    layer (checked_rule_decision), vetoed, its reason saying so (a decision is always made)."""
    trajectory, head_maneuver = trajectory_and_maneuver(outputs)
    not_finite = int(np.count_nonzero(~np.isfinite(trajectory)))
    if not_finite:
        fallback = checked_rule_decision(boxes, ego, config, agent_accelerations_mps2, lanes)
        return head_maneuver, replace(fallback, vetoed=True, reason=(
            f"{fallback.maneuver.value}: the learned plan has {not_finite} values not finite, the rule planner's "
            f"decision instead ({fallback.reason})"))
    return checked_plan(trajectory, head_maneuver, boxes, ego, past_poses, config, agent_accelerations_mps2, lanes)


@torch.no_grad()
def ego_mlp_plan(model: EgoMLP, past_poses: Sequence[EgoPose]) -> Tuple[np.ndarray, Maneuver]:
    """The model's trajectory (T, 2) [m] and most likely maneuver at the last of ``past_poses`` (ego_features)."""
    outputs = model(torch.from_numpy(ego_features(past_poses)[None]))
    return trajectory_and_maneuver(PlanningOutputs(outputs.trajectory[0], outputs.maneuver_logits[0],
                                        outputs.lane_change_logits[0]))
