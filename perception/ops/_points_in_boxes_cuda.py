"""Numba CUDA kernels of perception.ops.points_in_boxes (imported lazily, on the first CUDA call)."""
from __future__ import annotations

import numpy as np
from numba import cuda

from perception.ops._backend import CudaCall
from perception.ops._box_containment import inside_box

_inside_box_gpu = cuda.jit(device=True)(inside_box)


@cuda.jit
def _first_box_kernel(points, table, out):
    i = cuda.grid(1)
    if i >= out.size:
        return
    out[i] = -1
    for k in range(table.shape[0]):
        if _inside_box_gpu(np.float64(points[i, 0]), np.float64(points[i, 1]), np.float64(points[i, 2]), table[k]):
            out[i] = k
            return


@cuda.jit
def _mask_kernel(points, table, mask):
    """Thread (k, i): adjacent threads take adjacent points of one box (coalesced mask writes)."""
    t = cuda.grid(1)
    n = points.shape[0]
    if t < table.shape[0] * n:
        k = t // n
        i = t % n
        mask[k, i] = _inside_box_gpu(np.float64(points[i, 0]), np.float64(points[i, 1]), np.float64(points[i, 2]),
                                     table[k])


def first_box_cuda(points, table: np.ndarray):
    call = CudaCall(points)
    out = call.empty(points.shape[0], np.int64)
    call.launch(_first_box_kernel, points.shape[0], call.upload(points), call.upload(table), out)
    return call.download(out)


def mask_cuda(points, table: np.ndarray):
    call = CudaCall(points)
    mask = call.empty((table.shape[0], points.shape[0]), np.bool_)
    call.launch(_mask_kernel, mask.size, call.upload(points), call.upload(table), mask)
    return call.download(mask)
