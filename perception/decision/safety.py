"""The safety layer: the rule planner's checks applied to any proposed plan (the learned planning head's, a
baseline's), with the rationale of every outcome.

``check_plan(trajectory, maneuver, boxes, ego)`` predicts the agents as the rule planner does (perception.decision
.planner, rule 1), sees them from the plan (at each step, along the planned path and across it:
perception.decision.collision.path_coordinates, the plan's own curve, not the keyframe's lanes) and, in
this order:

1. a lane-change plan (one named so, or, with a lane map, one whose last waypoint lies in another lane whatever its
   name: the label rules name a lane change only from a second before the crossing) that ends towards a side where
   the lane map has no lane of the ego's direction (its last waypoint's lane, perception.decision.lanes, taken as the
   neighbour on that side when further out: an overshoot is checks 2 and 3's) is refused, and so is one that cuts in
   front of a follower: an agent not in the ego's lane now comes, at some step, behind the planned position within
   half a lane of it, closer than the rule planner's rear gap (``lane_change_min_gap_m`` +
   ``lane_change_rear_time_gap_s`` x its speed along the plan). The plan's speeds are kept on the ego's current path
   instead (the same distances along the ego's current curvature, perception.decision.planner.lane_plan on the
   straight lanes; see below), named by the logged drive's label rules (STOP, BRAKE, FOLLOW or KEEP_LANE), and that
   plan goes through checks 2 and 3; the reason names the missing lane or each such agent (where it is, how fast).
   Agents ahead in the target lane are checks 2 and 3's (the rule planner's front time gap is its own comfort choice,
   not a limit of safety);
2. a plan whose ego footprint (perception.decision.collision) overlaps an agent's predicted footprint at some step
   is vetoed, unless at the first such step the agent's centre is behind the planned ego centre (along the plan)
   and it moves faster along the plan than the plan does: an agent running into the ego from behind or
   alongside, a follower or a neighbour cutting in behind the ego's front (predicted at its own speed, it then
   drives on through the ego); one the plan runs into or scrapes still vetoes. Keeping its distance is that agent's
   duty (RSS: the rear vehicle keeps the longitudinal distance, a cut-in must leave it), and the veto's braking
   plans would only close it faster; a lane change that cuts in front of a follower is check 1's;
3. a plan that leaves no braking margin is vetoed: at some step an agent (not one running into the ego, as in 2)
   is ahead of the planned position (its centre ahead of the planned ego centre) within half a lane of it, and
   the bumper-to-bumper gap is below ``safety_gap_m`` plus what braking at ``max_decel_mps2`` from the planned
   speed down to the agent's speed along the plan needs.

A veto first slows the proposed plan along its own path (its lane change, its curve): each step no further along
the path than the plan's and than braking from the ego's speed now down to the blocking agent's forward speed at
the step of the hazard (a standstill when it stands; never faster than the ego drives now) at the least multiple
of ``slowdown_step_mps2`` (0 first: no faster than now; ``max_decel_mps2`` last) with which checks 2 and 3 pass,
the same checks as every proposed plan's (its braking margin too at ``max_decel_mps2``: the layer asks one margin
of the plans it keeps and of those it writes, and plans again at the next frame). Named by the logged drive's
label rules on its steps' mean speeds (perception.datasets.maneuver_labels: STOP when it stands within the
horizon, BRAKE when it slows as a brake does), else it keeps the proposed maneuver: a plan slowed a little still
does what it proposed.

When even braking at ``max_decel_mps2`` along the path does not clear it (no gentler slowing is then sought: it
could only pass an agent by arriving before it), the veto falls back to a braking plan on the ego's current path
(lane_plan on the straight lanes): down to the blocking agent's forward speed at the step of the hazard, never
faster than the ego drives now (to a standstill when that is standing), at the deceleration the blocking agent needs
clipped to [comfortable, max] (``max_decel_mps2`` when the blocking agent is beside the path, not in it; the
need is read at constant velocities); when that plan fails checks 2 or 3 itself (the blocking agent may be beside
the path, another one in it, or brake harder than constant velocity assumed), to a standstill at
``max_decel_mps2``. Each step of these plans is no further along than the proposed plan's (a veto never plans
further than the plan it vetoes: a proposed stop harder than ``max_decel_mps2`` keeps its distances); a standstill
at ``max_decel_mps2`` that still fails is returned, and the reason names what it still meets ("even so ..."). That
fallback is named by what it does within the horizon, by the label rule for STOP (stands_still), else BRAKE (a stop
further on, or a slowing to the agent's speed). A kept plan keeps its maneuver;
its reason names the closest agent in the path, its gap and TTC.

The layer slows plans, it does not steer: its own plans keep the ego's current curvature even where the lane map
would lead the rule planner's along the ego lane's centre line. Mid-way through a lane change the mapped ego lane is
still the one being left, and a refusal along it turned the ego back in front of the traffic it was leaving (on the
dev world a faster follower then ran into the returning plan: benchmarks/RESULTS.md, "Plans along the lane map").
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import numpy as np

from perception.datasets.lane_map import LaneCentres
from perception.datasets.maneuver_labels import (VEHICLE_LABELS, ManeuverLabelConfig, brakes, label_maneuver,
                                                  same_times, stands_still)
from perception.decision.collision import ego_footprints, path_coordinates, plan_tangent_headings
from perception.decision.ego_state import EgoState
from perception.decision.lanes import EgoLanes
from perception.decision.planner import (AgentAssessment, assess_frame, decide, describe_agent, describe_in_lane,
                                         lane_plan, travelled_distance_m)
from perception.decision.prediction import half_length_along_x, lane_index, speed_factors_at
from perception.decision.types import Decision, PlannerConfig
from perception.geometry import Boxes3D, footprints_overlap
from perception.maneuvers import Maneuver


def check_plan(trajectory: np.ndarray, maneuver: Maneuver, boxes: Boxes3D, ego: EgoState,
               config: PlannerConfig = PlannerConfig(), agent_accelerations_mps2: Optional[np.ndarray] = None,
               lanes: Optional[LaneCentres] = None) -> Decision:
    """The decision for a proposed plan (module docstring): trajectory (horizon_steps, 2) ego-frame rear-axle
    waypoints [x, y] [m] at config.step_times_s, maneuver the one it claims; boxes the detections (scores below
    config.min_score ignored), ego the state the plan starts from; the agents predicted as by ``decide`` (with
    the optional per-box accelerations), an agent's speed at each step following its acceleration; ``lanes`` the
    map's in the ego frame where there is a lane map."""
    trajectory = np.asarray(trajectory, dtype=np.float64)
    if trajectory.shape != (config.horizon_steps, 2) or not np.all(np.isfinite(trajectory)):
        raise ValueError(f"check_plan: the trajectory must be finite ({config.horizon_steps}, 2), got "
                         f"{trajectory.shape} with {np.count_nonzero(~np.isfinite(trajectory))} values not finite")
    _check_label_future(config, ManeuverLabelConfig())  # its plans are named by the label rules' brake and stop
    frame = assess_frame(boxes, ego, config, agent_accelerations_mps2, lanes)
    kept, agents, speed, assessment = frame.kept, frame.agents, frame.speed_mps, frame.assessment
    left_ok, right_ok, ttc = frame.left_ok, frame.right_ok, frame.ttc_s
    speed_factors = speed_factors_at(agents, assessment.accelerations_mps2, config.step_times_s)  # (N, T)
    relative = _relative_to_plan(trajectory, agents, assessment.predicted, speed_factors, config)

    refused = ""
    frame_lanes = assessment.lanes  # the map's lanes as this keyframe reads them (EgoLanes)
    end_lane = int(np.clip(lane_index(frame_lanes.across_m(trajectory[-1]), frame_lanes.width_m), -1, 1))
    # A plan that ends in another mapped lane changes lanes whatever it is named (the label rules name a lane change
    # from a second before the crossing only). Without a map the lanes are straight and a curve would read as one:
    # there the name decides.
    if maneuver.is_lane_change or (frame_lanes.centre_line is not None and end_lane != 0):
        if maneuver.is_lane_change:
            side, what = ("left" if maneuver is Maneuver.CHANGE_LANE_LEFT else "right"), maneuver.value
        else:
            side = "left" if end_lane > 0 else "right"
            what = f"the {maneuver.value} plan's move into the {side} lane"
        followers = _lane_change_followers(relative, assessment, config)
        if not frame_lanes.has_lane(end_lane):
            refused = f"refused {what}, no {'left' if end_lane > 0 else 'right'} lane on the lane map; "
        elif len(followers):
            blocking = "; ".join(describe_in_lane(agents, kept[i], i, side) for i in followers)
            refused = f"refused {what}, blocked by {blocking}; "
        if refused:
            refused += "on the ego's current path at the plan's speeds, "
            trajectory = _on_current_path(_arc_lengths_m(trajectory), ego, config)
            maneuver = plan_label(trajectory, agents, config)
            relative = _relative_to_plan(trajectory, agents, assessment.predicted, speed_factors, config)

    def decision(chosen: Maneuver, target: float, local: int, plan: np.ndarray, reason: str, vetoed: bool):
        return Decision(chosen, float(target), ttc, int(kept[local]) if local >= 0 else -1,
                        left_ok, right_ok, plan, f"{chosen.value}: {refused}{reason}", vetoed or bool(refused))

    lane_width = assessment.lanes.width_m  # the keyframe's lanes': the map's where there is one
    hazard = _first_hazard(trajectory, agents, assessment.predicted, relative, config, lane_width)
    if hazard is not None:
        local, step, what = hazard
        found = (f"{describe_agent(agents, kept[local], assessment, local)} {what} at "
                 f"{config.step_times_s[step]:.1f} s")
        target = min(float(assessment.forward_speed_mps[local] * speed_factors[local, step]), speed)
        stopped = target <= config.stopped_speed_mps
        target = 0.0 if stopped else target
        slowed = _slowed_along_path(trajectory, speed, target, agents, assessment.predicted, speed_factors, config,
                                    lane_width)
        if slowed is not None:
            plan, decel = slowed
            speeds = plan_speeds_mps(plan, config)
            named = Maneuver.STOP if stands_still(speeds) else Maneuver.BRAKE if brakes(speeds) else maneuver
            how = f"braking at {decel:.1f} m/s^2" if decel else f"no faster than now, {speed:.1f} m/s"
            return decision(named, speeds[-1], local, plan, f"slowed the proposed {maneuver.value} plan along its "
                            f"path, {how}: {found}", True)
        needed = assessment.required_decel_mps2[local] if assessment.in_path[local] else config.max_decel_mps2
        decel = float(np.clip(needed, config.comfortable_decel_mps2, config.max_decel_mps2))
        proposed_along = _arc_lengths_m(trajectory)

        def braking(target_mps: float, decel_mps2: float):  # (plan, whether the proposed plan's distances bind)
            along = travelled_distance_m(max(ego.speed_mps, 0.0), target_mps, config.comfortable_accel_mps2,
                                         decel_mps2, config.step_times_s)
            capped = np.minimum(along, proposed_along)
            return _on_current_path(capped, ego, config), bool(np.any(capped < along))

        def hazard_of(plan: np.ndarray):
            return _first_hazard(plan, agents, assessment.predicted, _relative_to_plan(
                plan, agents, assessment.predicted, speed_factors, config), config, lane_width)

        plan, capped = braking(target, decel)
        reason = f"vetoed the proposed {maneuver.value} plan: {found}; braking at {decel:.1f} m/s^2"
        remaining = hazard_of(plan)
        if remaining is not None and not (stopped and decel == config.max_decel_mps2):
            stopped, target, decel = True, 0.0, config.max_decel_mps2
            plan, capped = braking(target, decel)
            reason += f"; that plan not clear either: stopping at {decel:.1f} m/s^2"
            remaining = hazard_of(plan)
        if capped:
            reason += ", no further along than the proposed plan"
        if remaining is not None:
            other, other_step, other_what = remaining
            reason += (f"; even so {describe_agent(agents, kept[other], assessment, other)} {other_what} at "
                       f"{config.step_times_s[other_step]:.1f} s")
        named = Maneuver.STOP if stands_still(plan_speeds_mps(plan, config)) else Maneuver.BRAKE
        return decision(named, target, local, plan, reason, True)

    planned_speed = float(plan_speeds_mps(trajectory, config)[-1])
    in_path = np.flatnonzero(assessment.in_path)
    if not len(in_path):
        return decision(maneuver, planned_speed, -1, trajectory, "proposed plan kept; no agent in the path", False)
    local = int(in_path[np.argmin(assessment.gap_m[in_path])])
    ttc_text = f"TTC {assessment.ttc_s[local]:.1f} s" if math.isfinite(assessment.ttc_s[local]) else "not closing"
    return decision(maneuver, planned_speed, local, trajectory,
                    f"proposed plan kept; closest in the path: {describe_agent(agents, kept[local], assessment, local)}"
                    f", {ttc_text}", False)


