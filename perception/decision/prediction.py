"""Agent prediction (constant velocity; constant acceleration along the velocity, stopping at zero speed, when
accelerations are given) and lane occupancy (lanes: perception.decision.types)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from perception.geometry import Boxes3D


def predict_agents(boxes: Boxes3D, times_s: np.ndarray, accelerations_mps2: Optional[np.ndarray] = None
                   ) -> np.ndarray:
    """(N, T, 3) [x, y, yaw] of each box's centre and heading at ``times_s`` (T,) [s] from now.

    By default every agent keeps its velocity (vx, vy) [m/s] and its yaw. With ``accelerations_mps2`` (N,) [m/s^2]
    (perception.decision.tracking: the change of each agent's speed over its track) an agent keeps its heading and
    changes its speed at that rate along its velocity; a braking agent stops where its speed reaches zero and stays
    there.
    """
    times_s = np.asarray(times_s, dtype=np.float64).reshape(-1)
    t = times_s[None, :]  # (1, T)
    if accelerations_mps2 is not None:
        return _predict_along_velocity(boxes, t, _per_agent(accelerations_mps2, len(boxes), "accelerations_mps2"))
    x = boxes.centers[:, 0:1] + boxes.velocities[:, 0:1] * t
    y = boxes.centers[:, 1:2] + boxes.velocities[:, 1:2] * t
    yaw = np.broadcast_to(boxes.yaws[:, None], x.shape)
    return np.stack([x, y, yaw], axis=-1)


def speed_factors_at(boxes: Boxes3D, accelerations_mps2: Optional[np.ndarray], times_s: np.ndarray) -> np.ndarray:
    """(N, T) each agent's speed at ``times_s`` over its speed now, as predict_agents moves it: 1 without
    ``accelerations_mps2`` (N,) [m/s^2] or for a standing agent; else max(speed + a t, 0) / speed."""
    times_s = np.asarray(times_s, dtype=np.float64).reshape(1, -1)
    if accelerations_mps2 is None:
        return np.ones((len(boxes), times_s.shape[1]))
    accelerations = _per_agent(accelerations_mps2, len(boxes), "accelerations_mps2")
    speed = np.hypot(boxes.velocities[:, 0:1], boxes.velocities[:, 1:2])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(speed > 0, np.maximum(speed + accelerations * times_s, 0.0) / speed, 1.0)


def _per_agent(values: np.ndarray, count: int, name: str) -> np.ndarray:
    """(count, 1) float64 of finite per-agent values; ValueError naming ``name`` otherwise."""
    values = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    if len(values) != count or not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be {count} finite values, got {values.ravel()}")
    return values


def _predict_along_velocity(boxes: Boxes3D, t: np.ndarray, accelerations: np.ndarray) -> np.ndarray:
    """predict_agents with constant acceleration (N, 1) [m/s^2] along each velocity, stopping at zero speed."""
    speed = np.hypot(boxes.velocities[:, 0:1], boxes.velocities[:, 1:2])  # (N, 1)
    braking = accelerations < 0
    with np.errstate(divide="ignore"):
        stop_s = np.where(braking, speed / np.where(braking, -accelerations, 1.0), np.inf)
    moving_s = np.minimum(t, stop_s)  # (N, T)
    distance = speed * moving_s + 0.5 * accelerations * moving_s ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        direction = np.where(speed > 0, boxes.velocities / speed, 0.0)  # (N, 2): a standing agent stays
    x = boxes.centers[:, 0:1] + direction[:, 0:1] * distance
    y = boxes.centers[:, 1:2] + direction[:, 1:2] * distance
    yaw = np.broadcast_to(boxes.yaws[:, None], x.shape)
    return np.stack([x, y, yaw], axis=-1)


def lane_index(across_m: np.ndarray, lane_width_m: float) -> np.ndarray:
    """Lane of lateral offsets [m] from the ego lane's centre line: round(across_m / lane_width_m), halves rounded
    up (lane 0 is the ego's, +1 its left neighbour)."""
    return np.floor(np.asarray(across_m, dtype=np.float64) / lane_width_m + 0.5).astype(np.int64)


def lane_segments(predicted_across_m: np.ndarray, lane: int, lane_width_m: float) -> np.ndarray:
    """(N, T) predicted lateral offsets [m] from the ego lane's centre line at T >= 2 times -> (N, T - 1) bool:
    the straight segment between times k and k + 1 touches ``lane`` (so a fast crossing between two steps is not
    missed)."""
    across = np.asarray(predicted_across_m, dtype=np.float64)
    if across.ndim != 2 or across.shape[1] < 2:
        raise ValueError(f"lane_segments: predicted_across_m must be (N, T >= 2), got shape {across.shape}")
    low, high = (lane - 0.5) * lane_width_m, (lane + 0.5) * lane_width_m
    segment_min = np.minimum(across[:, :-1], across[:, 1:])
    segment_max = np.maximum(across[:, :-1], across[:, 1:])
    return (segment_min < high) & (segment_max >= low)


def half_length_along_x(boxes_sizes: np.ndarray, yaws: np.ndarray) -> np.ndarray:
    """Half the x-extent [m] of upright boxes: sizes (..., 3) [width, length, height], yaws (...) [rad]."""
    width, length = boxes_sizes[..., 0], boxes_sizes[..., 1]
    return (length * np.abs(np.cos(yaws)) + width * np.abs(np.sin(yaws))) / 2
