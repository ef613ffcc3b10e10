"""Which upright 3D box holds each point (reference numpy, Numba CPU, Numba CUDA).

Boxes follow perception.geometry's conventions: centre (x, y, z), size (width, length, height) with the length
along the box's own x axis, yaw about +z. A point is inside when, in the box frame, |x| <= length / 2,
|y| <= width / 2 and |z| <= height / 2 (faces included, as nuscenes-devkit's ``points_in_box``). Arithmetic is
float64 and the same expression on every backend.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Union

import numba
import numpy as np
import torch

from perception.ops._backend import as_numpy, cpu_threads_for, like, resolve_backend

if TYPE_CHECKING:  # not imported at run time: the ops need only numpy, numba and torch
    from perception.geometry import Boxes3D

Array = Any  # np.ndarray or torch.Tensor


def _box_table(boxes: Union["Boxes3D", Array]) -> np.ndarray:
    """(K, 8) float64 [cx, cy, cz, cos(yaw), sin(yaw), length/2, width/2, height/2] of Boxes3D or (K, 7)
    [x, y, z, w, l, h, yaw] boxes."""
    if not isinstance(boxes, (np.ndarray, torch.Tensor, list, tuple)):  # a Boxes3D
        centers, sizes, yaws = boxes.centers, boxes.sizes, boxes.yaws
    else:
        array = as_numpy(boxes, np.float64)
        if array.ndim != 2 or array.shape[1] != 7:
            raise ValueError(f"boxes must be Boxes3D or (K, 7) [x, y, z, w, l, h, yaw]; got shape {array.shape}")
        centers, sizes, yaws = array[:, :3], array[:, 3:6], array[:, 6]
    return np.ascontiguousarray(np.column_stack([
        centers, np.cos(yaws), np.sin(yaws), sizes[:, 1] / 2, sizes[:, 0] / 2, sizes[:, 2] / 2
    ]), dtype=np.float64).reshape(-1, 8)


def inside_box(px, py, pz, box):
    """True when point (px, py, pz) lies in the box row ``box`` of the _box_table (faces included)."""
    dx = px - box[0]
    dy = py - box[1]
    along_length = dx * box[3] + dy * box[4]
    along_width = dy * box[3] - dx * box[4]
    return abs(along_length) <= box[5] and abs(along_width) <= box[6] and abs(pz - box[2]) <= box[7]


_inside_box_cpu = numba.njit(cache=True)(inside_box)


def _mask_reference(points: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(K, N) bool, vectorised numpy (non-finite points are outside every box)."""
    xyz = points[:, :3].astype(np.float64)
    dx = xyz[None, :, 0] - table[:, None, 0]
    dy = xyz[None, :, 1] - table[:, None, 1]
    with np.errstate(invalid="ignore"):
        along_length = dx * table[:, None, 3] + dy * table[:, None, 4]
        along_width = dy * table[:, None, 3] - dx * table[:, None, 4]
        return ((np.abs(along_length) <= table[:, None, 5]) & (np.abs(along_width) <= table[:, None, 6])
                & (np.abs(xyz[None, :, 2] - table[:, None, 2]) <= table[:, None, 7]))


@numba.njit(parallel=True, cache=True)
def _first_box_cpu(points, table):
    out = np.full(points.shape[0], -1, np.int64)
    for i in numba.prange(points.shape[0]):
        for k in range(table.shape[0]):
            if _inside_box_cpu(np.float64(points[i, 0]), np.float64(points[i, 1]), np.float64(points[i, 2]),
                               table[k]):
                out[i] = k
                break
    return out


@numba.njit(parallel=True, cache=True)
def _mask_cpu(points, table):
    mask = np.zeros((table.shape[0], points.shape[0]), np.bool_)
    for i in numba.prange(points.shape[0]):
        for k in range(table.shape[0]):
            mask[k, i] = _inside_box_cpu(np.float64(points[i, 0]), np.float64(points[i, 1]),
                                         np.float64(points[i, 2]), table[k])
    return mask


def _check_points(points: Array) -> None:
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points must be (N, C>=3) [x, y, z, ...]; got shape {tuple(points.shape)}")


def points_in_boxes(points: Array, boxes: Union["Boxes3D", Array], backend: Optional[str] = None) -> Array:
    """(N,) int64 index of the first box holding each point, -1 for none.

    points (N, C>=3) [x, y, z, ...] m; boxes Boxes3D or (K, 7) [x, y, z, w, l, h, yaw] (m, rad) in the points'
    frame. Returns the points' type and device."""
    _check_points(points)
    table = _box_table(boxes)
    chosen = resolve_backend(backend, points)
    if chosen == "cuda":
        from perception.ops._points_in_boxes_cuda import first_box_cuda

        return first_box_cuda(points, table)
    host = as_numpy(points)
    if chosen == "reference":
        mask = _mask_reference(host, table)
        first = np.where(mask.any(axis=0), mask.argmax(axis=0), -1).astype(np.int64)
    else:
        with cpu_threads_for(len(host)):
            first = _first_box_cpu(host, table)
    return like(first, points)


def points_in_boxes_mask(points: Array, boxes: Union["Boxes3D", Array], backend: Optional[str] = None) -> Array:
    """(K, N) bool: mask[k, i] is True when box k holds point i (arguments as ``points_in_boxes``)."""
    _check_points(points)
    table = _box_table(boxes)
    chosen = resolve_backend(backend, points)
    if chosen == "cuda":
        from perception.ops._points_in_boxes_cuda import mask_cuda

        return mask_cuda(points, table)
    host = as_numpy(points)
    if chosen == "reference":
        return like(_mask_reference(host, table), points)
    with cpu_threads_for(len(host)):
        return like(_mask_cpu(host, table), points)
