"""The world's objects: an Actor (class, box size, mesh, motion) and its Track, and the nuScenes attribute its
motion gives it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from perception.datasets.synthetic.class_specs import CLASS_SPECS
from perception.datasets.synthetic.meshes import Mesh

STOPPED_SPEED_M_S = 0.3
"""Below this speed an object counts as not moving (attributes vehicle.stopped / pedestrian.standing)."""


@dataclass
class Track:
    """An object's motion sampled on a uniform time grid: ``times_s`` (K,) [s], ``xy`` (K, 2) [m] global,
    ``yaw`` (K,) [rad] (unwrapped). Poses between samples are interpolated linearly."""

    times_s: np.ndarray
    xy: np.ndarray
    yaw: np.ndarray

    @classmethod
    def from_positions(cls, times_s: np.ndarray, xy: np.ndarray, rest_yaw: float) -> "Track":
        """Yaw follows the direction of motion; where the object stands still it keeps its last heading
        (``rest_yaw`` until it first moves)."""
        velocity = np.gradient(xy, times_s, axis=0)
        speed = np.linalg.norm(velocity, axis=1)
        moving = speed > 0.05
        yaw = np.full(len(times_s), np.nan)
        yaw[moving] = np.arctan2(velocity[moving, 1], velocity[moving, 0])
        if moving.any():
            first = int(np.argmax(moving))
            yaw[:first] = yaw[first]
            for i in range(first + 1, len(yaw)):  # forward-fill stops
                if np.isnan(yaw[i]):
                    yaw[i] = yaw[i - 1]
        else:
            yaw[:] = rest_yaw
        return cls(times_s, xy, np.unwrap(yaw))

    def pose(self, t_s: float) -> Tuple[np.ndarray, float]:
        """Global xy (2,) [m] and yaw [rad] at time t_s."""
        x = np.interp(t_s, self.times_s, self.xy[:, 0])
        y = np.interp(t_s, self.times_s, self.xy[:, 1])
        return np.array([x, y]), float(np.interp(t_s, self.times_s, self.yaw))

    def velocity(self, t_s: float, half_step_s: float = 0.01) -> np.ndarray:
        """Global (vx, vy) [m/s] at t_s by a centred difference."""
        after, _ = self.pose(t_s + half_step_s)
        before, _ = self.pose(t_s - half_step_s)
        return (after - before) / (2.0 * half_step_s)


@dataclass
class Actor:
    """One object of the world: its class, box size, mesh and motion.

    ``behaviour``: 'driving' (may stop: vehicle.stopped), 'parked', 'walking', 'standing' or 'static'.
    """

    detection_name: str
    size_wlh: np.ndarray
    mesh: Mesh
    track: Track
    behaviour: str
    with_rider: Optional[bool] = None

    @property
    def category(self) -> str:
        return CLASS_SPECS[self.detection_name].category

    def box_centre(self, t_s: float) -> Tuple[np.ndarray, float]:
        """Global box centre (3,) [m] and yaw [rad] at t_s (the box stands on the ground z = 0)."""
        xy, yaw = self.track.pose(t_s)
        return np.array([xy[0], xy[1], 0.5 * self.size_wlh[2]]), yaw

    def attribute(self, t_s: float) -> Optional[str]:
        """The nuScenes attribute at t_s, None for barriers and cones."""
        name = self.detection_name
        moving = float(np.linalg.norm(self.track.velocity(t_s))) > STOPPED_SPEED_M_S
        if name in ("barrier", "traffic_cone"):
            return None
        if name == "pedestrian":
            return "pedestrian.moving" if moving else "pedestrian.standing"
        if name in ("bicycle", "motorcycle"):
            return "cycle.with_rider" if self.with_rider else "cycle.without_rider"
        if moving:
            return "vehicle.moving"
        return "vehicle.parked" if self.behaviour == "parked" else "vehicle.stopped"
