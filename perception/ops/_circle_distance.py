"""The suppression test of perception.ops.circle_nms, written once for the Numba CPU and CUDA kernels (on a GPU the
compiler may fuse ``dx * dx + dy * dy`` into one rounding: two centres within a rounding error of the radius may be
decided the other way there; see perception.ops.points_in_boxes)."""
from __future__ import annotations

import numpy as np


def within_radius(centers, i, j, radius_sq):
    """True when the BEV centres of rows i and j of ``centers`` (N, 2+) [x, y, ...] m lie within the radius
    (squared distance <= ``radius_sq`` [m^2], float64)."""
    dx = np.float64(centers[i, 0]) - np.float64(centers[j, 0])
    dy = np.float64(centers[i, 1]) - np.float64(centers[j, 1])
    return dx * dx + dy * dy <= radius_sq
