"""Paths: polylines in the xy plane, extended straight at their ends. ``frenet_coordinates``: points -> where they
lie from a path; ``path_points``: arc lengths -> the path's points there.

frenet_coordinates' nearest path point comes from a Numba CPU kernel (the decisions ask it some fifteen times a
frame, of lane lines of a hundred segments and more: numpy's per-call overhead made it a third of the decision
stage); the plain numpy ``_frenet_reference`` beside it is the reference of the parity tests
(``backend="reference"``).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numba
import numpy as np

PATH_EXTENSION_M = 200.0
"""frenet_coordinates extends a path straight this far beyond its last vertex (and behind its first, if asked)."""


def frenet_coordinates(vertices_xy: np.ndarray, points_xy: np.ndarray, end_heading_rad: float,
                       start_heading_rad: Optional[float] = None, backend: str = "numba"
                       ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each point's nearest point on a path and where it lies from it.

    The path: the polyline ``vertices_xy`` (P >= 1, 2) [m], extended straight PATH_EXTENSION_M beyond its last
    vertex along ``end_heading_rad`` and, when ``start_heading_rad`` is given, behind its first vertex (a line
    arriving there along that heading). A zero-length segment (a path that stands) has no direction and is never
    the nearest. points_xy (M, 2) [m] -> along (M,) [m]: the arc length from the first vertex to the nearest path
    point (negative behind the first vertex); across (M,) [m]: the distance to it, + left of the path; tangent
    (M,) [rad]: the path's heading there (the earlier segment's where two meet). ``backend``: "numba" or
    "reference" (module docstring).
    """
    vertices_xy = np.asarray(vertices_xy, dtype=np.float64).reshape(-1, 2)
    points_xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    if not len(vertices_xy):
        raise ValueError("frenet_coordinates: the path has no vertex")
    if backend == "numba":
        extend_start = start_heading_rad is not None
        return _frenet_numba(np.ascontiguousarray(vertices_xy), np.ascontiguousarray(points_xy),
                             float(end_heading_rad), float(start_heading_rad) if extend_start else 0.0, extend_start)
    if backend == "reference":
        return _frenet_reference(vertices_xy, points_xy, end_heading_rad, start_heading_rad)
    raise ValueError(f"frenet_coordinates: backend must be 'numba' or 'reference', got {backend!r}")


