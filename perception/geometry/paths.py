"""Frenet coordinates of points against a path: a polyline in the xy plane, extended straight at its ends."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

PATH_EXTENSION_M = 200.0
"""frenet_coordinates extends a path straight this far beyond its last vertex (and behind its first, if asked)."""


def frenet_coordinates(vertices_xy: np.ndarray, points_xy: np.ndarray, end_heading_rad: float,
                       start_heading_rad: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each point's nearest point on a path and where it lies from it.

    The path: the polyline ``vertices_xy`` (P >= 1, 2) [m], extended straight PATH_EXTENSION_M beyond its last
    vertex along ``end_heading_rad`` and, when ``start_heading_rad`` is given, behind its first vertex (a line
    arriving there along that heading). A zero-length segment (a path that stands) has no direction and is never
    the nearest. points_xy (M, 2) [m] -> along (M,) [m]: the arc length from the first vertex to the nearest path
    point (negative behind the first vertex); across (M,) [m]: the distance to it, + left of the path; tangent
    (M,) [rad]: the path's heading there (the earlier segment's where two meet).
    """
    vertices_xy = np.asarray(vertices_xy, dtype=np.float64).reshape(-1, 2)
    points_xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    if not len(vertices_xy):
        raise ValueError("frenet_coordinates: the path has no vertex")
    vertices = np.vstack([vertices_xy, vertices_xy[-1] + PATH_EXTENSION_M * _unit(end_heading_rad)])
    behind = 0.0
    if start_heading_rad is not None:
        behind = PATH_EXTENSION_M
        vertices = np.vstack([vertices_xy[0] - behind * _unit(start_heading_rad), vertices])
    starts, segments = vertices[:-1], np.diff(vertices, axis=0)  # (S, 2)
    lengths = np.hypot(segments[:, 0], segments[:, 1])
    offsets = np.concatenate([[0.0], np.cumsum(lengths)[:-1]]) - behind  # (S,) arc length at each segment's start
    # (M, S) per coordinate: the point relative to each segment's start, then to the segment's nearest point
    relative_x = points_xy[:, 0:1] - starts[None, :, 0]
    relative_y = points_xy[:, 1:2] - starts[None, :, 1]
    fraction = np.clip((relative_x * segments[:, 0] + relative_y * segments[:, 1]) / np.maximum(lengths ** 2, 1e-12),
                       0.0, 1.0)
    offset_x = relative_x - fraction * segments[:, 0]
    offset_y = relative_y - fraction * segments[:, 1]
    squared = np.where(lengths[None] > 1e-9, offset_x ** 2 + offset_y ** 2, np.inf)
    # the earliest of the segments nearest within rounding (outside a corner both of its segments are nearest)
    best = np.argmax(squared <= squared.min(axis=1, keepdims=True) * (1 + 1e-9) + 1e-18, axis=1)
    rows = np.arange(len(points_xy))
    direction = segments[best] / lengths[best, None]
    offset_x, offset_y = offset_x[rows, best], offset_y[rows, best]
    side = np.where(direction[:, 0] * offset_y - direction[:, 1] * offset_x >= 0, 1.0, -1.0)
    along = offsets[best] + fraction[rows, best] * lengths[best]
    return along, side * np.hypot(offset_x, offset_y), np.arctan2(direction[:, 1], direction[:, 0])


def _unit(heading_rad: float) -> np.ndarray:
    """(2,) the unit vector along a heading."""
    return np.array([np.cos(heading_rad), np.sin(heading_rad)])
