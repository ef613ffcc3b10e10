"""The rule-based planner: agents predicted over the horizon, maneuvers evaluated, one chosen safety first.

Rules, in order (frame and lanes: see perception.decision.types):

1. Agents in the path: ahead of the ego's centre now, and predicted (``predict_agents``) in the ego lane at
   some time of the horizon while still ahead of the ego's centre (the ego moving on at its speed); the
   straight segments between prediction steps count, so cut-ins and crossing pedestrians do, an oncoming car
   drifting across the lane behind the ego does not. For each: the bumper-to-bumper gap along x, the
   time-to-collision gap / (ego speed - vx) (constant velocities along x; inf when not closing), and the
   deceleration needed to come down to its forward speed max(vx, 0) before the gap shrinks to
   ``standstill_gap_m``.
2. STOP / BRAKE when an agent in the path has a TTC below ``min_ttc_s`` or needs more than
   ``comfortable_decel_mps2``: the plan slows to the slowest such agent's forward speed (STOP when that agent
   is stopped, i.e. vx <= ``stopped_speed_mps``, else BRAKE) at the needed deceleration, clipped to
   [comfortable, max].
3. FOLLOW when an agent in the path is within the look-ahead: the target speed lets the ego slow comfortably
   to the lead's speed at the gap standstill_gap + headway * lead speed. STOP behind a stopped lead when that
   target is a standstill or the gap is within ``queue_creep_m`` of the standstill gap (no creeping up a
   queue). Instead of following, CHANGE_LANE_LEFT / RIGHT passes a lead more than ``min_speed_gain_mps`` slower
   than the speed limit and at least that much slower than the neighbouring lane allows, when that lane exists and
   its gap check passes (the faster lane; left on a tie). The choice depends on speeds, not on the gap, so moving
   the lead closer never turns FOLLOW into a lane change. When it follows such a lead, its reason says why it does
   not pass: a side without a lane, the agents failing a side's gap check, or the side's speed.
4. KEEP_LANE at the speed limit otherwise.

The speed limit is the cruise speed, lowered on a curve to keep the lateral acceleration within
``max_lateral_accel_mps2`` (``speed_limit_mps``).

Lane-change gap check (``lane_change_left_ok`` / ``right_ok``): every agent predicted in the neighbouring lane
at some time keeps, at each prediction step, a gap of at least ``lane_change_min_gap_m`` plus
``lane_change_front_time_gap_s`` x ego speed ahead of the ego, or plus ``lane_change_rear_time_gap_s`` x its own
forward speed behind it, the ego moving on at its current speed. A lane change is feasible where the lane
exists (without a lane map both are assumed to) and its gap check passes.

The plan (``lane_plan``): the speed moves from the ego's speed to the target at ``comfortable_accel_mps2`` or at
the chosen deceleration, along the ego lane's path: with a lane map its centre line, which the plan joins from
where the ego is (its offset and heading) along a quintic over ``lane_change_duration_s``; without one the ego's
current curvature (yaw rate / speed). A lane change moves one lane width sideways along the same quintic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from perception.classes import DETECTION_CLASSES
from perception.datasets.lane_map import LaneCentres
from perception.decision.ego_state import EgoState
from perception.decision.lanes import EgoLanes, ego_lanes
from perception.decision.prediction import half_length_along_x, lane_segments, predict_agents
from perception.decision.types import Decision, Maneuver, PlannerConfig
from perception.geometry import Boxes3D


@dataclass(frozen=True)
class AgentAssessment:
    """Per-agent quantities of rule 1 for N agents (the boxes kept by ``min_score``), all (N,).

    predicted (N, T + 1, 3) [x, y, yaw] at 0, step_s, ..., horizon; in_path bool; gap_m bumper-to-bumper gap
    along x (negative when overlapping); forward_speed_mps max(vx, 0); ttc_s (inf when not in the path or not
    closing); required_decel_mps2 (0 when none is needed, inf when the gap is already below the standstill gap
    while closing); follow_speed_mps the speed from which the ego slows comfortably to the agent's forward speed
    at the following gap; accelerations_mps2 the ones the prediction used (0 without); ``lanes`` the keyframe's
    lanes and across_m (N, T + 1) [m] each predicted centre's lateral offset from the ego lane's centre line.
    """

    predicted: np.ndarray
    in_path: np.ndarray
    gap_m: np.ndarray
    forward_speed_mps: np.ndarray
    ttc_s: np.ndarray
    required_decel_mps2: np.ndarray
    follow_speed_mps: np.ndarray
    accelerations_mps2: np.ndarray
    lanes: EgoLanes
    across_m: np.ndarray


def assess_agents(boxes: Boxes3D, ego_speed_mps: float, config: PlannerConfig,
                  accelerations_mps2: Optional[np.ndarray] = None, lanes: Optional[EgoLanes] = None
                  ) -> AgentAssessment:
    """Rule 1 for every box (see the module docstring); ``ego_speed_mps`` >= 0; the agents predicted with
    predict_agents' optional accelerations; ``lanes`` the keyframe's (default: straight)."""
    lanes = EgoLanes(config.lane_width_m) if lanes is None else lanes
    times_s = np.concatenate([[0.0], config.step_times_s])
    predicted = predict_agents(boxes, times_s, accelerations_mps2)
    across = lanes.across_m(predicted[:, :, :2])
    x_now = boxes.centers[:, 0]
    ahead = predicted[:, :, 0] > config.rear_axle_to_center_m + ego_speed_mps * times_s  # (N, T + 1)
    segment_ahead = ahead[:, :-1] | ahead[:, 1:]
    in_lane = lane_segments(across, 0, lanes.width_m)
    in_path = ahead[:, 0] & np.any(in_lane & segment_ahead, axis=1)
    gap = x_now - half_length_along_x(boxes.sizes, boxes.yaws) - config.ego_front_m
    vx = boxes.velocities[:, 0]
    forward_speed = np.maximum(vx, 0.0)
    closing = ego_speed_mps - vx
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ttc = np.where(closing > 0, np.maximum(gap, 0.0) / closing, np.inf)
        speed_to_lose = np.maximum(ego_speed_mps - forward_speed, 0.0)
        room = gap - config.standstill_gap_m
        required = np.where(speed_to_lose <= 0, 0.0,
                            np.where(room > 0, speed_to_lose ** 2 / (2 * room), np.inf))
    ttc = np.where(in_path, ttc, np.inf)
    required = np.where(in_path, required, 0.0)
    spare = gap - (config.standstill_gap_m + config.headway_s * forward_speed)
    follow_speed = np.where(
        spare >= 0,
        forward_speed + np.sqrt(2 * config.comfortable_decel_mps2 * np.maximum(spare, 0.0)),
        np.maximum(forward_speed + spare / config.headway_s, 0.0),
    )
    accelerations = np.zeros(len(boxes)) if accelerations_mps2 is None else np.asarray(accelerations_mps2, float)
    return AgentAssessment(predicted, in_path, gap, forward_speed, ttc, required, follow_speed, accelerations,
                           lanes, across)


def lane_change_blockers(assessment: AgentAssessment, boxes: Boxes3D, lane: int, ego_speed_mps: float,
                         config: PlannerConfig) -> np.ndarray:
    """(K,) indices into ``boxes`` of the agents that fail the gap check (module docstring) for neighbouring
    ``lane`` (+1 left, -1 right); empty when the check passes (whether that lane exists is the caller's)."""
    predicted = assessment.predicted
    relevant = np.flatnonzero(np.any(lane_segments(assessment.across_m, lane, assessment.lanes.width_m), axis=1))
    if not len(relevant):
        return relevant
    predicted = predicted[relevant]
    times_s = np.concatenate([[0.0], config.step_times_s])[None, :]  # (1, T + 1)
    half_length = half_length_along_x(boxes.sizes[relevant][:, None, :], predicted[:, :, 2])  # (M, T + 1)
    ego_travel = ego_speed_mps * times_s
    ahead = predicted[:, :, 0] >= config.rear_axle_to_center_m + ego_travel
    gap_ahead = predicted[:, :, 0] - half_length - (config.ego_front_m + ego_travel)
    gap_behind = (config.ego_rear_m + ego_travel) - (predicted[:, :, 0] + half_length)
    need_ahead = config.lane_change_min_gap_m + config.lane_change_front_time_gap_s * ego_speed_mps
    follower_speed = np.maximum(boxes.velocities[relevant, 0], 0.0)[:, None]
    need_behind = config.lane_change_min_gap_m + config.lane_change_rear_time_gap_s * follower_speed
    clear = np.where(ahead, gap_ahead >= need_ahead, gap_behind >= need_behind)
    return relevant[~np.all(clear, axis=1)]


def lane_speed_mps(assessment: AgentAssessment, boxes: Boxes3D, lane: int, lookahead_m: float, limit_mps: float,
                   config: PlannerConfig) -> float:
    """The speed lane ``lane`` allows: ``limit_mps``, or the slowest forward speed of the agents ahead of the
    ego predicted in it within the look-ahead when slower."""
    in_lane = np.any(lane_segments(assessment.across_m, lane, assessment.lanes.width_m), axis=1)
    in_lane &= (boxes.centers[:, 0] > config.rear_axle_to_center_m) & (assessment.gap_m <= lookahead_m)
    if not np.any(in_lane):
        return limit_mps
    return float(min(limit_mps, assessment.forward_speed_mps[in_lane].min()))


def _smoothstep5(u: np.ndarray) -> np.ndarray:
    """Quintic 0 -> 1 on u in [0, 1] with zero slope and curvature at both ends."""
    u = np.clip(u, 0.0, 1.0)
    return u ** 3 * (10 - 15 * u + 6 * u ** 2)


def travelled_distance_m(speed_mps: float, target_speed_mps: float, accel_mps2: float, decel_mps2: float,
                         times_s: np.ndarray) -> np.ndarray:
    """(T,) distance [m] covered by ``times_s`` (T,) [s] when the speed goes from ``speed_mps`` to
    ``target_speed_mps`` at constant ``accel_mps2`` (speeding up) or ``decel_mps2`` (slowing down), then holds."""
    rate = accel_mps2 if target_speed_mps >= speed_mps else -decel_mps2
    reach_s = (target_speed_mps - speed_mps) / rate
    ramp = np.minimum(times_s, reach_s)
    return speed_mps * ramp + rate * ramp ** 2 / 2 + target_speed_mps * np.maximum(times_s - reach_s, 0.0)


def path_curvature_1pm(ego: EgoState, config: PlannerConfig) -> float:
    """Curvature [1/m] the plan keeps: yaw rate / speed, clipped to max_curvature_1pm; 0 below
    min_speed_for_curvature_mps."""
    speed = max(ego.speed_mps, 0.0)
    if speed < config.min_speed_for_curvature_mps:
        return 0.0
    return float(np.clip(ego.yaw_rate_rps / speed, -config.max_curvature_1pm, config.max_curvature_1pm))


def speed_limit_mps(ego: EgoState, config: PlannerConfig) -> float:
    """The cruise speed, lowered on a curve so that the lateral acceleration stays within max_lateral_accel_mps2."""
    curvature = abs(path_curvature_1pm(ego, config))
    if curvature == 0.0:
        return config.cruise_speed_mps
    return float(min(config.cruise_speed_mps, math.sqrt(config.max_lateral_accel_mps2 / curvature)))


def plan_trajectory(ego: EgoState, target_speed_mps: float, decel_mps2: float, lane_offset: int,
                    config: PlannerConfig, lanes: Optional[EgoLanes] = None) -> np.ndarray:
    """(horizon_steps, 2) waypoints [x, y] [m] of the rear axle at config.step_times_s (see module docstring):
    the distances the speed profile covers along ``lane_plan`` towards ``lane_offset`` (+1 one lane left, -1 right,
    0 the ego lane) of the keyframe's ``lanes`` (None: the straight lanes, config.lane_width_m wide)."""
    speed = max(ego.speed_mps, 0.0)
    distance = travelled_distance_m(speed, target_speed_mps, config.comfortable_accel_mps2, decel_mps2,
                                    config.step_times_s)
    return lane_plan(distance, ego, config, lanes or EgoLanes(config.lane_width_m), lane_offset)


def lane_plan(distance_m: np.ndarray, ego: EgoState, config: PlannerConfig, lanes: EgoLanes,
              lane_offset: int = 0) -> np.ndarray:
    """(T, 2) rear-axle waypoints [x, y] [m] at the first T of config.step_times_s, distance_m (T,) [m] along the
    ego lane's path: with a lane map its centre line (EgoLanes.centre_path), on the straight lanes the ego's
    current curvature (path_curvature_1pm: a circle from the rear axle, straight at 0). Across the path the plan
    moves from the ego's offset from it (0 on the straight lanes) to ``lane_offset`` lane widths (+ left) along a
    quintic over lane_change_duration_s that starts at the ego's lateral speed across it (speed x the sine of its
    heading relative to the path) and ends at rest across it; an ego slower than min_speed_for_curvature_mps keeps
    its offset (a standing ego's plan does not slide sideways to the line)."""
    distance_m = np.asarray(distance_m, dtype=np.float64)
    target = lane_offset * lanes.width_m
    if lanes.centre_line is None:
        xy, heading = _curvature_path(distance_m, ego, config)
        offset, lateral_speed = 0.0, 0.0
    else:
        xy, heading, offset, path_heading = lanes.centre_path(distance_m)
        lateral_speed = max(ego.speed_mps, 0.0) * math.sin(-path_heading)
        if ego.speed_mps < config.min_speed_for_curvature_mps:  # a standing ego does not slide to the line
            target, lateral_speed = target + offset, 0.0
    duration = config.lane_change_duration_s
    u = np.clip(config.step_times_s[:len(distance_m)] / duration, 0.0, 1.0)
    # the quintic Hermite blend from (offset, lateral speed, 0) to (target, 0, 0)
    lateral = (offset + (target - offset) * _smoothstep5(u)
               + lateral_speed * duration * (u - 6 * u ** 3 + 8 * u ** 4 - 3 * u ** 5))
    return xy + lateral[:, None] * np.stack([-np.sin(heading), np.cos(heading)], axis=1)


def _curvature_path(distance_m: np.ndarray, ego: EgoState, config: PlannerConfig):
    """The ego's current curvature as a path (path_curvature_1pm: a circle from the rear axle, straight at 0):
    distance_m (T,) arc lengths [m] along it -> (T, 2) points [x, y] [m] and (T,) headings [rad] there."""
    curvature = path_curvature_1pm(ego, config)
    heading = curvature * distance_m
    if abs(curvature) < 1e-9:
        return np.stack([distance_m, np.zeros_like(distance_m)], axis=1), heading
    return np.stack([np.sin(heading) / curvature, (1 - np.cos(heading)) / curvature], axis=1), heading


def describe_agent(boxes: Boxes3D, index: int, assessment: AgentAssessment, local: int) -> str:
    """'car #3 at 4.0 m/s, 12.5 m ahead': class, box index, forward speed and bumper gap; 'alongside' where the gap
    is negative and its centre is not behind the ego's rear axle, else '6.0 m behind' (its centre, as
    describe_in_lane); 'car #3 at 4.0 m/s braking at 1.9 m/s^2, ...' when its tracked acceleration is one (below
    -0.05 m/s^2, the last digit shown)."""
    name = DETECTION_CLASSES[int(boxes.labels[local])]
    acceleration = float(assessment.accelerations_mps2[local])
    braking = f" braking at {-acceleration:.1f} m/s^2" if acceleration < -0.05 else ""
    gap, x = float(assessment.gap_m[local]), float(boxes.centers[local, 0])
    where = f"{gap:.1f} m ahead" if gap >= 0 else "alongside" if x >= 0 else f"{-x:.1f} m behind"
    return f"{name} #{index} at {assessment.forward_speed_mps[local]:.1f} m/s{braking}, {where}"


def describe_in_lane(boxes: Boxes3D, index: int, local: int, side: str) -> str:
    """'car #3 6.0 m behind in the left lane at 9.0 m/s': class, box index, position along x and forward speed."""
    name = DETECTION_CLASSES[int(boxes.labels[local])]
    x = float(boxes.centers[local, 0])
    where = f"{x:.1f} m ahead" if x >= 0 else f"{-x:.1f} m behind"
    return f"{name} #{index} {where} in the {side} lane at {max(boxes.velocities[local, 0], 0.0):.1f} m/s"


def _kept_agent_values(values: Optional[np.ndarray], boxes: Boxes3D, kept: np.ndarray, name: str
                       ) -> Optional[np.ndarray]:
    """Per-box ``values`` (len(boxes),) or None -> those of the ``kept`` boxes (float64); ValueError naming
    ``name`` when their number is not the boxes'."""
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) != len(boxes):
        raise ValueError(f"{len(values)} {name} for {len(boxes)} boxes")
    return values[kept]


