"""Maneuver labels derived from the logged drive, independent of any planner.

A keyframe's label describes what the driver did, from the ego poses of the log around it (in the keyframe's ego
frame) and the road users annotated at it. The first rule that holds, safety first (thresholds: the frozen
``ManeuverLabelConfig``):

1. STOP: within the horizon (3 s) the ego stands still: some 0.5 s interval's mean speed is at most
   ``stop_speed_mps``.
2. BRAKE: within the horizon the speed falls at ``brake_decel_mps2`` or more, measured between interval speeds
   ``brake_span_s`` apart (following a lead's gentle slowing, <= 1 m/s^2, does not count).
3. CHANGE_LANE_LEFT / RIGHT, where the data has a lane map (perception.datasets.lane_map; the synthetic world
   writes one): the lane the ego drives in ``lane_switch_half_window_s`` before the keyframe (at a scene's start:
   at the first logged pose) differs from its lane as long after; left when the later pose lies left of the
   earlier lane's centre line. Without a lane map (the real keyframes here): the ego moves sideways by at least
   ``lane_change_shift_m`` (half a 3.5 m lane) over the ``lane_change_half_window_s`` before and after the
   keyframe, measured perpendicular to the mean of the headings at the window's two ends. A road of constant
   curvature cancels in this measure (the chord of an arc runs along the mean of its end headings), so it counts
   the move across lanes, not the curve. At a scene's start the window begins at the first logged pose. Not when
   the heading turns by ``lane_change_max_turn_rad`` or more over the window (a turn, not a lane change).
   Limitation: a curve starting or ending inside the window bends the chord (by curvature x window length^2 / 8,
   ~2 m for a 90 m radius at 10 m/s), and a window end inside a lane change shortens the move.
4. FOLLOW: a road user (VEHICLE_CLASSES) is centred on the path the ego drove next (within
   ``path_half_width_m`` of it, the path extended straight beyond the horizon along its last interval:
   perception.geometry.frenet_coordinates) and ahead of the rear axle, along that path, by at most
   ``follow_min_gap_m`` + ``follow_time_gap_s`` x the ego's speed over the first interval.
5. KEEP_LANE otherwise.

A keyframe whose log does not cover the horizon has no label (None): it is counted and skipped, never padded.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np
from nuscenes.nuscenes import NuScenes

from perception.classes import DETECTION_CLASSES, MOTOR_VEHICLE_CLASSES
from perception.datasets.ego_log import ego_track, keyframe_lidar_pose
from perception.datasets.ground_truth import sample_ground_truth
from perception.datasets.lane_map import LaneCentres, keyframe_lanes
from perception.geometry import frenet_coordinates
from perception.maneuvers import PLAN_HORIZON_STEPS, PLAN_STEP_S, Maneuver

VEHICLE_CLASSES = MOTOR_VEHICLE_CLASSES + ("motorcycle", "bicycle")
"""The detection classes a followed lead can be."""
VEHICLE_LABELS = np.array([DETECTION_CLASSES.index(name) for name in VEHICLE_CLASSES])
"""Their indices in DETECTION_CLASSES (Boxes3D.labels)."""
SCRIPTED_LABELS_FILE = "ego_maneuvers.json"
"""The synthetic world's scripted labels, beside its tables: {sample token: Maneuver value}."""


