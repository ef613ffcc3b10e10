"""What the learned planners of perception.models share: their ego input, outputs, targets, start and losses.

Ego input (EGO_FEATURES, computed from past poses only by perception.decision.learned.ego_features): the ego
state (EGO_STATE_CHANNELS), then per past time in EGO_HISTORY_S the ego's position x, y [m] in the current ego
frame and whether the log has it (1 / 0; x = y = 0 when not), then per history step before the latest one the
speed gained since it [m/s]: the mean speed along the current heading (x) over the latest step (EGO_HISTORY_S[0]
ago to now) minus the mean speed over the step that starts EGO_HISTORY_S[k] ago (k >= 1) and ends
EGO_HISTORY_S[k - 1] ago; 0 unless the positions at the ends of both steps are known. It says for how long the ego
has been slowing, which the positions alone hold as centimetres at their scale; it reads the positions 0.5 s apart
only, so a keyframe-only log (poses every 0.5 s) gives it as a log with sweeps does.

Outputs (PlanningOutputs): trajectory (B, T, 2) ego-frame rear-axle waypoints [x, y] [m] at step_s, 2 step_s, ...;
maneuver_logits (B, len(Maneuver)) in Maneuver's definition order; lane_change_logits (B, 2) [left, right],
sigmoid = probability the lane change is feasible. A trajectory is the constant-velocity roll-out of the ego
speed plus learned offsets.

Losses (``planning_losses``): L1 on the valid waypoints (steps the log covers), cross-entropy on the labelled
maneuvers (index -1: no label), binary cross-entropy on the valid feasibility targets; each weighted by
``loss_weights`` from the config and each 0 when a batch has nothing to score.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Dict, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from perception.maneuvers import Maneuver

EGO_STATE_CHANNELS = ("speed_mps", "yaw_rate_rps", "acceleration_mps2", "acceleration_known")
"""The ego state from past poses; acceleration 0 and acceleration_known 0 where fewer than three exist."""
EGO_HISTORY_S = (0.5, 1.0, 1.5, 2.0)
"""How long before the keyframe each past position is taken [s]."""
EGO_FEATURES = (EGO_STATE_CHANNELS + tuple(f"{name}_{t:g}s_ago" for t in EGO_HISTORY_S
                                           for name in ("x_m", "y_m", "known"))
                + tuple(f"speed_gained_since_{t:g}s_ago_mps" for t in EGO_HISTORY_S[1:]))
EGO_FEATURE_SCALE = ((10.0, 0.5, 2.0, 1.0) + tuple(v for t in EGO_HISTORY_S for v in (10.0 * t, 1.0, 1.0))
                     + (2.0,) * (len(EGO_HISTORY_S) - 1))
"""Typical magnitudes of EGO_FEATURES, dividing them before an MLP."""
NUM_MANEUVERS = len(Maneuver)
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

    @staticmethod
    def concatenate(parts: Sequence["PlanningTargets"]) -> "PlanningTargets":
        """The parts' rows one after another, along the batch dimension."""
        return PlanningTargets(*(torch.cat([getattr(part, field.name) for part in parts])
                                 for field in fields(PlanningTargets)))


def constant_velocity_rollout(speed_mps: torch.Tensor, horizon_steps: int, step_s: float) -> torch.Tensor:
    """(B,) speeds -> (B, T, 2) waypoints straight ahead at step_s, 2 step_s, ... (the planners' start)."""
    times = step_s * torch.arange(1, horizon_steps + 1, device=speed_mps.device, dtype=speed_mps.dtype)
    along = speed_mps[:, None] * times
    return torch.stack([along, torch.zeros_like(along)], dim=-1)


def checked_loss_weights(loss_weights: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
    """DEFAULT_LOSS_WEIGHTS updated by ``loss_weights``; ValueError for a name it does not know."""
    weights = dict(DEFAULT_LOSS_WEIGHTS, **(loss_weights or {}))
    unknown = set(weights) - set(DEFAULT_LOSS_WEIGHTS)
    if unknown:
        raise ValueError(f"unknown loss weights {sorted(unknown)}; known: {sorted(DEFAULT_LOSS_WEIGHTS)}")
    return weights


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
