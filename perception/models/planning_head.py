"""The planning head: from the fused BEV features and the past ego state, the ego's trajectory, a maneuver
distribution and lane-change feasibility left / right, trained by imitation of the logged drive.

Inputs: BEV features (B, C, H, W) (the decoder's output) and the ego state (B, EGO_STATE_CHANNELS) computed from
past poses only. Outputs (PlanningOutputs): trajectory (B, T, 2) ego-frame rear-axle waypoints [x, y] [m] at
step_s, 2 step_s, ...; maneuver_logits (B, len(Maneuver)) in Maneuver's definition order; lane_change_logits
(B, 2) [left, right], sigmoid = probability the lane change is feasible. The trajectory is the constant-velocity
roll-out of the ego speed plus a learned offset per step (so an untrained head starts as the constant-velocity
baseline, which AD-MLP shows is strong on nuScenes).

Losses (``PlanningHead.loss``): L1 on the valid waypoints (steps the log covers), cross-entropy on the labelled
maneuvers (index -1: no label), binary cross-entropy on the valid feasibility targets; each weighted by
``loss_weights`` from the config and each 0 when a batch has nothing to score.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perception.datasets.frame import Frame
from perception.geometry import Boxes3D
from perception.maneuvers import Maneuver
from perception.timing import StageTimer

EGO_STATE_CHANNELS = ("speed_mps", "yaw_rate_rps", "acceleration_mps2", "acceleration_known")
"""Columns of the ego-state input: the state from past poses; acceleration 0 and acceleration_known 0 where
fewer than three past poses exist."""
NUM_MANEUVERS = len(Maneuver)
EGO_STATE_SCALE = (10.0, 0.5, 2.0, 1.0)
"""Typical magnitudes of EGO_STATE_CHANNELS, dividing them before the MLP."""
DEFAULT_LOSS_WEIGHTS = dict(trajectory=1.0, maneuver=0.5, lane_change=0.2)


@dataclass(frozen=True)
class PlanningOutputs:
    trajectory: torch.Tensor
    maneuver_logits: torch.Tensor
    lane_change_logits: torch.Tensor


@dataclass(frozen=True)
class PlanningTargets:
    """The logged drive as targets: trajectory (B, T, 2) [m] and trajectory_valid (B, T) bool (steps the log
    covers); maneuver (B,) int64 index into Maneuver, -1 without a label; lane_change_ok (B, 2) float 0/1
    [left, right] and lane_change_valid (B, 2) bool."""

    trajectory: torch.Tensor
    trajectory_valid: torch.Tensor
    maneuver: torch.Tensor
    lane_change_ok: torch.Tensor
    lane_change_valid: torch.Tensor


@runtime_checkable
class PlanningDetector(Protocol):
    """A perception.detector.Detector that also plans; consumers look for it with isinstance and use it when
    ``plans`` is true."""

    plans: bool
    """Whether detect_and_plan gives plans (False for a model without a planning head)."""

    def detect_and_plan(self, frames: Sequence[Frame], ego_state: np.ndarray, timer: Optional[StageTimer] = None
                        ) -> Tuple[List[Boxes3D], List[PlanningOutputs]]:
        """Detector.detect's boxes and each frame's PlanningOutputs row (trajectory (T, 2), maneuver_logits
        (len(Maneuver),), lane_change_logits (2,)); ``ego_state`` (len(frames), len(EGO_STATE_CHANNELS)) from
        each frame's past poses."""
        ...