def path_points(vertices_xy: np.ndarray, along_m: np.ndarray, end_heading_rad: float,
                start_heading_rad: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The points of a path (frenet_coordinates': the polyline ``vertices_xy`` (P >= 1, 2) [m] extended straight
    along its end headings) at arc lengths ``along_m`` (K,) [m] from its first vertex (frenet_coordinates' along)
    -> xy (K, 2) [m] and the path's heading there (K,) [rad] (at a vertex the later segment's). Beyond the last
    segment, and before the first, the path goes on straight along it."""
    vertices_xy = np.asarray(vertices_xy, dtype=np.float64).reshape(-1, 2)
    along_m = np.asarray(along_m, dtype=np.float64).reshape(-1)
    if not len(vertices_xy):
        raise ValueError("path_points: the path has no vertex")
    starts, segments, lengths, offsets = _extended_segments(vertices_xy, end_heading_rad, start_heading_rad)
    moving = lengths > 1e-9  # a zero-length segment has no direction (frenet_coordinates)
    if not moving.any():
        raise ValueError("path_points: the path has no segment of nonzero length (a non-finite end heading?)")
    starts, segments, lengths, offsets = starts[moving], segments[moving], lengths[moving], offsets[moving]
    index = np.clip(np.searchsorted(offsets, along_m, side="right") - 1, 0, len(offsets) - 1)
    direction = segments[index] / lengths[index, None]
    xy = starts[index] + (along_m - offsets[index])[:, None] * direction
    return xy, np.arctan2(direction[:, 1], direction[:, 0])


def _extended_segments(vertices_xy: np.ndarray, end_heading_rad: float, start_heading_rad: Optional[float]
                       ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The path's segments (frenet_coordinates): starts, segments (S, 2) [m], lengths (S,) [m] and the arc length
    at each start (S,) [m] (negative on the extension behind the first vertex)."""
    vertices = np.vstack([vertices_xy, vertices_xy[-1] + PATH_EXTENSION_M * _unit(end_heading_rad)])
    behind = 0.0
    if start_heading_rad is not None:
        behind = PATH_EXTENSION_M
        vertices = np.vstack([vertices_xy[0] - behind * _unit(start_heading_rad), vertices])
    starts, segments = vertices[:-1], np.diff(vertices, axis=0)  # (S, 2)
    lengths = np.hypot(segments[:, 0], segments[:, 1])
    return starts, segments, lengths, np.concatenate([[0.0], np.cumsum(lengths)[:-1]]) - behind


def _frenet_reference(vertices_xy: np.ndarray, points_xy: np.ndarray, end_heading_rad: float,
                      start_heading_rad: Optional[float]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """frenet_coordinates in numpy, every point against every segment at once."""
    starts, segments, lengths, offsets = _extended_segments(vertices_xy, end_heading_rad, start_heading_rad)
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


@numba.njit(cache=True, error_model="numpy")  # numpy's division: 0 / 0 is NaN, as in the reference
def _frenet_numba(vertices_xy, points_xy, end_heading_rad, start_heading_rad, extend_start):
    """_frenet_reference point by point, the same arithmetic in the same order (hypot and atan2 from math: within
    the last bit of numpy's), NaN and infinities alike (the start heading read only when ``extend_start``)."""
    first = 1 if extend_start else 0
    vertices = np.empty((len(vertices_xy) + first + 1, 2))
    vertices[first:first + len(vertices_xy)] = vertices_xy
    vertices[-1, 0] = vertices_xy[-1, 0] + PATH_EXTENSION_M * np.cos(end_heading_rad)
    vertices[-1, 1] = vertices_xy[-1, 1] + PATH_EXTENSION_M * np.sin(end_heading_rad)
    behind = 0.0
    if extend_start:
        behind = PATH_EXTENSION_M
        vertices[0, 0] = vertices_xy[0, 0] - behind * np.cos(start_heading_rad)
        vertices[0, 1] = vertices_xy[0, 1] - behind * np.sin(start_heading_rad)
    count = len(vertices) - 1
    segments = vertices[1:] - vertices[:-1]
    lengths, offsets = np.empty(count), np.empty(count)
    travelled = 0.0
    for segment in range(count):
        lengths[segment] = math.hypot(segments[segment, 0], segments[segment, 1])
        offsets[segment] = travelled - behind
        travelled += lengths[segment]
    along, across, tangent = np.empty(len(points_xy)), np.empty(len(points_xy)), np.empty(len(points_xy))
    squared, fraction = np.empty(count), np.empty(count)
    for point in range(len(points_xy)):
        x, y = points_xy[point, 0], points_xy[point, 1]
        smallest = np.inf
        for segment in range(count):
            relative_x, relative_y = x - vertices[segment, 0], y - vertices[segment, 1]
            share = ((relative_x * segments[segment, 0] + relative_y * segments[segment, 1])
                     / max(lengths[segment] ** 2, 1e-12))
            share = 0.0 if share < 0.0 else 1.0 if share > 1.0 else share  # np.clip's, NaN kept
            offset_x = relative_x - share * segments[segment, 0]
            offset_y = relative_y - share * segments[segment, 1]
            fraction[segment] = share
            squared[segment] = offset_x ** 2 + offset_y ** 2 if lengths[segment] > 1e-9 else np.inf
            if not math.isnan(smallest) and (math.isnan(squared[segment]) or squared[segment] < smallest):
                smallest = squared[segment]  # np.min's: a NaN wins
        best = 0  # np.argmax's when no segment is within the bound (a NaN bound)
        for segment in range(count):
            if squared[segment] <= smallest * (1 + 1e-9) + 1e-18:
                best = segment
                break
        direction_x, direction_y = segments[best, 0] / lengths[best], segments[best, 1] / lengths[best]
        offset_x = x - vertices[best, 0] - fraction[best] * segments[best, 0]
        offset_y = y - vertices[best, 1] - fraction[best] * segments[best, 1]
        side = 1.0 if direction_x * offset_y - direction_y * offset_x >= 0 else -1.0
        along[point] = offsets[best] + fraction[best] * lengths[best]
        across[point] = side * math.hypot(offset_x, offset_y)
        tangent[point] = math.atan2(direction_y, direction_x)
    return along, across, tangent


def _unit(heading_rad: float) -> np.ndarray:
    """(2,) the unit vector along a heading."""
    return np.array([np.cos(heading_rad), np.sin(heading_rad)])
