"""Numba CUDA kernels of perception.ops.bev_pool (imported lazily, on the first CUDA call)."""
from __future__ import annotations

import numpy as np
import torch
from numba import cuda

from perception.ops import _cuda_primitives as gpu
from perception.ops._backend import CudaCall, float_dtype
from perception.ops._frustum_layout import pixel_of_point, point_of_pixel

_pixel_of_point_gpu = cuda.jit(device=True)(pixel_of_point)
_point_of_pixel_gpu = cuda.jit(device=True)(point_of_pixel)


@cuda.jit
def _forward_kernel(depth, context, point_order, interval_starts, interval_ends, interval_cells, depth_bins,
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
        total += depth[point] * context[_pixel_of_point_gpu(point, depth_bins, pixels_per_image), c]
    plane = out.shape[2]
    out[interval_cells[i] // plane, c, interval_cells[i] % plane] = total


@cuda.jit
def _point_cells_kernel(point_order, interval_starts, interval_ends, interval_cells, cells):
    """Thread per interval: each of its points gets the interval's flat cell (``cells`` starts at -1: dropped)."""
    i = cuda.grid(1)
    if i >= interval_cells.size:
        return
    for k in range(interval_starts[i], interval_ends[i]):
        cells[point_order[k]] = interval_cells[i]


@cuda.jit
def _depth_grad_kernel(cell_grad, context, point_cells, depth_bins, pixels_per_image, depth_grad):
    """Thread per frustum point: its cell's output gradient dotted with its pixel's context (0 when dropped)."""
    point = cuda.grid(1)
    if point >= point_cells.size:
        return
    cell = point_cells[point]
    if cell < 0:
        return
    pixel = _pixel_of_point_gpu(point, depth_bins, pixels_per_image)
    total = 0.0
    for c in range(context.shape[1]):
        total += cell_grad[cell, c] * context[pixel, c]
    depth_grad[point] = total


@cuda.jit
def _context_grad_kernel(cell_grad, depth, point_cells, depth_bins, pixels_per_image, context_grad):
    """Thread (pixel, channel): the sum over the pixel's depth bins of depth times the bin's cell gradient."""
    t = cuda.grid(1)
    channels = context_grad.shape[1]
    if t >= context_grad.shape[0] * channels:
        return
    pixel = t // channels
    c = t % channels
    total = 0.0
    for d in range(depth_bins):
        point = _point_of_pixel_gpu(pixel, d, depth_bins, pixels_per_image)
        cell = point_cells[point]
        if cell >= 0:
            total += depth[point] * cell_grad[cell, c]
    context_grad[pixel, c] = total


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
                depth_bins, height * width, out)
    return call.download(out)


def pool_backward_cuda(cell_grad: torch.Tensor, depth: torch.Tensor, context: torch.Tensor, geometry):
    """Gradients of depth (B, N_cams, D, H, W) and context (B, N_cams, H, W, C) from each BEV cell's output gradient
    (B * ny * nx, C), as flat (P,) and (B * N_cams * H * W, C) arrays: perception.ops.bev_pool's Numba backward, one
    thread per point and per (pixel, channel)."""
    call = CudaCall(context)
    channels = cell_grad.shape[1]
    depth_bins, height, width = geometry.frustum_shape[2:]
    dtype = float_dtype(context)
    cell_grad = call.upload(cell_grad, dtype)
    flat_depth = call.upload(depth.reshape(-1), dtype)
    flat_context = call.upload(context.reshape(-1, channels), dtype)
    point_cells = call.empty(flat_depth.size, np.int64)
    gpu.fill(call, point_cells, -1)
    call.launch(_point_cells_kernel, geometry.num_intervals, *_geometry_on_device(call, geometry), point_cells)
    depth_grad = call.empty(flat_depth.size, dtype)
    gpu.fill(call, depth_grad, 0)
    call.launch(_depth_grad_kernel, flat_depth.size, cell_grad, flat_context, point_cells, depth_bins,
                height * width, depth_grad)
    context_grad = call.empty(flat_context.shape, dtype)
    call.launch(_context_grad_kernel, context_grad.size, cell_grad, flat_depth, point_cells, depth_bins,
                height * width, context_grad)
    return call.download(depth_grad), call.download(context_grad)