class PlanningHead(nn.Module):
    """BEV features pooled to a small grid, concatenated with the scaled ego state, through an MLP."""

    def __init__(self, in_channels: int, horizon_steps: int = 6, step_s: float = 0.5, reduced_channels: int = 16,
                 pooled_cells: int = 8, hidden_channels: int = 128,
                 loss_weights: Optional[Mapping[str, float]] = None):
        super().__init__()
        if horizon_steps < 1 or step_s <= 0:
            raise ValueError(f"PlanningHead: horizon_steps {horizon_steps} and step_s {step_s} must be positive")
        weights = dict(DEFAULT_LOSS_WEIGHTS, **(loss_weights or {}))
        unknown = set(weights) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f"PlanningHead: unknown loss weights {sorted(unknown)}; known: "
                             f"{sorted(DEFAULT_LOSS_WEIGHTS)}")
        self.horizon_steps, self.step_s, self.loss_weights = horizon_steps, step_s, weights
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, reduced_channels, 1), nn.ReLU(inplace=True),
                                    nn.AdaptiveAvgPool2d(pooled_cells))
        features = reduced_channels * pooled_cells ** 2 + len(EGO_STATE_CHANNELS)
        self.mlp = nn.Sequential(nn.Linear(features, hidden_channels), nn.ReLU(inplace=True),
                                 nn.Linear(hidden_channels, hidden_channels), nn.ReLU(inplace=True))
        self.trajectory = nn.Linear(hidden_channels, horizon_steps * 2)
        self.maneuver = nn.Linear(hidden_channels, NUM_MANEUVERS)
        self.lane_change = nn.Linear(hidden_channels, 2)
        nn.init.zeros_(self.trajectory.weight)
        nn.init.zeros_(self.trajectory.bias)
        self.register_buffer("ego_scale", torch.tensor(EGO_STATE_SCALE), persistent=False)

    def forward(self, bev: torch.Tensor, ego_state: torch.Tensor) -> PlanningOutputs:
        """bev (B, C, H, W), ego_state (B, len(EGO_STATE_CHANNELS)) -> PlanningOutputs (module docstring)."""
        if ego_state.shape != (bev.shape[0], len(EGO_STATE_CHANNELS)):
            raise ValueError(f"PlanningHead: ego_state must be ({bev.shape[0]}, {len(EGO_STATE_CHANNELS)}) "
                             f"{EGO_STATE_CHANNELS}, got {tuple(ego_state.shape)}")
        hidden = self.mlp(torch.cat([self.reduce(bev).flatten(1), ego_state / self.ego_scale], dim=1))
        offsets = self.trajectory(hidden).view(-1, self.horizon_steps, 2)
        start = constant_velocity_rollout(ego_state[:, 0], self.horizon_steps, self.step_s)
        return PlanningOutputs(start + offsets, self.maneuver(hidden), self.lane_change(hidden))

    def loss(self, outputs: PlanningOutputs, targets: PlanningTargets) -> Dict[str, torch.Tensor]:
        """planning_losses with this head's loss_weights."""
        return planning_losses(outputs, targets, self.loss_weights)


def constant_velocity_rollout(speed_mps: torch.Tensor, horizon_steps: int, step_s: float) -> torch.Tensor:
    """(B,) speeds -> (B, T, 2) waypoints straight ahead at step_s, 2 step_s, ... (the planners' start)."""
    times = step_s * torch.arange(1, horizon_steps + 1, device=speed_mps.device, dtype=speed_mps.dtype)
    along = speed_mps[:, None] * times
    return torch.stack([along, torch.zeros_like(along)], dim=-1)


def planning_losses(outputs: PlanningOutputs, targets: PlanningTargets, weights: Mapping[str, float]
                    ) -> Dict[str, torch.Tensor]:
    """loss_plan_trajectory, loss_plan_maneuver, loss_plan_lane_change (module docstring), each times its weight."""
    zero = outputs.trajectory.sum() * 0
    valid = targets.trajectory_valid
    trajectory = F.l1_loss(outputs.trajectory[valid], targets.trajectory[valid]) if bool(valid.any()) else zero
    labelled = targets.maneuver >= 0
    maneuver = (F.cross_entropy(outputs.maneuver_logits[labelled], targets.maneuver[labelled])
                if bool(labelled.any()) else zero)
    feasible = targets.lane_change_valid
    lane_change = (F.binary_cross_entropy_with_logits(outputs.lane_change_logits[feasible],
                                                      targets.lane_change_ok[feasible])
                   if bool(feasible.any()) else zero)
    return {"loss_plan_trajectory": weights["trajectory"] * trajectory,
            "loss_plan_maneuver": weights["maneuver"] * maneuver,
            "loss_plan_lane_change": weights["lane_change"] * lane_change}
