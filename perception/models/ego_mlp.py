"""The ego-state-only planner (AD-MLP-like): an MLP from the past ego state and the past ego track
(perception.models.planning_types.EGO_FEATURES) to the trajectory and a maneuver distribution, no perception. It
shows how much of the logged drive the ego's own past explains (on nuScenes a lot: AD-MLP). It is also the planning
head's ego branch (perception.models.planning_head), which a config may initialise from a checkpoint saved here.

Outputs: PlanningOutputs (lane_change_logits 0: it does not judge feasibility); trajectory = constant-velocity
roll-out + learned offsets (the offset layer starts at zero, so an untrained MLP plans constant velocity).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import torch
from torch import nn

from perception.maneuvers import PLAN_HORIZON_STEPS, PLAN_STEP_S
from perception.models.planning_types import (
    EGO_FEATURE_SCALE, EGO_FEATURES, NUM_MANEUVERS, PlanningOutputs, PlanningTargets, checked_loss_weights,
    constant_velocity_rollout, planning_losses,
)


class EgoMLP(nn.Module):
    def __init__(self, horizon_steps: int = PLAN_HORIZON_STEPS, step_s: float = PLAN_STEP_S,
                 hidden_channels: int = 64, loss_weights: Optional[Mapping[str, float]] = None):
        super().__init__()
        if horizon_steps < 1 or step_s <= 0:
            raise ValueError(f"EgoMLP: horizon_steps {horizon_steps} and step_s {step_s} must be positive")
        self.horizon_steps, self.step_s = horizon_steps, step_s
        self.loss_weights = checked_loss_weights(loss_weights)
        self.mlp = nn.Sequential(nn.Linear(len(EGO_FEATURES), hidden_channels), nn.ReLU(inplace=True),
                                 nn.Linear(hidden_channels, hidden_channels), nn.ReLU(inplace=True))
        self.trajectory = nn.Linear(hidden_channels, horizon_steps * 2)
        self.maneuver = nn.Linear(hidden_channels, NUM_MANEUVERS)
        nn.init.zeros_(self.trajectory.weight)
        nn.init.zeros_(self.trajectory.bias)
        self.register_buffer("scale", torch.tensor(EGO_FEATURE_SCALE), persistent=False)

    def forward(self, features: torch.Tensor) -> PlanningOutputs:
        """features (B, len(EGO_FEATURES)) -> PlanningOutputs."""
        if features.ndim != 2 or features.shape[1] != len(EGO_FEATURES):
            raise ValueError(f"EgoMLP: features must be (B, {len(EGO_FEATURES)}) {EGO_FEATURES}, got "
                             f"{tuple(features.shape)}")
        hidden = self.mlp(features / self.scale)
        start = constant_velocity_rollout(features[:, 0], self.horizon_steps, self.step_s)
        trajectory = start + self.trajectory(hidden).view(-1, self.horizon_steps, 2)
        return PlanningOutputs(trajectory, self.maneuver(hidden), features.new_zeros(len(features), 2))

    def loss(self, outputs: PlanningOutputs, targets: PlanningTargets) -> Dict[str, torch.Tensor]:
        return planning_losses(outputs, targets, self.loss_weights)


def save_ego_mlp(model: EgoMLP, path: Union[str, Path], meta: Dict) -> Path:
    """A plain checkpoint: {"state_dict", "meta"} (loads with weights_only=True)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(),
                "meta": dict(meta, features=list(EGO_FEATURES), horizon_steps=model.horizon_steps,
                             step_s=model.step_s)}, path)
    return path


def load_ego_mlp(path: Union[str, Path]) -> EgoMLP:
    """The model saved by save_ego_mlp, in eval mode; a ValueError naming the file when it is not one."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        meta = checkpoint["meta"]
        if list(meta["features"]) != list(EGO_FEATURES):
            raise ValueError(f"features {meta['features']} differ from {list(EGO_FEATURES)}")
        state = checkpoint["state_dict"]
        model = EgoMLP(int(meta["horizon_steps"]), float(meta["step_s"]), int(state["trajectory.weight"].shape[1]))
        model.load_state_dict(state)
    except Exception as error:  # unreadable bytes fail in the unpickler in many ways, a foreign dict on a key
        raise ValueError(f"{path}: not an ego-MLP checkpoint ({type(error).__name__}: {error})") from None
    return model.eval()
