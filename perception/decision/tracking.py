"""Agents tracked from frame to frame, for what one frame cannot tell the prediction: how fast an agent really
moves, and whether it is braking.

``AgentTracker.update(boxes, ego_pose)`` takes each frame's detections (ego frame, in time order) and returns them
as the planners see them (``TrackedAgents``): each moving track's velocity measured from its displacement in place
of the detector's, and each box's acceleration along its velocity [m/s^2], which
perception.decision.prediction.predict_agents turns into a constant-acceleration prediction (a braking lead stops
where its speed runs out, not 17 m further on at its current speed).

Association as CenterPoint's tracker (Yin et al., CVPR 2021, its nuScenes tracking code): each detection, moved
back by its own velocity over the time since the previous frame, is matched greedily, closest pair first, to an
unmatched detection of the previous frame of the same class within that class's distance (TRACKING_GATES_M), in
the global frame. Classes without a gate (barriers, cones, construction vehicles) and boxes scoring below
``min_score`` are not tracked.

A track's velocity is measured from its own displacement, not taken from the detector: the vector its box moved
since the track's reference position, at least ``baseline_s`` earlier, over that time (the current position is
then the next reference; sooner, the track's estimates carry on). Its acceleration is the change between two such
speeds over the time between their midpoints, smoothed over the track (the newest estimate weighted
``smoothing``, or ``braking_smoothing`` when it brakes harder than the running one: a brake's onset reaches the
prediction sooner than its release) and clipped to [``min_acceleration_mps2``, ``max_acceleration_mps2``]; 0
(constant velocity) until a track has two speeds, i.e. for its first ~2 x baseline_s.

The planners see a tracked box with its track's velocity, in the direction of the last displacement at its speed
brought from that measurement's midpoint to now with the acceleration, once the track has one; a box the detector
says moves slower than ``standing_speed_mps`` keeps the detector's velocity, whatever its track measured. For a
moving agent positions are the better measurement (over 0.5 s a box's centre error moves the velocity less than the
detector's velocity error), for a standing one the detector's velocity is (benchmarks/RESULTS.md, "Tracked
accelerations" and "Tracked velocities"): on real keyframes a standing car's centre error over the baseline reads
as 1-2 m/s of motion (RESULTS, "Standing cars moved by their tracks"). A frame not after the previous one, or more
than ``max_gap_s`` after it, starts every track afresh.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from perception.classes import DETECTION_CLASSES
from perception.decision.types import PlannerConfig
from perception.geometry import Boxes3D, EgoPose

TRACKING_GATES_M = {"car": 4.0, "truck": 4.0, "bus": 5.5, "trailer": 3.0, "pedestrian": 1.0, "motorcycle": 13.0,
                    "bicycle": 3.0}
"""Class -> the largest distance [m] between a detection moved back by its velocity and the previous frame's
detection it continues: CenterPoint's NUSCENE_CLS_VELOCITY_ERROR (the 99.9th percentile of its velocity error
per 0.5 s)."""

_GATES_BY_LABEL = np.array([TRACKING_GATES_M.get(name, np.nan) for name in DETECTION_CLASSES])


@dataclass(frozen=True)
class TrackerConfig:
    """``min_score``: boxes below it are not tracked (the planner's own threshold, PlannerConfig.min_score);
    ``max_gap_s``: frames further apart start afresh; ``baseline_s``: the least time over which a speed is measured
    (replayed every sweep, frames 0.05 s apart would turn the position noise into 10x the speed noise of keyframes
    0.5 s apart); ``smoothing``: the weight of the newest acceleration estimate in a track's running one (chosen on
    synth_train, the lowest error against the annotations of 1, 0.5, 0.3, 0.2, 0.1: benchmarks/tracking_accuracy.py,
    benchmarks/RESULTS.md "Tracked accelerations"); ``braking_smoothing``: its weight instead when it is below the
    running one (a lead starting to brake; with 0.3 a 2.5 m/s^2 brake read 0.9 m/s^2 after 1.5 s; chosen on
    synth_train's braking error and the dev world's decisions among 0.3, 0.5, 0.7, 1: benchmarks/RESULTS.md "A
    brake's onset, tracked sooner"); accelerations are clipped to [``min_acceleration_mps2``,
    ``max_acceleration_mps2``] (an emergency stop of a car is about -9 m/s^2); ``standing_speed_mps``: a box whose
    detector's speed is below it keeps the detector's velocity (chosen on synth_train among 0, 0.5, 1, 1.5 when the
    track's speed had to be below it too: benchmarks/tracking_accuracy.py, benchmarks/RESULTS.md "Tracked
    velocities")."""

    min_score: float = PlannerConfig.min_score
    max_gap_s: float = 1.0
    baseline_s: float = 0.4
    smoothing: float = 0.3
    braking_smoothing: float = 0.7
    min_acceleration_mps2: float = -9.0
    max_acceleration_mps2: float = 4.0
    standing_speed_mps: float = 1.0

    def __post_init__(self) -> None:
        for name in ("smoothing", "braking_smoothing"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"TrackerConfig: {name} must be in (0, 1], got {getattr(self, name)}")
        if not 0 <= self.baseline_s < self.max_gap_s:
            raise ValueError(f"TrackerConfig: need 0 <= baseline_s < max_gap_s, got {self.baseline_s} and "
                             f"{self.max_gap_s}")
        if self.standing_speed_mps < 0:
            raise ValueError(f"TrackerConfig: standing_speed_mps must be >= 0, got {self.standing_speed_mps}")
        if self.min_acceleration_mps2 > 0 or self.max_acceleration_mps2 < 0:
            raise ValueError("TrackerConfig: the acceleration range must contain 0, got "
                             f"[{self.min_acceleration_mps2}, {self.max_acceleration_mps2}]")


@dataclass(frozen=True)
class TrackedAgents:
    """One frame's N detections as the planners see them: ``boxes`` the detections (ego frame) with a moving
    track's measured velocity [m/s] in place of the detector's (module docstring), ``accelerations_mps2`` (N,) each
    box's acceleration along its velocity, 0 for a box not tracked or whose track has no estimate yet."""

    boxes: Boxes3D
    accelerations_mps2: np.ndarray


@dataclass(frozen=True)
class _TrackedFrame:
    """The tracked boxes of one frame, at timestamp_us, each (M, ...): global centres [m] and labels;
    accelerations [m/s^2] and whether each is an estimate (``continued``) or a new track's 0; the track's reference
    centre [m] and its time [us], from which its next velocity is measured; its last measured global velocity
    (M, 2) [m/s] (NaN: none yet) and the midpoint time of that measurement [us]."""

    timestamp_us: int
    centers: np.ndarray
    labels: np.ndarray
    accelerations: np.ndarray
    continued: np.ndarray
    reference_centers: np.ndarray
    reference_times_us: np.ndarray
    velocities: np.ndarray
    speed_times_us: np.ndarray


class AgentTracker:
    """Tracks one stream of frames (module docstring); one tracker per stream."""

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self._previous: Optional[_TrackedFrame] = None

    def update(self, boxes: Boxes3D, ego_pose: EgoPose) -> TrackedAgents:
        """``boxes`` (ego frame of ``ego_pose``, at its timestamp) as the planners see them (TrackedAgents)."""
        config = self.config
        now_us = ego_pose.timestamp_us
        gates = _GATES_BY_LABEL[boxes.labels] if len(boxes) else np.zeros(0)
        tracked = np.flatnonzero((boxes.scores >= config.min_score) & np.isfinite(gates))
        world = boxes[tracked].transform(ego_pose.ego_to_global)
        centers = world.centers[:, :2]
        count = len(tracked)
        state = dict(accelerations=np.zeros(count), continued=np.zeros(count, dtype=bool),
                     reference_centers=centers.copy(), reference_times_us=np.full(count, now_us, dtype=np.int64),
                     velocities=np.full((count, 2), np.nan),
                     speed_times_us=np.zeros(count, dtype=np.int64))
        previous = self._previous
        dt = None if previous is None else (now_us - previous.timestamp_us) * 1e-6
        if dt is not None and 0 < dt <= config.max_gap_s and count and len(previous.labels):
            moved_back = centers - world.velocities * dt
            distance = np.linalg.norm(moved_back[:, None, :] - previous.centers[None, :, :], axis=2)  # (C, P)
            allowed = (world.labels[:, None] == previous.labels[None, :]) & (distance <= gates[tracked][:, None])
            pairs = np.array(list(_greedy_pairs(distance, allowed)), dtype=np.int64).reshape(-1, 2)
            for name, values in state.items():  # each paired track's state carries on ...
                values[pairs[:, 0]] = getattr(previous, name)[pairs[:, 1]]
            # ... until its reference is baseline_s old: then a new speed, a new reference
            elapsed_us = now_us - previous.reference_times_us[pairs[:, 1]]
            current, earlier = pairs[elapsed_us >= round(config.baseline_s * 1e6)].T
            reference_times_us = previous.reference_times_us[earlier]
            velocity = (centers[current] - previous.reference_centers[earlier]) / (
                (now_us - reference_times_us) * 1e-6)[:, None]
            speed = np.sqrt((velocity ** 2).sum(axis=1))  # np.linalg.norm's arithmetic, as the speeds below
            speed_time_us = (now_us + reference_times_us) // 2
            previous_speed = np.sqrt((previous.velocities[earlier] ** 2).sum(axis=1))  # NaN: none yet
            known = np.isfinite(previous_speed)
            estimate = (speed - previous_speed) / ((speed_time_us - previous.speed_times_us[earlier]) * 1e-6)
            running = previous.accelerations[earlier]
            weight = np.where(estimate < running, config.braking_smoothing, config.smoothing)
            estimate = np.where(previous.continued[earlier], weight * estimate + (1 - weight) * running, estimate)
            state["accelerations"][current[known]] = np.clip(estimate[known], config.min_acceleration_mps2,
                                                             config.max_acceleration_mps2)
            state["continued"][current[known]] = True
            state["reference_centers"][current] = centers[current]
            state["reference_times_us"][current] = now_us
            state["velocities"][current] = velocity
            state["speed_times_us"][current] = speed_time_us
        self._previous = _TrackedFrame(now_us, centers, world.labels, **state)
        accelerations = np.zeros(len(boxes))
        accelerations[tracked] = state["accelerations"]
        # the measured speed is the one at the measurement's midpoint: brought to now with the acceleration
        speeds = np.linalg.norm(state["velocities"], axis=1)  # (M,), NaN: none yet
        speeds_now = np.maximum(speeds + state["accelerations"] * (now_us - state["speed_times_us"]) * 1e-6, 0.0)
        moving = np.isfinite(speeds_now) & (np.linalg.norm(world.velocities, axis=1) >= config.standing_speed_mps)
        with np.errstate(divide="ignore", invalid="ignore"):
            directions = np.where(speeds[:, None] > 0, state["velocities"] / speeds[:, None], 0.0)
        measured = np.c_[directions[moving] * speeds_now[moving, None], np.zeros(int(moving.sum()))]  # (K, 3) global
        velocities = boxes.velocities.copy()
        velocities[tracked[moving]] = ego_pose.ego_to_global.inverse().apply_rotation(measured)[:, :2]
        return TrackedAgents(replace(boxes, velocities=velocities), accelerations)


def _greedy_pairs(distance: np.ndarray, allowed: np.ndarray):
    """(current, previous) index pairs, closest allowed pair first, each index used once."""
    rows, columns = np.nonzero(allowed)
    order = np.argsort(distance[rows, columns], kind="stable")
    used_rows, used_columns = set(), set()
    for row, column in zip(rows[order], columns[order]):
        if row not in used_rows and column not in used_columns:
            used_rows.add(row)
            used_columns.add(column)
            yield int(row), int(column)