@dataclass(frozen=True)
class FrameAssessment:
    """What the rule planner and the safety layer read of one frame: ``kept`` (N,) the indices of the boxes
    scoring >= min_score, ``agents`` those boxes, ``speed_mps`` the ego's speed (>= 0), ``assessment`` rule 1 for
    each agent (with the keyframe's lanes), ``left_blockers`` / ``right_blockers`` the agents (indices into
    ``agents``) failing the lane-change gap check on that side and ``ttc_s`` the smallest time-to-collision (inf
    without agents)."""

    kept: np.ndarray
    agents: Boxes3D
    speed_mps: float
    assessment: AgentAssessment
    left_blockers: np.ndarray
    right_blockers: np.ndarray
    ttc_s: float

    @property
    def left_ok(self) -> bool:
        """Whether a lane change to the left is feasible: the lane exists and its gap check passes."""
        return self.assessment.lanes.has_lane(+1) and not len(self.left_blockers)

    @property
    def right_ok(self) -> bool:
        """Whether a lane change to the right is feasible: the lane exists and its gap check passes."""
        return self.assessment.lanes.has_lane(-1) and not len(self.right_blockers)


def assess_frame(boxes: Boxes3D, ego: EgoState, config: PlannerConfig,
                 agent_accelerations_mps2: Optional[np.ndarray] = None,
                 lanes: Optional[LaneCentres] = None) -> FrameAssessment:
    """The boxes scoring >= config.min_score assessed (rule 1, the lane-change gap checks) for an ego that
    reverses treated as standing; the optional per-box accelerations [m/s^2] and the map's ``lanes`` as in
    ``decide``. ValueError naming the boxes with a value that is not finite (a box that cannot be placed or
    moved is not one to ignore)."""
    finite = (np.isfinite(boxes.centers).all(axis=1) & np.isfinite(boxes.sizes).all(axis=1)
              & np.isfinite(boxes.yaws) & np.isfinite(boxes.velocities).all(axis=1) & np.isfinite(boxes.scores))
    if agent_accelerations_mps2 is not None and len(agent_accelerations_mps2) == len(boxes):
        finite &= np.isfinite(np.asarray(agent_accelerations_mps2, dtype=np.float64))
    if not finite.all():
        raise ValueError(f"boxes {np.flatnonzero(~finite).tolist()} of {len(boxes)} hold a value that is not finite "
                         f"(centre, size, yaw, velocity, score or acceleration)")
    kept = np.flatnonzero(boxes.scores >= config.min_score)
    agents = boxes[kept]
    accelerations = _kept_agent_values(agent_accelerations_mps2, boxes, kept, "agent accelerations")
    speed = max(ego.speed_mps, 0.0)
    assessment = assess_agents(agents, speed, config, accelerations, ego_lanes(lanes, config.lane_width_m))
    left, right = (lane_change_blockers(assessment, agents, lane, speed, config) for lane in (+1, -1))
    ttc = float(assessment.ttc_s.min()) if len(agents) else math.inf
    return FrameAssessment(kept, agents, speed, assessment, left, right, ttc)


