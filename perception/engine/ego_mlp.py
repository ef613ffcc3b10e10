"""Training the ego-state-only planner (perception.models.ego_mlp): features from the past
(perception.decision.learned), targets from the logged drive (perception.engine.planning_data), full-batch Adam on
the split's keyframes (a few hundred rows: seconds on a CPU).
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import torch
from nuscenes.nuscenes import NuScenes

from perception.decision import PlannerConfig
from perception.decision.learned import past_ego_features
from perception.engine.planning_data import logged_targets
from perception.models.ego_mlp import EgoMLP
from perception.models.planning_types import PlanningTargets

def collect_examples(nusc: NuScenes, sample_tokens: Sequence[str], config: PlannerConfig = PlannerConfig()
                     ) -> Tuple[torch.Tensor, PlanningTargets]:
    """Features (N, F) and the targets of every keyframe (lane-change feasibility masked: it is not judged)."""
    features = torch.from_numpy(past_ego_features(nusc, sample_tokens))
    targets = logged_targets(nusc, sample_tokens, config)
    return features, PlanningTargets(targets.trajectory, targets.trajectory_valid, targets.maneuver,
                                     targets.lane_change_ok, torch.zeros_like(targets.lane_change_valid))


def train_ego_mlp(features: torch.Tensor, targets: PlanningTargets, epochs: int = 400, learning_rate: float = 3e-3,
                  seed: int = 0, config: PlannerConfig = PlannerConfig()) -> Tuple[EgoMLP, Dict[str, float]]:
    """Full-batch Adam over the examples; returns the model (eval mode) and its final losses."""
    torch.manual_seed(seed)
    model = EgoMLP(config.horizon_steps, config.step_s)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    for _ in range(epochs):
        optimiser.zero_grad()
        losses = model.loss(model(features), targets)
        sum(losses.values()).backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        final = {name: float(value) for name, value in model.loss(model(features), targets).items()}
    return model, final