def checked_rule_decision(boxes: Boxes3D, ego: EgoState, config: PlannerConfig = PlannerConfig(),
                          agent_accelerations_mps2: Optional[np.ndarray] = None,
                          lanes: Optional[LaneCentres] = None) -> Decision:
    """The rule planner's decision (perception.decision.planner.decide) with its plan through check_plan: as decided
    when the safety layer keeps the plan, check_plan's decision when it vetoes it. The rules' own plan is not
    collision-checked: a pass speeds up from the lead's lane and can run into the lead it passes."""
    decision = decide(boxes, ego, config, agent_accelerations_mps2=agent_accelerations_mps2, lanes=lanes)
    checked = check_plan(decision.trajectory, decision.maneuver, boxes, ego, config,
                         agent_accelerations_mps2=agent_accelerations_mps2, lanes=lanes)
    return checked if checked.vetoed else decision


def plan_label(trajectory: np.ndarray, boxes: Boxes3D, config: PlannerConfig = PlannerConfig(),
               labels: ManeuverLabelConfig = ManeuverLabelConfig(), past_xy: np.ndarray = np.zeros((0, 2)),
               past_yaw: np.ndarray = np.zeros(0), lanes: Optional[LaneCentres] = None) -> Maneuver:
    """The maneuver the logged drive's label rules (perception.datasets.maneuver_labels.label_maneuver) give a
    plan (T, 2) [m] at config.step_times_s (heading along its tangent, collision.plan_tangent_headings, as the logged
    drive's is its poses' yaw), after the ego's known past (K, 2) [m] / (K,) [rad] at the last K of the rules' past
    times (none: from now), with the detected vehicles (``boxes``, ego frame, scores >= config.min_score) as the road
    users and the map's ``lanes`` where there is a lane map. ValueError when the plan's step times are not the rules'
    future, or the shapes do not fit them."""
    _check_label_future(config, labels)
    window = labels.window_times_s
    past_times = np.count_nonzero(window < 0)
    if (np.shape(trajectory) != (config.horizon_steps, 2) or np.ndim(past_xy) != 2 or np.shape(past_xy)[1] != 2
            or len(past_xy) > past_times or np.shape(past_yaw) != (len(past_xy),)):
        raise ValueError(f"plan_label: trajectory {np.shape(trajectory)}, past_xy {np.shape(past_xy)} and past_yaw "
                         f"{np.shape(past_yaw)}; expected ({config.horizon_steps}, 2), (K, 2) and (K,) with K <= "
                         f"{past_times}")
    times = window[past_times - len(past_xy):]
    vehicles = (boxes.scores >= config.min_score) & np.isin(boxes.labels, VEHICLE_LABELS)
    headings = np.concatenate([past_yaw, [0.0], plan_tangent_headings(trajectory)])
    return label_maneuver(times, np.vstack([past_xy, [[0.0, 0.0]], trajectory]), headings,
                          boxes.centers[vehicles, :2], labels, lanes)


