"""Adversarial training: the batch's camera pixels and point features moved within an L-inf budget along the sign
of the loss gradient (FGSM, Goodfellow et al., ICLR 2015; PGD, Madry et al., ICLR 2018), then trained on.

What is perturbed, and in which units the budget counts:

- camera images (``FusionBatch.images``, RGB in [0, 1]): by ``epsilon_pixels`` in those units (2 / 255: two grey
  levels), kept in [0, 1]; absent cameras stay black;
- LiDAR intensity and radar RCS and compensated velocity (vx, vy): by ``epsilon_points`` in the units the pillar
  net sees them (the column divided by its feature scale, LIDAR_FEATURE_SCALE / RADAR_FEATURE_SCALE): 0.02 moves an
  intensity by 5.1 (of 255), an RCS by 0.4 dBsm and a velocity by 0.2 m/s.

Not perturbed: x, y, z (they choose the cell a point falls in) and the time lag (a timestamp, not a measurement).
PGD starts from the clean batch (no random start), so PGD with one step of the whole budget is FGSM.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Dict

import numpy as np
import torch

from perception.models.batch import FusionBatch
from perception.models.encoders.lidar import LIDAR_FEATURE_SCALE
from perception.models.encoders.radar import RADAR_FEATURE_SCALE

PERTURBED_POINT_COLUMNS = {"lidar": (4,), "radar": (4, 5, 6)}
"""FusionBatch columns perturbed: LiDAR [batch, x, y, z, intensity, time_lag] -> intensity; radar [batch, x, y, z,
rcs, vx_comp, vy_comp, time_lag] -> rcs, vx_comp, vy_comp."""

_FEATURE_SCALE = {"lidar": LIDAR_FEATURE_SCALE, "radar": RADAR_FEATURE_SCALE}  # without the batch column

METHODS = ("fgsm", "pgd")


@dataclass(frozen=True)
class AdversarialConfig:
    """``model.adversarial`` in a config. ``method``: 'fgsm' (one step of the whole budget) or 'pgd' (``steps``
    steps of ``step_size`` x the budget, projected back into it after each); ``epsilon_pixels`` /
    ``epsilon_points``: the L-inf budgets (module docstring); ``probability``: the share of training batches
    perturbed (the others train clean), drawn from ``seed``."""

    method: str = "fgsm"
    epsilon_pixels: float = 2.0 / 255.0
    epsilon_points: float = 0.02
    steps: int = 1
    step_size: float = 1.0
    probability: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"adversarial: method must be one of {METHODS}, got {self.method!r}")
        if self.epsilon_pixels < 0 or self.epsilon_points < 0:
            raise ValueError(f"adversarial: budgets must be >= 0, got epsilon_pixels={self.epsilon_pixels}, "
                             f"epsilon_points={self.epsilon_points}")
        if self.steps < 1 or self.step_size <= 0:
            raise ValueError(f"adversarial: steps must be >= 1 and step_size > 0, got {self.steps}, {self.step_size}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"adversarial: probability must be in [0, 1], got {self.probability}")


def perturbation_budgets(batch: FusionBatch, config: AdversarialConfig) -> Dict[str, torch.Tensor]:
    """Input name ('images', 'lidar', 'radar') -> the L-inf budget of each value, broadcastable to the input
    (0 where nothing may move)."""
    valid = batch.camera_valid[:, :, None, None, None].to(batch.images.dtype)  # (B, N_cams, 1, 1, 1)
    budgets = {"images": config.epsilon_pixels * valid}
    for sensor, columns in PERTURBED_POINT_COLUMNS.items():
        points = getattr(batch, sensor)
        budget = torch.zeros(points.shape[1], dtype=points.dtype, device=points.device)
        for column in columns:
            budget[column] = config.epsilon_points * _FEATURE_SCALE[sensor][column - 1]
        budgets[sensor] = budget
    return budgets


def adversarial_batch(loss_of: Callable[[FusionBatch], torch.Tensor], batch: FusionBatch,
                      config: AdversarialConfig) -> FusionBatch:
    """``batch`` with its images and point features moved by FGSM / PGD (``config``) to raise ``loss_of(batch)``
    (a scalar); the gradients are taken with respect to the inputs only (no parameter's .grad changes). An input
    that the loss does not depend on (a sensor the model lacks) is left as is."""
    steps, step_fraction = (1, 1.0) if config.method == "fgsm" else (config.steps, config.step_size)
    budgets = perturbation_budgets(batch, config)
    clean = {name: getattr(batch, name).detach() for name in budgets}
    current = dict(clean)
    for _ in range(steps):
        inputs = {name: value.clone().requires_grad_(True) for name, value in current.items()}
        loss = loss_of(replace(batch, **inputs))
        gradients = torch.autograd.grad(loss, list(inputs.values()), allow_unused=True)
        for (name, value), gradient in zip(inputs.items(), gradients):
            if gradient is None:
                continue
            budget = budgets[name]
            moved = value.detach() + step_fraction * budget * gradient.sign()
            current[name] = torch.minimum(torch.maximum(moved, clean[name] - budget), clean[name] + budget)
        current["images"] = current["images"].clamp(0.0, 1.0)  # each step's images stay images
    return replace(batch, **current)


class AdversarialTraining:
    """What BEVFusionDetector applies to each training batch before its loss: ``adversarial_batch`` with
    probability ``config.probability``. The attack's own forward passes come back here and are left clean. They run
    in the model's training mode, as the step that follows does: BatchNorm layers whose statistics are not held
    update them on those passes too, and the fuser draws its modality dropout afresh for each."""

    def __init__(self, config: AdversarialConfig):
        self.config = config
        self._random = np.random.default_rng(config.seed)
        self._attacking = False

    @property
    def random_state(self) -> dict:
        """The state of the generator that draws which batches are attacked (a training checkpoint keeps it)."""
        return self._random.bit_generator.state

    @random_state.setter
    def random_state(self, state: dict) -> None:
        self._random.bit_generator.state = state

    def __call__(self, model: torch.nn.Module, batch: FusionBatch) -> FusionBatch:
        """``batch`` perturbed against ``model``'s total training loss (mmengine's parse_losses), or as is."""
        if self._attacking or self._random.random() >= self.config.probability:
            return batch
        self._attacking = True
        try:
            return adversarial_batch(lambda inputs: model.parse_losses(model(inputs, mode="loss"))[0], batch,
                                     self.config)
        finally:
            self._attacking = False
