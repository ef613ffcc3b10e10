"""The planning head: from the fused BEV features and the past ego state and track, the ego's trajectory, a
maneuver distribution and lane-change feasibility left / right, trained by imitation of the logged drive.

Inputs: BEV features (B, C, H, W) (the decoder's output) and the ego features (B, len(EGO_FEATURES)) computed from
past poses only (perception.models.planning_types). Outputs: PlanningOutputs (see there).

Two branches: the ego branch is the ego-state-only planner itself (perception.models.ego_mlp.EgoMLP: trajectory =
constant-velocity roll-out + offsets, maneuver logits); the BEV branch (the BEV pooled to a small grid, with the
ego features, through an MLP) adds a correction to both, and alone gives the lane-change feasibility. The
correction layer starts at zero, so an untrained head plans what its ego branch plans. ``ego_init``: an EgoMLP
checkpoint (perception.models.ego_mlp.save_ego_mlp) loaded into the ego branch by ``init_weights`` (mmengine calls
it before training, before ``load_from``; building the model for inference does not read the file).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np
import torch
from torch import nn

from perception.datasets.frame import Frame
from perception.geometry import Boxes3D
from perception.maneuvers import PLAN_HORIZON_STEPS, PLAN_STEP_S
from perception.models.ego_mlp import EgoMLP, load_ego_mlp
from perception.models.planning_types import (
    EGO_FEATURES, NUM_MANEUVERS, PlanningOutputs, PlanningTargets, checked_loss_weights, planning_losses,
)
from perception.timing import StageTimer


@runtime_checkable
class PlanningDetector(Protocol):
    """A perception.detector.Detector that also plans; consumers look for it with isinstance and use it when
    ``plans`` is true."""

    plans: bool
    """Whether detect_and_plan gives plans (False for a model without a planning head)."""

    plan_grid: Optional[Tuple[int, float]]
    """Its plans' waypoints: (how many, seconds between them); None when it does not plan."""

    def detect_and_plan(self, frames: Sequence[Frame], ego_state: np.ndarray, timer: Optional[StageTimer] = None
                        ) -> Tuple[List[Boxes3D], List[PlanningOutputs]]:
        """Detector.detect's boxes and each frame's PlanningOutputs row (trajectory (T, 2), maneuver_logits
        (len(Maneuver),), lane_change_logits (2,)); ``ego_state`` (len(frames), len(EGO_FEATURES)) from each
        frame's past poses (perception.decision.learned.ego_features)."""
        ...


class PlanningHead(nn.Module):
    """The ego branch (an EgoMLP) plus a zero-initialised correction from the BEV branch (module docstring)."""

    dense_parts = ("ego.mlp", "ego.trajectory", "ego.maneuver", "reduce", "mlp", "correction", "lane_change")
    """The submodules that hold the weights, each tensor to tensor (perception.deploy exports each as a graph); the
    glue between them (the features' scaling, the concatenation, the constant-velocity start) stays in torch."""

    def __init__(self, in_channels: int, horizon_steps: int = PLAN_HORIZON_STEPS, step_s: float = PLAN_STEP_S,
                 reduced_channels: int = 16, pooled_cells: int = 8, hidden_channels: int = 128,
                 ego_hidden_channels: int = 64,
                 ego_init: Optional[str] = None, loss_weights: Optional[Mapping[str, float]] = None):
        super().__init__()
        try:
            self.loss_weights = checked_loss_weights(loss_weights)
            self.ego = EgoMLP(horizon_steps, step_s, ego_hidden_channels)
        except ValueError as error:
            raise ValueError(f"PlanningHead: {error}") from None
        self.horizon_steps, self.step_s, self.ego_init = horizon_steps, step_s, ego_init
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, reduced_channels, 1), nn.ReLU(inplace=True),
                                    nn.AdaptiveAvgPool2d(pooled_cells))
        self.mlp = nn.Sequential(nn.Linear(reduced_channels * pooled_cells ** 2 + len(EGO_FEATURES), hidden_channels),
                                 nn.ReLU(inplace=True), nn.Linear(hidden_channels, hidden_channels),
                                 nn.ReLU(inplace=True))
        self.correction = nn.Linear(hidden_channels, horizon_steps * 2 + NUM_MANEUVERS)
        self.lane_change = nn.Linear(hidden_channels, 2)
        nn.init.zeros_(self.correction.weight)
        nn.init.zeros_(self.correction.bias)

    def init_weights(self) -> None:
        """Loads ``ego_init`` into the ego branch (nothing without one); ValueError naming the file when it is
        not an EgoMLP checkpoint of this head's horizon and step."""
        if self.ego_init is None:
            return
        trained = load_ego_mlp(self.ego_init)
        if (trained.horizon_steps, trained.step_s) != (self.horizon_steps, self.step_s):
            raise ValueError(f"{self.ego_init}: an ego MLP of {trained.horizon_steps} steps of {trained.step_s} s; "
                             f"the planning head plans {self.horizon_steps} of {self.step_s} s")
        try:
            self.ego.load_state_dict(trained.state_dict())
        except RuntimeError as error:
            raise ValueError(f"{self.ego_init}: does not fit the head's ego branch ({error})") from None

    def forward(self, bev: torch.Tensor, ego_features: torch.Tensor) -> PlanningOutputs:
        """bev (B, C, H, W), ego_features (B, len(EGO_FEATURES)) -> PlanningOutputs (module docstring)."""
        if ego_features.shape != (bev.shape[0], len(EGO_FEATURES)):
            raise ValueError(f"PlanningHead: the ego features must be ({bev.shape[0]}, {len(EGO_FEATURES)}) "
                             f"{EGO_FEATURES}, got {tuple(ego_features.shape)}")
        ego = self.ego(ego_features)
        hidden = self.mlp(torch.cat([self.reduce(bev).flatten(1), ego_features / self.ego.scale], dim=1))
        correction = self.correction(hidden)
        steps = 2 * self.horizon_steps
        trajectory = ego.trajectory + correction[:, :steps].view(-1, self.horizon_steps, 2)
        return PlanningOutputs(trajectory, ego.maneuver_logits + correction[:, steps:], self.lane_change(hidden))

    def loss(self, outputs: PlanningOutputs, targets: PlanningTargets) -> Dict[str, torch.Tensor]:
        """planning_losses with this head's loss_weights."""
        return planning_losses(outputs, targets, self.loss_weights)
