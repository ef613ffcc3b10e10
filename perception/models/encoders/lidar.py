"""LiDAR encoder: PointPillars over the aggregated sweeps, then one conv block on the BEV grid."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import nn

from perception.models.encoders.pillars import PillarFeatureNet, Pillarization
from perception.models.grid import BEVGrid
from perception.timing import StageTimer

LIDAR_FEATURE_SCALE = (50.0, 50.0, 5.0, 255.0, 0.5)
"""Divisors of the LiDAR columns [x, y, z, intensity, time_lag] before the pillar net."""


class LidarEncoder(nn.Module):
    """``FusionBatch.lidar`` (N, 6) [batch, x, y, z, intensity, time_lag] -> (B, out_channels, ny, nx)."""

    sensor = "lidar"
    dense_parts = ("pillars", "conv")
    """The submodules that hold the weights (perception.deploy exports each as a graph)."""

    def __init__(self, grid: BEVGrid, out_channels: int = 32, max_points_per_pillar: int = 20,
                 max_pillars: int = 30000):
        super().__init__()
        self.out_channels = out_channels
        self.pillarization = Pillarization(grid, max_points_per_pillar, max_pillars, LIDAR_FEATURE_SCALE)
        self.pillars = PillarFeatureNet(len(LIDAR_FEATURE_SCALE), out_channels)
        self.conv = nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def forward(self, batch, timer: Optional[StageTimer] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """-> BEV features and no auxiliary losses; ``timer`` times the voxelization (stage "voxelize")."""
        bev = self.pillarization.encode(self.pillars, self.out_channels, batch.lidar, batch.batch_size, timer)
        return self.conv(bev), {}