@functools.lru_cache(maxsize=8)  # both frozen: checked once per pair (some 30 us a call, twice a frame)
def _check_label_future(config: PlannerConfig, labels: ManeuverLabelConfig) -> None:
    """ValueError when the plans' step times are not the label rules' future (the rules name plans)."""
    future = labels.window_times_s[labels.window_times_s > 0]
    if not same_times(config.step_times_s, future):
        raise ValueError(f"the plan's step times {config.step_times_s.tolist()} differ from the label rules' "
                         f"{future.tolist()}")


def plan_speeds_mps(trajectory: np.ndarray, config: PlannerConfig) -> np.ndarray:
    """(T,) the mean speed [m/s] over each step of a plan (T, 2) [m] at config.step_times_s, from the rear axle
    now at the origin."""
    previous = np.vstack([[0.0, 0.0], trajectory[:-1]])
    return np.linalg.norm(trajectory - previous, axis=1) / config.step_s


def _arc_lengths_m(trajectory: np.ndarray) -> np.ndarray:
    """(T,) how far along its path [m] a plan (T, 2) [m] is at each step, from the rear axle now at the origin."""
    return np.cumsum(np.linalg.norm(np.diff(np.vstack([[0.0, 0.0], trajectory]), axis=0), axis=1))


def _on_current_path(along_m: np.ndarray, ego: EgoState, config: PlannerConfig) -> np.ndarray:
    """(T, 2) rear-axle waypoints [m] at arc lengths along_m (T,) [m] along the ego's current curvature
    (planner.lane_plan on the straight lanes: the layer's own plans do not steer)."""
    return lane_plan(along_m, ego, config, EgoLanes(config.lane_width_m))


