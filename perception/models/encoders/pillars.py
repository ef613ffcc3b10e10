"""PointPillars' pillar feature net, shared by the LiDAR and radar encoders: hard pillars -> per-point features
(raw columns + offsets to the pillar mean and to the pillar centre) -> linear + BN + ReLU -> max over points ->
scattered onto the BEV grid.

``Pillarization`` holds what has no weights: the kernels (hard voxelization, scatter) and the per-point features
between them, plain tensor arithmetic (cheaper in torch than as a graph's ~20 small ops in ONNX Runtime,
benchmarks/RESULTS.md); ``PillarFeatureNet`` is the learned part, a module of tensors only (what perception.deploy
exports as a graph)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import nn

from perception.models.grid import BEVGrid
from perception.ops import hard_voxelize_batch, pillar_scatter
from perception.timing import StageTimer, stage


DECORATION_COLUMNS = 5
"""Columns point_features adds to each point's own: xyz minus the pillar's mean (3), xy minus its cell's centre (2)."""


@dataclass(frozen=True)
class Pillarization:
    """Hard pillars on ``grid`` (at most ``max_points_per_pillar`` points each, ``max_pillars`` per frame) around a
    pillar feature net: voxelize the points, give each point its features (``point_features``), run the net on
    them, scatter its output onto the grid. ``feature_scale`` (C,) divides each point column (x, y, z first, then
    the sensor's own columns), so that columns of different units start on a similar scale."""

    grid: BEVGrid
    max_points_per_pillar: int
    max_pillars: int
    feature_scale: Tuple[float, ...]

    def encode(self, net: nn.Module, out_channels: int, points: torch.Tensor, batch_size: int,
               timer: Optional[StageTimer] = None) -> torch.Tensor:
        """points (N, 1 + C) [batch index, x, y, z, sensor columns...] in the ego frame -> (B, out_channels, ny, nx)
        (``net``: PillarFeatureNet, given the counts while its batch norm learns, or its exported graph); ``timer``
        times the hard voxelization as "voxelize". When gradients must reach the point columns (adversarial
        training, perception.models.adversarial, perturbs them), the voxelizer carries each point's row along and
        the pillars are gathered from ``points`` by row instead of taken as the voxelizer wrote them: the same
        values, differentiable."""
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
        features = self.point_features(pillars, coords, counts)
        learning = isinstance(net, PillarFeatureNet) and net.norm.training  # batch norm learning its statistics
        pillar_features = net(features, counts) if learning else net(features)
        # float32 into the kernel: under bfloat16 autocast (--amp) the net's layers give bfloat16, which Numba's
        # kernels do not compile; the convolutions after it take the canvas back to bfloat16 themselves
        return pillar_scatter(pillar_features.float(), coords, batch_size, (ny, nx))

    def point_features(self, pillars: torch.Tensor, coords: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """pillars (M, P, C) float32 [x, y, z, sensor columns...] zero-padded after ``counts`` (M,) points, at least
        one each; coords (M, 4) int64 [batch, z, y, x] cells -> (M, P, C + 5) [columns / feature_scale, xyz - the
        pillar's mean, xy - its cell's centre]. The padding slots repeat the pillar's first point."""
        if pillars.shape[2] != len(self.feature_scale):
            raise ValueError(f"Pillarization: points with {pillars.shape[2]} columns, feature_scale has "
                             f"{len(self.feature_scale)}")
        valid = torch.arange(pillars.shape[1], device=pillars.device)[None, :] < counts[:, None]  # (M, P)
        mean = (pillars[..., :3] * valid[..., None]).sum(1, keepdim=True) / counts[:, None, None].clamp(min=1)
        pillars = torch.where(valid[..., None], pillars, pillars[:, :1])
        xyz = pillars[..., :3]
        x_min, y_min = self.grid.point_cloud_range[:2]
        centre_x = (coords[:, 3].float() + 0.5) * self.grid.cell_size[0] + x_min
        centre_y = (coords[:, 2].float() + 0.5) * self.grid.cell_size[1] + y_min
        to_centre = xyz[..., :2] - torch.stack([centre_x, centre_y], dim=1)[:, None, :]
        scale = torch.tensor(self.feature_scale, dtype=pillars.dtype, device=pillars.device)
        return torch.cat([pillars / scale, xyz - mean, to_centre], dim=-1)


class PillarFeatureNet(nn.Module):
    """Per-point features (M, P, C + 5) (``Pillarization.point_features``) -> one vector per pillar (M, out_channels):
    linear, batch norm, ReLU, max over the pillar's points."""

    def __init__(self, in_columns: int, out_channels: int):
        super().__init__()
        self.out_channels = out_channels
        self.linear = nn.Linear(in_columns + DECORATION_COLUMNS, out_channels, bias=False)
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, features: torch.Tensor, counts: Optional[torch.Tensor] = None) -> torch.Tensor:
        """features (M, P, C + 5) -> (M, out_channels); ``counts`` (M,) points per pillar, read only while batch
        norm learns its statistics.

        With its statistics fixed (eval, or held in fine-tuning), batch norm is an affine map per channel and, with
        ReLU, monotone (rounding is monotone too), so the max over a pillar's points (the min where the scale is
        negative) is taken first, on M rows instead of M x P: the same numbers; the padding slots, copies of the
        first point, leave each extreme unchanged.
        While it learns them, the padding slots are zeroed instead, as OpenPCDet's PillarVFE does, so that its
        statistics count them as zeros, not as the first point again."""
        if not self.norm.training:
            features = self.linear(features)
            # a negative scale turns the max into a min
            extreme = torch.where(self.norm.weight >= 0, features.amax(dim=1), features.amin(dim=1))
            return torch.relu(self.norm(extreme))
        if counts is None:
            raise ValueError("PillarFeatureNet: batch norm in training needs the pillars' point counts")
        point_mask = (torch.arange(features.shape[1], device=features.device)[None, :] < counts[:, None])[..., None]
        features = self.linear(features * point_mask)
        features = torch.relu(self.norm(features.reshape(-1, self.out_channels))).reshape(features.shape)
        # ReLU's outputs are >= 0 and every pillar holds a point, so zeroed padding rows leave each max unchanged
        return (features * point_mask).max(dim=1).values
