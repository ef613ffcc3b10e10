"""Agent prediction (constant velocity, or constant velocity and turn rate when yaw rates are given) and lane
occupancy on the assumed straight lanes (see perception.decision.types)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from perception.geometry import Boxes3D

STRAIGHT_YAW_RATE_RPS = 1e-6
"""Below this |yaw rate| the turn-rate model is evaluated as constant velocity (its limit), avoiding 0 / 0."""


def predict_agents(boxes: Boxes3D, times_s: np.ndarray, yaw_rates_rps: Optional[np.ndarray] = None) -> np.ndarray:
    """(N, T, 3) [x, y, yaw] of each box's centre and heading at ``times_s`` (T,) [s] from now.

    Without ``yaw_rates_rps`` (Boxes3D carries none: the detector estimates no yaw rate) every agent keeps its
    velocity (vx, vy) [m/s] and its yaw. With ``yaw_rates_rps`` (N,) [rad/s] an agent keeps its speed and turns
    its velocity at that rate (CTRV); its box yaw turns at the same rate.
    """
    times_s = np.asarray(times_s, dtype=np.float64).reshape(-1)
    t = times_s[None, :]  # (1, T)
    x0, y0 = boxes.centers[:, 0:1], boxes.centers[:, 1:2]  # (N, 1)
    vx, vy = boxes.velocities[:, 0:1], boxes.velocities[:, 1:2]
    yaw0 = boxes.yaws[:, None]
    if yaw_rates_rps is None:
        rates = np.zeros((len(boxes), 1))
    else:
        rates = np.asarray(yaw_rates_rps, dtype=np.float64).reshape(-1, 1)
        if len(rates) != len(boxes) or not np.all(np.isfinite(rates)):
            raise ValueError(f"predict_agents: yaw_rates_rps must be {len(boxes)} finite values, got {rates.ravel()}")
    turning = np.abs(rates) >= STRAIGHT_YAW_RATE_RPS
    safe_rates = np.where(turning, rates, 1.0)
    speed = np.hypot(vx, vy)
    course0 = np.arctan2(vy, vx)
    course = course0 + rates * t
    x_turn = x0 + speed / safe_rates * (np.sin(course) - np.sin(course0))
    y_turn = y0 + speed / safe_rates * (np.cos(course0) - np.cos(course))
    x = np.where(turning, x_turn, x0 + vx * t)
    y = np.where(turning, y_turn, y0 + vy * t)
    yaw = np.broadcast_to(yaw0 + rates * t, x.shape)
    return np.stack([x, y, yaw], axis=-1)


def lane_index(y: np.ndarray, lane_width_m: float) -> np.ndarray:
    """Lane of lateral positions y [m]: round(y / lane_width_m), halves rounded up (lane 0 is the ego's,
    +1 its left neighbour)."""
    return np.floor(np.asarray(y, dtype=np.float64) / lane_width_m + 0.5).astype(np.int64)


def lane_segments(predicted_y: np.ndarray, lane: int, lane_width_m: float) -> np.ndarray:
    """(N, T) predicted lateral positions [m] at T >= 2 times -> (N, T - 1) bool: the straight segment between
    times k and k + 1 touches ``lane`` (so a fast crossing between two steps is not missed)."""
    predicted_y = np.asarray(predicted_y, dtype=np.float64)
    if predicted_y.ndim != 2 or predicted_y.shape[1] < 2:
        raise ValueError(f"lane_segments: predicted_y must be (N, T >= 2), got shape {predicted_y.shape}")
    low, high = (lane - 0.5) * lane_width_m, (lane + 0.5) * lane_width_m
    segment_min = np.minimum(predicted_y[:, :-1], predicted_y[:, 1:])
    segment_max = np.maximum(predicted_y[:, :-1], predicted_y[:, 1:])
    return (segment_min < high) & (segment_max >= low)


def half_length_along_x(boxes_sizes: np.ndarray, yaws: np.ndarray) -> np.ndarray:
    """Half the x-extent [m] of upright boxes: sizes (..., 3) [width, length, height], yaws (...) [rad]."""
    width, length = boxes_sizes[..., 0], boxes_sizes[..., 1]
    return (length * np.abs(np.cos(yaws)) + width * np.abs(np.sin(yaws))) / 2
