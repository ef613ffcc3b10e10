"""PointPillars' pillar feature net, shared by the LiDAR and radar encoders: hard pillars -> per-point features
(raw columns + offsets to the pillar mean and to the pillar centre) -> linear + BN + ReLU -> max over points ->
scattered onto the BEV grid.

The kernels (hard voxelization, scatter) are ``Pillarization``; the learned part between them is
``PillarFeatureNet``, a module of tensors only (what perception.deploy exports as a graph)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from perception.models.grid import BEVGrid
from perception.ops import hard_voxelize_batch, pillar_scatter
from perception.timing import StageTimer, stage


@dataclass(frozen=True)
class Pillarization:
    """Hard pillars on ``grid`` (at most ``max_points_per_pillar`` points each, ``max_pillars`` per frame) around a
    pillar feature net: voxelize the points, run the net on the pillars, scatter its features onto the grid."""

    grid: BEVGrid
    max_points_per_pillar: int
    max_pillars: int

    def encode(self, net: nn.Module, out_channels: int, points: torch.Tensor, batch_size: int,
               timer: Optional[StageTimer] = None) -> torch.Tensor:
        """points (N, 1 + C) [batch index, x, y, z, sensor columns...] in the ego frame -> (B, out_channels, ny, nx)
        (``net``: PillarFeatureNet or its exported graph); ``timer`` times the hard voxelization as "voxelize".
        The voxelizer's zero-padded pillars are the net's input. When gradients must reach the point columns
        (adversarial training, perception.models.adversarial, perturbs them), the voxelizer carries each point's
        row along and the pillars are gathered from ``points`` by row instead: the same values, differentiable."""
        track_rows = torch.is_grad_enabled() and points.requires_grad
        columns = points[:, 1:].detach()
        if track_rows:
            if len(points) > 2 ** 24:
                raise ValueError(f"Pillarization: {len(points)} points, more than float32 row indices can count "
                                 "(2**24)")
            rows = torch.arange(len(points), dtype=torch.float32, device=points.device)[:, None]
            columns = torch.cat([columns, rows], dim=1)
        clouds = [columns] if batch_size == 1 else [columns[points[:, 0] == b] for b in range(batch_size)]
        with stage(timer, "voxelize"):
            pillars, coords, counts = hard_voxelize_batch(clouds, self.grid.pillar_size, self.grid.point_cloud_range,
                                                          self.max_points_per_pillar, self.max_pillars)
        ny, nx = self.grid.shape
        if len(pillars) == 0:
            return points.new_zeros((batch_size, out_channels, ny, nx))
        pillars = torch.as_tensor(pillars, device=points.device)  # (M, P, C [+ row]) zero-padded after counts
        coords = torch.as_tensor(coords, dtype=torch.long, device=points.device)  # (M, 4) [b, z, y, x]
        counts = torch.as_tensor(counts, dtype=torch.long, device=points.device)  # (M,)
        if track_rows:
            rows = pillars[..., -1].long()  # (M, P) row of ``points`` in each slot (0 in padding)
            filled = torch.arange(rows.shape[1], device=points.device)[None, :] < counts[:, None]  # (M, P)
            pillars = torch.where(filled[..., None], points[rows, 1:], 0.0)
        return pillar_scatter(net(pillars, coords, counts), coords, batch_size, (ny, nx))


class PillarFeatureNet(nn.Module):
    """Pillars (M, P, C) + their cells -> one feature vector per pillar (M, out_channels).

    ``feature_scale`` (C,) divides each input column (x, y, z first, then the sensor's own columns) before the
    linear layer, so that columns of different units start on a similar scale.
    """

    def __init__(self, grid: BEVGrid, in_columns: int, out_channels: int, feature_scale: Sequence[float]):
        super().__init__()
        if len(feature_scale) != in_columns:
            raise ValueError(f"PillarFeatureNet: feature_scale needs {in_columns} values, got {len(feature_scale)}")
        self.grid = grid
        self.out_channels = out_channels
        self.register_buffer("feature_scale", torch.tensor(feature_scale, dtype=torch.float32), persistent=False)
        self.linear = nn.Linear(in_columns + 5, out_channels, bias=False)
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, pillars: torch.Tensor, coords: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """pillars (M, P, C) float32 [x, y, z, sensor columns...] zero-padded after ``counts`` (M,) points;
        coords (M, 4) int64 [batch, z, y, x] cells -> (M, out_channels)."""
        valid = torch.arange(pillars.shape[1], device=pillars.device)[None, :] < counts[:, None]  # (M, P)
        point_mask = valid[..., None].to(pillars.dtype)  # (M, P, 1): 1 for a point, 0 for padding
        xyz = pillars[..., :3]
        mean = (xyz * point_mask).sum(1, keepdim=True) / counts[:, None, None].clamp(min=1)
        x_min, y_min = self.grid.point_cloud_range[:2]
        centre_x = (coords[:, 3].float() + 0.5) * self.grid.cell_size[0] + x_min
        centre_y = (coords[:, 2].float() + 0.5) * self.grid.cell_size[1] + y_min
        to_centre = xyz[..., :2] - torch.stack([centre_x, centre_y], dim=1)[:, None, :]
        features = torch.cat([pillars / self.feature_scale, xyz - mean, to_centre], dim=-1)  # (M, P, C + 5)
        # padding rows zeroed, as OpenPCDet's PillarVFE does: their offsets (-mean, -centre, up to the grid's extent)
        # would otherwise set the value range that INT8 calibration sees, and batch norm's statistics in training
        features = self.linear(features * point_mask)
        features = torch.relu(self.norm(features.reshape(-1, self.out_channels))).reshape(features.shape)
        # ReLU's outputs are >= 0 and every pillar holds a point, so zeroed padding rows leave each max unchanged
        return (features * point_mask).max(dim=1).values  # (M, out)
