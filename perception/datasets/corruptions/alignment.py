"""Corruptions across sensors: spatial misalignment (extrinsics off) and temporal misalignment (a sensor late).

A Frame holds one instant and no ego velocity, so a late or frozen sensor is approximated within the frame: its
data is taken to come from ``delay`` seconds ago while the ego drove straight ahead at ASSUMED_EGO_SPEED_M_S, and
the pipeline uses it with the current pose. The static scene of such data lands shifted forward by
speed * delay (ego_motion_shift); moving objects are not set back, yaw rate is ignored, and a stopped ego is
treated as moving. Parameters per severity: perception.datasets.corruptions.CORRUPTIONS.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from perception.datasets.frame import Frame
from perception.geometry import RigidTransform, rotation_from_vector

ASSUMED_EGO_SPEED_M_S = 8.0
"""Ego speed assumed by the late and frozen sensor approximations [m/s] (about 29 km/h, urban driving; an
assumption, not measured from the data)."""


def ego_motion_shift(delay_s: float) -> RigidTransform:
    """ego(now) <- where data ``delay_s`` old appears when used with the current pose: +x by speed * delay.

    The ego was speed * delay behind along +x; a static point at x now sat speed * delay further ahead in that
    older ego frame, which the pipeline takes for the current one."""
    return RigidTransform.from_rotation_translation(np.eye(3), [ASSUMED_EGO_SPEED_M_S * delay_s, 0.0, 0.0])


def _unit(rng: np.random.Generator) -> np.ndarray:
    vector = rng.normal(size=3)
    return vector / np.linalg.norm(vector)


def spatial_misalignment(frame: Frame, level: tuple, rng: np.random.Generator, seed: int) -> Frame:
    """Each camera's camera_to_ego, ``level`` = (angle [deg], distance [m]): rotated about its own centre by
    exactly ``angle`` about a random axis (in the ego frame), and its centre moved by exactly ``distance`` in a
    random direction. The images stay; the network lifts them with the wrong extrinsics."""
    angle_deg, distance_m = level
    views = {}
    for channel, view in frame.cameras.items():
        rotation = rotation_from_vector(_unit(rng) * np.deg2rad(angle_deg)) @ view.camera_to_ego.rotation
        translation = view.camera_to_ego.translation + distance_m * _unit(rng)
        views[channel] = replace(view, camera_to_ego=RigidTransform.from_rotation_translation(rotation, translation))
    return replace(frame, cameras=views)


def temporal_misalignment(frame: Frame, delay_s: float, rng: np.random.Generator, seed: int) -> Frame:
    """The LiDAR ``delay_s`` late: its points (every sweep) moved by ego_motion_shift(delay_s), their time_lag
    kept (the pipeline does not know they are late)."""
    if frame.lidar is None:
        return frame
    points = frame.lidar.points.copy()
    points[:, :3] = ego_motion_shift(delay_s).apply(points[:, :3].astype(np.float64))
    return replace(frame, lidar=replace(frame.lidar, points=points.astype(np.float32)))
