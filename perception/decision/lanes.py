"""The lanes the decisions of one keyframe assume (ego frame; perception.decision.types).

With a lane map (perception.datasets.lane_map; the synthetic world writes one): the ego's lane is the mapped lane
it drives in (``LaneCentres.lane_of`` at the rear axle, heading along x; on a lane boundary either one), lane k the
band of lateral offsets [(k - 1/2) w, (k + 1/2) w) from that lane's centre line (+ left of its driving direction;
the line extended straight beyond its ends; only its stretch within ``LANE_REACH_M`` of the ego is read), w the
map's lane width; a neighbouring lane exists where the map has a lane of the ego's direction one lane width to that
side of the ego lane's centre line, at the point nearest the ego. Without a map, or with the ego more than a lane
width from every mapped lane of its direction: straight lanes along the ego's x axis, the ego centred in lane 0,
both neighbours assumed to exist.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from perception.datasets.lane_map import LaneCentres, end_headings
from perception.geometry import frenet_coordinates, path_points

LANE_REACH_M = 120.0
"""How far from the ego the lanes are read [m]: beyond what the planner assesses (agents detected within ~55 m
and predicted 3 s on at up to ~20 m/s); reading the whole map line costs the decision stage milliseconds."""


@dataclass(frozen=True)
class EgoLanes:
    """One keyframe's lanes (module docstring): ``width_m`` [m]; ``centre_line`` the ego lane as a one-lane
    LaneCentres (ego frame), None for the straight lanes; whether the left / right neighbour exists."""

    width_m: float
    centre_line: Optional[LaneCentres] = None
    left_exists: bool = True
    right_exists: bool = True

    def across_m(self, xy: np.ndarray) -> np.ndarray:
        """Points xy (..., 2) [m] -> (...) their lateral offset [m] from the ego lane's centre line (+ left): y
        on the straight lanes."""
        xy = np.asarray(xy, dtype=np.float64)
        if self.centre_line is None:
            return xy[..., 1]
        return self.centre_line.offsets(xy.reshape(-1, 2))[0][0].reshape(xy.shape[:-1])

    def centre_path(self, distance_m: np.ndarray) -> Tuple[np.ndarray, np.ndarray, float, float]:
        """With a map: the ego lane's centre line ahead of the point nearest the ego, distance_m (T,) [m] arc lengths
        from there -> (T, 2) points [m], (T,) headings [rad], and the ego's lateral offset from the line [m] (+ left)
        and the line's heading [rad] at that point. ValueError on the straight lanes (they are the ego's own path)."""
        if self.centre_line is None:
            raise ValueError("centre_path: the straight lanes have no centre line")
        line = self.centre_line.lines[0]
        headings = end_headings(line)
        along, across, _ = frenet_coordinates(line, np.zeros((1, 2)), *headings)
        # the ego's nearest point first: its heading as the plan's points take theirs (at a vertex the later segment's)
        xy, heading = path_points(line, along[0] + np.r_[0.0, np.asarray(distance_m, dtype=np.float64)], *headings)
        return xy[1:], heading[1:], float(across[0]), float(heading[0])

    def has_lane(self, lane: int) -> bool:
        """Whether ``lane`` (0 the ego's, +1 its left neighbour, -1 its right one) exists: every lane does on the
        straight lanes; with a map the ego's and the neighbours found, no lane further out."""
        if self.centre_line is None:
            return True
        return lane == 0 or (lane == +1 and self.left_exists) or (lane == -1 and self.right_exists)


def ego_lanes(lanes: Optional[LaneCentres], straight_width_m: float) -> EgoLanes:
    """The keyframe's EgoLanes from its map's ``lanes`` in the ego frame (None without a map); the straight lanes
    are ``straight_width_m`` wide."""
    if lanes is None:
        return EgoLanes(straight_width_m)
    lanes = LaneCentres(tuple(_stretch_near_origin(line, LANE_REACH_M) for line in lanes.lines), lanes.width_m)
    origin = np.zeros((1, 2))
    across, heading = lanes.offsets(origin)  # (L, 1) each
    own = int(lanes.lane_from_offsets(across, heading, np.zeros(1))[0])
    if own < 0:
        return EgoLanes(straight_width_m)
    # the offset of the ego lane's centre point nearest the ego from each lane: the ego's offset from that lane less
    # its offset from its own (exact for parallel lanes, straight or concentric)
    from_centre = across[:, 0] - across[own, 0]
    same_direction = np.cos(heading[:, 0] - heading[own, 0]) > 0
    same_direction[own] = False
    width = lanes.width_m

    def neighbour(side: int) -> bool:
        # a lane one width to the ego lane's left has the ego lane's centre one width to its right
        return bool(np.any(same_direction & (np.abs(from_centre + side * width) < width / 2)))

    return EgoLanes(width, LaneCentres((lanes.lines[own],), width), neighbour(+1), neighbour(-1))


def _stretch_near_origin(line: np.ndarray, reach_m: float) -> np.ndarray:
    """The vertices (P, 2) [m] of ``line`` around its vertex nearest the origin that lie within ``reach_m`` of the
    origin, contiguous (a road that comes back later stays out), at least that vertex and its neighbour."""
    distance = np.hypot(line[:, 0], line[:, 1])
    nearest = int(np.argmin(distance))
    outside = distance > reach_m
    before = np.flatnonzero(outside[:nearest])
    after = np.flatnonzero(outside[nearest + 1:])
    start = before[-1] + 1 if len(before) else 0
    stop = nearest + 1 + after[0] if len(after) else len(line)
    start, stop = min(start, max(nearest - 1, 0)), max(stop, min(nearest + 2, len(line)))
    return line[start:stop]