@dataclass(frozen=True)
class ManeuverLabelConfig:
    """Every threshold of the label rules (module docstring); units in the names."""

    step_s: float = PLAN_STEP_S
    """Spacing of the poses the rules read."""
    horizon_s: float = PLAN_HORIZON_STEPS * PLAN_STEP_S
    """The future the label covers (the plan's horizon)."""
    stop_speed_mps: float = 0.5
    brake_decel_mps2: float = 1.75
    """Between the synthetic world's following (<= 1 m/s^2) and braking (2.5 m/s^2); nuScenes drivers brake at
    1.5-3 m/s^2."""
    brake_span_s: float = 1.0
    lane_change_half_window_s: float = 2.0
    """Half a typical lane change (4 s)."""
    lane_switch_half_window_s: float = 1.0
    """With a lane map: a lane change is named within this of the moment the ego crosses into the next lane (the
    middle half of a 4 s change, where the ego is clearly under way)."""
    lane_change_shift_m: float = 1.75
    lane_change_max_turn_rad: float = 0.5
    """A lane change leaves the heading nearly as it was: over the window the heading turns by less than this
    (a 90 m radius curve at 10 m/s turns it by 0.44 rad; a turn at a junction by more)."""
    follow_time_gap_s: float = 1.5
    """A lead within this time headway (plus follow_min_gap_m) is followed; urban drivers keep 1-2 s."""
    follow_min_gap_m: float = 12.0
    """Rear axle to the lead's centre at a standstill: the ego's front (3.4 m), ~2.5 m of gap, half a long car."""
    path_half_width_m: float = 1.5

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"ManeuverLabelConfig.{item.name} must be finite and > 0, got {value}")
        for name in ("horizon_s", "brake_span_s", "lane_change_half_window_s", "lane_switch_half_window_s"):
            steps = getattr(self, name) / self.step_s
            if abs(steps - round(steps)) > 1e-9:
                raise ValueError(f"ManeuverLabelConfig.{name} {getattr(self, name)} must be a multiple of step_s "
                                 f"{self.step_s}")
        if self.lane_change_half_window_s > self.horizon_s:
            raise ValueError("ManeuverLabelConfig: lane_change_half_window_s exceeds horizon_s")
        if self.lane_switch_half_window_s > self.lane_change_half_window_s:
            raise ValueError("ManeuverLabelConfig: lane_switch_half_window_s exceeds lane_change_half_window_s")

    @property
    def window_times_s(self) -> np.ndarray:
        """(K,) the times the rules read [s from the keyframe]: -lane_change_half_window_s .. horizon_s at step_s."""
        first = -round(self.lane_change_half_window_s / self.step_s)
        return self.step_s * np.arange(first, round(self.horizon_s / self.step_s) + 1)


def same_times(times_s: np.ndarray, expected_s: np.ndarray) -> bool:
    """Whether two time grids [s] are the same: as many times, each within np.allclose's tolerance."""
    return np.shape(times_s) == np.shape(expected_s) and bool(np.allclose(times_s, expected_s))


def label_maneuver(times_s: np.ndarray, ego_xy: np.ndarray, ego_yaw: np.ndarray, road_users_xy: np.ndarray,
                   config: ManeuverLabelConfig = ManeuverLabelConfig(), lanes: Optional[LaneCentres] = None
                   ) -> Maneuver:
    """The label of one keyframe (module docstring).

    times_s (K,) [s] from the keyframe: a suffix of ``config.window_times_s`` that contains 0 .. horizon_s (the
    past may start later at a scene's start); ego_xy (K, 2) [m] and ego_yaw (K,) [rad] the logged ego origin and
    heading at those times in the keyframe's ego frame; road_users_xy (M, 2) [m] centres of the road users
    annotated at the keyframe, same frame; ``lanes``: the map's lanes in that frame, or None.
    """
    times_s = np.asarray(times_s, dtype=np.float64)
    expected = config.window_times_s
    if (len(times_s) < 2 or len(times_s) > len(expected) or times_s[0] > 0
            or not same_times(times_s, expected[len(expected) - len(times_s):])):
        raise ValueError(f"label_maneuver: times_s {times_s.tolist()} must end the window {expected.tolist()} "
                         f"and contain 0 .. {config.horizon_s} s")
    ego_xy = np.asarray(ego_xy, dtype=np.float64).reshape(len(times_s), 2)
    ego_yaw = np.asarray(ego_yaw, dtype=np.float64).reshape(len(times_s))
    now = int(np.argmin(np.abs(times_s)))
    future_xy = ego_xy[now:]
    speeds = np.linalg.norm(np.diff(future_xy, axis=0), axis=1) / config.step_s  # (H,) per interval
    if stands_still(speeds, config):
        return Maneuver.STOP
    if brakes(speeds, config):
        return Maneuver.BRAKE
    change = (lane_switch(times_s, ego_xy, ego_yaw, lanes, config) if lanes is not None
              else chord_lane_change(times_s, ego_xy, ego_yaw, config))
    if change is not None:
        return change
    reach = config.follow_min_gap_m + config.follow_time_gap_s * speeds[0]
    last = future_xy[-1] - future_xy[-2]  # the ego moves in every interval here (rule 1 took standing)
    along, across, _ = frenet_coordinates(future_xy, road_users_xy, math.atan2(last[1], last[0]))
    if np.any((along > 0) & (along <= reach) & (np.abs(across) <= config.path_half_width_m)):
        return Maneuver.FOLLOW
    return Maneuver.KEEP_LANE


