"""Typed decision outputs and the planner's parameters.

Frame: every position is in the ego frame of the decision's keyframe (x forward, y left, metres, origin at the
rear axle; see perception.geometry). Lanes (perception.decision.lanes): where the data has a lane map, they follow
the ego lane's centre line; without one, lanes are straight lines parallel to the ego's x axis,
``PlannerConfig.lane_width_m`` wide, the ego centred in lane 0. An agent at lateral offset d from the ego lane's
centre line (y on straight lanes) is in lane ``round(d / lane width)`` (lane +1 is the left neighbour, -1 the right
one); distances along the lanes are measured along the ego's x axis.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Dict

import numpy as np

from perception.maneuvers import PLAN_HORIZON_STEPS, PLAN_STEP_S, Maneuver


@dataclass(frozen=True)
class PlannerConfig:
    """Every parameter of the rule-based planner (units in the names: m, s, m/s, m/s^2, 1/m).

    The ego footprint defaults are the nuScenes ego car (Renault Zoe, 4.084 m x 1.85 m, the values UniAD's and
    ST-P3's collision checks use); its centre lies ``rear_axle_to_center_m`` ahead of the ego origin (the rear
    axle).
    """

    lane_width_m: float = 3.5
    """Width of the assumed straight lanes (without a lane map), of a planned lane change's sideways move and of
    the safety layer's lane around a plan (perception.decision.safety: half of it either side)."""
    cruise_speed_mps: float = 13.9
    """Speed on a free road: the speed limit, 50 km/h (urban Boston and Singapore)."""
    headway_s: float = 1.5
    """Time gap kept to a lead vehicle when following."""
    standstill_gap_m: float = 2.5
    """Bumper-to-bumper gap kept to a stopped lead."""
    safety_gap_m: float = 1.0
    """Bumper-to-bumper gap the safety layer requires beyond the braking distance (perception.decision.safety,
    check 3): below standstill_gap_m, which is where the planner stops, not a limit of safety. The synthetic world's
    driver stops 1.9-2.7 m behind a lead (ground truth); detected boxes move by a few decimetres."""
    queue_creep_m: float = 3.0
    """Behind a stopped lead with less than standstill_gap_m + this, the ego stops instead of creeping up."""
    comfortable_decel_mps2: float = 2.5
    """Deceleration of ordinary slowing down; needing more than this to match a lead's speed means BRAKE/STOP."""
    max_decel_mps2: float = 6.0
    """Hardest deceleration the plan uses."""
    slowdown_step_mps2: float = 0.5
    """The safety layer first slows a vetoed plan along its own path, at the least multiple of this deceleration
    below max_decel_mps2, else max_decel_mps2 itself, that clears its checks (perception.decision.safety)."""
    comfortable_accel_mps2: float = 1.5
    """Acceleration used to speed up towards the target speed."""
    min_ttc_s: float = 3.0
    """A time-to-collision below this with an agent in the path means BRAKE/STOP."""
    stopped_speed_mps: float = 0.5
    """An agent moving slower than this along x (or towards the ego) is treated as stopped."""
    lookahead_time_s: float = 4.0
    """Agents in the path closer than max(min_lookahead_m, speed * lookahead_time_s) are followed."""
    min_lookahead_m: float = 20.0
    min_speed_gain_mps: float = 2.0
    """A lane change is chosen only to pass a lead more than this much slower than the cruise speed and at least
    this much slower than what the target lane allows."""
    lane_change_min_gap_m: float = 3.0
    """Smallest bumper-to-bumper gap to any agent in the target lane during a lane change."""
    lane_change_front_time_gap_s: float = 1.0
    """Extra gap ahead in the target lane: this many seconds at the ego's speed."""
    lane_change_rear_time_gap_s: float = 1.0
    """Extra gap behind in the target lane: this many seconds at the follower's speed."""
    lane_change_duration_s: float = 4.0
    """Time the planned lateral move of one lane width takes (quintic profile)."""
    min_score: float = 0.3
    """Detections scoring below this are ignored."""
    horizon_steps: int = PLAN_HORIZON_STEPS
    step_s: float = PLAN_STEP_S
    """The plan and the agent predictions: ``horizon_steps`` points at step_s, 2 * step_s, ..."""
    ego_length_m: float = 4.084
    ego_width_m: float = 1.85
    """The ego's footprint in the collision grading and the safety layer [m]: the size ST-P3's and UniAD's
    PlanningMetric give the ego (a Renault ZOE's length; 0.12 m wider than its 1.73 m body,
    perception.datasets.synthetic.rig.EGO_BODY_BOXES_M), so that collision rates compare with theirs."""
    rear_axle_to_center_m: float = 1.4
    max_curvature_1pm: float = 0.2
    """Without a lane map the plan follows the ego's current curvature (yaw rate / speed), clipped to this."""
    max_lateral_accel_mps2: float = 3.0
    """On the ego's current curve (map or none) the target speed is capped so that speed^2 * curvature stays
    below this."""
    min_speed_for_curvature_mps: float = 1.0
    """Below this speed the yaw rate says little about the path: without a lane map the plan goes straight; with one it
    keeps the ego's offset from the lane's centre line."""

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not math.isfinite(value):
                raise ValueError(f"PlannerConfig.{item.name} must be finite, got {value}")
            if item.name != "min_score" and value <= 0:
                raise ValueError(f"PlannerConfig.{item.name} must be > 0, got {value}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"PlannerConfig.min_score must lie in [0, 1], got {self.min_score}")
        for name in ("comfortable_decel_mps2", "slowdown_step_mps2"):
            if getattr(self, name) > self.max_decel_mps2:
                raise ValueError(f"PlannerConfig: {name} {getattr(self, name)} exceeds max_decel_mps2 "
                                 f"{self.max_decel_mps2}")

    @property
    def step_times_s(self) -> np.ndarray:
        """(horizon_steps,) the plan's times [s]: step_s, 2 * step_s, ..., horizon_steps * step_s."""
        return self.step_s * np.arange(1, self.horizon_steps + 1)

    @property
    def ego_front_m(self) -> float:
        """x of the ego's front bumper in the ego frame."""
        return self.rear_axle_to_center_m + self.ego_length_m / 2

    @property
    def ego_rear_m(self) -> float:
        """x of the ego's rear bumper in the ego frame."""
        return self.rear_axle_to_center_m - self.ego_length_m / 2


@dataclass(frozen=True, eq=False)
class Decision:
    """The planner's output for one frame.

    maneuver; target_speed_mps the speed the plan heads for (the rule planner's target; of a plan the safety layer
    keeps or slows along its path, its speed over the last step; of its braking fallback, the speed it brakes down
    to); ttc_s the smallest time-to-collision with an agent in the ego's path (inf when none closes in);
    critical_object the index (into the boxes given to ``decide``) of the agent that set the maneuver (the one
    braked or stopped for, followed, or passed), -1 for none; lane_change_left_ok / lane_change_right_ok whether the
    neighbouring lane exists and the rule planner's gap check passes (its front and rear time gaps,
    perception.decision.planner; the safety layer refuses a proposed lane change only for a follower it cuts in
    front of or a missing lane, so a kept lane change may read False here); trajectory (horizon_steps, 2) ego-frame
    waypoints [x, y] in metres of the rear axle at step_s, 2 * step_s, ... seconds; reason a short human-readable
    explanation (the rationale: the agent, gap and TTC that set the maneuver, or what blocks a refused lane change);
    vetoed whether a safety check changed the proposed plan.
    """

    maneuver: Maneuver
    target_speed_mps: float
    ttc_s: float
    critical_object: int
    lane_change_left_ok: bool
    lane_change_right_ok: bool
    trajectory: np.ndarray
    reason: str
    vetoed: bool = False
    """True when the safety layer (perception.decision.safety) changed the proposed plan: slowed it, kept a refused
    lane change in the ego's lane, or replaced it by its fallback."""

    def __post_init__(self) -> None:
        trajectory = np.array(self.trajectory, dtype=np.float64)
        if trajectory.ndim != 2 or trajectory.shape[1] != 2 or not np.all(np.isfinite(trajectory)):
            raise ValueError(f"Decision.trajectory must be a finite (T, 2) array [x, y], got shape {trajectory.shape}")
        if math.isnan(self.ttc_s) or self.ttc_s < 0:
            raise ValueError(f"Decision.ttc_s must be >= 0 or inf, got {self.ttc_s}")
        trajectory.setflags(write=False)
        object.__setattr__(self, "trajectory", trajectory)
        object.__setattr__(self, "maneuver", Maneuver(self.maneuver))

    def to_json(self) -> Dict[str, Any]:
        """A JSON-serialisable dict (strict JSON: an infinite TTC is written as null)."""
        return {
            "maneuver": self.maneuver.value,
            "target_speed_mps": float(self.target_speed_mps),
            "ttc_s": float(self.ttc_s) if math.isfinite(self.ttc_s) else None,
            "critical_object": int(self.critical_object),
            "lane_change_left_ok": bool(self.lane_change_left_ok),
            "lane_change_right_ok": bool(self.lane_change_right_ok),
            "trajectory": self.trajectory.tolist(),
            "reason": self.reason,
            "vetoed": bool(self.vetoed),
        }

    @classmethod
    def from_json(cls, record: Dict[str, Any]) -> "Decision":
        """The inverse of ``to_json``."""
        ttc = record["ttc_s"]
        return cls(
            maneuver=Maneuver(record["maneuver"]),
            target_speed_mps=float(record["target_speed_mps"]),
            ttc_s=math.inf if ttc is None else float(ttc),
            critical_object=int(record["critical_object"]),
            lane_change_left_ok=bool(record["lane_change_left_ok"]),
            lane_change_right_ok=bool(record["lane_change_right_ok"]),
            trajectory=np.asarray(record["trajectory"], dtype=np.float64),
            reason=str(record["reason"]),
            vetoed=bool(record.get("vetoed", False)),
        )
