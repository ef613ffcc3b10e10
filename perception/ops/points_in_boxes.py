"""Which upright 3D box holds each point (reference numpy, Numba CPU, Numba CUDA).

Boxes follow perception.geometry's conventions; the reference is ``Boxes3D.contains`` (inside: |x| <= length / 2,
|y| <= width / 2, |z| <= height / 2 in the box frame, faces included), the kernels ``_box_containment.inside_box``:
float64 arithmetic and the same expression on every backend. On a GPU, Numba's CUDA compiler (NVVM) fuses a multiply
and an add into one instruction rounded once (seen in the PTX it writes for compute capability 8.0), so a point
within a rounding error of a face may be decided the other way there than on the CPU; the CUDA simulator, which the
CPU-only tests run, rounds as the CPU does.
"""
from __future__ import annotations

from typing import Any, Optional, Union

import numba
import numpy as np

from perception.geometry import Boxes3D
from perception.ops._backend import as_numpy, check_points, cpu_kernel, cpu_threads_for, like, resolve_backend
from perception.ops._box_containment import box_table, inside_box

Array = Any  # np.ndarray or torch.Tensor


def _as_boxes(boxes: Union[Boxes3D, Array]) -> Boxes3D:
    """Boxes3D, or (K, 7) [x, y, z, w, l, h, yaw] boxes as Boxes3D."""
    if isinstance(boxes, Boxes3D):
        return boxes
    array = as_numpy(boxes, np.float64)
    if array.ndim != 2 or array.shape[1] != 7:
        raise ValueError(f"boxes must be Boxes3D or (K, 7) [x, y, z, w, l, h, yaw]; got shape {array.shape}")
    return Boxes3D(array[:, :3], array[:, 3:6], array[:, 6])


_inside_box_cpu = cpu_kernel()(inside_box)


@cpu_kernel(parallel=True)
def _first_box_cpu(points, table):
    out = np.full(points.shape[0], -1, np.int64)
    for i in numba.prange(points.shape[0]):
        for k in range(table.shape[0]):
            if _inside_box_cpu(np.float64(points[i, 0]), np.float64(points[i, 1]), np.float64(points[i, 2]),
                               table[k]):
                out[i] = k
                break
    return out


@cpu_kernel(parallel=True)
def _mask_cpu(points, table):
    mask = np.zeros((table.shape[0], points.shape[0]), np.bool_)
    for i in numba.prange(points.shape[0]):
        for k in range(table.shape[0]):
            mask[k, i] = _inside_box_cpu(np.float64(points[i, 0]), np.float64(points[i, 1]),
                                         np.float64(points[i, 2]), table[k])
    return mask


def _run(points: Array, boxes: Union[Boxes3D, Array], backend: Optional[str], mask: bool) -> Array:
    """The (K, N) mask when ``mask``, else each point's first box, on the chosen backend."""
    check_points("points_in_boxes_mask" if mask else "points_in_boxes", "points", points)
    boxes = _as_boxes(boxes)
    chosen = resolve_backend(backend, points)
    if chosen == "reference":
        inside = boxes.contains(as_numpy(points))
        first = np.full(inside.shape[1], -1, np.int64)
        if len(boxes):
            first = np.where(inside.any(axis=0), inside.argmax(axis=0), -1).astype(np.int64)
        return like(inside if mask else first, points)
    table = box_table(boxes.centers, boxes.sizes, boxes.yaws)
    if chosen == "cuda":
        from perception.ops._points_in_boxes_cuda import first_box_cuda, mask_cuda

        return (mask_cuda if mask else first_box_cuda)(points, table)
    host = as_numpy(points)
    with cpu_threads_for(len(host)):
        return like((_mask_cpu if mask else _first_box_cpu)(host, table), points)


def points_in_boxes(points: Array, boxes: Union[Boxes3D, Array], backend: Optional[str] = None) -> Array:
    """(N,) int64 index of the first box holding each point, -1 for none.

    points (N, C>=3) [x, y, z, ...] m, float32 or float64; boxes Boxes3D or (K, 7) [x, y, z, w, l, h, yaw]
    (m, rad) in the points' frame. Returns the points' type and device. The reference is ``Boxes3D.contains``."""
    return _run(points, boxes, backend, mask=False)


def points_in_boxes_mask(points: Array, boxes: Union[Boxes3D, Array], backend: Optional[str] = None) -> Array:
    """(K, N) bool: mask[k, i] is True when box k holds point i (arguments as ``points_in_boxes``)."""
    return _run(points, boxes, backend, mask=True)