def _slowed_along_path(trajectory: np.ndarray, speed_mps: float, target_speed_mps: float, agents: Boxes3D,
                       predicted: np.ndarray, speed_factors: np.ndarray, config: PlannerConfig, lane_width_m: float):
    """(plan (T, 2) [m], deceleration [m/s^2]): the proposed ``trajectory``'s path driven no faster than braking
    from ``speed_mps`` down to ``target_speed_mps`` (<= speed_mps) at the least multiple of
    config.slowdown_step_mps2 (0 first: holding ``speed_mps``; max_decel_mps2 last) that clears checks 2 and 3
    (_first_hazard, lanes ``lane_width_m`` [m] wide) against the agents' predictions (N, T + 1, 3) and
    speed factors (N, T); None when braking at max_decel_mps2 along the path does not clear it (then no gentler
    slowing is sought: it could only pass an agent by arriving before it). Each step's arc length along the path
    is the smaller of the plan's and the braking's."""
    path = np.vstack([[0.0, 0.0], trajectory])  # (T + 1, 2): the path from the rear axle now
    arc = np.concatenate([[0.0], _arc_lengths_m(trajectory)])  # (T + 1,)

    def slowed(decel: float) -> np.ndarray:  # (T,) arc lengths
        braking = travelled_distance_m(speed_mps, target_speed_mps if decel else speed_mps,
                                       config.comfortable_accel_mps2, decel, config.step_times_s)
        return np.minimum(arc[1:], braking)

    def clear(along: np.ndarray) -> Optional[np.ndarray]:  # the plan at those arc lengths when it is clear
        plan = np.stack([np.interp(along, arc, path[:, 0]), np.interp(along, arc, path[:, 1])], axis=1)
        relative = _relative_to_plan(plan, agents, predicted, speed_factors, config)
        return plan if _first_hazard(plan, agents, predicted, relative, config, lane_width_m) is None else None

    steps = int(np.floor(config.max_decel_mps2 / config.slowdown_step_mps2 + 1e-9))
    decels = config.slowdown_step_mps2 * np.arange(steps + 1)  # 0: no faster than now
    if decels[-1] < config.max_decel_mps2 - 1e-9:  # max_decel_mps2 not a multiple of the step: it still ends them
        decels = np.append(decels, config.max_decel_mps2)
    hardest = slowed(decels[-1])
    hardest_plan = None if np.array_equal(hardest, arc[1:]) else clear(hardest)
    if hardest_plan is None:
        return None
    checked = arc[1:]  # the last arc lengths checked: the proposed plan's
    for decel in decels[:-1]:
        along = slowed(decel)
        if np.array_equal(along, checked):
            continue  # the plan already slows this much: the same plan, not clear
        checked = along
        plan = clear(along)
        if plan is not None:
            return plan, float(decel)
    return hardest_plan, float(decels[-1])