def stands_still(interval_speeds_mps: np.ndarray, config: ManeuverLabelConfig = ManeuverLabelConfig()) -> bool:
    """Rule 1 (STOP) on the mean speeds [m/s] of the intervals from now over the horizon: some is at most
    ``config.stop_speed_mps``."""
    return bool(np.min(interval_speeds_mps) <= config.stop_speed_mps)


def brakes(interval_speeds_mps: np.ndarray, config: ManeuverLabelConfig = ManeuverLabelConfig()) -> bool:
    """Rule 2 (BRAKE) on the mean speeds [m/s] of the intervals from now over the horizon: between two of them
    ``config.brake_span_s`` apart the speed falls at ``config.brake_decel_mps2`` or more."""
    span = round(config.brake_span_s / config.step_s)
    speeds = np.asarray(interval_speeds_mps, dtype=np.float64)
    return bool(len(speeds) > span
                and np.max(speeds[:-span] - speeds[span:]) / config.brake_span_s >= config.brake_decel_mps2)


def lane_switch(times_s: np.ndarray, ego_xy: np.ndarray, ego_yaw: np.ndarray, lanes: LaneCentres,
                config: ManeuverLabelConfig = ManeuverLabelConfig()) -> Optional[Maneuver]:
    """Rule 3 with a lane map (module docstring): CHANGE_LANE_LEFT / RIGHT or None; arguments as label_maneuver's."""
    times_s = np.asarray(times_s)
    ends = [0 if times_s[0] > -config.lane_switch_half_window_s
            else int(np.argmin(np.abs(times_s + config.lane_switch_half_window_s))),
            int(np.argmin(np.abs(times_s - config.lane_switch_half_window_s)))]
    across, heading = lanes.offsets(ego_xy[ends])
    before, after = lanes.lane_from_offsets(across, heading, ego_yaw[ends])
    if before < 0 or after < 0 or before == after:
        return None
    return Maneuver.CHANGE_LANE_LEFT if across[before, 1] > 0 else Maneuver.CHANGE_LANE_RIGHT


def lane_reached(times_s: np.ndarray, ego_xy: np.ndarray, ego_yaw: np.ndarray, lanes: LaneCentres,
                 config: ManeuverLabelConfig = ManeuverLabelConfig()) -> bool:
    """With a lane map: whether the ego drives at the keyframe in the lane it drives in
    ``lane_switch_half_window_s`` later (of a keyframe labelled CHANGE_LANE_*: the change is past its lane boundary,
    so the ego's lane now is the one it changes to); arguments as label_maneuver's."""
    times_s = np.asarray(times_s)
    now, after = int(np.argmin(np.abs(times_s))), int(np.argmin(np.abs(times_s - config.lane_switch_half_window_s)))
    lane_now, lane_after = lanes.lane_of(ego_xy[[now, after]], ego_yaw[[now, after]])
    return bool(lane_now >= 0 and lane_now == lane_after)


