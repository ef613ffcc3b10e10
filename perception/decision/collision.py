"""Collision geometry of a plan: the ego footprint along a trajectory (PlannerConfig.ego_length_m x ego_width_m,
centred rear_axle_to_center_m ahead of the rear axle, heading along the plan) and its overlap (positive area) with
box footprints."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from perception.decision.types import PlannerConfig
from perception.geometry import Boxes3D


def ego_footprints(trajectory: np.ndarray, config: PlannerConfig = PlannerConfig()) -> np.ndarray:
    """(T, 2) rear-axle waypoints [x, y] from the origin -> (T, 4, 2) ego footprint corners (Boxes3D.bev_corners
    order). The heading at a waypoint is the direction from the previous one (from the origin for the first;
    the previous heading, initially 0, when the ego did not move)."""
    trajectory = np.asarray(trajectory, dtype=np.float64)
    previous = np.vstack([[0.0, 0.0], trajectory[:-1]])
    headings = np.zeros(len(trajectory))
    heading = 0.0
    for step, (start, end) in enumerate(zip(previous, trajectory)):
        motion = end - start
        if np.hypot(*motion) > 1e-3:
            heading = float(np.arctan2(motion[1], motion[0]))
        headings[step] = heading
    centers = trajectory + config.rear_axle_to_center_m * np.stack([np.cos(headings), np.sin(headings)], axis=1)
    footprints = Boxes3D(
        centers=np.concatenate([centers, np.zeros((len(centers), 1))], axis=1),
        sizes=np.tile([config.ego_width_m, config.ego_length_m, 1.0], (len(centers), 1)),
        yaws=headings,
    )
    return footprints.bev_corners()


def footprints_overlap(polygon: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(4, 2) convex footprint and (M, 4, 2) convex footprints (corners in order) -> (M,) bool: the interiors
    overlap (separating-axis test over every edge normal; touching edges do not count)."""
    others = np.asarray(others, dtype=np.float64).reshape(-1, 4, 2)
    polygon = np.broadcast_to(np.asarray(polygon, dtype=np.float64), others.shape)
    separated = np.zeros(len(others), dtype=bool)
    for shape in (polygon, others):
        edges = np.roll(shape, -1, axis=1) - shape  # (M, 4, 2)
        normals = np.stack([-edges[..., 1], edges[..., 0]], axis=-1)  # (M, 4, 2)
        projected_a = np.einsum("mkd,mad->mak", normals, polygon)  # (M, 4 corners, 4 axes)
        projected_b = np.einsum("mkd,mad->mak", normals, others)
        gap = np.maximum(projected_a.min(1) - projected_b.max(1), projected_b.min(1) - projected_a.max(1))
        separated |= np.any(gap >= 0, axis=1)
    return ~separated


def plan_collisions(trajectory: np.ndarray, boxes_per_step: Sequence[Boxes3D],
                    config: PlannerConfig = PlannerConfig()) -> np.ndarray:
    """(T,) bool: the ego footprint at each of the T planned waypoints overlaps one of the boxes of the same step
    (``boxes_per_step``: T Boxes3D in the plan's frame)."""
    footprints = ego_footprints(trajectory, config)
    return np.array([
        bool(len(boxes)) and bool(np.any(footprints_overlap(footprint, boxes.bev_corners())))
        for footprint, boxes in zip(footprints, boxes_per_step)
    ])
