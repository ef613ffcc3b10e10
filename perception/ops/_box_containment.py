"""The point-in-box test of perception.ops.points_in_boxes, written once for the Numba CPU and CUDA kernels.

A box row of ``box_table`` is [cx, cy, cz, cos(yaw), sin(yaw), length/2, width/2, height/2] (float64); a point is
inside when, in the box frame, |x| <= length / 2, |y| <= width / 2 and |z| <= height / 2 (faces included).
"""
from __future__ import annotations

import numpy as np


def box_table(centers: np.ndarray, sizes: np.ndarray, yaws: np.ndarray) -> np.ndarray:
    """(K, 8) float64 box rows (see the module) of centers (K, 3) [x, y, z] m, sizes (K, 3) [w, l, h] m and
    yaws (K,) rad."""
    return np.ascontiguousarray(np.column_stack([
        centers, np.cos(yaws), np.sin(yaws), sizes[:, 1] / 2, sizes[:, 0] / 2, sizes[:, 2] / 2
    ]), dtype=np.float64).reshape(-1, 8)


def inside_box(px, py, pz, box):
    """True when point (px, py, pz) lies in the box row ``box`` of a box_table (faces included)."""
    dx = px - box[0]
    dy = py - box[1]
    along_length = dx * box[3] + dy * box[4]
    along_width = dy * box[3] - dx * box[4]
    return abs(along_length) <= box[5] and abs(along_width) <= box[6] and abs(pz - box[2]) <= box[7]
