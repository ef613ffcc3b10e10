"""Numba CUDA kernels of perception.ops.voxelize (imported lazily, on the first CUDA call)."""
from __future__ import annotations

import numpy as np
from numba import cuda

from perception.ops import _cuda_primitives as gpu
from perception.ops._backend import CudaCall
from perception.ops._cuda_primitives import INT32_MAX
from perception.ops._grid import Grid3D


@cuda.jit
def _rank_round_kernel(point_voxel, round_index, max_points, slot_points, placed):
    """Round r of the in-voxel ranking: a point that won slot r-1 is placed; the others bid for slot r with an
    atomic min of their index, so slot r goes to the smallest index not placed yet (input order)."""
    i = cuda.grid(1)
    if i >= point_voxel.size:
        return
    v = point_voxel[i]
    if v < 0 or placed[i] == 1:
        return
    if round_index > 0 and slot_points[v, round_index - 1] == i:
        placed[i] = 1
        return
    if round_index < max_points:
        cuda.atomic.min(slot_points, (v, round_index), i)


def rank_points_in_voxels(call: CudaCall, point_voxel, num_voxels: int, max_points: int):
    """(M, max_points) int32: index of the point in each slot of each voxel (input order), INT32_MAX when empty."""
    slot_points = call.empty((num_voxels, max_points), np.int32)
    gpu.fill(call, slot_points, INT32_MAX)
    placed = call.empty(point_voxel.size, np.int32)
    gpu.fill(call, placed, 0)
    for round_index in range(max_points + 1):
        call.launch(_rank_round_kernel, point_voxel.size, point_voxel, round_index, max_points, slot_points, placed)
    return slot_points


@cuda.jit
def _gather_kernel(points, slot_points, voxels, num_points):
    """Thread (v, s): copy the point of slot s into voxels[v, s] (zeros when empty); slot 0 counts the voxel."""
    t = cuda.grid(1)
    max_points = slot_points.shape[1]
    if t >= slot_points.size:
        return
    v = t // max_points
    s = t % max_points
    source = slot_points[v, s]
    for c in range(points.shape[1]):
        voxels[v, s, c] = points[source, c] if source != INT32_MAX else 0.0
    if s == 0:
        count = 0
        for k in range(max_points):
            if slot_points[v, k] != INT32_MAX:
                count += 1
        num_points[v] = count


def gather_voxels(call: CudaCall, points, slot_points, num_voxels: int, max_points: int):
    voxels = call.empty((num_voxels, max_points, points.shape[1]), np.float32)
    num_points = call.empty(num_voxels, np.int32)
    call.launch(_gather_kernel, num_voxels * max_points, points, slot_points, voxels, num_points)
    return voxels, num_points


def dynamic_cells(points, grid: Grid3D):
    """(N, 3) int32 [z, y, x] cell per point (-1 rows dropped), as the input's type and device."""
    call = CudaCall(points)
    keys = call.empty(points.shape[0], np.int64)
    counts = call.upload(grid.counts)
    call.launch(gpu.point_keys_kernel, keys.size, call.upload(points, np.float32), call.upload(grid.low),
                call.upload(grid.size), counts, keys)
    cells = call.empty((points.shape[0], 3), np.int32)
    call.launch(gpu.decode_keys_kernel, keys.size, keys, counts, 0, cells)
    return call.download(cells)
