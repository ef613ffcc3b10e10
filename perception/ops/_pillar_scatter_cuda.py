"""Numba CUDA kernels of perception.ops.pillar_scatter (imported lazily, on the first CUDA call)."""
from __future__ import annotations

import numpy as np
import torch
from numba import cuda

from perception.ops import _cuda_primitives as gpu
from perception.ops._backend import CudaCall, float_dtype


@cuda.jit
def _scatter_kernel(features, cells, plane, canvas):
    """Thread (m, c): canvas[b, c, cell] += features[m, c] (atomic: rows sharing a cell are summed)."""
    t = cuda.grid(1)
    channels = features.shape[1]
    if t < features.shape[0] * channels:
        m = t // channels
        c = t % channels
        cell = cells[m]
        cuda.atomic.add(canvas, (cell // plane, c, cell % plane), features[m, c])


@cuda.jit
def _gather_kernel(canvas_grad, cells, plane, grad):
    t = cuda.grid(1)
    channels = grad.shape[1]
    if t < grad.shape[0] * channels:
        m = t // channels
        c = t % channels
        cell = cells[m]
        grad[m, c] = canvas_grad[cell // plane, c, cell % plane]


def scatter_cuda(features: torch.Tensor, cells: torch.Tensor, batch_size: int, plane: int) -> torch.Tensor:
    """(B, C, plane) canvas from features (M, C) and flat cells (M,) (as the features' type and device)."""
    call = CudaCall(features)
    dtype = float_dtype(features)
    canvas = call.empty((batch_size, features.shape[1], plane), dtype)
    gpu.fill(call, canvas, 0)
    call.launch(_scatter_kernel, features.shape[0] * features.shape[1], call.upload(features, dtype),
                call.upload(cells, np.int64), plane, canvas)
    return call.download(canvas)


def gather_cuda(canvas_grad: torch.Tensor, cells: torch.Tensor, plane: int) -> torch.Tensor:
    """(M, C) gradient of the pillar features from the canvas gradient (B, C, ny, nx), ny * nx = plane."""
    call = CudaCall(canvas_grad)
    dtype = float_dtype(canvas_grad)
    flat_grad = canvas_grad.reshape(canvas_grad.shape[0], canvas_grad.shape[1], plane)
    grad = call.empty((cells.shape[0], canvas_grad.shape[1]), dtype)
    call.launch(_gather_kernel, grad.size, call.upload(flat_grad, dtype), call.upload(cells, np.int64), plane, grad)
    return call.download(grad)