def _relative_to_plan(trajectory: np.ndarray, agents: Boxes3D, predicted: np.ndarray, speed_factors: np.ndarray,
                      config: PlannerConfig):
    """Each agent's prediction (N, T + 1, 3) [x, y, yaw] seen from the plan at each of its T steps, along the
    planned path (collision.path_coordinates), all (N, T): along [m] (the arc length from the planned rear axle
    to the agent's centre, + ahead), across [m] (the agent's centre from the path, + left), half_length [m] (its
    half extent along the path) and forward_speed [m/s] (its velocity, scaled by ``speed_factors`` (N, T), along
    the path, >= 0); None without agents."""
    n, steps = len(agents), config.horizon_steps
    if not n:
        return None
    # one call for the planned positions (their arc lengths, first T) and the agents' predictions
    along, across, tangent = path_coordinates(trajectory, np.vstack([trajectory, predicted[:, 1:, :2].reshape(-1, 2)]))
    path_along = along[:steps]
    along, across, tangent = (value[steps:].reshape(n, steps) for value in (along, across, tangent))
    half_length = half_length_along_x(agents.sizes[:, None, :], predicted[:, 1:, 2] - tangent)
    forward_speed = speed_factors * np.maximum(
        np.cos(tangent) * agents.velocities[:, :1] + np.sin(tangent) * agents.velocities[:, 1:2], 0.0)
    return along - path_along[None], across, half_length, forward_speed


