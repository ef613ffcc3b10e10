"""BEV pooling of camera frustum features, as BEVFusion does it (interval reduction), on the depth distribution and
the context features apart (BEVDet's bev_pool_v2): the lifted features, their outer product, are never stored.

Every frustum point (camera, depth bin, feature pixel) has an ego-frame position; the points are sorted by the
BEV cell they fall in (``BEVPoolGeometry``), so each non-empty cell is one contiguous interval of the sorted
points; pooling sums each interval's lifted features, a point's depth probability times its pixel's context
features, into its cell. The z cells are collapsed by summation (the z range only selects points), so the output
is (B, C, ny, nx).

Cells follow perception.ops._grid (spconv's float32 ``floor`` arithmetic, low bound inclusive). BEVFusion
truncates with ``.long()`` instead of ``floor``, which also keeps points up to one cell below the low bounds in
cell 0; here those points are dropped.

Backends of ``bev_pool``: "reference" (the lifted features formed, then each added into its cell by torch's
index_add; not LSS/BEVFusion's cumsum trick, ``QuickCumsum``, whose running sum carries an inf or a huge value of
one cell into every later one), "numba" (CPU, parallel over intervals), "cuda" (one thread per (interval,
channel)); the last two form each product as they sum it, in float32 the same numbers as the reference's products.
The Numba forward sums them in the inputs' float type; the CUDA kernels, and the Numba backward's depth gradient,
in float64 (their accumulators start at the literal 0.0), rounded once to the inputs' type: on float32 inputs the
CUDA forward differs from the Numba one by the float32 sums' rounding (tests: 1e-5). Backward: the Numba
kernel gives each point's depth its cell's gradient dotted with its pixel's context and each pixel's context the
sum over its depth bins of depth times the cell's gradient, in one pass over the pixels; the CUDA kernels compute
the same, one thread per point and one per (pixel, channel). The geometry is built with numpy ("reference"), a
Numba counting sort ("numba") or the CUDA key kernel plus torch's stable sort on the device ("cuda").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numba
import numpy as np
import torch

from perception.ops._backend import CudaCall, as_numpy, check_float, check_torch, cpu_kernel, resolve_backend
from perception.ops._frustum_layout import pixel_of_point, point_of_pixel
from perception.ops._grid import Grid3D, point_keys_cpu

INTERVALS_PER_TASK = 256
"""Intervals one Numba task sums (one accumulator allocation per task)."""

_pixel_of_point_cpu = cpu_kernel()(pixel_of_point)
_point_of_pixel_cpu = cpu_kernel()(point_of_pixel)


@dataclass(frozen=True)
class BEVPoolGeometry:
    """Where each frustum point goes, precomputed once per calibration (int64 tensors on one device).

    point_order (K,): flat indices into the (B * N_cams * D * H * W) frustum points inside the BEV range, sorted
    by output cell (stable: input order inside a cell); interval_starts / interval_ends (I,): the run
    ``point_order[start:end]`` of each non-empty cell; interval_cells (I,): its flat cell ``b * ny * nx + y * nx
    + x``; frustum_shape (B, N_cams, D, H, W); grid_shape (ny, nx).
    """

    point_order: torch.Tensor
    interval_starts: torch.Tensor
    interval_ends: torch.Tensor
    interval_cells: torch.Tensor
    frustum_shape: Tuple[int, int, int, int, int]
    grid_shape: Tuple[int, int]

    @classmethod
    def from_points(
        cls,
        frustum_points_ego,
        bev_range: Sequence[float],
        bev_cell: Sequence[float],
        backend: Optional[str] = None,
    ) -> "BEVPoolGeometry":
        """frustum_points_ego (B, N_cams, D, H, W, 3) [x, y, z] m in the ego frame (numpy or torch; the geometry
        lives on the tensor's device, CPU for numpy); bev_range (6,) [x_min, y_min, z_min, x_max, y_max, z_max] m;
        bev_cell (3,) [dx, dy, dz] m."""
        if frustum_points_ego.ndim != 6 or frustum_points_ego.shape[-1] != 3:
            raise ValueError(
                "frustum_points_ego must be (B, N_cams, D, H, W, 3) [x, y, z]; got shape "
                f"{tuple(frustum_points_ego.shape)}"
            )
        grid = Grid3D.from_range(bev_cell, bev_range, what="BEV cell")
        frustum_shape = tuple(int(s) for s in frustum_points_ego.shape[:5])
        device = frustum_points_ego.device if isinstance(frustum_points_ego, torch.Tensor) else torch.device("cpu")
        chosen = resolve_backend(backend, frustum_points_ego)
        if chosen == "cuda":
            keys = _point_keys_cuda(frustum_points_ego, grid)
            parts = _intervals_by_torch_sort(keys.to(device), grid, frustum_shape)
        else:
            xyz = as_numpy(frustum_points_ego, np.float32).reshape(-1, 3)
            if chosen == "reference":
                parts = _intervals_by_torch_sort(torch.from_numpy(grid.keys_reference(xyz)), grid, frustum_shape)
            else:
                keys = point_keys_cpu(xyz, grid.low, grid.size, grid.counts, np.empty(len(xyz), np.int64),
                                      numba.get_num_threads())
                cells = _bev_cells_cpu(keys, grid.shape_xyz[0] * grid.shape_xyz[1], int(np.prod(frustum_shape[1:])))
                parts = tuple(torch.from_numpy(a) for a in _counting_sort_cpu(cells, frustum_shape[0] * _plane(grid)))
            parts = tuple(p.to(device) for p in parts)
        return cls(*parts, frustum_shape=frustum_shape, grid_shape=(grid.shape_xyz[1], grid.shape_xyz[0]))

    def to(self, device) -> "BEVPoolGeometry":
        """The same geometry with its tensors on ``device``."""
        moved = [t.to(device) for t in (self.point_order, self.interval_starts, self.interval_ends,
                                        self.interval_cells)]
        return BEVPoolGeometry(*moved, frustum_shape=self.frustum_shape, grid_shape=self.grid_shape)

    @property
    def num_intervals(self) -> int:
        return int(self.interval_cells.shape[0])


def _plane(grid: Grid3D) -> int:
    return grid.shape_xyz[0] * grid.shape_xyz[1]


def _intervals_by_torch_sort(keys: torch.Tensor, grid: Grid3D, frustum_shape) -> Tuple[torch.Tensor, ...]:
    """Geometry tensors from (P,) int64 voxel keys (-1 dropped) with a stable torch sort (on keys' device)."""
    plane = _plane(grid)
    points_per_batch = int(np.prod(frustum_shape[1:]))
    kept = torch.nonzero(keys >= 0).flatten()
    cells = kept // points_per_batch * plane + keys[kept] % plane
    cells, by_cell = torch.sort(cells, stable=True)
    point_order = kept[by_cell]
    interval_cells, lengths = torch.unique_consecutive(cells, return_counts=True)
    interval_ends = torch.cumsum(lengths, 0)
    return point_order, interval_ends - lengths, interval_ends, interval_cells


@cpu_kernel(parallel=True)
def _bev_cells_cpu(keys, plane, points_per_batch):
    """(P,) int64 flat BEV cell b * plane + (y * nx + x) of each point's voxel key (z collapsed), -1 dropped."""
    cells = np.empty(keys.size, np.int64)
    for i in numba.prange(keys.size):
        cells[i] = -1 if keys[i] < 0 else (i // points_per_batch) * plane + keys[i] % plane
    return cells


@cpu_kernel()
def _counting_sort_cpu(cells, num_cells):
    """Stable counting sort of the kept points by cell: O(P + num_cells), one pass to count, one to place."""
    offsets = np.zeros(num_cells + 1, np.int64)
    for i in range(cells.size):
        if cells[i] >= 0:
            offsets[cells[i] + 1] += 1
    num_intervals = 0
    for cell in range(num_cells):
        if offsets[cell + 1] > 0:
            num_intervals += 1
        offsets[cell + 1] += offsets[cell]
    interval_starts = np.empty(num_intervals, np.int64)
    interval_ends = np.empty(num_intervals, np.int64)
    interval_cells = np.empty(num_intervals, np.int64)
    k = 0
    for cell in range(num_cells):
        if offsets[cell + 1] > offsets[cell]:
            interval_starts[k] = offsets[cell]
            interval_ends[k] = offsets[cell + 1]
            interval_cells[k] = cell
            k += 1
    point_order = np.empty(offsets[num_cells], np.int64)
    cursor = offsets[:num_cells].copy()
    for i in range(cells.size):
        cell = cells[i]
        if cell >= 0:
            point_order[cursor[cell]] = i
            cursor[cell] += 1
    return point_order, interval_starts, interval_ends, interval_cells


def _point_keys_cuda(frustum_points_ego, grid: Grid3D) -> torch.Tensor:
    from perception.ops import _cuda_primitives as gpu

    call = CudaCall(frustum_points_ego)
    xyz = call.upload(frustum_points_ego, np.float32).reshape(-1, 3)
    keys = call.empty(xyz.shape[0], np.int64)
    call.launch(gpu.point_keys_kernel, keys.size, xyz, call.upload(grid.low), call.upload(grid.size),
                call.upload(grid.counts), keys)
    return torch.as_tensor(call.download(keys))


# ----------------------------------------------------------------------------------------------- pooling


def _bev_pool_reference(depth: torch.Tensor, context: torch.Tensor, geometry: BEVPoolGeometry) -> torch.Tensor:
    """The lifted features formed, (B, N, D, H, W, C), and each sorted point's row added into its interval's cell
    (torch's index_add, differentiable as it stands)."""
    batch, channels = geometry.frustum_shape[0], context.shape[-1]
    ny, nx = geometry.grid_shape
    lifted = depth[..., None] * context[:, :, None]  # (B, N, D, H, W, C)
    sorted_rows = lifted.reshape(-1, channels)[geometry.point_order]
    point_cells = geometry.interval_cells.repeat_interleave(geometry.interval_ends - geometry.interval_starts,
                                                            output_size=sorted_rows.shape[0])
    canvas = lifted.new_zeros((batch * ny * nx, channels)).index_add(0, point_cells, sorted_rows)
    return canvas.view(batch, ny, nx, channels).permute(0, 3, 1, 2).contiguous()


@cpu_kernel(parallel=True)
def _pool_forward_cpu(depth, context, point_order, interval_starts, interval_ends, interval_cells, batch, plane,
                      depth_bins, pixels_per_image):
    """(B, C, plane) sums over each interval's points of depth[point] * context[its pixel] into the interval's cell;
    depth (B * N * D * H * W,), context (B * N * H * W, C); tasks of INTERVALS_PER_TASK intervals."""
    channels = context.shape[1]
    out = np.zeros((batch, channels, plane), context.dtype)
    num_intervals = interval_cells.size
    num_tasks = (num_intervals + INTERVALS_PER_TASK - 1) // INTERVALS_PER_TASK
    for task in numba.prange(num_tasks):
        total = np.empty(channels, context.dtype)
        for i in range(task * INTERVALS_PER_TASK, min((task + 1) * INTERVALS_PER_TASK, num_intervals)):
            total[:] = 0
            for k in range(interval_starts[i], interval_ends[i]):
                point = point_order[k]
                pixel = _pixel_of_point_cpu(point, depth_bins, pixels_per_image)
                weight = depth[point]
                for c in range(channels):
                    total[c] += weight * context[pixel, c]
            b = interval_cells[i] // plane
            cell = interval_cells[i] % plane
            for c in range(channels):
                out[b, c, cell] = total[c]
    return out


@cpu_kernel(parallel=True)
def _point_cells_cpu(point_order, interval_starts, interval_ends, interval_cells, num_points):
    """(P,) the flat cell (b * plane + cell) each frustum point is pooled into, -1 for a dropped point."""
    cells = np.full(num_points, -1, np.int64)
    for i in numba.prange(interval_cells.size):
        for k in range(interval_starts[i], interval_ends[i]):
            cells[point_order[k]] = interval_cells[i]
    return cells


@cpu_kernel(parallel=True)
def _pool_backward_cpu(cell_grad, depth, context, point_cells, depth_bins, pixels_per_image):
    """Gradients of depth (P,) and context (B * N * H * W, C) from cell_grad (B * plane, C), the output gradient of
    each flat cell: a point's depth takes its cell's gradient dotted with its pixel's context, a pixel's context the
    sum over its depth bins of depth times the bin's cell gradient. Parallel over pixels, each of which owns its
    points and its context row."""
    channels = context.shape[1]
    depth_grad = np.zeros(depth.size, depth.dtype)
    context_grad = np.zeros(context.shape, context.dtype)
    for pixel in numba.prange(context.shape[0]):
        for d in range(depth_bins):
            point = _point_of_pixel_cpu(pixel, d, depth_bins, pixels_per_image)
            cell = point_cells[point]
            if cell < 0:
                continue
            weight = depth[point]
            total = 0.0
            for c in range(channels):
                total += cell_grad[cell, c] * context[pixel, c]
                context_grad[pixel, c] += weight * cell_grad[cell, c]
            depth_grad[point] = total
    return depth_grad, context_grad


def _host_inputs(depth: torch.Tensor, context: torch.Tensor):
    """depth as (P,) and context as (B * N * H * W, C) contiguous numpy arrays, the Numba kernels' layout."""
    return (depth.detach().cpu().reshape(-1).contiguous().numpy(),
            context.detach().cpu().reshape(-1, context.shape[-1]).contiguous().numpy())


def _geometry_arrays(geometry: BEVPoolGeometry):
    return tuple(t.cpu().numpy() for t in (geometry.point_order, geometry.interval_starts, geometry.interval_ends,
                                           geometry.interval_cells))


class _BEVPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, depth, context, geometry, backend):
        ctx.save_for_backward(depth, context)
        ctx.geometry, ctx.backend = geometry, backend
        batch, channels = geometry.frustum_shape[0], context.shape[-1]
        ny, nx = geometry.grid_shape
        if backend == "cuda":
            from perception.ops._bev_pool_cuda import pool_forward_cuda

            return pool_forward_cuda(depth, context, geometry).view(batch, channels, ny, nx)
        depth_bins, height, width = geometry.frustum_shape[2:]
        out = _pool_forward_cpu(*_host_inputs(depth, context), *_geometry_arrays(geometry), batch, ny * nx,
                                depth_bins, height * width)
        return torch.from_numpy(out).to(context.device).view(batch, channels, ny, nx)

    @staticmethod
    def backward(ctx, out_grad):
        depth, context = ctx.saved_tensors
        geometry = ctx.geometry
        batch, channels = out_grad.shape[:2]
        cell_grad = out_grad.detach().reshape(batch, channels, -1).transpose(1, 2).reshape(-1, channels)
        if ctx.backend == "cuda":
            from perception.ops._bev_pool_cuda import pool_backward_cuda

            depth_grad, context_grad = pool_backward_cuda(cell_grad, depth, context, geometry)
        else:
            depth_bins, height, width = geometry.frustum_shape[2:]
            point_cells = _point_cells_cpu(*_geometry_arrays(geometry), depth.numel())
            depth_grad, context_grad = _pool_backward_cpu(cell_grad.cpu().to(context.dtype).numpy(),
                                                          *_host_inputs(depth, context), point_cells, depth_bins,
                                                          height * width)
            depth_grad = torch.from_numpy(depth_grad).to(out_grad.device)
            context_grad = torch.from_numpy(context_grad).to(out_grad.device)
        return (depth_grad.view(depth.shape) if ctx.needs_input_grad[0] else None,
                context_grad.view(context.shape) if ctx.needs_input_grad[1] else None, None, None)


def bev_pool(depth: torch.Tensor, context: torch.Tensor, geometry: BEVPoolGeometry, backend: Optional[str] = None
             ) -> torch.Tensor:
    """Sum the lifted camera features, depth (B, N_cams, D, H, W) times context (B, N_cams, H, W, C) per frustum
    point, into the BEV grid -> (B, C, ny, nx) float (torch), z cells collapsed by summation, empty cells 0.
    Differentiable w.r.t. depth and context. backend: None (CUDA tensors -> "cuda", else "numba"), "reference",
    "numba" or "cuda"."""
    check_torch("bev_pool", "depth", depth)
    check_torch("bev_pool", "context", context)
    check_float("bev_pool", "context", context)
    batch, cameras, _, height, width = geometry.frustum_shape
    if (tuple(depth.shape) != geometry.frustum_shape or context.ndim != 5
            or tuple(context.shape[:4]) != (batch, cameras, height, width)):
        raise ValueError(
            f"bev_pool: depth must be (B, N_cams, D, H, W) = {geometry.frustum_shape} and context (B, N_cams, H, W, "
            f"C) with (B, N_cams, H, W) = {(batch, cameras, height, width)}, as the geometry was built for; got depth "
            f"{tuple(depth.shape)}, context {tuple(context.shape)}"
        )
    if depth.dtype != context.dtype or depth.device != context.device:
        raise ValueError(f"bev_pool: depth ({depth.dtype}, {depth.device}) and context ({context.dtype}, "
                         f"{context.device}) must share dtype and device")
    chosen = resolve_backend(backend, context)
    if chosen == "reference":
        return _bev_pool_reference(depth, context, geometry.to(context.device))
    return _BEVPool.apply(depth, context, geometry, chosen)