def minimal_risk_stop(ego: EgoState, config: PlannerConfig, reason: str,
                      lanes: Optional[LaneCentres] = None) -> Decision:
    """The decision when nothing around the ego can be seen (none of the detector's sensors has data): STOP along
    the ego lane's path (``lanes`` as in ``decide``) at comfortable_decel_mps2, no agent, no lane change feasible
    (none can be checked), ``reason`` saying why."""
    return Decision(
        maneuver=Maneuver.STOP, target_speed_mps=0.0, ttc_s=math.inf, critical_object=-1,
        lane_change_left_ok=False, lane_change_right_ok=False,
        trajectory=plan_trajectory(ego, 0.0, config.comfortable_decel_mps2, 0, config,
                                   ego_lanes(lanes, config.lane_width_m)),
        reason=f"{Maneuver.STOP.value}: {reason}; braking to a standstill at {config.comfortable_decel_mps2:.1f} m/s^2")


# Read best whole: the rule cascade (urgent brake or stop, lane clear, queued stop, overtake, follow)
# reads top to bottom in the order the rules take precedence, each branch returning its decision.
def decide(boxes: Boxes3D, ego: EgoState, config: PlannerConfig = PlannerConfig(),
           agent_accelerations_mps2: Optional[np.ndarray] = None, lanes: Optional[LaneCentres] = None) -> Decision:
    """The decision for one frame (rules: module docstring).

    boxes: detections in the ego frame (velocities (vx, vy) m/s in the ego frame, labels into
    DETECTION_CLASSES); those scoring below config.min_score are ignored. ego: its speed (plans treat reversing
    as standing still) and yaw rate. agent_accelerations_mps2: optional (N,) [m/s^2] along each velocity
    (perception.decision.tracking) for a constant-acceleration prediction; without them agents keep constant
    velocity. lanes: the map's lanes in the ego frame where the data has a lane map (perception.decision.lanes),
    else straight lanes. ValueError when a box holds a value that is not finite (assess_frame).
    """
    frame = assess_frame(boxes, ego, config, agent_accelerations_mps2, lanes)
    kept, agents, speed, assessment = frame.kept, frame.agents, frame.speed_mps, frame.assessment
    left_ok, right_ok, ttc = frame.left_ok, frame.right_ok, frame.ttc_s
    lookahead = max(config.min_lookahead_m, speed * config.lookahead_time_s)
    limit = speed_limit_mps(ego, config)

    def decision(maneuver: Maneuver, target: float, local: int, decel: float, lane_offset: int, reason: str):
        return Decision(
            maneuver=maneuver,
            target_speed_mps=float(target),
            ttc_s=ttc,
            critical_object=int(kept[local]) if local >= 0 else -1,
            lane_change_left_ok=left_ok,
            lane_change_right_ok=right_ok,
            trajectory=plan_trajectory(ego, target, decel, lane_offset, config, assessment.lanes),
            reason=f"{maneuver.value}: {reason}",
        )

    def stopping_decel(local: int) -> float:
        return float(np.clip(assessment.required_decel_mps2[local], config.comfortable_decel_mps2,
                             config.max_decel_mps2))

    urgent = assessment.in_path & ((assessment.ttc_s < config.min_ttc_s)
                                   | (assessment.required_decel_mps2 > config.comfortable_decel_mps2))
    if np.any(urgent):
        candidates = np.flatnonzero(urgent)
        order = np.lexsort((assessment.ttc_s[candidates], assessment.forward_speed_mps[candidates]))
        local = int(candidates[order[0]])
        target = float(assessment.forward_speed_mps[local])
        stopped = target <= config.stopped_speed_mps
        ttc_text = f"TTC {assessment.ttc_s[local]:.1f} s" if math.isfinite(assessment.ttc_s[local]) else "not closing"
        reason = (f"{describe_agent(agents, kept[local], assessment, local)} in the path, {ttc_text}, "
                  f"needs {assessment.required_decel_mps2[local]:.1f} m/s^2")
        if stopped:
            return decision(Maneuver.STOP, 0.0, local, stopping_decel(local), 0, reason)
        return decision(Maneuver.BRAKE, target, local, stopping_decel(local), 0, reason)

    followed = assessment.in_path & (assessment.gap_m <= lookahead)
    if not np.any(followed):
        return decision(Maneuver.KEEP_LANE, limit, -1, config.comfortable_decel_mps2, 0,
                        f"lane clear for {lookahead:.0f} m")
    candidates = np.flatnonzero(followed)
    order = np.lexsort((assessment.gap_m[candidates], assessment.follow_speed_mps[candidates]))
    local = int(candidates[order[0]])
    lead_text = describe_agent(agents, kept[local], assessment, local)
    target = min(limit, float(assessment.follow_speed_mps[local]))
    lead_speed = float(assessment.forward_speed_mps[local])
    queued = assessment.gap_m[local] <= config.standstill_gap_m + config.queue_creep_m
    if lead_speed <= config.stopped_speed_mps and (queued or target <= config.stopped_speed_mps):
        return decision(Maneuver.STOP, 0.0, local, stopping_decel(local), 0, f"queued behind {lead_text}")
    not_passing = ""
    if lead_speed < limit - config.min_speed_gain_mps:
        options, refusals = [], []
        sides = ((+1, frame.left_blockers, Maneuver.CHANGE_LANE_LEFT),
                 (-1, frame.right_blockers, Maneuver.CHANGE_LANE_RIGHT))
        for lane, blockers, maneuver in sides:
            side = "left" if lane > 0 else "right"
            allowed = lane_speed_mps(assessment, agents, lane, lookahead, limit, config)
            if not assessment.lanes.has_lane(lane):
                refusals.append(f"no {side} lane on the lane map")
            elif len(blockers):
                refusals.append(f"{side} lane blocked by "
                                + ", ".join(describe_in_lane(agents, kept[i], i, side) for i in blockers))
            elif allowed < lead_speed + config.min_speed_gain_mps:
                refusals.append(f"{side} lane allows {allowed:.1f} m/s, under the "
                                f"{lead_speed + config.min_speed_gain_mps:.1f} m/s a pass needs")
            else:
                options.append((allowed, lane, maneuver))
        if options:
            allowed, lane, maneuver = max(options, key=lambda option: option[0])  # first (left) wins a tie
            side = "left" if lane > 0 else "right"
            return decision(maneuver, allowed, local, config.comfortable_decel_mps2, lane,
                            f"passing {lead_text}; {side} lane clear, allows {allowed:.1f} m/s")
        not_passing = "; not passing: " + "; ".join(refusals)
    return decision(Maneuver.FOLLOW, target, local, config.comfortable_decel_mps2, 0,
                    f"following {lead_text}, target {target:.1f} m/s{not_passing}")
