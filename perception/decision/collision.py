"""Collision geometry of a plan: the ego footprint along a trajectory (PlannerConfig.ego_length_m x ego_width_m,
centred rear_axle_to_center_m ahead of the rear axle, heading along the plan) and its overlap (positive area) with
box footprints."""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np

from perception.decision.types import PlannerConfig
from perception.geometry import Boxes3D, footprints_overlap, frenet_coordinates


def plan_headings(trajectory: np.ndarray) -> np.ndarray:
    """(T, 2) rear-axle waypoints [x, y] from the origin -> (T,) heading [rad] at each: the direction from the
    previous waypoint (from the origin for the first). The previous heading (initially 0) is kept when the ego
    did not move, or moved back (against it): plans do not reverse (perception.decision.planner treats reversing as
    standing), so a step back is a standing plan's noise (a learned plan's), not a U-turn."""
    motion = np.diff(np.asarray(trajectory, dtype=np.float64).reshape(-1, 2), axis=0, prepend=np.zeros((1, 2)))
    lengths, angles = np.hypot(motion[:, 0], motion[:, 1]), np.arctan2(motion[:, 1], motion[:, 0])
    headings = np.zeros(len(motion))
    heading = 0.0
    for step, (motion_x, motion_y) in enumerate(motion.tolist()):
        if lengths[step] > 1e-3 and motion_x * math.cos(heading) + motion_y * math.sin(heading) >= 0:
            heading = float(angles[step])
        headings[step] = heading
    return headings


def plan_tangent_headings(trajectory: np.ndarray) -> np.ndarray:
    """(T, 2) rear-axle waypoints [x, y] from the origin -> (T,) heading [rad] at each along the path's tangent: the
    central difference over its neighbours (the origin before the first; the last waypoint's from the one before),
    where that points ahead of plan_headings' heading, else plan_headings' (a plan that stands or steps back). On a
    curve plan_headings' chord from the previous waypoint lags the tangent by half a step's turn; the tangent is
    what a pose's yaw gives the logged drive."""
    trajectory = np.asarray(trajectory, dtype=np.float64).reshape(-1, 2)
    chords = plan_headings(trajectory)
    tangents = np.gradient(np.vstack([np.zeros((1, 2)), trajectory]), axis=0)[1:]
    ahead = tangents[:, 0] * np.cos(chords) + tangents[:, 1] * np.sin(chords) > 1e-3
    return np.where(ahead, np.arctan2(tangents[:, 1], tangents[:, 0]), chords)


def ego_footprints(trajectory: np.ndarray, config: PlannerConfig = PlannerConfig()) -> np.ndarray:
    """(T, 2) rear-axle waypoints [x, y] from the origin -> (T, 4, 2) ego footprint corners (Boxes3D.bev_corners
    order), heading along the plan (plan_headings)."""
    trajectory = np.asarray(trajectory, dtype=np.float64)
    headings = plan_headings(trajectory)
    centers = trajectory + config.rear_axle_to_center_m * np.stack([np.cos(headings), np.sin(headings)], axis=1)
    footprints = Boxes3D(
        centers=np.concatenate([centers, np.zeros((len(centers), 1))], axis=1),
        sizes=np.tile([config.ego_width_m, config.ego_length_m, 1.0], (len(centers), 1)),
        yaws=headings,
    )
    return footprints.bev_corners()


def plan_collisions(trajectory: np.ndarray, boxes_per_step: Sequence[Boxes3D],
                    config: PlannerConfig = PlannerConfig()) -> np.ndarray:
    """(T,) bool: the ego footprint at each of the T planned waypoints overlaps one of the boxes of the same step
    (``boxes_per_step``: T Boxes3D in the plan's frame)."""
    footprints = ego_footprints(trajectory, config)
    return np.array([
        bool(len(boxes)) and bool(np.any(footprints_overlap(footprint, boxes.bev_corners())))
        for footprint, boxes in zip(footprints, boxes_per_step)
    ])


def path_coordinates(path_xy: np.ndarray, points_xy: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frenet coordinates along a plan (geometry.frenet_coordinates): path_xy (T, 2) rear-axle waypoints [x, y] [m]
    from the origin (the path starts at the origin heading along +x, extended straight behind it and beyond its
    last waypoint along the last heading, plan_headings), points_xy (M, 2) [m] -> along (M,) [m] (arc length from
    the origin of each point's nearest path point; negative behind the origin), across (M,) [m] (the distance to
    it, + left of the path) and tangent (M,) [rad] (the path's heading there)."""
    path_xy = np.asarray(path_xy, dtype=np.float64).reshape(-1, 2)
    end_heading = plan_headings(path_xy)[-1] if len(path_xy) else 0.0
    return frenet_coordinates(np.vstack([[0.0, 0.0], path_xy]), points_xy, end_heading, start_heading_rad=0.0)
