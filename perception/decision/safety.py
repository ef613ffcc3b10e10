"""The safety layer: the rule planner's checks applied to any proposed plan (the learned planning head's, a
baseline's), with the rationale of every outcome.

``check_plan(trajectory, maneuver, boxes, ego)`` predicts the agents as the rule planner does (perception.decision
.planner, rule 1) and, in this order:

1. a lane change into a lane whose gap check fails is refused: the rule planner's own decision replaces it, and
   the reason names each agent that blocks the lane (where it is, how fast);
2. a plan whose ego footprint (perception.decision.collision) overlaps an agent's predicted footprint at some step
   is vetoed;
3. a plan that leaves no braking margin is vetoed: at some step an agent is ahead of the planned position within
   half a lane of it, and the bumper-to-bumper gap is below ``standstill_gap_m`` plus what braking at
   ``max_decel_mps2`` from the planned speed down to the agent's forward speed needs.

A veto falls back to a braking plan in the ego's lane: down to the blocking agent's forward speed (STOP when it
stands), at the deceleration it needs clipped to [comfortable, max]. A kept plan keeps its maneuver; its reason
names the closest agent in the path, its gap and TTC.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from perception.classes import DETECTION_CLASSES
from perception.decision.collision import ego_footprints, footprints_overlap
from perception.decision.ego_state import EgoState
from perception.decision.planner import (
    assess_agents, decide, describe_agent, lane_change_blockers, plan_trajectory,
)
from perception.decision.prediction import half_length_along_x
from perception.decision.types import Decision, PlannerConfig
from perception.geometry import Boxes3D
from perception.maneuvers import Maneuver


def check_plan(trajectory: np.ndarray, maneuver: Maneuver, boxes: Boxes3D, ego: EgoState,
               config: PlannerConfig = PlannerConfig(), agent_yaw_rates_rps: Optional[np.ndarray] = None) -> Decision:
    """The decision for a proposed plan (module docstring): trajectory (horizon_steps, 2) ego-frame rear-axle
    waypoints [x, y] [m] at config.step_times_s, maneuver the one it claims; boxes the detections (scores below
    config.min_score ignored), ego the state the plan starts from."""
    trajectory = np.asarray(trajectory, dtype=np.float64)
    if trajectory.shape != (config.horizon_steps, 2) or not np.all(np.isfinite(trajectory)):
        raise ValueError(f"check_plan: the trajectory must be finite ({config.horizon_steps}, 2), got "
                         f"{trajectory.shape}")
    kept = np.flatnonzero(boxes.scores >= config.min_score)
    agents = boxes[kept]
    yaw_rates = None if agent_yaw_rates_rps is None else np.asarray(agent_yaw_rates_rps, np.float64).reshape(-1)[kept]
    speed = max(ego.speed_mps, 0.0)
    assessment = assess_agents(agents, speed, config, yaw_rates)
    blockers = {lane: lane_change_blockers(assessment, agents, lane, speed, config) for lane in (+1, -1)}
    ttc = float(assessment.ttc_s.min()) if len(agents) else math.inf

    if maneuver.is_lane_change:
        lane, side = (+1, "left") if maneuver is Maneuver.CHANGE_LANE_LEFT else (-1, "right")
        if len(blockers[lane]):
            fallback = decide(boxes, ego, config, agent_yaw_rates_rps)
            blocking = "; ".join(_describe_in_lane(agents, kept[i], i, side) for i in blockers[lane])
            return Decision(fallback.maneuver, fallback.target_speed_mps, fallback.ttc_s, fallback.critical_object,
                            fallback.lane_change_left_ok, fallback.lane_change_right_ok, fallback.trajectory,
                            f"{fallback.maneuver.value}: refused {maneuver.value}, blocked by {blocking}; "
                            f"{fallback.reason}", vetoed=True)

    def decision(chosen: Maneuver, target: float, local: int, plan: np.ndarray, reason: str, vetoed: bool):
        return Decision(chosen, float(target), ttc, int(kept[local]) if local >= 0 else -1,
                        not len(blockers[+1]), not len(blockers[-1]), plan, f"{chosen.value}: {reason}", vetoed)

    hazard = _first_hazard(trajectory, agents, assessment.predicted, config)
    if hazard is not None:
        local, step, what = hazard
        target = float(assessment.forward_speed_mps[local])
        stopped = target <= config.stopped_speed_mps
        target = 0.0 if stopped else target
        needed = assessment.required_decel_mps2[local] if assessment.in_path[local] else config.max_decel_mps2
        decel = float(np.clip(needed, config.comfortable_decel_mps2, config.max_decel_mps2))
        chosen = Maneuver.STOP if stopped else Maneuver.BRAKE
        reason = (f"vetoed the proposed {maneuver.value} plan: {describe_agent(agents, kept[local], assessment, local)}"
                  f" {what} at {config.step_times_s[step]:.1f} s; braking at {decel:.1f} m/s^2")
        return decision(chosen, target, local, plan_trajectory(ego, target, decel, 0, config), reason, True)

    planned_speed = float(np.linalg.norm(trajectory[-1] - trajectory[-2]) / config.step_s)
    in_path = np.flatnonzero(assessment.in_path)
    if not len(in_path):
        return decision(maneuver, planned_speed, -1, trajectory, "proposed plan kept; no agent in the path", False)
    local = int(in_path[np.argmin(assessment.gap_m[in_path])])
    ttc_text = f"TTC {assessment.ttc_s[local]:.1f} s" if math.isfinite(assessment.ttc_s[local]) else "not closing"
    return decision(maneuver, planned_speed, local, trajectory,
                    f"proposed plan kept; closest in the path: {describe_agent(agents, kept[local], assessment, local)}"
                    f", {ttc_text}", False)


def _first_hazard(trajectory: np.ndarray, agents: Boxes3D, predicted: np.ndarray, config: PlannerConfig):
    """(agent, step, description) of the earliest collision (checks 2) or missing braking margin (check 3) of the
    plan against the agents' predictions (N, T + 1, 3) [x, y, yaw]; None when the plan is clear."""
    steps = config.horizon_steps
    if not len(agents):
        return None
    per_step = [Boxes3D(centers=np.c_[predicted[:, k + 1, :2], agents.centers[:, 2]], sizes=agents.sizes,
                        yaws=predicted[:, k + 1, 2]) for k in range(steps)]
    for step, footprint in enumerate(ego_footprints(trajectory, config)):
        overlaps = np.flatnonzero(footprints_overlap(footprint, per_step[step].bev_corners()))
        if len(overlaps):
            return int(overlaps[0]), step, "collides with the plan"
    previous = np.vstack([[0.0, 0.0], trajectory[:-1]])
    planned_speed = np.linalg.norm(trajectory - previous, axis=1) / config.step_s  # (T,)
    forward_speed = np.maximum(agents.velocities[:, 0], 0.0)
    for step in range(steps):
        ahead = predicted[:, step + 1, 0] - trajectory[step, 0]
        beside = np.abs(predicted[:, step + 1, 1] - trajectory[step, 1]) <= config.lane_width_m / 2
        gap = ahead - half_length_along_x(agents.sizes, predicted[:, step + 1, 2]) - config.ego_front_m
        need = config.standstill_gap_m + np.maximum(planned_speed[step] ** 2 - forward_speed ** 2, 0.0) / (
            2 * config.max_decel_mps2)
        short = np.flatnonzero((ahead > config.rear_axle_to_center_m) & beside & (gap < need))
        if len(short):
            local = int(short[np.argmin(gap[short])])
            return local, step, f"leaves {gap[local]:.1f} m of the {need[local]:.1f} m braking margin"
    return None


def _describe_in_lane(boxes: Boxes3D, index: int, local: int, side: str) -> str:
    """'car #3 6.0 m behind in the left lane at 9.0 m/s': class, box index, position along x and forward speed."""
    name = DETECTION_CLASSES[int(boxes.labels[local])]
    x = float(boxes.centers[local, 0])
    where = f"{x:.1f} m ahead" if x >= 0 else f"{-x:.1f} m behind"
    return f"{name} #{index} {where} in the {side} lane at {max(boxes.velocities[local, 0], 0.0):.1f} m/s"