def _lane_change_followers(relative: Optional[tuple], assessment: AgentAssessment, config: PlannerConfig
                           ) -> np.ndarray:
    """(K,) indices of the agents that a lane-change plan cuts in front of (check 1): not in the ego's lane now
    (``assessment``'s lanes), at some step behind the planned position within half a lane of it, with a gap from
    their front to the ego's rear bumper below lane_change_min_gap_m + lane_change_rear_time_gap_s x their speed
    along the plan. ``relative``: _relative_to_plan's, None without agents."""
    if relative is None:
        return np.zeros(0, dtype=int)
    along, across, half_length, forward_speed = relative
    half_lane = assessment.lanes.width_m / 2
    elsewhere = np.abs(assessment.across_m[:, 0]) > half_lane  # (N,): not in the ego's lane now
    behind = (along <= config.rear_axle_to_center_m) & (np.abs(across) <= half_lane)
    gap = config.ego_rear_m - (along + half_length)
    need = config.lane_change_min_gap_m + config.lane_change_rear_time_gap_s * forward_speed
    return np.flatnonzero(elsewhere & np.any(behind & (gap < need), axis=1))


def _first_hazard(trajectory: np.ndarray, agents: Boxes3D, predicted: np.ndarray, relative: Optional[tuple],
                  config: PlannerConfig, lane_width_m: float):
    """(agent, step, description) of the plan's first hazard against the agents' predictions (N, T + 1, 3)
    [x, y, yaw] (``relative``: _relative_to_plan's, None without agents): its earliest collision (check 2), or
    when it collides nowhere its earliest missing braking margin (check 3: agents within half of ``lane_width_m``
    [m], the keyframe's lane width, of the planned path); None when the plan is clear."""
    steps = config.horizon_steps
    if not len(agents):
        return None
    count = len(agents)
    future = predicted[:, 1:steps + 1].transpose(1, 0, 2).reshape(-1, 3)  # (T * N, 3), step-major
    agent_footprints = Boxes3D(centers=np.c_[future[:, :2], np.tile(agents.centers[:, 2], steps)],
                               sizes=np.tile(agents.sizes, (steps, 1)), yaws=future[:, 2]).bev_corners()
    ego = np.repeat(ego_footprints(trajectory, config), count, axis=0)  # (T * N, 4, 2)
    along, across, half_length, forward_speed = relative
    planned_speed = plan_speeds_mps(trajectory, config)  # (T,)
    behind = along <= config.rear_axle_to_center_m  # (N, T): the agent's centre behind the planned ego centre
    overlaps = footprints_overlap(ego, agent_footprints).reshape(steps, count).T  # (N, T)
    # behind and faster along the plan at its first contact: it runs into the ego (predicted at its speed, on
    # through it)
    first = overlaps.argmax(axis=1)
    from_behind = (overlaps.any(axis=1) & behind[np.arange(count), first]
                   & (forward_speed[np.arange(count), first] > planned_speed[first]))
    overlaps &= ~from_behind[:, None]
    if overlaps.any():
        step = int(np.flatnonzero(overlaps.any(axis=0))[0])
        return int(np.flatnonzero(overlaps[:, step])[0]), step, "collides with the plan"
    gap = along - half_length - config.ego_front_m
    need = config.safety_gap_m + np.maximum(planned_speed[None] ** 2 - forward_speed ** 2, 0.0) / (
        2 * config.max_decel_mps2)
    short = ~behind & ~from_behind[:, None] & (np.abs(across) <= lane_width_m / 2) & (gap < need)
    for step in range(steps):
        agents_short = np.flatnonzero(short[:, step])
        if len(agents_short):
            local = int(agents_short[np.argmin(gap[agents_short, step])])
            return local, step, (f"leaves {gap[local, step]:.1f} m of the {need[local, step]:.1f} m braking "
                                 f"margin")
    return None
