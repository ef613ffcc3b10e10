"""Plans from learned models, with their inputs taken from the past only: the ego-state-only MLP
(perception.models.ego_mlp) and the planning head's ego-state input.

``ego_state_row``: an EgoState as the columns EGO_STATE_CHANNELS; ``past_ego_states``: those rows of keyframes, from
their past poses (the planning head's input); ``ego_mlp_features``: the state at a keyframe
(``EgoState.from_poses(past_lidar_poses(...))``) plus the ego track before it (EGO_MLP_FEATURES); ``ego_mlp_plan``:
the MLP's trajectory and most likely maneuver. A learned plan goes through the safety layer
(perception.decision.safety.check_plan) before it is acted on.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import torch
from nuscenes.nuscenes import NuScenes

from perception.datasets.ego_log import ego_track, past_lidar_poses
from perception.decision.ego_state import EgoState
from perception.maneuvers import Maneuver
from perception.models.ego_mlp import EGO_HISTORY_S, EgoMLP
from perception.models.planning_head import EGO_STATE_CHANNELS

MANEUVERS = list(Maneuver)
"""The learned planners' class order."""


def ego_state_row(state: EgoState) -> List[float]:
    """An EgoState as the planners' input columns (perception.models.planning_head.EGO_STATE_CHANNELS)."""
    known = state.acceleration_mps2 is not None
    return [state.speed_mps, state.yaw_rate_rps, state.acceleration_mps2 if known else 0.0, float(known)]


def past_ego_states(nusc: NuScenes, sample_tokens: Sequence[str]) -> np.ndarray:
    """(len(sample_tokens), len(EGO_STATE_CHANNELS)) float32: each keyframe's ego_state_row from poses up to it."""
    rows = [ego_state_row(EgoState.from_poses(past_lidar_poses(nusc, token))) for token in sample_tokens]
    return np.asarray(rows, dtype=np.float32).reshape(len(sample_tokens), len(EGO_STATE_CHANNELS))


def ego_mlp_features(nusc: NuScenes, sample_token: str) -> np.ndarray:
    """(len(EGO_MLP_FEATURES),) float32 of a keyframe, from poses up to it only."""
    state = EgoState.from_poses(past_lidar_poses(nusc, sample_token))
    xy, _, known = ego_track(nusc, sample_token, -np.array(EGO_HISTORY_S))
    history = np.c_[np.nan_to_num(xy), known.astype(np.float64)].reshape(-1)
    return np.concatenate([ego_state_row(state), history]).astype(np.float32)


@torch.no_grad()
def ego_mlp_plan(model: EgoMLP, nusc: NuScenes, sample_token: str) -> Tuple[np.ndarray, Maneuver]:
    """The model's trajectory (T, 2) [m] and most likely maneuver at a keyframe."""
    outputs = model(torch.from_numpy(ego_mlp_features(nusc, sample_token))[None])
    return outputs.trajectory[0].numpy().astype(np.float64), MANEUVERS[int(outputs.maneuver_logits[0].argmax())]
