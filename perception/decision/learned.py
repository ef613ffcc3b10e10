"""Plans from learned models, with their inputs taken from the past only: the ego-state-only MLP
(perception.models.ego_mlp) and the planning head (perception.models.planning_head) share one ego input.

``ego_features(past_poses)``: EGO_FEATURES at the last of a list of poses, read from that list only (the one
computation: training data, evaluation and replay call it); ``past_ego_features(nusc, tokens)``: those of keyframes,
from the LIDAR_TOP poses up to each (``perception.datasets.ego_log.past_lidar_poses``, EGO_FEATURE_HISTORY_S of
them); ``trajectory_and_maneuver``: a planner's trajectory and most likely maneuver; ``learned_decision``: that
plan through the safety layer (perception.decision.safety.check_plan), which a learned plan passes before it is
acted on.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import torch
from nuscenes.nuscenes import NuScenes

from perception.datasets.ego_log import BRACKET_MARGIN_S, past_lidar_poses, track_from_poses
from perception.decision.ego_state import EgoState
from perception.decision.safety import check_plan
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
    time): ``EgoState.from_poses`` and the positions EGO_HISTORY_S before it in its ego frame (perception.datasets.
    ego_log.track_from_poses; unknown where the poses do not reach back that far)."""
    poses = list(past_poses)
    state = EgoState.from_poses(poses)
    xy, _, known = track_from_poses(poses, poses[-1], -np.array(EGO_HISTORY_S))
    history = np.c_[np.nan_to_num(xy), known.astype(np.float64)].reshape(-1)
    return np.concatenate([ego_state_row(state), history]).astype(np.float32)


def past_ego_features(nusc: NuScenes, sample_tokens: Sequence[str]) -> np.ndarray:
    """(len(sample_tokens), len(EGO_FEATURES)) float32: each keyframe's ego_features from the poses up to it."""
    rows = [ego_features(past_lidar_poses(nusc, token, EGO_FEATURE_HISTORY_S)) for token in sample_tokens]
    return np.asarray(rows, dtype=np.float32).reshape(len(sample_tokens), len(EGO_FEATURES))


def trajectory_and_maneuver(outputs: PlanningOutputs) -> Tuple[np.ndarray, Maneuver]:
    """One frame's PlanningOutputs row -> its trajectory (T, 2) [m] float64 and most likely maneuver."""
    return (outputs.trajectory.detach().cpu().numpy().astype(np.float64),
            MANEUVERS[int(outputs.maneuver_logits.argmax())])


def learned_decision(outputs: PlanningOutputs, boxes: Boxes3D, ego: EgoState,
                     config: PlannerConfig = PlannerConfig()) -> Decision:
    """One frame's learned plan (trajectory_and_maneuver) checked by the safety layer against ``boxes`` (the
    detections in the ego frame): kept with the closest agent's gap and TTC as its reason, or refused / vetoed with
    why."""
    trajectory, maneuver = trajectory_and_maneuver(outputs)
    return check_plan(trajectory, maneuver, boxes, ego, config)


@torch.no_grad()
def ego_mlp_plan(model: EgoMLP, nusc: NuScenes, sample_token: str) -> Tuple[np.ndarray, Maneuver]:
    """The model's trajectory (T, 2) [m] and most likely maneuver at a keyframe."""
    outputs = model(torch.from_numpy(past_ego_features(nusc, [sample_token])))
    return trajectory_and_maneuver(PlanningOutputs(outputs.trajectory[0], outputs.maneuver_logits[0],
                                        outputs.lane_change_logits[0]))
