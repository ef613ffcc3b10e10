"""Pillar scatter: voxel (pillar) features onto a dense BEV canvas (reference torch, Numba CPU, Numba CUDA).

``canvas[b, :, y, x] += pillar_features[m]`` for every pillar m with coords ``(b, z, y, x)``; the z column is
ignored (a pillar spans the whole height). Pillars from ``hard_voxelize`` have unique cells, so this is the usual
PointPillars assignment; rows that share a cell are summed. Differentiable w.r.t. the features: the gradient of
a pillar is the canvas gradient at its cell.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numba
import numpy as np
import torch

from perception.ops._backend import (check_float, check_integer_cells, check_torch, cpu_kernel, resolve_backend,
                                     whole_number)


def _flat_cells(coords: torch.Tensor, batch_size: int, grid_shape: Tuple[int, int]) -> torch.Tensor:
    """(M,) int64 flat cell b * ny * nx + y * nx + x of coords (M, 4) [b, z, y, x]; ValueError when outside."""
    ny, nx = grid_shape
    coords = coords.long()
    bounds = torch.tensor([batch_size, ny, nx], device=coords.device)
    picked = coords[:, [0, 2, 3]]
    if bool(((picked < 0) | (picked >= bounds)).any()):
        raise ValueError(
            f"pillar_scatter: coords must lie in batch [0, {batch_size}), y [0, {ny}), x [0, {nx}); "
            f"some rows do not (columns are [b, z, y, x])"
        )
    return (picked[:, 0] * ny + picked[:, 1]) * nx + picked[:, 2]


@cpu_kernel(parallel=True)
def _scatter_cpu(features_by_channel, cells, batch_size, plane):
    """(B, C, plane) canvas from features_by_channel (C, M) and flat cells (M,): parallel over channels, so no
    two threads write one canvas element and the sums run in pillar order."""
    channels = features_by_channel.shape[0]
    canvas = np.zeros((batch_size, channels, plane), features_by_channel.dtype)
    for c in numba.prange(channels):
        for m in range(cells.size):
            cell = cells[m]
            canvas[cell // plane, c, cell % plane] += features_by_channel[c, m]
    return canvas


@cpu_kernel(parallel=True)
def _gather_cpu(canvas_grad, cells, plane):
    """(M, C) gradient of the pillar features: the canvas gradient (B, C, plane) at each pillar's cell."""
    channels = canvas_grad.shape[1]
    grad = np.empty((cells.size, channels), canvas_grad.dtype)
    for m in numba.prange(cells.size):
        cell = cells[m]
        for c in range(channels):
            grad[m, c] = canvas_grad[cell // plane, c, cell % plane]
    return grad


class _PillarScatter(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, cells, batch_size, grid_shape, backend):
        ctx.save_for_backward(cells)
        ctx.grid_shape, ctx.backend = grid_shape, backend
        ny, nx = grid_shape
        if backend == "cuda":
            from perception.ops._pillar_scatter_cuda import scatter_cuda

            return scatter_cuda(features, cells, batch_size, ny * nx).view(batch_size, -1, ny, nx)
        features_by_channel = features.detach().cpu().t().contiguous().numpy()
        canvas = _scatter_cpu(features_by_channel, cells.cpu().numpy(), batch_size, ny * nx)
        return torch.from_numpy(canvas).to(features.device).view(batch_size, -1, ny, nx)

    @staticmethod
    def backward(ctx, canvas_grad):
        (cells,) = ctx.saved_tensors
        ny, nx = ctx.grid_shape
        if ctx.backend == "cuda":
            from perception.ops._pillar_scatter_cuda import gather_cuda

            grad = gather_cuda(canvas_grad, cells, ny * nx)
        else:
            flat_grad = canvas_grad.detach().cpu().contiguous().view(canvas_grad.shape[0], canvas_grad.shape[1], -1)
            grad = torch.from_numpy(_gather_cpu(flat_grad.numpy(), cells.cpu().numpy(), ny * nx))
            grad = grad.to(canvas_grad.device)
        return grad, None, None, None, None


def pillar_scatter(
    pillar_features: torch.Tensor,
    coords: torch.Tensor,
    batch_size: int,
    grid_shape: Tuple[int, int],
    backend: Optional[str] = None,
) -> torch.Tensor:
    """Dense BEV canvas (B, C, ny, nx) from pillar_features (M, C) float32/float64 and coords (M, 4) int [b, z, y, x]
    cells (z ignored); grid_shape (ny, nx). Cells no pillar hits are 0. Differentiable w.r.t. pillar_features.
    backend: None (CUDA tensors -> "cuda", else "numba"), "reference", "numba" or "cuda"."""
    check_torch("pillar_scatter", "pillar_features", pillar_features)
    check_float("pillar_scatter", "pillar_features", pillar_features)
    if pillar_features.ndim != 2 or coords.ndim != 2 or coords.shape != (pillar_features.shape[0], 4):
        raise ValueError(
            f"pillar_scatter: pillar_features must be (M, C) and coords (M, 4) [b, z, y, x]; got "
            f"{tuple(pillar_features.shape)} and {tuple(coords.shape)}"
        )
    check_integer_cells("pillar_scatter", "coords", coords)
    if len(grid_shape) != 2:
        raise ValueError(f"pillar_scatter: grid_shape must be (ny, nx); got {grid_shape}")
    batch_size = whole_number("pillar_scatter", "batch_size", batch_size, 1)
    grid_shape = tuple(whole_number("pillar_scatter", "grid_shape", size, 1) for size in grid_shape)
    cells = _flat_cells(torch.as_tensor(coords), batch_size, grid_shape)
    chosen = resolve_backend(backend, pillar_features)
    if chosen == "reference":
        ny, nx = grid_shape
        canvas = pillar_features.new_zeros((batch_size * ny * nx, pillar_features.shape[1]))
        canvas = canvas.index_add(0, cells.to(pillar_features.device), pillar_features)
        return canvas.view(batch_size, ny, nx, -1).permute(0, 3, 1, 2).contiguous()
    return _PillarScatter.apply(pillar_features, cells, batch_size, grid_shape, chosen)
