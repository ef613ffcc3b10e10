"""The safety layer on hand-worked scenes: a plan kept with its rationale, vetoed for a collision or a missing
braking margin and then slowed along its path or replaced by the lane fallback (numbers worked by hand), a lane
change refused with the agent that blocks it and kept on the ego's current path at the plan's speeds."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from perception.datasets.lane_map import LaneCentres
from perception.decision import EgoState, PlannerConfig, decide
from perception.decision.collision import path_coordinates
from perception.decision.safety import check_plan, checked_rule_decision
from perception.maneuvers import Maneuver
from tests.decision.helpers import agents

CONFIG = PlannerConfig()


def _straight(speed_mps: float) -> np.ndarray:
    return np.c_[speed_mps * CONFIG.step_times_s, np.zeros(CONFIG.horizon_steps)]


def test_path_coordinates_by_hand():
    # straight 10 m then a quarter turn to the left: waypoints (5, 0), (10, 0), (10, 5)
    path = np.array([[5.0, 0.0], [10.0, 0.0], [10.0, 5.0]])
    points = np.array([[4.0, 2.0], [-3.0, -1.0], [11.0, 3.0], [10.0, 9.0], [5.0, 0.0]])
    along, across, tangent = path_coordinates(path, points)
    # beside the first leg, behind the origin (straight extension), right of the second leg, beyond the end
    # (straight on, 4 m past it), on a waypoint
    np.testing.assert_allclose(along, [4.0, -3.0, 13.0, 19.0, 5.0])
    np.testing.assert_allclose(across, [2.0, -1.0, -1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(tangent, [0.0, 0.0, np.pi / 2, np.pi / 2, 0.0])


def test_a_clear_plan_is_kept():
    plan = _straight(10.0)
    decision = check_plan(plan, Maneuver.KEEP_LANE, agents(("car", 30, 3.5, 10, 0)), EgoState(10.0))
    assert not decision.vetoed and decision.maneuver is Maneuver.KEEP_LANE
    assert np.array_equal(decision.trajectory, plan) and "no agent in the path" in decision.reason
    followed = check_plan(plan, Maneuver.FOLLOW, agents(("car", 30, 0, 10, 0)), EgoState(10.0))
    assert not followed.vetoed and followed.critical_object == 0 and "car #0" in followed.reason


def test_a_plan_into_a_stopped_car_is_vetoed():
    # rear of the car at 20 - 2.3 = 17.7 m; the ego's front is 3.442 m ahead of the rear axle: first overlap at
    # the step where x >= 14.26 m, i.e. 15 m at 1.5 s
    decision = check_plan(_straight(10.0), Maneuver.KEEP_LANE, agents(("car", 20, 0, 0, 0)), EgoState(10.0))
    assert decision.vetoed and decision.maneuver is Maneuver.STOP and decision.critical_object == 0
    assert "collides with the plan at 1.5 s" in decision.reason and "car #0" in decision.reason
    assert decision.trajectory[-1, 0] + CONFIG.ego_front_m < 17.7  # the fallback stops short of it


def test_a_lead_braking_to_a_stop_is_seen_with_its_acceleration():
    # lead at 30 m, 10 m/s, like the ego: at constant velocity the 24.26 m gap (30 - 2.3 - 3.442) stays. Braking at
    # 6 m/s^2 it stops after 1.67 s at 38.33 m (rear 36.03 m); at 2.5 s the ego (25 m) is 7.59 m from its rear,
    # short of the 1.0 + 10^2 / (2 * 6) = 9.33 m margin: vetoed. Slowed along the plan's path, with the same
    # margin: braking at 0.5 m/s^2 the ego is at 27.75 m at 3 s, 8.625 m/s over the last step, 4.84 m from the
    # lead's rear against 1 + 8.625^2 / 12 = 7.20 m; at 1.0 m/s^2, x(t) = 10 t - 0.5 t^2, at 25.5 m and 7.25 m/s:
    # 7.09 m against 5.38 (2.5 s: 10.72 against 6.00; 2.0 s: 14.59 against 6.67; before, the lead still moving,
    # more room). The step speeds fall 1 m/s per second, below the label rules' 1.75 m/s^2 brake: it still
    # FOLLOWs, and the next frame plans again from 0.5 s closer
    lead = agents(("car", 30, 0, 10, 0))
    kept = check_plan(_straight(10.0), Maneuver.FOLLOW, lead, EgoState(10.0))
    assert not kept.vetoed and kept.maneuver is Maneuver.FOLLOW
    vetoed = check_plan(_straight(10.0), Maneuver.FOLLOW, lead, EgoState(10.0),
                        agent_accelerations_mps2=np.array([-6.0]))
    assert vetoed.vetoed and vetoed.maneuver is Maneuver.FOLLOW and vetoed.target_speed_mps == pytest.approx(7.25)
    assert ("slowed the proposed FOLLOW plan along its path, braking at 1.0 m/s^2: car #0 at 10.0 m/s braking at "
            "6.0 m/s^2, 24.3 m ahead leaves 7.6 m of the 9.3 m braking margin at 2.5 s") in vetoed.reason
    np.testing.assert_allclose(vetoed.trajectory[:, 0], 10.0 * CONFIG.step_times_s - 0.5 * CONFIG.step_times_s ** 2)
    with pytest.raises(ValueError, match="2 agent accelerations for 1 boxes"):
        check_plan(_straight(10.0), Maneuver.FOLLOW, lead, EgoState(10.0), agent_accelerations_mps2=np.zeros(2))


def test_a_slowed_plan_keeps_its_path_and_is_named_by_what_it_does():
    # a lane change to the left at 10 m/s (the rule planner's quintic, 3.5 m over 4 s) towards a car standing in
    # the left lane 40 m ahead: at 2.5 s the plan (25 m, 2.54 m left, 0.96 m from the car's line) is 40 - 25 -
    # 2.3 - 3.442 = 9.2 m from its rear, short of 1 + 10.1^2 / 12 = 9.5 m (10.1 m/s over the curved step): vetoed.
    # Slowed along the path: braking at 0.5 m/s^2 leaves ~6.6 m at 3 s (27.75 m along, 8.625 m/s) of
    # 1 + 8.625^2 / 12 = 7.2; at 1.0 m/s^2 ~8.9 m (25.5 m along, 7.25 m/s) of 5.4. Every waypoint stays on the
    # proposed path, 10 t - 0.5 t^2 along it; the step speeds fall 1 m/s per second, not a brake by the label
    # rules (1.75 m/s^2): still the lane change
    t = CONFIG.step_times_s
    offset = CONFIG.lane_width_m * (10 * (t / 4) ** 3 - 15 * (t / 4) ** 4 + 6 * (t / 4) ** 5)
    plan = np.c_[10.0 * t, offset]
    decision = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(("car", 40, 3.5, 0, 0)), EgoState(10.0))
    assert decision.vetoed and decision.maneuver is Maneuver.CHANGE_LANE_LEFT
    assert ("slowed the proposed CHANGE_LANE_LEFT plan along its path, braking at 1.0 m/s^2: car #0 at 0.0 m/s, "
            "34.3 m ahead leaves 9.2 m of the 9.5 m braking margin at 2.5 s") in decision.reason
    along, across, _ = path_coordinates(plan, decision.trajectory)
    np.testing.assert_allclose(across, 0.0, atol=0.02)  # on the path (its chords of a gentle curve)
    np.testing.assert_allclose(along, 10.0 * t - 0.5 * t ** 2, atol=0.02)


def test_a_plan_slowed_harder_than_the_brake_threshold_is_named_brake():
    # a lead 24 m ahead at the ego's 10 m/s braking at 6 m/s^2 stops after 1.67 s at 24 + 10^2 / 12 = 32.33 m (rear
    # 30.03 m); the FOLLOW plan at 10 m/s reaches it at 3.0 s (front 33.44 m): vetoed. Slowed along its path: at
    # 1.5 m/s^2 the ego is at 23.25 m at 3 s (5.875 m/s over the last step), 30.03 - 23.25 - 3.442 = 3.34 m from
    # the lead's rear of 1 + 5.875^2 / 12 = 3.88; at 2.0 m/s^2, x = 10 t - t^2, at 21 m and 4.5 m/s: 5.59 m of 2.69
    # (2.5 s: 7.84 of 1 + 5.5^2 / 12 = 3.52). Step speeds 9.5, 8.5 .. 4.5 fall 2 m/s per second, above the label
    # rules' 1.75 m/s^2 brake: named BRAKE, no longer the proposed FOLLOW
    t = CONFIG.step_times_s
    decision = check_plan(_straight(10.0), Maneuver.FOLLOW, agents(("car", 24, 0, 10, 0)), EgoState(10.0),
                          agent_accelerations_mps2=np.array([-6.0]))
    assert decision.vetoed and decision.maneuver is Maneuver.BRAKE
    assert "slowed the proposed FOLLOW plan along its path, braking at 2.0 m/s^2" in decision.reason
    np.testing.assert_allclose(decision.trajectory[:, 0], 10.0 * t - t ** 2)


def test_the_slowed_plan_never_speeds_up():
    # the ego at 5 m/s; the proposed plan speeds up to 20 m/s behind a car 30 m ahead at 10 m/s: vetoed (at 3 s
    # 37.5 m at 20 m/s: 30 + 30 - 2.3 - 37.5 - 3.442 = 16.8 m of the 1 + (20^2 - 10^2) / 12 = 26 m margin). Held to
    # the ego's 5 m/s along the path it is clear: the plan at 5 m/s, named as proposed
    faster = check_plan(np.c_[np.cumsum(np.linspace(5.0, 20.0, CONFIG.horizon_steps)) * CONFIG.step_s,
                              np.zeros(CONFIG.horizon_steps)], Maneuver.KEEP_LANE, agents(("car", 30, 0, 10, 0)),
                        EgoState(5.0))
    assert faster.vetoed and faster.maneuver is Maneuver.KEEP_LANE and faster.target_speed_mps == pytest.approx(5.0)
    assert "along its path, no faster than now, 5.0 m/s" in faster.reason
    assert np.allclose(np.diff(np.r_[0.0, faster.trajectory[:, 0]]), 5.0 * CONFIG.step_s)


def test_a_braking_plan_that_is_not_clear_either_becomes_a_stop():
    # the ego at 5 m/s keeps 5 m/s; a car from the left lane (2, 3.5) at (5.5, -1.75) m/s cuts in and first
    # overlaps the plan at 1.0 s (centre (7.5, 1.75), 1.75 m < the half widths' 1.875 m sideways). Braking down to
    # its forward speed, capped at the ego's 5 m/s, is the same plan, still colliding: STOP at max_decel_mps2
    decision = check_plan(_straight(5.0), Maneuver.KEEP_LANE, agents(("car", 2, 3.5, 5.5, -1.75)), EgoState(5.0))
    assert decision.vetoed and decision.maneuver is Maneuver.STOP and decision.target_speed_mps == 0.0
    assert "collides with the plan at 1.0 s" in decision.reason
    assert f"not clear either: stopping at {CONFIG.max_decel_mps2:.1f}" in decision.reason
    # 5 m/s at 6 m/s^2 stops within 5^2 / 12 = 2.08 m
    assert decision.trajectory[-1, 0] <= 5.0 ** 2 / (2 * CONFIG.max_decel_mps2) + 1e-6


def test_a_veto_never_plans_further_along_than_the_plan_it_vetoes():
    # the ego at 10 m/s proposes a stop at 8 m/s^2 (x = 10 t - 4 t^2 to 6.25 m at 1.25 s), harder than
    # max_decel_mps2, towards a car standing with its rear 7 m ahead of the ego's front: at 0.5 s (4 m, 8 m/s over
    # the step) it leaves 3.0 m of the 1 + 8^2 / 12 = 6.3 m braking margin: vetoed. Braking at 6 m/s^2 would stop
    # at 10^2 / 12 = 8.33 m, 1.33 m into the car (at 1.5 s 8.25 m); the veto's plan is held to the proposed
    # plan's distances: its stop, still short of the margin, and the reason says so
    t = CONFIG.step_times_s
    stop = np.minimum(t, 1.25)
    proposed = np.c_[10.0 * stop - 4.0 * stop ** 2, np.zeros(CONFIG.horizon_steps)]
    car = agents(("car", CONFIG.ego_front_m + 7.0 + 2.3, 0, 0, 0))
    decision = check_plan(proposed, Maneuver.STOP, car, EgoState(10.0))
    assert decision.vetoed and decision.maneuver is Maneuver.STOP
    np.testing.assert_allclose(decision.trajectory, proposed, atol=1e-12)
    assert ("leaves 3.0 m of the 6.3 m braking margin at 0.5 s; braking at 6.0 m/s^2, no further along than the "
            "proposed plan; even so car #0 at 0.0 m/s, 7.0 m ahead leaves 3.0 m of the 6.3 m braking margin at "
            "0.5 s") in decision.reason


def test_a_braking_fallback_into_a_lead_braking_hard_becomes_the_hardest_stop():
    # the ego at 15 m/s keeps its speed behind a lead 12 m ahead (centre 12 + 2.3 m past the ego's front) at
    # 10 m/s braking at 9 m/s^2: it stops after 1.11 s, 5.56 m on, its rear 20.998 m from the rear axle; the plan
    # collides at 1.5 s. Braking down to its speed at the hazard (0) at the comfortable 2.5 m/s^2 (the gap at
    # constant velocity needs less) collides too (19.69 m at 1.5 s, the ego's front 23.1 m); stopping at 6 m/s^2,
    # x = 15 t - 3 t^2 (6.75, 12, 15.75, 18, 18.75 m), the front 21.44 m at 2.0 s still reaches it: STOP, said
    lead = agents(("car", CONFIG.ego_front_m + 12.0 + 2.3, 0, 10, 0))
    decision = check_plan(_straight(15.0), Maneuver.KEEP_LANE, lead, EgoState(15.0),
                          agent_accelerations_mps2=np.array([-9.0]))
    assert decision.vetoed and decision.maneuver is Maneuver.STOP
    assert ("collides with the plan at 1.5 s; braking at 2.5 m/s^2; that plan not clear either: stopping at "
            "6.0 m/s^2; even so car #0 at 10.0 m/s braking at 9.0 m/s^2, 12.0 m ahead collides with the plan at "
            "2.0 s") in decision.reason
    stop = np.minimum(CONFIG.step_times_s, 2.5)
    np.testing.assert_allclose(decision.trajectory[:, 0], 15.0 * stop - 3.0 * stop ** 2)


def test_slowing_along_the_path_tries_max_decel_when_it_is_not_a_multiple_of_the_step():
    # slowdown steps of 0.7 m/s^2 end at 5.6 below max_decel_mps2 6.0. The ego at 15 m/s, a car standing 23 m
    # ahead of its front: constant velocity collides at 2.0 s. Braking at 5.6 along the path, at 0.5 s 6.8 m
    # (13.6 m/s over the step) leaves 16.2 m of 1 + 13.6^2 / 12 = 16.41: not clear; at 6.0, 6.75 m (13.5 m/s)
    # leaves 16.25 of 16.19, at 1.0 s 11 of 1 + 10.5^2 / 12 = 10.19, and it stops at 18.75 m, 4.25 m short
    config = PlannerConfig(slowdown_step_mps2=0.7)
    car = agents(("car", config.ego_front_m + 23.0 + 2.3, 0, 0, 0))
    decision = check_plan(_straight(15.0), Maneuver.KEEP_LANE, car, EgoState(15.0), config)
    assert decision.vetoed and decision.maneuver is Maneuver.STOP
    assert "slowed the proposed KEEP_LANE plan along its path, braking at 6.0 m/s^2" in decision.reason
    stop = np.minimum(config.step_times_s, 2.5)
    np.testing.assert_allclose(decision.trajectory[:, 0], 15.0 * stop - 3.0 * stop ** 2)


def test_an_agent_running_into_a_braking_plan_from_behind_does_not_veto_it():
    # the ego at 10 m/s brakes at 3 m/s^2: x(t) = 10 t - 1.5 t^2, 8.5 m at 1.0 s, 14.0 m at 2.0 s (4.75 m/s over
    # the step before), its centre 1.4 m ahead of that. A car (4.6 x 1.9 m) 8 m behind at 10 m/s: its front
    # (x + 2.3) reaches the ego's rear (x_ego - 0.642) at 2.0 s (14.3 against 13.358), its centre (12 m) behind
    # the ego's (15.4 m), and, predicted at its speed, it drives on through the ego's box to 3.0 s (22 m, ahead of
    # the ego's 16.5 + 1.4). The follower's to avoid: the plan is kept. The same car coming from the left lane
    # behind (y 3.5, 1.75 m/s to the right) reaches the ego at 2.0 s from behind too: kept. Coming from the left
    # lane 2 m ahead, at 1.0 s it is at (12, 1.75) m, its centre ahead of the ego's (9.9 m), its box (y 0.8 .. 2.7)
    # over the ego's (y up to 0.925, x 7.858 .. 11.942 against its 9.7 .. 14.3): a cut-in ahead, vetoed.
    t = CONFIG.step_times_s
    braking = np.c_[10.0 * t - 1.5 * t ** 2, np.zeros(CONFIG.horizon_steps)]
    for follower in (("car", -8, 0, 10, 0), ("car", -8, 3.5, 10, -1.75)):
        kept = check_plan(braking, Maneuver.BRAKE, agents(follower), EgoState(10.0))
        assert not kept.vetoed and kept.maneuver is Maneuver.BRAKE and np.array_equal(kept.trajectory, braking)
    cut_in = check_plan(braking, Maneuver.BRAKE, agents(("car", 2, 3.5, 10, -1.75)), EgoState(10.0))
    assert cut_in.vetoed and "collides with the plan at 1.0 s" in cut_in.reason
    # a standing car at (3, -1.7), its box (x 0.7 .. 5.3, y -2.65 .. -0.75) over the ego's right side: at 0.5 s
    # (ego x 3.983 .. 8.067, 9.25 m/s over the step) its centre is behind the ego's (6.025 m), but it stands: the
    # plan scrapes it, vetoed
    scraped = check_plan(braking, Maneuver.BRAKE, agents(("car", 3, -1.7, 0, 0)), EgoState(10.0))
    assert scraped.vetoed and "collides with the plan at 0.5 s" in scraped.reason


def test_an_agent_overtaking_alongside_from_behind_the_ego_centre_does_not_veto_the_plan():
    # the ego keeps 10 m/s; a car (4.6 x 1.9 m) at (-0.5, 1.7) m at 12 m/s overtakes it on the left, its box
    # (y 0.75 .. 2.65) over the ego's (y up to 0.925). At 0.5 s it is at 5.5 m (x 3.2 .. 7.8), over the ego's box
    # (x 4.358 .. 8.442, rear axle at 5 m): its centre 0.5 m ahead of the rear axle yet behind the ego's centre
    # (6.4 m), and faster along the plan (12 against 10 m/s): it runs into the ego from alongside, the plan is kept
    plan = _straight(10.0)
    kept = check_plan(plan, Maneuver.KEEP_LANE, agents(("car", -0.5, 1.7, 12, 0)), EgoState(10.0))
    assert not kept.vetoed and kept.maneuver is Maneuver.KEEP_LANE and np.array_equal(kept.trajectory, plan)


def test_a_plan_without_braking_margin_is_vetoed():
    # car stopped at 38 m (rear 35.7 m); need 1.0 + 10^2 / (2 * 6) = 9.33 m; at 2.5 s the ego is at 25 m:
    # gap 35.7 - 25 - 3.442 = 7.26 m (at 2.0 s it was 12.26 m, enough; its front never reaches the car). Slowed
    # along the path: braking at 0.5 m/s^2 leaves 4.51 m at 3 s (27.75 m, 8.625 m/s over the last step) of
    # 1 + 8.625^2 / 12 = 7.20; at 1.0 m/s^2 6.76 m (25.5 m, 7.25 m/s) of 5.38 (2.5 s: 10.38 of 6.00). The step
    # speeds fall 1 m/s per second, not a brake by the label rules (1.75): it keeps its lane
    decision = check_plan(_straight(10.0), Maneuver.KEEP_LANE, agents(("car", 38, 0, 0, 0)), EgoState(10.0))
    assert decision.vetoed and decision.maneuver is Maneuver.KEEP_LANE
    assert "braking at 1.0 m/s^2: car #0 at 0.0 m/s, 32.3 m ahead leaves 7.3 m of the 9.3 m braking margin at 2.5 s" \
        in decision.reason
    np.testing.assert_allclose(decision.trajectory[:, 0], 10.0 * CONFIG.step_times_s - 0.5 * CONFIG.step_times_s ** 2)
    slow = check_plan(_straight(5.0), Maneuver.KEEP_LANE, agents(("car", 38, 0, 0, 0)), EgoState(5.0))
    assert not slow.vetoed  # 15 m travelled: gap 17.26 m >= 1.0 + 25 / 12


def test_the_braking_margin_reads_the_lane_maps_width():
    # the stopped car of the test above, 2.2 m to the left: beside the straight lanes' ego lane (half of 3.5 m is
    # 1.75 m) and clear of the ego's box (its right side at 2.2 - 0.95 = 1.25 m, the ego's left at 0.925 m):
    # kept. On a lane map of one lane 5 m wide along +x it stands in the ego's lane (2.2 <= 2.5 m), short of the
    # braking margin: vetoed
    stopped = agents(("car", 38, 2.2, 0, 0))
    assert not check_plan(_straight(10.0), Maneuver.KEEP_LANE, stopped, EgoState(10.0)).vetoed
    wide = LaneCentres((np.array([[-200.0, 0.0], [200.0, 0.0]]),), 5.0)
    vetoed = check_plan(_straight(10.0), Maneuver.KEEP_LANE, stopped, EgoState(10.0), lanes=wide)
    assert vetoed.vetoed and "braking margin" in vetoed.reason


def test_the_lane_fallback_when_braking_hardest_along_the_path_does_not_clear():
    # the plan swerves right at 10 m/s (y = -1.5 t^2) beside a car (4.6 x 1.9 m) at (5, -2.2) driving at 5 m/s: at
    # 0.5 s the car spans x 5.2 .. 9.8, y -3.15 .. -1.25. Even stopping along the swerve at 6 m/s^2 (4.25 m by
    # 0.5 s, rear axle (4.24, -0.27), heading -0.064 rad) puts the ego's front right corner at (7.62, -1.41), inside
    # it: braking hardest along the path does not clear it. The lane fallback brakes straight in the ego's lane to
    # the car's 5 m/s (the car is not in the lane: at max_decel_mps2), beside it (the ego's right side at y
    # -0.925): step speeds 8.5, 5.67, then 5, a fall of 3.5 m/s in 1 s, a brake by the label rules
    t = CONFIG.step_times_s
    swerve = np.c_[10.0 * t, -1.5 * t ** 2]
    decision = check_plan(swerve, Maneuver.KEEP_LANE, agents(("car", 5, -2.2, 5, 0)), EgoState(10.0))
    assert decision.vetoed and decision.maneuver is Maneuver.BRAKE and decision.target_speed_mps == 5.0
    assert "vetoed the proposed KEEP_LANE plan: car #0 at 5.0 m/s, alongside collides with the plan at 0.5 s; " \
        "braking at 6.0 m/s^2" in decision.reason
    np.testing.assert_allclose(decision.trajectory[:, 1], 0.0, atol=1e-9)  # in the ego's lane, straight
    np.testing.assert_allclose(np.diff(np.r_[0.0, decision.trajectory[:, 0]]) / CONFIG.step_s,
                               [8.5, 5.0 + 2.0 / 3.0, 5.0, 5.0, 5.0, 5.0])


def test_the_lane_fallback_never_plans_faster_than_the_ego_drives_now():
    # the ego at 3 m/s; the plan speeds up to 10 m/s (x = 3 t + 7/6 t^2) on a 3 s quintic swerve 3.5 m left,
    # proposed as KEEP_LANE (as CHANGE_LANE_LEFT check 1 refuses it first: it passes the car, which then follows it
    # too closely). A car at (4, 2.0) m at 6 m/s braking at 2 m/s^2 is at 6.75 m at 0.5 s (x 4.45 .. 9.05, y from
    # 1.05), at 5 m/s; the plan, at (1.79, 0.12) m heading 0.07 rad, puts its front left corner at (5.16, 1.29),
    # inside the car, whose centre is ahead of the ego's: vetoed. Along the swerve no slower than the ego's 3 m/s
    # (down to min(5, 3) = 3) its corner is still at (4.87, 1.26): the lane fallback, straight in the ego's lane
    # (its left side at 0.925 m, the car's right at 1.05 m) at min(5, 3) = 3 m/s, not the car's 5: BRAKE, 3 m/s
    t = CONFIG.step_times_s
    s = t / 3.0
    swerve = np.c_[3.0 * t + 7.0 / 6.0 * t ** 2, CONFIG.lane_width_m * (10 * s ** 3 - 15 * s ** 4 + 6 * s ** 5)]
    decision = check_plan(swerve, Maneuver.KEEP_LANE, agents(("car", 4, 2.0, 6, 0)), EgoState(3.0),
                          agent_accelerations_mps2=np.array([-2.0]))
    assert decision.vetoed and decision.maneuver is Maneuver.BRAKE
    assert "vetoed the proposed KEEP_LANE plan: car #0" in decision.reason
    assert decision.target_speed_mps <= 3.0 + 1e-9
    assert np.all(np.diff(np.r_[0.0, decision.trajectory[:, 0]]) / CONFIG.step_s <= 3.0 + 1e-9)
    np.testing.assert_allclose(decision.trajectory, np.c_[3.0 * t, np.zeros(CONFIG.horizon_steps)], atol=1e-9)


def test_standing_closer_than_the_planners_standstill_gap_is_safe():
    # the planner stops 2.5 m behind a lead; a plan standing 1.5 m behind it needs only the 1.0 m safety gap
    # (braking from 0 m/s needs no distance): car centre at 3.442 + 1.5 + 2.3 m
    standing = np.zeros((CONFIG.horizon_steps, 2))
    queue = agents(("car", CONFIG.ego_front_m + 1.5 + 2.3, 0, 0, 0))
    assert not check_plan(standing, Maneuver.STOP, queue, EgoState(0.0)).vetoed
    closer = agents(("car", CONFIG.ego_front_m + 0.8 + 2.3, 0, 0, 0))
    assert "leaves 0.8 m of the 1.0 m braking margin" in check_plan(standing, Maneuver.STOP, closer,
                                                                    EgoState(0.0)).reason


def test_the_braking_margin_is_measured_along_the_planned_curve():
    # a left curve of radius 40 m at 10 m/s; a car parked 3.5 m right of the curve 35 m along it (outside the
    # horizon's 30 m). At 3.0 s the plan is at (27.3, 10.8) m and the car at (33.4, 12.2) m: in the keyframe's
    # straight lanes 6.1 m ahead and 1.4 m aside (in the lane, 0.5 m of gap: vetoed before); seen along the plan
    # (heading 0.69 rad, the chord from 2.5 s) it is 2.8 m aside: the next lane
    radius, speed = 40.0, 10.0
    angle = speed * CONFIG.step_times_s / radius
    plan = np.c_[radius * np.sin(angle), radius * (1 - np.cos(angle))]
    theta = 35.0 / radius
    where = np.array([radius * np.sin(theta), radius * (1 - np.cos(theta))]) + 3.5 * np.array(
        [np.sin(theta), -np.cos(theta)])
    parked = agents(("car", where[0], where[1], 0, 0, (1.9, 4.6, 1.6), theta))
    ego = EgoState(speed, yaw_rate_rps=speed / radius)
    assert not check_plan(plan, Maneuver.KEEP_LANE, parked, ego).vetoed
    on_the_curve = agents(("car", *(where - 3.5 * np.array([np.sin(theta), -np.cos(theta)])), 0, 0,
                           (1.9, 4.6, 1.6), theta))
    assert check_plan(plan, Maneuver.KEEP_LANE, on_the_curve, ego).vetoed  # the same car on the path


def test_a_blocked_lane_change_is_refused_with_what_blocks_it():
    # the plan moves 3.5 m left over 4 s at 10 m/s: each step 5 m ahead and 0.4375 m aside, 5.019 m long. A car 3 m
    # behind in the left lane at 10 m/s blocks it; the plan's step lengths are kept on the ego's (straight) path,
    # named by the label rules: no vehicle ahead, no slowing, KEEP_LANE
    lateral = CONFIG.lane_width_m * np.clip(CONFIG.step_times_s / 4.0, 0, 1)
    plan = np.c_[10.0 * CONFIG.step_times_s, lateral]
    blocked = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(("car", -3, 3.5, 10, 0)), EgoState(10.0))
    assert blocked.vetoed and blocked.maneuver is Maneuver.KEEP_LANE and not blocked.lane_change_left_ok
    assert ("KEEP_LANE: refused CHANGE_LANE_LEFT, blocked by car #0 3.0 m behind in the left lane at 10.0 m/s; on "
            "the ego's current path at the plan's speeds, proposed plan kept; no agent in the path") == blocked.reason
    np.testing.assert_allclose(blocked.trajectory, np.c_[np.hypot(5.0, 0.4375) * np.arange(1, 7), np.zeros(6)])
    clear = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(("car", -40, 3.5, 10, 0)), EgoState(10.0))
    assert not clear.vetoed and clear.maneuver is Maneuver.CHANGE_LANE_LEFT and clear.lane_change_left_ok


def test_a_refused_lane_change_slows_in_its_lane_behind_the_lead_it_would_pass():
    # the same refused plan, in the ego's lane behind a lead 25 m ahead at 3 m/s: at 3 s the ego (30.1 m, front at
    # 33.6 m) reaches its rear (25 + 9 - 2.3 = 31.7 m); the plan in the lane behind it is named FOLLOW. Slowed
    # along the lane down to the lead's 3 m/s (not reached within 3 s): braking at 1.0 m/s^2 the ego is at 25.5 m
    # at 3 s, 7.25 m/s over the last step, 31.7 - 25.5 - 3.442 = 2.76 m from the lead's rear against
    # 1 + (7.25^2 - 3^2) / 12 = 4.63; at 1.5 m/s^2, x(t) = 10 t - 0.75 t^2, at 23.25 m, 5.875 m/s: 5.01 against
    # 3.13 (2.5 s: 6.45 against 3.91; 2.0 s: 8.26 against 4.78; earlier steps more room). The step speeds fall
    # 1.5 m/s per second, not a brake by the label rules (1.75): it still FOLLOWs
    lateral = CONFIG.lane_width_m * np.clip(CONFIG.step_times_s / 4.0, 0, 1)
    plan = np.c_[10.0 * CONFIG.step_times_s, lateral]
    decision = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(("car", -3, 3.5, 10, 0), ("car", 25, 0, 3, 0)),
                          EgoState(10.0))
    assert decision.vetoed and decision.maneuver is Maneuver.FOLLOW and decision.critical_object == 1
    assert "refused CHANGE_LANE_LEFT" in decision.reason
    assert "braking at 1.5 m/s^2: car #1 at 3.0 m/s" in decision.reason
    t = CONFIG.step_times_s
    np.testing.assert_allclose(decision.trajectory, np.c_[10.0 * t - 0.75 * t ** 2, np.zeros(6)], atol=1e-9)


def test_a_lane_change_behind_a_lead_of_the_same_speed_is_kept():
    # a car 12 m ahead in the left lane at the ego's 10 m/s: 6.26 m bumper to bumper (12 - 2.3 - 3.442), under the
    # planner's front gap (3 m + 1 s x 10 m/s) but above the safety layer's margin (1.0 m, no speed to lose)
    lateral = CONFIG.lane_width_m * np.clip(CONFIG.step_times_s / 4.0, 0, 1)
    plan = np.c_[10.0 * CONFIG.step_times_s, lateral]
    lead = agents(("car", 12, 3.5, 10, 0))
    kept = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, lead, EgoState(10.0))
    assert not kept.vetoed and kept.maneuver is Maneuver.CHANGE_LANE_LEFT
    assert not kept.lane_change_left_ok  # the planner's own gap check still would not choose it
    # a car 30 m ahead at 2 m/s: at 2.5 s the plan is 2.2 m left (1.3 m from the car's line), 4.3 m behind it
    # (35 - 25 - 2.3 - 3.442) and needs 1.0 + (10^2 - 2^2) / 12 = 9.0 m
    slower = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(("car", 30, 3.5, 2, 0)), EgoState(10.0))
    assert slower.vetoed and "braking margin" in slower.reason


def test_a_follower_in_the_ego_lane_does_not_block_a_lane_change():
    # the 4 s lane change to the left at 10 m/s (each step 5 m on, 0.4375 m left); a car 8 m behind in the ego's
    # own lane at 10 m/s. Along the plan it stays ~8 m behind the planned position, the plan's first steps
    # within half a lane of it: as a follower it would need 3 + 1 x 10 = 13 m and have 8 - 2.3 - 0.642 = 5.1 m.
    # But it is in the ego's lane now (|y| = 0 <= 1.75): the lane change does not cut in front of it (it
    # already follows the ego), and at the same speed it never reaches the ego: kept
    lateral = CONFIG.lane_width_m * np.clip(CONFIG.step_times_s / 4.0, 0, 1)
    plan = np.c_[10.0 * CONFIG.step_times_s, lateral]
    kept = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(("car", -8, 0, 10, 0)), EgoState(10.0))
    assert not kept.vetoed and kept.maneuver is Maneuver.CHANGE_LANE_LEFT and np.array_equal(kept.trajectory, plan)
    # the same car 8 m behind in the left lane is one the plan cuts in front of
    blocked = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(("car", -8, 3.5, 10, 0)), EgoState(10.0))
    assert blocked.vetoed and "refused CHANGE_LANE_LEFT, blocked by car #0 8.0 m behind" in blocked.reason


def test_a_follower_short_of_the_rear_gap_by_less_than_half_its_length_blocks_a_lane_change():
    # a lane change into the left lane within 1 s at 10 m/s: (5, 1.75), (10, 3.5), then on along y = 3.5 to
    # (30, 3.5) at 3 s. A car 15 m behind in the left lane at 10 m/s is at (15, 3.5) at 3 s, on the path 15 m
    # behind the planned rear axle: from its front (15 - 2.3 m behind) to the ego's rear bumper (0.642 m behind
    # the rear axle) 15 - 2.3 - 0.642 = 12.06 m, short of 3 + 1 x 10 = 13 m (from its centre it would be
    # 14.36 m, enough). At 2.0 and 2.5 s, as the plan joins the lane, it is within half a lane of the path and
    # short again (by 0.85 and 0.57 m, its centre 1.6 and 1.9 m clear): refused
    t = CONFIG.step_times_s
    plan = np.c_[10.0 * t, CONFIG.lane_width_m * np.minimum(t, 1.0)]
    blocked = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(("car", -15, 3.5, 10, 0)), EgoState(10.0))
    assert blocked.vetoed and not blocked.maneuver.is_lane_change
    assert "refused CHANGE_LANE_LEFT, blocked by car #0 15.0 m behind in the left lane at 10.0 m/s" in blocked.reason
    # 17 m behind: 17 - 2.3 - 0.642 = 14.06 m of 13 m at 3 s (at 2.5 s 13.8 m of the 3 + 9.44 = 12.44 m its
    # speed along the joining leg, 10 cos(atan(1.75 / 5)) = 9.44 m/s, needs): kept
    clear = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(("car", -17, 3.5, 10, 0)), EgoState(10.0))
    assert not clear.vetoed and clear.maneuver is Maneuver.CHANGE_LANE_LEFT


def test_an_agent_more_than_half_a_lane_across_the_plan_is_no_follower():
    # the 4 s quintic lane change to the left at 10 m/s (3.14 m left at 3 s); a car two lanes left at (-10, 6.0) m
    # at 12 m/s closes from behind: at 3 s at (26, 6.0), 3.6 m behind the planned rear axle (30 m), 0.7 m from its
    # front (1.3 m behind) to the ego's rear bumper (0.642 m behind), well short of the 3 + 1 x 11.9 m rear gap. But
    # it is 3.3 m across the plan there (6.0, 5.7, 5.1, 4.2 m before), more than half a lane (1.75 m): it is not
    # in the lane the plan joins, no follower, and nowhere near the ego's box: kept
    t = CONFIG.step_times_s
    s = t / 4.0
    plan = np.c_[10.0 * t, CONFIG.lane_width_m * (10 * s ** 3 - 15 * s ** 4 + 6 * s ** 5)]
    kept = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(("car", -10, 6.0, 12, 0)), EgoState(10.0))
    assert not kept.vetoed and kept.maneuver is Maneuver.CHANGE_LANE_LEFT and np.array_equal(kept.trajectory, plan)


def test_an_agent_moving_sideways_is_seen_at_its_speed_along_a_turned_plan():
    # a plan turned 30 degrees to the left at 10 m/s (each step 5 m along (cos 30, sin 30)); a car on that line
    # 10 m ahead driving along it at 10 m/s: velocity (8.66, 5.0), vy != 0. Its speed along the plan is
    # 8.66 cos 30 + 5.0 sin 30 = 7.5 + 2.5 = 10 m/s, like the ego's: the 10 - 2.3 - 3.442 = 4.26 m gap holds
    # and the margin is the 1.0 m safety gap alone (no speed to lose): kept. (Read as 7.5 - 2.5 = 5 m/s it would
    # need 1 + (10^2 - 5^2) / 12 = 7.25 m: vetoed)
    heading = np.radians(30.0)
    direction = np.array([np.cos(heading), np.sin(heading)])
    plan = 10.0 * CONFIG.step_times_s[:, None] * direction
    lead = agents(("car", *(10.0 * direction), *(10.0 * direction), (1.9, 4.6, 1.6), heading))
    kept = check_plan(plan, Maneuver.KEEP_LANE, lead, EgoState(10.0))
    assert not kept.vetoed and np.array_equal(kept.trajectory, plan)
    # the same car at 2 m/s along the line: 1 + (10^2 - 2^2) / 12 = 9.0 m needed of 4.26 m: vetoed
    slow = agents(("car", *(10.0 * direction), *(2.0 * direction), (1.9, 4.6, 1.6), heading))
    assert check_plan(plan, Maneuver.KEEP_LANE, slow, EgoState(10.0)).vetoed


def test_a_lane_change_is_refused_only_towards_a_side_without_a_lane():
    # a lane map of two lanes along +x, centres y = 0 (the ego's) and y = 3.5: a left lane, no right one. The
    # 4 s lane change ends at 10 m/s, 2.625 m left at 3 s (lane round(2.625 / 3.5) = +1): kept; its mirror
    # image ends in lane -1, which the map does not have: refused
    lanes = LaneCentres((np.array([[-200.0, 0.0], [200.0, 0.0]]), np.array([[-200.0, 3.5], [200.0, 3.5]])), 3.5)
    lateral = CONFIG.lane_width_m * np.clip(CONFIG.step_times_s / 4.0, 0, 1)
    left = check_plan(np.c_[10.0 * CONFIG.step_times_s, lateral], Maneuver.CHANGE_LANE_LEFT, agents(),
                      EgoState(10.0), lanes=lanes)
    assert not left.vetoed and left.maneuver is Maneuver.CHANGE_LANE_LEFT
    right = check_plan(np.c_[10.0 * CONFIG.step_times_s, -lateral], Maneuver.CHANGE_LANE_RIGHT, agents(),
                       EgoState(10.0), lanes=lanes)
    assert right.vetoed and "refused CHANGE_LANE_RIGHT, no right lane on the lane map" in right.reason


def test_with_a_lane_map_a_plan_that_ends_in_another_lane_is_checked_as_a_lane_change_whatever_its_name():
    """The label rules name a lane change only from a second before the crossing, so a learned lane change starts
    named KEEP_LANE; a follower it cuts in front of reaches it from behind, which check 2 leaves to the follower. The
    plan of test_a_blocked_lane_change_is_refused_with_what_blocks_it (2.625 m left at 3 s: lane +1) with that car 3 m
    behind in the left lane, named KEEP_LANE on the two-lane map, is refused as the same plan named a lane change is;
    on a map with a right lane only it is refused for the missing left lane."""
    two_lanes = LaneCentres((np.array([[-200.0, 0.0], [200.0, 0.0]]), np.array([[-200.0, 3.5], [200.0, 3.5]])), 3.5)
    right_only = LaneCentres((np.array([[-200.0, 0.0], [200.0, 0.0]]), np.array([[-200.0, -3.5], [200.0, -3.5]])),
                             3.5)
    plan = np.c_[10.0 * CONFIG.step_times_s, CONFIG.lane_width_m * np.clip(CONFIG.step_times_s / 4.0, 0, 1)]
    follower = agents(("car", -3, 3.5, 10, 0))
    blocked = check_plan(plan, Maneuver.KEEP_LANE, follower, EgoState(10.0), lanes=two_lanes)
    assert blocked.vetoed and blocked.maneuver is Maneuver.KEEP_LANE
    assert blocked.reason.startswith("KEEP_LANE: refused the KEEP_LANE plan's move into the left lane, blocked by car "
                                     "#0 3.0 m behind in the left lane at 10.0 m/s; on the ego's current path")
    np.testing.assert_allclose(blocked.trajectory, np.c_[np.hypot(5.0, 0.4375) * np.arange(1, 7), np.zeros(6)])
    missing = check_plan(plan, Maneuver.KEEP_LANE, agents(), EgoState(10.0), lanes=right_only)
    assert missing.vetoed and "refused the KEEP_LANE plan's move into the left lane, no left lane" in missing.reason
    assert not check_plan(plan, Maneuver.KEEP_LANE, agents(), EgoState(10.0), lanes=two_lanes).vetoed


def test_a_bad_plan_is_rejected():
    with pytest.raises(ValueError, match="trajectory"):
        check_plan(np.zeros((3, 2)), Maneuver.KEEP_LANE, agents(), EgoState(10.0))
    with pytest.raises(ValueError, match=r"got \(6, 2\) with 1 values not finite"):
        check_plan(np.where(np.arange(12).reshape(6, 2) == 5, np.nan, 1.0), Maneuver.KEEP_LANE, agents(),
                   EgoState(10.0))
    # the layer names its plans by the label rules' brake and stop on their 0.5 s grid: a plan on another grid is
    # an error (a 2 m/s^2 slowing reads as a brake over 1 s on that grid, not over 0.5 s on a 0.25 s one)
    quarter = PlannerConfig(step_s=0.25, horizon_steps=12)
    with pytest.raises(ValueError, match=r"step times \[0.25, 0.5, .* differ from the label rules' \[0.5, 1.0"):
        check_plan(np.c_[10.0 * quarter.step_times_s, np.zeros(12)], Maneuver.CHANGE_LANE_LEFT, agents(),
                   EgoState(10.0), quarter)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])  # ~1 in 4 slows
@given(
    speed=st.floats(2.0, 15.0),
    accel=st.floats(-3.0, 2.0),
    yaw_rate=st.floats(-0.3, 0.3),
    cars=st.lists(st.tuples(st.floats(8.0, 50.0), st.floats(-1.5, 1.5), st.floats(-3.0, 10.0),
                            st.floats(-1.0, 1.0)), min_size=1, max_size=4),
)
def test_a_slowed_plan_stays_on_its_path_and_never_goes_faster(speed, accel, yaw_rate, cars):
    # a proposed plan on an arc of curvature yaw_rate / 10 [1/m] at a constant acceleration from the ego's speed
    # (never reversing), random cars ahead: whenever the layer slows it along its path, each waypoint lies on the
    # proposed path, no further along it than the proposed one nor than holding the ego's speed, and no step is
    # faster than the ego now
    t = np.r_[0.0, CONFIG.step_times_s]
    distance = np.maximum.accumulate(np.maximum(speed * t + accel * t ** 2 / 2, 0.0))[1:]
    curvature = yaw_rate / 10.0
    heading = curvature * distance
    plan = (np.c_[distance, np.zeros_like(distance)] if abs(curvature) < 1e-9
            else np.c_[np.sin(heading) / curvature, (1 - np.cos(heading)) / curvature])
    on_arc = [("car", x, curvature * x ** 2 / 2 + offset, vx, vy) for x, offset, vx, vy in cars]  # near the path
    decision = check_plan(plan, Maneuver.KEEP_LANE, agents(*on_arc), EgoState(speed))
    assume("slowed the proposed" in decision.reason)
    along, across, _ = path_coordinates(plan, decision.trajectory)
    proposed_along, _, _ = path_coordinates(plan, plan)
    np.testing.assert_allclose(across, 0.0, atol=0.05)
    assert np.all(along <= np.minimum(proposed_along, speed * CONFIG.step_times_s) + 1e-6)
    step = CONFIG.step_s
    speeds = np.linalg.norm(np.diff(np.vstack([[0.0, 0.0], decision.trajectory]), axis=0), axis=1) / step
    assert np.all(speeds <= speed + 1e-6)


def test_a_kept_plan_heads_for_its_last_steps_speed_and_names_the_closest_agent_in_the_path():
    # the plan speeds up, x = 10 t + 0.5 t^2: its last step's mean speed is (34.5 - 28.125) / 0.5 = 12.75 m/s (the
    # first's 10.25). Two cars in the lane at 14 m/s pull away (not closing); the nearer one, 30 m ahead (30 - 2.3
    # - 3.442 = 24.3 m), listed second, is the one named
    t = CONFIG.step_times_s
    plan = np.c_[10.0 * t + 0.5 * t ** 2, np.zeros(CONFIG.horizon_steps)]
    kept = check_plan(plan, Maneuver.KEEP_LANE, agents(("car", 45, 0, 14, 0), ("car", 30, 0, 14, 0)), EgoState(10.0))
    assert not kept.vetoed and kept.maneuver is Maneuver.KEEP_LANE and kept.target_speed_mps == pytest.approx(12.75)
    assert kept.critical_object == 1
    assert kept.reason.endswith("closest in the path: car #1 at 14.0 m/s, 24.3 m ahead, not closing")
    # a car 45 m ahead at 8 m/s is closed on at 2 m/s: TTC (45 - 2.3 - 3.442) / 2 = 19.6 s; at 3 s still 33.3 m
    # of the 1 + (10^2 - 8^2) / 12 = 4 m margin: kept
    closing = check_plan(_straight(10.0), Maneuver.KEEP_LANE, agents(("car", 45, 0, 8, 0)), EgoState(10.0))
    assert not closing.vetoed and closing.reason.endswith("car #0 at 8.0 m/s, 39.3 m ahead, TTC 19.6 s")


def test_a_veto_for_an_agent_at_the_stopped_speed_plans_a_standstill():
    # the ego at 2 m/s keeps 2 m/s behind a car at exactly the stopped speed (0.5 m/s), its rear 3 m ahead of the
    # ego's front: the ego's front passes it after 2 s (2 t > 3 + 0.5 t), the plan collides at 2.5 s. The car's
    # 0.5 m/s is a standstill (<= stopped_speed_mps): the plan is slowed along its path down to 0. At 0.5 m/s^2,
    # x = 2 t - t^2 / 4, at 3 s 3.75 m (0.625 m/s over the step): 3 + 1.5 - 3.75 = 0.75 m of the
    # 1 + (0.625^2 - 0.5^2) / 12 = 1.01 m margin, short; at 1.0 m/s^2 it stands at 2 m from 2 s on, the gaps
    # (0.5 s .. 3 s) 2.375, 2.0, 1.875, 2.0, 2.25, 2.5 m against at most 1 + (1.75^2 - 0.25) / 12 = 1.23 m: clear.
    # A STOP heading for 0 m/s (slowing only down to 0.5 m/s it would still creep on at 2.625 m at 3 s)
    car = agents(("car", CONFIG.ego_front_m + 3.0 + 2.3, 0, 0.5, 0))
    decision = check_plan(_straight(2.0), Maneuver.KEEP_LANE, car, EgoState(2.0))
    assert decision.vetoed and decision.maneuver is Maneuver.STOP and decision.target_speed_mps == 0.0
    assert "collides with the plan at 2.5 s" in decision.reason and "braking at 1.0 m/s^2" in decision.reason
    np.testing.assert_allclose(decision.trajectory[:, 0], [0.875, 1.5, 1.875, 2.0, 2.0, 2.0], atol=1e-9)


def test_an_overtaker_whose_centre_is_behind_the_ego_centre_blocks_a_lane_change():
    # the lane change into the left lane within 1 s at 10 m/s ((5, 1.75), (10, 3.5), then along y = 3.5); a car in
    # the left lane 1 m behind at 12 m/s. At 1.0 s it is at (11, 3.5), 1 m ahead of the planned rear axle but behind
    # the ego's centre (1.4 m ahead of it): alongside, its front far past the ego's rear bumper, it is one the plan
    # cuts in front of (behind the planned position: the ego's centre, as check 2's "behind"): refused. (Check 2
    # alone would let it be: it first touches the plan at 0.5 s from behind and faster, 11.3 against 10.6 m/s)
    t = CONFIG.step_times_s
    plan = np.c_[10.0 * t, CONFIG.lane_width_m * np.minimum(t, 1.0)]
    blocked = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(("car", -1, 3.5, 12, 0)), EgoState(10.0))
    assert blocked.vetoed and blocked.maneuver is Maneuver.KEEP_LANE
    assert "refused CHANGE_LANE_LEFT, blocked by car #0 1.0 m behind in the left lane at 12.0 m/s" in blocked.reason


def test_an_agent_alongside_at_the_plans_own_speed_does_not_run_into_it():
    # the ego keeps 10 m/s; a car (4.6 x 1.9 m) 1 m behind and 1.9 m left at 10 m/s drifts right at 0.3 m/s: at
    # 0.5 s it is at (4, 1.75), its box (x 1.7 .. 6.3, y from 0.8) over the ego's (x 4.358 .. 8.442, y up to
    # 0.925), its centre behind the ego's (6.4 m). Along the plan it is exactly as fast as the plan (10 m/s), not
    # faster: it does not run into the ego, the two meet: vetoed
    decision = check_plan(_straight(10.0), Maneuver.KEEP_LANE, agents(("car", -1, 1.9, 10, -0.3)), EgoState(10.0))
    assert decision.vetoed and "collides with the plan at 0.5 s" in decision.reason


def test_an_overtaker_is_judged_behind_or_ahead_at_its_first_contact():
    # the ego keeps 10 m/s; a car 3 m behind, 2.6 m left at (14, -0.5) m/s overtakes and cuts in. At 0.5 s it is
    # behind the planned rear axle (4 against 5 m); it first touches the plan at 1.5 s at (18, 1.85), its box
    # (x 15.7 .. 20.3, y from 0.9; at 1.0 s from 1.15) over the ego's (x 14.358 .. 18.442, y up to 0.925),
    # its centre ahead of the ego's (16.4 m): a cut-in ahead that the plan runs into, vetoed (not one running into
    # the ego from behind, as it was at 0.5 s)
    decision = check_plan(_straight(10.0), Maneuver.KEEP_LANE, agents(("car", -3, 2.6, 14, -0.5)), EgoState(10.0))
    assert decision.vetoed and "collides with the plan at 1.5 s" in decision.reason


def test_an_agent_pulling_away_still_needs_the_safety_gap():
    # the ego stands; a car creeps away at 1.5 m/s, its rear 0.1 m ahead of the ego's front: at 0.5 s 0.85 m,
    # short of the 1.0 m safety gap. Braking needs nothing (no speed to lose), and a faster agent does not shrink
    # the gap asked below the safety gap (1 - 1.5^2 / 12 = 0.81 m would pass it): vetoed, and the plan stands
    car = agents(("car", CONFIG.ego_front_m + 0.1 + 2.3, 0, 1.5, 0))
    standing = np.zeros((CONFIG.horizon_steps, 2))
    decision = check_plan(standing, Maneuver.STOP, car, EgoState(0.0))
    assert decision.vetoed and "leaves 0.9 m of the 1.0 m braking margin at 0.5 s" in decision.reason
    # an ego rolling back at 1 m/s is taken as standing: the veto's plan stands too, it never reverses
    rolling_back = check_plan(standing, Maneuver.STOP, car, EgoState(-1.0))
    assert rolling_back.vetoed and rolling_back.maneuver is Maneuver.STOP
    np.testing.assert_array_equal(rolling_back.trajectory, standing)


def test_the_braking_margin_names_the_closest_of_the_agents_short_at_the_first_step():
    # the ego keeps 10 m/s; two standing cars side by side in its lane (y -1 and +1, boxes clear of each other), rears
    # at 36.2 m and 35.7 m. At 2.5 s (25 m) they are 7.76 m and 7.26 m from the ego's front, both short of the
    # 1 + 10^2 / 12 = 9.33 m margin (at 2.0 s 12.76 and 12.26 m, enough): the nearer one, listed second, is named
    cars = agents(("car", 38.5, -1.0, 0, 0), ("car", 38.0, 1.0, 0, 0))
    decision = check_plan(_straight(10.0), Maneuver.KEEP_LANE, cars, EgoState(10.0))
    assert decision.vetoed and decision.critical_object == 1
    assert "car #1 at 0.0 m/s, 32.3 m ahead leaves 7.3 m of the 9.3 m braking margin at 2.5 s" in decision.reason


def test_an_oncoming_agent_is_no_faster_along_the_plan_than_standing():
    # the ego keeps 10 m/s; a car 72 m ahead in its lane comes towards it at 10 m/s. At 3 s (ego 30 m, car 42 m)
    # the gap is 42 - 2.3 - 30 - 3.442 = 6.26 m. Its speed along the plan counts as 0 (it cannot be followed at -10
    # m/s): the margin is 1 + 10^2 / 12 = 9.33 m, vetoed (read as -10 m/s, 10^2 - 10^2 would ask only 1.0 m)
    decision = check_plan(_straight(10.0), Maneuver.KEEP_LANE, agents(("car", 72, 0, -10, 0)), EgoState(10.0))
    assert decision.vetoed and "leaves 6.3 m of the 9.3 m braking margin at 3.0 s" in decision.reason


def test_the_rule_planners_pass_into_the_lead_it_passes_is_vetoed_in_the_step():
    """The ego at 3 m/s, a car at 2 m/s 3.0 m ahead (bumper gap): TTC 3.0 s, not below 3, and matching its speed
    needs 1.0 m/s^2, under 2.5, so the rules follow it and pass it on the free left lane, speeding up at 1.5 m/s^2
    from now. At 1.5 s the plan's front is 6.188 + 3.442 = 9.63 m along x and 0.96 m aside; the car's rear is at
    12.742 - 2.3 = 10.442 - 1.0 = 9.44 m, centred in the lane: 0.19 m of overlap along x, and 0.96 m aside is less than
    the half widths' 1.875 m. decide's own plan collides; the step's decision is the safety layer's."""
    lead = agents(("car", 3.0 + CONFIG.ego_front_m + 2.3, 0.0, 2.0, 0.0))
    rules = decide(lead, EgoState(3.0), CONFIG)
    assert rules.maneuver is Maneuver.CHANGE_LANE_LEFT
    assert rules.trajectory[2] == pytest.approx([6.188, 0.963], abs=1e-3)
    checked = checked_rule_decision(lead, EgoState(3.0), CONFIG)
    assert checked.vetoed and "car #0 at 2.0 m/s, 3.0 m ahead collides with the plan at 1.5 s" in checked.reason
    free = agents(("car", 40.0, 0.0, 2.0, 0.0))  # nothing for the safety layer to change: the rules' decision
    kept = checked_rule_decision(free, EgoState(3.0), CONFIG)
    assert kept.to_json() == decide(free, EgoState(3.0), CONFIG).to_json()