def chord_lane_change(times_s: np.ndarray, ego_xy: np.ndarray, ego_yaw: np.ndarray,
                      config: ManeuverLabelConfig = ManeuverLabelConfig()) -> Optional[Maneuver]:
    """Rule 3 without a lane map (module docstring) on the ego's track (lateral_shift_m's arguments):
    CHANGE_LANE_LEFT / RIGHT or None."""
    shift, turn = lateral_shift_m(times_s, ego_xy, ego_yaw, config)
    if abs(shift) >= config.lane_change_shift_m and abs(turn) < config.lane_change_max_turn_rad:
        return Maneuver.CHANGE_LANE_LEFT if shift > 0 else Maneuver.CHANGE_LANE_RIGHT
    return None


def lateral_shift_m(times_s: np.ndarray, ego_xy: np.ndarray, ego_yaw: np.ndarray,
                    config: ManeuverLabelConfig = ManeuverLabelConfig()) -> Tuple[float, float]:
    """Rule 3's sideways move [m, + left] over the window from the first pose (at most lane_change_half_window_s
    before the keyframe) to lane_change_half_window_s after it, perpendicular to the mean of the end headings,
    and the heading's turn over the window [rad]; from the ego's track: ``times_s`` (K,) [s] from the keyframe,
    ``ego_xy`` (K, 2) [m] and ``ego_yaw`` (K,) [rad] in the keyframe's ego frame (ego_log.track_from_poses)."""
    end = int(np.argmin(np.abs(np.asarray(times_s) - config.lane_change_half_window_s)))
    turn = math.remainder(ego_yaw[end] - ego_yaw[0], 2 * math.pi)
    mean_heading = ego_yaw[0] + turn / 2
    motion = ego_xy[end] - ego_xy[0]
    return float(-math.sin(mean_heading) * motion[0] + math.cos(mean_heading) * motion[1]), turn


def logged_maneuver(nusc: NuScenes, sample_token: str, config: ManeuverLabelConfig = ManeuverLabelConfig(),
                    use_lane_map: bool = True) -> Optional[Maneuver]:
    """The label of a keyframe from the tables: its LIDAR_TOP poses interpolated to ``config.window_times_s``,
    its ground-truth road users and its log's lane map where the data has one (and ``use_lane_map``: False labels
    from the poses alone, as data without a map); None when the log does not reach ``horizon_s`` past the
    keyframe."""
    times = config.window_times_s
    xy, yaw, valid = ego_track(nusc, sample_token, times)
    if not np.all(valid[times >= 0]):
        return None
    first = int(np.argmax(valid))  # the past may begin later, at the scene's start
    current = keyframe_lidar_pose(nusc, sample_token)
    truth = sample_ground_truth(nusc, sample_token, current.ego_to_global).boxes
    road_users = truth.centers[np.isin(truth.labels, VEHICLE_LABELS), :2]
    lanes = keyframe_lanes(nusc, sample_token, current.ego_to_global.inverse()) if use_lane_map else None
    return label_maneuver(times[first:], xy[first:], yaw[first:], road_users, config, lanes)


def write_scripted_maneuvers(table_dir: Union[str, Path], labels: Dict[str, Maneuver]) -> Path:
    """Writes ``<table_dir>/ego_maneuvers.json`` ({sample token: maneuver value}, sorted keys: byte-stable)."""
    path = Path(table_dir) / SCRIPTED_LABELS_FILE
    path.write_text(json.dumps({token: label.value for token, label in labels.items()}, sort_keys=True, indent=0))
    return path


def read_scripted_maneuvers(table_dir: Union[str, Path]) -> Dict[str, Maneuver]:
    """The scripted labels beside a world's tables; a ValueError naming the file when it is absent or bad."""
    path = Path(table_dir) / SCRIPTED_LABELS_FILE
    try:
        raw = json.loads(path.read_text())
        return {str(token): Maneuver(value) for token, value in raw.items()}
    except (OSError, ValueError, AttributeError) as error:
        raise ValueError(f"{path}: no readable scripted maneuver labels ({error})") from None
