"""Scatter-mean / scatter-max of point features into their voxels (dynamic voxelization's second half).

Points with equal voxel coordinates form one voxel; rows with a negative coordinate (``dynamic_voxelize``'s -1
rows) are dropped; voxels are numbered in the order their first point appears (as ``hard_voxelize`` numbers
them). Differentiable w.r.t. the features for torch inputs: "mean" spreads a voxel's gradient equally over its
points; "max" sends each channel's gradient to the first point that holds the maximum (features must be finite;
a NaN is refused under "max").

Backends: "reference" (numpy ``unique`` + ``ufunc.at``), "numba" (hash grouping + channel-parallel reduction),
"cuda" (atomic hash grouping + atomic add / max); the gradient is two torch gather/scatter ops on any backend.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numba
import numpy as np
import torch

from perception.ops._backend import (as_numpy, check_float, check_integer_cells, cpu_kernel, cpu_threads_for, is_torch,
                                     resolve_backend)
from perception.ops._grouping import group_keys_reference, group_points_cpu

Array = Any  # np.ndarray or torch.Tensor
REDUCTIONS = ("mean", "max")


def _mixed_radix_keys(coords: torch.Tensor, backend: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N,) int64 key of each coords row (N, K) int (-1 when a column is negative), with the radices (K,) and
    strides (K,) that decode it: key = sum(coords[:, j] * strides[j]). Two Numba passes on the "numba" backend,
    torch ops on coords' device otherwise (their boolean masks and reductions cost ~4 ms for 300k rows)."""
    if backend == "numba":
        host_coords = as_numpy(coords)
        radices = torch.from_numpy(_column_radices_cpu(host_coords, numba.get_num_threads()))
        strides = _strides(radices)
        return torch.from_numpy(_linear_keys_cpu(host_coords, strides.numpy(), numba.get_num_threads())), radices, \
            strides
    coords = coords.long()
    valid = (coords >= 0).all(dim=1)
    radices = torch.where(valid[:, None], coords, 0).amax(dim=0) + 1 if len(coords) else \
        coords.new_ones(coords.shape[1])
    strides = _strides(radices)
    keys = (coords * strides).sum(dim=1)
    return torch.where(valid, keys, torch.full_like(keys, -1)), radices, strides


def _strides(radices: torch.Tensor) -> torch.Tensor:
    """(K,) int64 row-major strides of a mixed-radix number with ``radices`` (K,); ValueError past 2**62 cells."""
    if float(torch.prod(radices.double())) >= 2.0**62:
        raise ValueError(f"scatter_points: voxel coords span {radices.tolist()} cells, too many for 64-bit keys")
    strides = torch.ones_like(radices)
    for j in range(len(radices) - 2, -1, -1):
        strides[j] = strides[j + 1] * radices[j + 1]
    return strides


@cpu_kernel(parallel=True)
def _column_radices_cpu(coords, num_chunks):
    """(K,) int64 1 + the largest value of each column of coords (N, K) over the rows without a negative entry (1
    when there are none)."""
    n, k = coords.shape
    chunk = (n + num_chunks - 1) // num_chunks
    chunk_maxima = np.zeros((num_chunks, k), np.int64)
    for c in numba.prange(num_chunks):
        for i in range(c * chunk, min((c + 1) * chunk, n)):
            valid = True
            for j in range(k):
                valid &= coords[i, j] >= 0
            if valid:
                for j in range(k):
                    chunk_maxima[c, j] = max(chunk_maxima[c, j], coords[i, j])
    radices = np.empty(k, np.int64)
    for j in range(k):
        radices[j] = chunk_maxima[:, j].max() + 1
    return radices


@cpu_kernel(parallel=True)
def _linear_keys_cpu(coords, strides, num_chunks):
    """(N,) int64 sum_j coords[i, j] * strides[j] of each row of coords (N, K), -1 for a row with a negative entry."""
    n, k = coords.shape
    chunk = (n + num_chunks - 1) // num_chunks
    keys = np.empty(n, np.int64)
    for c in numba.prange(num_chunks):
        for i in range(c * chunk, min((c + 1) * chunk, n)):
            key = np.int64(0)
            valid = True
            for j in range(k):
                key += np.int64(coords[i, j]) * strides[j]
                valid &= coords[i, j] >= 0
            keys[i] = key if valid else -1
    return keys


def _reduce_reference(features: np.ndarray, keys: np.ndarray, reduce: str):
    point_group, group_keys = group_keys_reference(keys)
    kept = np.flatnonzero(point_group >= 0)
    num_groups, channels = len(group_keys), features.shape[1]
    counts = np.bincount(point_group[kept], minlength=num_groups)
    if reduce == "mean":
        sums = np.zeros((num_groups, channels), features.dtype)
        np.add.at(sums, point_group[kept], features[kept])
        return sums / np.maximum(counts, 1)[:, None].astype(features.dtype), point_group, group_keys, \
            counts, None
    maxima = np.full((num_groups, channels), -np.inf, features.dtype)
    np.maximum.at(maxima, point_group[kept], features[kept])
    holder = np.full((num_groups, channels), len(keys), np.int64)
    rows, cols = np.nonzero(features[kept] == maxima[point_group[kept]])
    np.minimum.at(holder, (point_group[kept][rows], cols), kept[rows])
    return maxima, point_group, group_keys, counts, holder


