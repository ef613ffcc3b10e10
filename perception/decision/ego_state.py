"""The ego's motion state (speed, yaw rate, acceleration) from timestamped ego poses by finite differences."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from perception.geometry import EgoPose


@dataclass(frozen=True)
class EgoState:
    """speed_mps: signed speed along the ego's x axis (negative when reversing); yaw_rate_rps: counter-clockwise
    rate of the heading [rad/s]; acceleration_mps2: rate of the speed, None when fewer than three poses exist
    (the rule-based planner plans from the speed and the yaw rate; the acceleration is kept for logs)."""

    speed_mps: float
    yaw_rate_rps: float = 0.0
    acceleration_mps2: Optional[float] = None

    def __post_init__(self) -> None:
        for name in ("speed_mps", "yaw_rate_rps", "acceleration_mps2"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"EgoState.{name} must be finite, got {value}")

    @classmethod
    def from_poses(cls, poses: Sequence[EgoPose], index: int) -> "EgoState":
        """The state at ``poses[index]`` from its neighbours (poses sorted by strictly increasing timestamp).

        Speed and yaw rate: the central difference over poses[index - 1] and poses[index + 1] (one-sided at the
        ends), the displacement projected on the heading at ``poses[index]``; acceleration: the difference of
        the speeds of the two intervals around the pose over the time between their midpoints (the nearest
        three poses at the ends). A single pose carries no motion: speed and yaw rate 0, acceleration None.
        """
        if not poses:
            raise ValueError("EgoState.from_poses: no poses given")
        if not -len(poses) <= index < len(poses):
            raise IndexError(f"EgoState.from_poses: index {index} out of range for {len(poses)} poses")
        index %= len(poses)
        times_s = np.array([pose.timestamp_us for pose in poses], dtype=np.float64) * 1e-6
        steps = np.diff(times_s)
        if np.any(steps <= 0):
            bad = int(np.argmax(steps <= 0))
            raise ValueError(f"EgoState.from_poses: timestamps must strictly increase, pose {bad + 1} at "
                             f"{poses[bad + 1].timestamp_us} us follows {poses[bad].timestamp_us} us")
        if len(poses) == 1:
            return cls(0.0, 0.0, None)
        heading = poses[index].ego_to_global.rotation[:2, 0]
        heading = heading / np.linalg.norm(heading)
        first, last = max(index - 1, 0), min(index + 1, len(poses) - 1)
        speed, yaw_rate = _interval_motion(poses[first], poses[last], heading)
        acceleration = None
        if len(poses) >= 3:
            middle = min(max(index, 1), len(poses) - 2)
            speed_before, _ = _interval_motion(poses[middle - 1], poses[middle], heading)
            speed_after, _ = _interval_motion(poses[middle], poses[middle + 1], heading)
            acceleration = (speed_after - speed_before) / ((times_s[middle + 1] - times_s[middle - 1]) / 2)
        return cls(float(speed), float(yaw_rate), None if acceleration is None else float(acceleration))


def _interval_motion(start: EgoPose, end: EgoPose, heading_xy: np.ndarray) -> Tuple[float, float]:
    """Mean speed along ``heading_xy`` (2,) [m/s] and mean yaw rate [rad/s] between two poses."""
    duration_s = (end.timestamp_us - start.timestamp_us) * 1e-6
    displacement = end.ego_to_global.translation[:2] - start.ego_to_global.translation[:2]
    yaw_change = math.remainder(end.ego_to_global.yaw - start.ego_to_global.yaw, 2 * math.pi)
    return float(displacement @ heading_xy) / duration_s, yaw_change / duration_s
