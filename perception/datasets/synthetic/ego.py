"""The ego vehicle's drive: a cycle of manoeuvres (cruise, lane change, speed up, follow a lead vehicle, brake to
a stop, wait, drive off) in Frenet coordinates of the scene's road, so every decision the pipeline outputs
occurs in the data. Scenes start at different points of the cycle, so short scenes still differ.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from perception.datasets.maneuver_labels import ManeuverLabelConfig
from perception.datasets.synthetic.layout import Road
from perception.maneuvers import Maneuver

MANOEUVRES = ("cruise", "lane_change", "speed_up", "follow", "brake_to_stop", "stopped", "drive_off")
"""The cycle, in order. 'follow' .. 'drive_off' happen behind a lead vehicle in the ego's lane."""
LEAD_MANOEUVRES = ("follow", "brake_to_stop", "stopped", "drive_off")

LEAD_TIME_HEADWAY_S = 1.5
"""The lead vehicle does what the ego does this much later (the ego follows it at this time gap)."""
LEAD_STANDSTILL_GAP_M = 9.0
"""Rear axle of the ego to the lead vehicle's box centre when both stand still [m]."""
BRAKE_DECELERATION = 2.5
"""m/s^2 of a stop."""
LANE_CHANGE_DURATION_S = 4.0
STREET_CRUISE_SPEED_M_S = (7.0, 11.0)
AISLE_CRUISE_SPEED_M_S = (3.0, 6.0)
"""Range of the ego's cruise speed, drawn per scene, in a street and down a car park's aisle [m/s] (the real
drive of scene-0916's real_finetune split goes 3.9-6.1 m/s down its aisle)."""
MAX_EGO_SPEED_M_S = 14.0
"""The fastest the ego drives (a speed-up stops there); the road is laid out long enough for it [m/s]."""
LANE_SWITCH_WINDOW_S = ManeuverLabelConfig().lane_switch_half_window_s
"""A scripted lane change is labelled at the keyframes within this of its lane switch, as the labels read from the
logged poses and a lane map name it."""


@dataclass(frozen=True)
class Phase:
    """One manoeuvre over [start_s, end_s) in scene time [s]."""

    manoeuvre: str
    start_s: float
    end_s: float


@dataclass
class EgoPlan:
    """The ego's motion on the time grid ``times_s`` (K,) [s]: Frenet ``s`` / ``d`` (K,) [m] of the rear axle,
    the forward lane index per sample (K,), and the manoeuvre phases."""

    times_s: np.ndarray
    s: np.ndarray
    d: np.ndarray
    lane: np.ndarray
    phases: List[Phase]

    def lead_blocks(self) -> List[Tuple[float, float, int]]:
        """(start_s, end_s, lane) of each uninterrupted run of lead-vehicle manoeuvres."""
        blocks: List[Tuple[float, float, int]] = []
        for phase in self.phases:
            if phase.manoeuvre not in LEAD_MANOEUVRES:
                continue
            lane = int(self.lane[np.searchsorted(self.times_s, phase.start_s)])
            if blocks and abs(blocks[-1][1] - phase.start_s) < 1e-9:
                blocks[-1] = (blocks[-1][0], phase.end_s, lane)
            else:
                blocks.append((phase.start_s, phase.end_s, lane))
        return blocks

    def scripted_maneuver(self, t_s: float, horizon_s: float) -> Maneuver:
        """The label the script gives scene time ``t_s`` for the next ``horizon_s``: STOP when a 'stopped' phase
        overlaps [t_s, t_s + horizon_s], else BRAKE when a 'brake_to_stop' does, else a lane change when the lane
        switches within LANE_SWITCH_WINDOW_S of t_s (left when d grows), else FOLLOW during 'follow' and
        'drive_off' (behind the lead), else KEEP_LANE."""
        def overlapping(manoeuvre: str) -> bool:
            return any(p.manoeuvre == manoeuvre and p.start_s < t_s + horizon_s and p.end_s > t_s
                       for p in self.phases)

        if overlapping("stopped"):
            return Maneuver.STOP
        if overlapping("brake_to_stop"):
            return Maneuver.BRAKE
        before, after = np.searchsorted(self.times_s, [t_s - LANE_SWITCH_WINDOW_S, t_s + LANE_SWITCH_WINDOW_S])
        after = min(int(after), len(self.times_s) - 1)
        if self.lane[before] != self.lane[after]:
            return Maneuver.CHANGE_LANE_LEFT if self.d[after] > self.d[before] else Maneuver.CHANGE_LANE_RIGHT
        current = next((p.manoeuvre for p in self.phases if p.start_s <= t_s < p.end_s), None)
        return Maneuver.FOLLOW if current in ("follow", "drive_off") else Maneuver.KEEP_LANE

    def description(self) -> str:
        """The manoeuvres with their times, for the scene table's description."""
        return "ego: " + ", ".join(f"{p.manoeuvre} {max(p.start_s, self.times_s[0] + 1):.1f}-{p.end_s:.1f}s"
                                   for p in self.phases if p.end_s > self.times_s[0] + 1.0)


