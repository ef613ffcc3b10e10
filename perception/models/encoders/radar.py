"""Radar encoder: pillars of radar returns (RCS, compensated velocity, time lag), then one conv block."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import nn

from perception.models.encoders.pillars import PillarFeatureNet, Pillarization
from perception.models.grid import BEVGrid
from perception.timing import StageTimer

RADAR_FEATURE_SCALE = (50.0, 50.0, 5.0, 20.0, 10.0, 10.0, 0.5)
"""Divisors of the radar columns [x, y, z, rcs, vx_comp, vy_comp, time_lag] before the pillar net."""


class RadarEncoder(nn.Module):
    """``FusionBatch.radar`` (M, 8) [batch, x, y, z, rcs, vx_comp, vy_comp, time_lag] -> (B, out, ny, nx).

    Radar is sparse: a 5x5 receptive field (two 3x3 convs) spreads each return's velocity over the cells an
    object covers. ``hidden_channels``: the width between the two convs, ``out_channels`` where not given (a
    pruned model, perception.deploy.prune)."""

    sensor = "radar"
    dense_parts = ("pillars", "conv")
    """The submodules that hold the weights (perception.deploy exports each as a graph)."""

    def __init__(self, grid: BEVGrid, out_channels: int = 16, max_points_per_pillar: int = 10,
                 max_pillars: int = 8000, hidden_channels: Optional[int] = None):
        super().__init__()
        self.out_channels = out_channels
        self.pillarization = Pillarization(grid, max_points_per_pillar, max_pillars, RADAR_FEATURE_SCALE)
        self.pillars = PillarFeatureNet(len(RADAR_FEATURE_SCALE), out_channels)
        hidden = out_channels if hidden_channels is None else hidden_channels
        self.conv = nn.Sequential(
            nn.Conv2d(out_channels, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True))

    def forward(self, batch, timer: Optional[StageTimer] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """-> BEV features and no auxiliary losses; ``timer`` times the voxelization (stage "voxelize")."""
        bev = self.pillarization.encode(self.pillars, self.out_channels, batch.radar, batch.batch_size, timer)
        return self.conv(bev), {}
