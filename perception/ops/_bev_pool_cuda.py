"""Numba CUDA kernels of perception.ops.bev_pool (imported lazily, on the first CUDA call)."""
from __future__ import annotations

import numpy as np
import torch
from numba import cuda

from perception.ops import _cuda_primitives as gpu
from perception.ops._backend import CudaCall, float_dtype


@cuda.jit
def _forward_kernel(depth, context, point_order, interval_starts, interval_ends, interval_cells, points_per_image,
                    pixels_per_image, out):
    """Thread (interval, channel): out[b, c, cell] = sum of depth[point] * context[its pixel, c] over the interval's
    points (adjacent threads read adjacent channels of a pixel: coalesced)."""
    t = cuda.grid(1)
    channels = context.shape[1]
    if t >= interval_cells.size * channels:
        return
    i = t // channels
    c = t % channels
    total = 0.0
    for k in range(interval_starts[i], interval_ends[i]):
        point = point_order[k]
        pixel = point // points_per_image * pixels_per_image + point % pixels_per_image
        total += depth[point] * context[pixel, c]
    plane = out.shape[2]
    out[interval_cells[i] // plane, c, interval_cells[i] % plane] = total


@cuda.jit
def _backward_kernel(out_grad, point_order, interval_starts, interval_ends, interval_cells, grad):
    """Thread (interval, channel): every point of the interval takes the output gradient of its cell (the gradient
    of its lifted features)."""
    t = cuda.grid(1)
    channels = grad.shape[1]
    if t >= interval_cells.size * channels:
        return
    i = t // channels
    c = t % channels
    plane = out_grad.shape[2]
    value = out_grad[interval_cells[i] // plane, c, interval_cells[i] % plane]
    for k in range(interval_starts[i], interval_ends[i]):
        grad[point_order[k], c] = value


def _geometry_on_device(call: CudaCall, geometry):
    return tuple(call.upload(t, np.int64) for t in (geometry.point_order, geometry.interval_starts,
                                                    geometry.interval_ends, geometry.interval_cells))


def pool_forward_cuda(depth: torch.Tensor, context: torch.Tensor, geometry) -> torch.Tensor:
    """(B, C, ny * nx) pooled lifted features from depth (B, N_cams, D, H, W) and context (B, N_cams, H, W, C)."""
    call = CudaCall(context)
    batch, channels = geometry.frustum_shape[0], context.shape[-1]
    depth_bins, height, width = geometry.frustum_shape[2:]
    ny, nx = geometry.grid_shape
    dtype = float_dtype(context)
    out = call.empty((batch, channels, ny * nx), dtype)
    gpu.fill(call, out, 0)
    call.launch(_forward_kernel, geometry.num_intervals * channels, call.upload(depth.reshape(-1), dtype),
                call.upload(context.reshape(-1, channels), dtype), *_geometry_on_device(call, geometry),
                depth_bins * height * width, height * width, out)
    return call.download(out)


def pool_backward_cuda(out_grad: torch.Tensor, geometry) -> torch.Tensor:
    """(B * N_cams * D * H * W, C) gradient of the lifted features from the output gradient (B, C, ny * nx)."""
    call = CudaCall(out_grad)
    num_rows, channels = int(np.prod(geometry.frustum_shape)), out_grad.shape[1]
    grad = call.empty((num_rows, channels), float_dtype(out_grad))
    gpu.fill(call, grad, 0)
    call.launch(_backward_kernel, geometry.num_intervals * channels, call.upload(out_grad, float_dtype(out_grad)),
                *_geometry_on_device(call, geometry), grad)
    return call.download(grad)
