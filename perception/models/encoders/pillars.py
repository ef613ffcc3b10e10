"""PointPillars' pillar feature net, shared by the LiDAR and radar encoders: hard pillars -> per-point features
(raw columns + offsets to the pillar mean and to the pillar centre) -> linear + BN + ReLU -> max over points ->
scattered onto the BEV grid."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from perception.models.grid import BEVGrid
from perception.ops import hard_voxelize_batch, pillar_scatter
from perception.runtime.timing import StageTimer, stage


class PillarFeatureNet(nn.Module):
    """Points of B frames -> (B, out_channels, ny, nx) on ``grid``.

    ``feature_scale`` (C,) divides each input column (x, y, z first, then the sensor's own columns) before the
    linear layer, so that columns of different units start on a similar scale.
    """

    def __init__(self, grid: BEVGrid, in_columns: int, out_channels: int, feature_scale: Sequence[float],
                 max_points_per_pillar: int, max_pillars: int):
        super().__init__()
        if len(feature_scale) != in_columns:
            raise ValueError(f"PillarFeatureNet: feature_scale needs {in_columns} values, got {len(feature_scale)}")
        self.grid = grid
        self.out_channels = out_channels
        self.max_points_per_pillar, self.max_pillars = max_points_per_pillar, max_pillars
        self.register_buffer("feature_scale", torch.tensor(feature_scale, dtype=torch.float32), persistent=False)
        self.linear = nn.Linear(in_columns + 5, out_channels, bias=False)
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, points: torch.Tensor, batch_size: int, timer: Optional[StageTimer] = None) -> torch.Tensor:
        """points (N, 1 + C) [batch index, x, y, z, sensor columns...] in the ego frame -> (B, out, ny, nx);
        ``timer`` times the hard voxelization as stage "voxelize"."""
        clouds = [points[points[:, 0] == b, 1:].contiguous() for b in range(batch_size)]
        with stage(timer, "voxelize"):
            pillars, coords, counts = hard_voxelize_batch(clouds, self.grid.pillar_size, self.grid.point_cloud_range,
                                                          self.max_points_per_pillar, self.max_pillars)
        pillars = torch.as_tensor(pillars, dtype=torch.float32, device=points.device)  # (M, P, C)
        coords = torch.as_tensor(coords, dtype=torch.long, device=points.device)  # (M, 4) [b, z, y, x]
        counts = torch.as_tensor(counts, dtype=torch.long, device=points.device)  # (M,)
        ny, nx = self.grid.shape
        if len(pillars) == 0:
            return points.new_zeros((batch_size, self.out_channels, ny, nx))
        valid = torch.arange(pillars.shape[1], device=points.device)[None, :] < counts[:, None]  # (M, P)
        xyz = pillars[..., :3]
        mean = (xyz * valid[..., None]).sum(1, keepdim=True) / counts[:, None, None].clamp(min=1)
        x_min, y_min = self.grid.point_cloud_range[:2]
        centre_x = (coords[:, 3].float() + 0.5) * self.grid.cell_size[0] + x_min
        centre_y = (coords[:, 2].float() + 0.5) * self.grid.cell_size[1] + y_min
        to_centre = xyz[..., :2] - torch.stack([centre_x, centre_y], dim=1)[:, None, :]
        features = torch.cat([pillars / self.feature_scale, xyz - mean, to_centre], dim=-1)  # (M, P, C + 5)
        features = self.linear(features)
        features = torch.relu(self.norm(features.transpose(1, 2)).transpose(1, 2))
        features = features.masked_fill(~valid[..., None], float("-inf")).max(dim=1).values  # (M, out)
        return pillar_scatter(features, coords, batch_size, (ny, nx))
