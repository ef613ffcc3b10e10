"""Hard and dynamic voxelization of point clouds (reference numpy, Numba CPU, Numba CUDA).

Semantics are spconv's ``PointToVoxel`` / mmcv's ``hard_voxelize``: a point falls in voxel
``floor((p - range_min) / voxel_size)`` computed in float32 and is kept when that cell lies in
``[0, round((range_max - range_min) / voxel_size))`` on every axis (see perception.ops._grid); NaN / Inf points
are dropped. Voxels are numbered in the order their first point appears; points sit in input order; points
beyond ``max_points`` of a voxel and voxels beyond ``max_voxels`` are dropped. Voxel coordinates are integer
cells ``(batch, z, y, x)`` from hard voxelization, ``(z, y, x)`` from dynamic voxelization.

No kernel touches a dense grid or a ``max_voxels``-sized buffer: the CPU kernel computes cell keys in parallel
(32-bit when the grid allows), groups them with hash tables sized by the points (contiguous chunks in parallel,
then the later chunks' groups looked up in the earlier chunks' tables, in parallel;
perception.ops._grouping.group_keys_cpu) and copies the points into their slots, writing coords and padding, in
parallel; the GPU kernel uses an atomic hash table, a scan and ``max_points`` rounds of atomic-min
(O(N * max_points)).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numba
import numpy as np
import torch

from perception.ops._backend import (CudaCall, as_numpy, check_points, cpu_kernel, cpu_threads_for, is_torch, like,
                                     resolve_backend, whole_number)
from perception.ops._grid import POINT_BLOCK, Grid3D, decode_keys_cpu, point_keys_cpu, write_cell_cpu
from perception.ops._grouping import group_keys_cpu, group_keys_reference, point_group_and_rank

Array = Any  # np.ndarray or torch.Tensor


def _checked_limits(max_points: int, max_voxels: int, num_cloud_points: int) -> Tuple[int, int]:
    """max_points (at most 2**31 - 1: num_points are int32) and max_voxels cut to the cloud's points (a larger budget
    keeps the same voxels; Numba types no int beyond 64 bits), ValueError naming a limit out of range."""
    max_points = whole_number("hard_voxelize", "max_points", max_points, 1)
    if max_points > np.iinfo(np.int32).max:
        raise ValueError(f"hard_voxelize: max_points must be at most 2**31 - 1 (num_points are int32); got "
                         f"{max_points}")
    return max_points, min(whole_number("hard_voxelize", "max_voxels", max_voxels, 1), num_cloud_points)


# --------------------------------------------------------------------------------------------- reference


def _hard_voxelize_reference(points: np.ndarray, grid: Grid3D, max_points: int, max_voxels: int):
    """Plain numpy: unique cells, ordered by first appearance, stable rank of each point inside its voxel."""
    point_voxel, voxel_keys = group_keys_reference(grid.keys_reference(points[:, :3]))
    kept_points = np.flatnonzero(point_voxel >= 0)
    point_voxel = point_voxel[kept_points]
    in_budget = point_voxel < max_voxels
    kept_points, point_voxel = kept_points[in_budget], point_voxel[in_budget]
    by_voxel = np.argsort(point_voxel, kind="stable")  # input order inside each voxel
    sorted_voxel = point_voxel[by_voxel]
    slot = np.arange(len(by_voxel)) - np.searchsorted(sorted_voxel, sorted_voxel, side="left")
    room = slot < max_points
    num_voxels = min(len(voxel_keys), max_voxels)
    voxels = np.zeros((num_voxels, max_points, points.shape[1]), np.float32)
    voxels[sorted_voxel[room], slot[room]] = points[kept_points[by_voxel][room]]
    num_points = np.minimum(np.bincount(point_voxel, minlength=num_voxels), max_points).astype(np.int32)
    coords = np.zeros((num_voxels, 4), np.int32)
    coords[:, 1:] = grid.decode_reference(voxel_keys[:num_voxels])
    return voxels, coords, num_points


# --------------------------------------------------------------------------------------------- Numba CPU


@cpu_kernel(parallel=True)
def _gather_voxels_cpu(points, chunk_group, chunk_rank, group_of, members_before, voxel_keys, voxel_totals, chunk,
                       max_points, counts):
    """voxels (M, max_points, C) float32 (each kept point copied to its slot, the other slots zeroed), coords (M, 4)
    int32 [0, z, y, x] and num_points (M,) int32 from group_keys_cpu's grouping of the points' cell keys. Per chunk,
    POINT_BLOCK points at a time: their destinations first, then the copies."""
    n, channels = points.shape
    num_voxels = voxel_keys.size
    row = max_points * channels
    voxels = np.empty((num_voxels, row), np.float32)
    flat_voxels = voxels.reshape(-1)
    coords = np.empty((num_voxels, 4), np.int32)
    num_points = np.empty(num_voxels, np.int32)
    for c in numba.prange((n + chunk - 1) // chunk):
        start, stop = c * chunk, min((c + 1) * chunk, n)
        destination = np.empty(POINT_BLOCK, np.int64)  # first element of the point's slot, -1 dropped
        for first in range(start, stop, POINT_BLOCK):
            last = min(first + POINT_BLOCK, stop)
            for i in range(first, last):
                voxel, slot = point_group_and_rank(i, start, chunk_group, chunk_rank, group_of, members_before)
                destination[i - first] = voxel * row + slot * channels if voxel >= 0 and slot < max_points else -1
            for i in range(first, last):
                if destination[i - first] >= 0:
                    for k in range(channels):
                        flat_voxels[destination[i - first] + k] = points[i, k]
    for v in numba.prange(num_voxels):
        num_points[v] = min(voxel_totals[v], max_points)
        voxels[v, num_points[v] * channels:] = 0.0
        write_cell_cpu(voxel_keys[v], counts, coords, v, 1)
    return voxels.reshape((num_voxels, max_points, channels)), coords, num_points


def _hard_voxelize_numba(points: np.ndarray, grid: Grid3D, max_points: int, max_voxels: int):
    keys = point_keys_cpu(points, grid.low, grid.size, grid.counts, np.empty(len(points), grid.key_dtype),
                          numba.get_num_threads())
    grouping = group_keys_cpu(keys, max_voxels, numba.get_num_threads())
    return _gather_voxels_cpu(points, *grouping, max_points, grid.counts)


# --------------------------------------------------------------------------------------------- Numba CUDA


def _hard_voxelize_cuda(points: Array, grid: Grid3D, max_points: int, max_voxels: int):
    from perception.ops import _cuda_primitives as gpu
    from perception.ops._voxelize_cuda import gather_voxels, rank_points_in_voxels

    call = CudaCall(points)
    device_points = call.upload(points, np.float32)
    keys = call.empty(points.shape[0], np.int64)
    call.launch(gpu.point_keys_kernel, keys.size, device_points, call.upload(grid.low), call.upload(grid.size),
                call.upload(grid.counts), keys)
    point_voxel, voxel_keys, num_voxels = gpu.group_keys_gpu(call, keys, max_voxels)
    slot_points = rank_points_in_voxels(call, point_voxel, num_voxels, max_points)
    voxels, num_points = gather_voxels(call, device_points, slot_points, num_voxels, max_points)
    coords = call.empty((num_voxels, 4), np.int32)
    call.launch(gpu.decode_keys_kernel, num_voxels, voxel_keys, call.upload(grid.counts), 1, coords)
    return call.download(voxels), call.download(coords), call.download(num_points)


# --------------------------------------------------------------------------------------------- public API


def hard_voxelize(
    points: Array,
    voxel_size: Sequence[float],
    point_cloud_range: Sequence[float],
    max_points: int,
    max_voxels: int,
    backend: Optional[str] = None,
) -> Tuple[Array, Array, Array]:
    """Hard voxelization of one cloud, identical to spconv's ``PointToVoxel`` (CPU) and mmcv's hard_voxelize.

    points (N, C) float32 [x, y, z, ...] m (numpy or torch; float64 is converted to float32);
    voxel_size (3,) [dx, dy, dz] m; point_cloud_range (6,) [x_min, y_min, z_min, x_max, y_max, z_max] m.
    Returns, as the input's type and device:
      voxels (M, max_points, C) float32, point rows in input order, zero-padded;
      coords (M, 4) int32 [batch=0, z, y, x] cells; num_points (M,) int32 in [1, max_points].
    M <= max_voxels voxels, in the order their first point appears. backend: see perception.ops._backend.
    """
    check_points("hard_voxelize", "points", points)
    max_points, max_voxels = _checked_limits(max_points, max_voxels, points.shape[0])
    grid = Grid3D.from_range(voxel_size, point_cloud_range)
    chosen = resolve_backend(backend, points)
    if chosen == "cuda":
        return _hard_voxelize_cuda(points, grid, max_points, max_voxels)
    host_points = as_numpy(points, np.float32)
    run = _hard_voxelize_reference if chosen == "reference" else _hard_voxelize_numba
    with cpu_threads_for(len(host_points)):
        voxels, coords, num_points = run(host_points, grid, max_points, max_voxels)
    return like(voxels, points), like(coords, points), like(num_points, points)


def hard_voxelize_batch(
    clouds: Sequence[Array],
    voxel_size: Sequence[float],
    point_cloud_range: Sequence[float],
    max_points: int,
    max_voxels: int,
    backend: Optional[str] = None,
) -> Tuple[Array, Array, Array]:
    """``hard_voxelize`` of each cloud b (N_b, C) (``max_voxels`` per cloud), concatenated in batch order:
    voxels (sum M_b, max_points, C), coords (sum M_b, 4) int32 [b, z, y, x], num_points (sum M_b,) int32."""
    if len(clouds) == 0:
        raise ValueError("hard_voxelize_batch needs at least one cloud")
    kinds = {(is_torch(cloud), cloud.shape[1] if cloud.ndim == 2 else None) for cloud in clouds}
    if len(kinds) > 1:
        raise ValueError(f"hard_voxelize_batch: the clouds must all be numpy or all torch, with one column count; got "
                         f"{sorted(('torch' if torch_cloud else 'numpy', columns) for torch_cloud, columns in kinds)}")
    parts = [hard_voxelize(cloud, voxel_size, point_cloud_range, max_points, max_voxels, backend) for cloud in clouds]
    for b, (_, coords, _) in enumerate(parts):
        coords[:, 0] = b
    if is_torch(parts[0][0]):
        return tuple(torch.cat([part[k] for part in parts]) for k in range(3))
    return tuple(np.concatenate([part[k] for part in parts]) for k in range(3))


# --------------------------------------------------------------------------------------------- dynamic


def dynamic_voxelize(
    points: Array, voxel_size: Sequence[float], point_cloud_range: Sequence[float], backend: Optional[str] = None
) -> Array:
    """Voxel cell of every point: (N, 3) int32 [z, y, x], a row of -1 for a point outside the range or non-finite.

    points (N, C) float32 [x, y, z, ...] m; voxel_size (3,) m; point_cloud_range (6,) m (as ``hard_voxelize``:
    the same cells). Returns the input's type and device."""
    check_points("dynamic_voxelize", "points", points)
    grid = Grid3D.from_range(voxel_size, point_cloud_range)
    chosen = resolve_backend(backend, points)
    if chosen == "cuda":
        from perception.ops._voxelize_cuda import dynamic_cells

        return dynamic_cells(points, grid)
    host_points = as_numpy(points, np.float32)
    if chosen == "reference":
        keys = grid.keys_reference(host_points[:, :3])
        cells = np.where((keys >= 0)[:, None], grid.decode_reference(np.maximum(keys, 0)), -1).astype(np.int32)
    else:
        with cpu_threads_for(len(host_points)):
            keys = point_keys_cpu(host_points, grid.low, grid.size, grid.counts,
                                  np.empty(len(host_points), grid.key_dtype), numba.get_num_threads())
            cells = decode_keys_cpu(keys, grid.counts, False)
    return like(cells, points)