@cpu_kernel(parallel=True)
def _reduce_cpu(features, point_group, num_groups, take_max):
    """(M, C) per-group sums (take_max False) or maxima with the first point holding each (take_max True);
    parallel over channels, points in input order."""
    channels = features.shape[1]
    result = np.empty((num_groups, channels), features.dtype)
    holder = np.full((num_groups, channels if take_max else 0), -1, np.int64)
    for c in numba.prange(channels):
        for g in range(num_groups):
            result[g, c] = -np.inf if take_max else 0
        for i in range(features.shape[0]):
            g = point_group[i]
            if g < 0:
                continue
            if take_max:
                if features[i, c] > result[g, c] or holder[g, c] < 0:
                    result[g, c] = features[i, c]
                    holder[g, c] = i
            else:
                result[g, c] += features[i, c]
    return result, holder


def _reduce_numba(features: np.ndarray, keys: np.ndarray, reduce: str):
    point_group, _, group_keys, counts = group_points_cpu(keys, keys.size, keys.size, numba.get_num_threads())
    result, holder = _reduce_cpu(features, point_group, group_keys.size, reduce == "max")
    if reduce == "mean":
        result = result / np.maximum(counts, 1)[:, None].astype(features.dtype)
        holder = None
    return result, point_group.astype(np.int64), group_keys, counts.astype(np.int64), holder


class _Scatter(torch.autograd.Function):
    """forward: the backend's reduction; backward: torch gather (mean) / scatter (max) on the saved grouping."""

    @staticmethod
    def forward(ctx, features, keys, reduce, backend):
        voxel_features, point_group, group_keys, counts, holder = _run_backend(features, keys, reduce, backend)
        ctx.reduce, ctx.num_points = reduce, features.shape[0]
        ctx.save_for_backward(point_group, counts, holder if holder is not None else counts)
        ctx.mark_non_differentiable(group_keys)
        return voxel_features, group_keys

    @staticmethod
    def backward(ctx, voxel_grad, _):
        point_group, counts, holder = ctx.saved_tensors
        if ctx.reduce == "mean":
            kept = point_group >= 0
            grad = voxel_grad.new_zeros((ctx.num_points, voxel_grad.shape[1]))
            grad[kept] = voxel_grad[point_group[kept]] / counts[point_group[kept]].to(voxel_grad.dtype)[:, None]
        else:
            grad = voxel_grad.new_zeros((ctx.num_points, voxel_grad.shape[1]))
            grad.scatter_(0, holder, voxel_grad)
        return grad, None, None, None


def _run_backend(features, keys: torch.Tensor, reduce: str, backend: str):
    """(voxel_features, point_group, group_keys, counts, holder-or-None) as torch tensors on features' device."""
    if backend == "cuda":
        from perception.ops._scatter_cuda import reduce_cuda

        return reduce_cuda(features, keys, reduce)
    run = _reduce_reference if backend == "reference" else _reduce_numba
    result = run(as_numpy(features), as_numpy(keys), reduce)
    device = features.device if is_torch(features) else torch.device("cpu")
    return tuple(None if r is None else torch.from_numpy(np.ascontiguousarray(r)).to(device) for r in result)


def scatter_points(
    features: Array, voxel_coords: Array, reduce: str = "mean", backend: Optional[str] = None
) -> Tuple[Array, Array]:
    """Reduce point features into voxels.

    features (N, C) float32/float64 (without NaN for "max": ValueError); voxel_coords (N, 3) [z, y, x] or (N, 4)
    [b, z, y, x] int cells, a row with a negative entry is dropped; reduce "mean" or "max". Returns voxel_features
    (M, C) and voxel_coords (M, 3 or 4) (voxels in first-appearance order), as the features' type and device.
    Differentiable w.r.t. torch features.
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"scatter_points: reduce must be one of {REDUCTIONS}, got {reduce!r}")
    if features.ndim != 2 or voxel_coords.ndim != 2 or voxel_coords.shape[0] != features.shape[0] or \
            voxel_coords.shape[1] not in (3, 4):
        raise ValueError(
            "scatter_points: features must be (N, C) and voxel_coords (N, 3) [z, y, x] or (N, 4) [b, z, y, x]; "
            f"got {tuple(features.shape)} and {tuple(voxel_coords.shape)}"
        )
    check_float("scatter_points", "features", features)
    check_integer_cells("scatter_points", "voxel_coords", voxel_coords)
    if reduce == "max" and bool(torch.isnan(features).any() if is_torch(features) else np.isnan(features).any()):
        raise ValueError("scatter_points: reduce 'max' needs features without NaN (the backends would order a NaN "
                         "against numbers each its own way)")
    chosen = resolve_backend(backend, features)
    coords = torch.as_tensor(voxel_coords)
    with cpu_threads_for(features.shape[0]):
        keys, radices, strides = _mixed_radix_keys(coords.to(features.device) if is_torch(features) else coords,
                                                   chosen)
        if is_torch(features):
            voxel_features, group_keys = _Scatter.apply(features, keys, reduce, chosen)
        else:
            voxel_features, _, group_keys, _, _ = _run_backend(features, keys, reduce, chosen)
    out_coords = (group_keys[:, None] // strides.to(group_keys.device) % radices.to(group_keys.device))
    out_coords = out_coords.to(coords.dtype)
    if is_torch(features):
        return voxel_features, out_coords
    return as_numpy(voxel_features), as_numpy(out_coords)
