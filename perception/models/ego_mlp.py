"""The ego-state-only planner (AD-MLP-like): an MLP from the past ego state and the past ego track to the
trajectory and a maneuver distribution, no perception. It shows how much of the logged drive the ego's own past
explains (on nuScenes a lot: AD-MLP).

Input (B, len(EGO_MLP_FEATURES)): EGO_STATE_CHANNELS, then per past time in EGO_HISTORY_S the ego's position
x, y [m] in the current ego frame and whether the log has it (1 / 0; x = y = 0 when not). Outputs: PlanningOutputs
(lane_change_logits 0: it does not judge feasibility); trajectory = constant-velocity roll-out + learned offsets.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import torch
from torch import nn

from perception.models.planning_head import (
    DEFAULT_LOSS_WEIGHTS, EGO_STATE_CHANNELS, EGO_STATE_SCALE, NUM_MANEUVERS, PlanningOutputs, PlanningTargets,
    constant_velocity_rollout, planning_losses,
)

EGO_HISTORY_S = (0.5, 1.0, 1.5, 2.0)
"""How long before the keyframe each past position is taken [s]."""
EGO_MLP_FEATURES = EGO_STATE_CHANNELS + tuple(f"{name}_{t:g}s_ago" for t in EGO_HISTORY_S
                                              for name in ("x_m", "y_m", "known"))
_SCALE = EGO_STATE_SCALE + tuple(v for t in EGO_HISTORY_S for v in (10.0 * t, 1.0, 1.0))


class EgoMLP(nn.Module):
    def __init__(self, horizon_steps: int = 6, step_s: float = 0.5, hidden_channels: int = 64,
                 loss_weights: Optional[Mapping[str, float]] = None):
        super().__init__()
        self.horizon_steps, self.step_s = horizon_steps, step_s
        self.loss_weights = dict(DEFAULT_LOSS_WEIGHTS, **(loss_weights or {}))
        self.mlp = nn.Sequential(nn.Linear(len(EGO_MLP_FEATURES), hidden_channels), nn.ReLU(inplace=True),
                                 nn.Linear(hidden_channels, hidden_channels), nn.ReLU(inplace=True))
        self.trajectory = nn.Linear(hidden_channels, horizon_steps * 2)
        self.maneuver = nn.Linear(hidden_channels, NUM_MANEUVERS)
        nn.init.zeros_(self.trajectory.weight)
        nn.init.zeros_(self.trajectory.bias)
        self.register_buffer("scale", torch.tensor(_SCALE), persistent=False)

    def forward(self, features: torch.Tensor) -> PlanningOutputs:
        """features (B, len(EGO_MLP_FEATURES)) -> PlanningOutputs."""
        if features.ndim != 2 or features.shape[1] != len(EGO_MLP_FEATURES):
            raise ValueError(f"EgoMLP: features must be (B, {len(EGO_MLP_FEATURES)}) {EGO_MLP_FEATURES}, got "
                             f"{tuple(features.shape)}")
        hidden = self.mlp(features / self.scale)
        start = constant_velocity_rollout(features[:, 0], self.horizon_steps, self.step_s)
        trajectory = start + self.trajectory(hidden).view(-1, self.horizon_steps, 2)
        return PlanningOutputs(trajectory, self.maneuver(hidden), torch.zeros(len(features), 2))

    def loss(self, outputs: PlanningOutputs, targets: PlanningTargets):
        return planning_losses(outputs, targets, self.loss_weights)


def save_ego_mlp(model: EgoMLP, path: Union[str, Path], meta: Dict) -> Path:
    """A plain checkpoint: {"state_dict", "meta"} (loads with weights_only=True)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(),
                "meta": dict(meta, features=list(EGO_MLP_FEATURES), horizon_steps=model.horizon_steps,
                             step_s=model.step_s)}, path)
    return path


def load_ego_mlp(path: Union[str, Path]) -> EgoMLP:
    """The model saved by save_ego_mlp, in eval mode; a ValueError naming the file when it is not one."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        meta = checkpoint["meta"]
        if list(meta["features"]) != list(EGO_MLP_FEATURES):
            raise ValueError(f"features {meta['features']} differ from {list(EGO_MLP_FEATURES)}")
        model = EgoMLP(int(meta["horizon_steps"]), float(meta["step_s"]))
        model.load_state_dict(checkpoint["state_dict"])
    except (OSError, KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path}: not an ego-MLP checkpoint ({error})") from None
    return model.eval()