def plan_ego(rng: np.random.Generator, road: Road, scene_index: int, times_s: np.ndarray, start_s_m: float,
             cruise_speed_m_s: Tuple[float, float] = STREET_CRUISE_SPEED_M_S) -> EgoPlan:
    """The ego's drive over ``times_s`` (uniform grid [s]) starting at arc length ``start_s_m`` at a cruise speed
    drawn from ``cruise_speed_m_s`` [m/s]; the cycle of MANOEUVRES is entered at ``scene_index`` modulo its length.
    On a road of one lane a direction the ego cruises where the cycle changes lanes."""
    dt = float(times_s[1] - times_s[0])
    cruise_speed = float(rng.uniform(*cruise_speed_m_s))
    lane = int(rng.integers(road.lanes_per_direction))
    speed = cruise_speed
    step = scene_index % len(MANOEUVRES)
    if MANOEUVRES[step] in ("stopped", "drive_off"):
        speed = 0.0
    phases: List[Phase] = []
    accelerations = np.zeros(len(times_s))
    standing = np.zeros(len(times_s), dtype=bool)
    lanes = np.full(len(times_s), lane)
    lateral = np.full(len(times_s), road.lane_centre(lane))
    t = float(times_s[0])
    while t < times_s[-1]:
        manoeuvre = MANOEUVRES[step % len(MANOEUVRES)]
        if manoeuvre == "lane_change" and road.lanes_per_direction < 2:
            manoeuvre = "cruise"
        if manoeuvre == "cruise":
            duration, accel = float(rng.uniform(2.0, 4.0)), 0.0
        elif manoeuvre == "lane_change":
            duration, accel = LANE_CHANGE_DURATION_S, 0.0
        elif manoeuvre == "speed_up":
            duration = float(rng.uniform(2.5, 4.0))
            accel = (min(speed + 4.0, MAX_EGO_SPEED_M_S) - speed) / duration
        elif manoeuvre == "follow":
            duration = float(rng.uniform(3.0, 5.0))
            accel = -min(3.0, 0.5 * speed) / duration
        elif manoeuvre == "brake_to_stop":
            duration, accel = max(speed / BRAKE_DECELERATION, 0.5), -BRAKE_DECELERATION
        elif manoeuvre == "stopped":
            duration, accel = float(rng.uniform(2.0, 3.0)), 0.0
        else:  # drive_off
            duration, accel = 4.0, cruise_speed / 4.0
        end = t + duration
        phases.append(Phase(manoeuvre, t, end))
        inside = (times_s >= t) & (times_s < end)
        accelerations[inside] = accel
        standing[inside] = manoeuvre == "stopped"
        if manoeuvre == "lane_change":
            target = lane + 1 if lane + 1 < road.lanes_per_direction else lane - 1
            progress = np.clip((times_s - t) / duration, 0.0, 1.0)
            blend = 0.5 - 0.5 * np.cos(np.pi * progress)
            after = times_s >= t
            lateral[after] = (road.lane_centre(lane) * (1 - blend) + road.lane_centre(target) * blend)[after]
            lanes[times_s >= t + 0.5 * duration] = target
            lane = target
        speed = max(0.0, speed + accel * duration)
        if manoeuvre == "brake_to_stop":
            speed = 0.0
        t = end
        step += 1
    speeds = np.empty(len(times_s))
    speeds[0] = cruise_speed if MANOEUVRES[scene_index % len(MANOEUVRES)] not in ("stopped", "drive_off") else 0.0
    for i in range(1, len(times_s)):
        speeds[i] = 0.0 if standing[i] else max(0.0, speeds[i - 1] + accelerations[i - 1] * dt)
    s = start_s_m + np.concatenate([[0.0], np.cumsum(0.5 * (speeds[1:] + speeds[:-1]) * dt)])
    return EgoPlan(times_s, s, lateral, lanes, phases)
