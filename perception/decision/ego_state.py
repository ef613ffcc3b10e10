"""The ego's motion state (speed, yaw rate, acceleration) from its past and present poses only, by backward
finite differences: what the car's CAN bus (wheel speed, yaw-rate sensor) knows at that instant, never a look at
a later pose."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from perception.geometry import EgoPose


@dataclass(frozen=True)
class EgoState:
    """speed_mps: signed speed along the ego's x axis (negative when reversing); yaw_rate_rps: counter-clockwise
    rate of the heading [rad/s]; acceleration_mps2: rate of the speed, None when fewer than three poses up to the
    current one exist (the rule-based planner plans from the speed and the yaw rate; the acceleration is kept for
    logs and the planning head)."""

    speed_mps: float
    yaw_rate_rps: float = 0.0
    acceleration_mps2: Optional[float] = None

    def __post_init__(self) -> None:
        for name in ("speed_mps", "yaw_rate_rps", "acceleration_mps2"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"EgoState.{name} must be finite, got {value}")

    @classmethod
    def from_poses(cls, poses: Sequence[EgoPose], index: int = -1) -> "EgoState":
        """The state at ``poses[index]`` from ``poses[:index + 1]`` only (sorted by strictly increasing timestamp;
        any later pose is never read).

        Speed and yaw rate: the backward difference over poses[index - 1] and poses[index], the displacement
        projected on the heading at ``poses[index]``; acceleration: the difference of the speeds of the last two
        intervals (each projected on the heading at its own end, so that a turn at constant speed reads none) over
        the time between their midpoints. Degradation at the first pose of a log (no earlier pose):
        no motion is known, so speed and yaw rate are 0 and the acceleration None.
        """
        if not poses:
            raise ValueError("EgoState.from_poses: no poses given")
        if not -len(poses) <= index < len(poses):
            raise IndexError(f"EgoState.from_poses: index {index} out of range for {len(poses)} poses")
        index %= len(poses)
        times_us = [pose.timestamp_us for pose in poses[:index + 1]]
        for before, after in zip(times_us, times_us[1:]):
            if after <= before:
                raise ValueError(f"EgoState.from_poses: timestamps must strictly increase, a pose at {after} us "
                                 f"follows one at {before} us")
        past = poses[max(index - 2, 0):index + 1]
        times_us = times_us[-len(past):]
        if len(past) == 1:
            return cls(0.0, 0.0, None)
        speed, yaw_rate = _interval_motion(past[-2], past[-1])
        acceleration = None
        if len(past) == 3:
            speed_before, _ = _interval_motion(past[0], past[1])
            acceleration = (speed - speed_before) / ((times_us[2] - times_us[0]) * 1e-6 / 2)
        return cls(float(speed), float(yaw_rate), None if acceleration is None else float(acceleration))


def _interval_motion(start: EgoPose, end: EgoPose) -> Tuple[float, float]:
    """Mean speed along the heading at ``end`` [m/s] and mean yaw rate [rad/s] between two poses."""
    heading_xy = end.ego_to_global.rotation[:2, 0]
    heading_xy = heading_xy / np.linalg.norm(heading_xy)
    duration_s = (end.timestamp_us - start.timestamp_us) * 1e-6
    displacement = end.ego_to_global.translation[:2] - start.ego_to_global.translation[:2]
    yaw_change = math.remainder(end.ego_to_global.yaw - start.ego_to_global.yaw, 2 * math.pi)
    return float(displacement @ heading_xy) / duration_s, yaw_change / duration_s
