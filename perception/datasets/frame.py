"""``Frame``: everything the pipeline knows about one keyframe, in the ego frame of its LiDAR timestamp.

Typed, frozen containers passed between stages (loader -> transforms -> model -> eval / decision / replay).
Conventions (frames, box layout, units): see perception.geometry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Optional

import numpy as np

from perception.geometry import Boxes3D, CameraIntrinsics, EgoPose, RigidTransform

LIDAR_COLUMNS = ("x", "y", "z", "intensity", "time_lag")
"""Columns of ``LidarSweeps.points``: x, y, z [m] in the keyframe's ego frame, intensity (0-255 as nuScenes
stores it), time_lag [s] = keyframe timestamp - sweep timestamp (>= 0)."""

RADAR_COLUMNS = ("x", "y", "z", "rcs", "vx_comp", "vy_comp", "time_lag")
"""Columns of ``RadarSweeps.points``: x, y, z [m] in the keyframe's ego frame (advanced by v * time_lag), rcs
[dBsm], vx_comp, vy_comp [m/s] ego-motion compensated velocity rotated into the keyframe's ego frame, time_lag
[s]."""


@dataclass(frozen=True)
class LidarSweeps:
    """LiDAR aggregated over sweeps: points (N, 5) float32 with columns LIDAR_COLUMNS."""

    points: np.ndarray
    num_sweeps: int


@dataclass(frozen=True)
class RadarSweeps:
    """Radar of the 5 radars aggregated over sweeps: points (M, 7) float32 with columns RADAR_COLUMNS."""

    points: np.ndarray
    num_sweeps: int


@dataclass(frozen=True)
class CameraView:
    """One camera image at its own timestamp: image (H, W, 3) uint8 RGB, intrinsics for this (possibly resized)
    image, and camera -> ego(keyframe) so that pixels lift directly into the network's frame."""

    channel: str
    image: np.ndarray
    intrinsics: CameraIntrinsics
    camera_to_ego: RigidTransform
    timestamp_us: int


@dataclass(frozen=True)
class Frame:
    """One keyframe.

    ``ego_pose``: the ego pose at the keyframe's LiDAR timestamp (ego -> global). ``gt_boxes``: ground truth
    in the ego frame (None where the split has no annotations); ``gt_num_lidar_points`` / ``gt_num_radar_points``
    (K,) the annotations' point counts, used by the devkit's 'boxes without points' filter. ``missing``: the
    sensor groups (perception.sensors.SENSOR_GROUPS) or channels that are absent or were dropped, with nothing
    invented in their place; ``cameras`` maps channel -> CameraView for the cameras present. ``augmentation``:
    None, or the (4, 4) similarity that training augmentation (perception.datasets.transforms) applied to the ego
    frame, ``p_augmented = augmentation @ p_ego``; ``ego_pose`` always describes the un-augmented ego frame.
    """

    sample_token: str
    scene_token: str
    timestamp_us: int
    ego_pose: EgoPose
    lidar: Optional[LidarSweeps]
    radar: Optional[RadarSweeps]
    cameras: Dict[str, CameraView]
    gt_boxes: Optional[Boxes3D] = None
    gt_num_lidar_points: Optional[np.ndarray] = None
    gt_num_radar_points: Optional[np.ndarray] = None
    missing: FrozenSet[str] = field(default_factory=frozenset)
    augmentation: Optional[np.ndarray] = None
