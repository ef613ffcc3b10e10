"""The planner on hand-built scenarios, TTC and trajectory arithmetic worked by hand, and monotonicity.

Default config: ego front bumper at x = 1.4 + 4.084 / 2 = 3.442 m, rear at -0.642 m; cars 4.6 m long (half 2.3).
"""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception.decision import Decision, EgoState, Maneuver, PlannerConfig, decide
from perception.decision.planner import assess_agents, plan_trajectory, speed_limit_mps
from perception.geometry import Boxes3D
from tests.decision.helpers import agents

CONFIG = PlannerConfig()
FRONT = 3.442


def test_free_road_keeps_lane_and_speeds_up_to_cruise():
    decision = decide(agents(), EgoState(10.0))
    assert decision.maneuver is Maneuver.KEEP_LANE
    assert decision.target_speed_mps == pytest.approx(13.9)
    assert decision.ttc_s == math.inf and decision.critical_object == -1
    assert decision.lane_change_left_ok and decision.lane_change_right_ok
    # 1.5 m/s^2 from 10 to 13.9 m/s takes 2.6 s: x(0.5) = 5 + 0.75 * 0.25; x(3) = 26 + 0.75 * 2.6^2 + 13.9 * 0.4
    assert decision.trajectory[0, 0] == pytest.approx(5.1875)
    assert decision.trajectory[-1, 0] == pytest.approx(26 + 0.75 * 2.6 ** 2 + 13.9 * 0.4)
    np.testing.assert_allclose(decision.trajectory[:, 1], 0.0, atol=1e-12)


def test_free_road_with_traffic_elsewhere_keeps_lane():
    """Cars in the neighbouring lanes, an oncoming car in the left lane and a faster car behind in the ego lane
    do not block the ego lane ahead."""
    scene = agents(("car", 30, 3.5, 13, 0), ("car", 60, 3.5, -12, 0), ("car", -15, 0, 16, 0),
                   ("car", 25, -3.6, 12, 0))
    decision = decide(scene, EgoState(12.0))
    assert decision.maneuver is Maneuver.KEEP_LANE
    assert decision.ttc_s == math.inf


def test_lead_car_braking_means_brake():
    # gap = 25 - 2.3 - 3.442 = 19.258 m, closing 13 - 5 = 8 m/s: TTC 2.40725 s < 3 s
    decision = decide(agents(("car", 25, 0, 5, 0)), EgoState(13.0))
    assert decision.maneuver is Maneuver.BRAKE
    assert decision.critical_object == 0
    assert decision.ttc_s == pytest.approx(19.258 / 8)
    assert decision.target_speed_mps == pytest.approx(5.0)
    # needed 8^2 / (2 * 16.758) = 1.91 m/s^2 < comfortable, so the plan brakes at 2.5 m/s^2 (13 -> 5 takes 3.2 s)
    assert decision.trajectory[-1, 0] == pytest.approx(13 * 3 - 1.25 * 9)


def test_among_urgent_agents_the_slowest_sets_the_maneuver():
    # the ego at 13 m/s: a car at 5 m/s, gap 20 - 5.742 = 14.258 m, TTC 14.258 / 8 = 1.78 s; a stopped car, gap
    # 40 - 5.742 = 34.258 m, TTC 34.258 / 13 = 2.64 s, needs 13^2 / (2 x 31.758) = 2.66 m/s^2: both urgent. The
    # slowest sets the maneuver (rule 2): STOP for the stopped car, though the moving one closes sooner (not a
    # BRAKE to 5 m/s); the decision's TTC is still the smallest
    decision = decide(agents(("car", 20, 0, 5, 0), ("car", 40, 0, 0, 0)), EgoState(13.0))
    assert decision.maneuver is Maneuver.STOP
    assert decision.critical_object == 1 and decision.target_speed_mps == 0.0
    assert decision.ttc_s == pytest.approx(14.258 / 8)


def test_cut_in_from_the_left_means_brake():
    # y(t) = 3.5 - 1.2 t enters the ego lane (|y| < 1.75) at 1.46 s; gap 15 - 2.3 - 3.442 = 9.258, closing 4
    cut_in = agents(("car", 15, 3.5, 9, -1.2))
    decision = decide(cut_in, EgoState(13.0))
    assert decision.maneuver is Maneuver.BRAKE
    assert decision.critical_object == 0
    assert decision.ttc_s == pytest.approx(9.258 / 4)
    assert not decision.lane_change_left_ok
    # the same car keeping its lane is no threat
    assert not decide(agents(("car", 15, 3.5, 9, 0)), EgoState(13.0)).maneuver.is_braking


def test_pedestrian_crossing_means_stop():
    # y(t) = 4 - 1.4 t reaches the ego lane at 1.6 s, still ahead of the ego; gap 20 - 0.35 - 3.442 = 16.208
    crossing = agents(("pedestrian", 20, 4.0, 0, -1.4))
    decision = decide(crossing, EgoState(10.0))
    assert decision.maneuver is Maneuver.STOP
    assert decision.target_speed_mps == 0.0 and decision.critical_object == 0
    assert decision.ttc_s == pytest.approx(16.208 / 10)
    # stops 2.5 m short: 10^2 / (2 * 13.708) = 3.648 m/s^2, standing by 2.74 s
    assert decision.trajectory[-1, 0] == pytest.approx(13.708)
    assert decision.trajectory[-1, 0] + FRONT <= 20 - 0.35
    walking_away = agents(("pedestrian", 20, 4.0, 0, 1.4))
    assert decide(walking_away, EgoState(10.0)).maneuver is Maneuver.KEEP_LANE


def test_an_oncoming_car_drifting_into_the_lane_behind_the_moving_ego_is_not_in_the_path():
    # the ego at 10 m/s, an oncoming car at (30, 3.5) at (-10, -1) m/s: y = 3.5 - t reaches the ego lane
    # (|y| < 1.75) at 1.75 s, at x = 30 - 17.5 = 12.5, behind the ego's centre by then (1.4 + 10 x 1.75 = 18.9);
    # it stays ahead of that centre only while 30 - 10 t > 1.4 + 10 t, t < 1.43 s, when y > 2.07 (left lane).
    # Against the ego's centre now (x > 1.4, until 2.86 s) it would be: gap 30 - 2.3 - 3.442 = 24.258, closing
    # 20 m/s, TTC 1.2 s, a STOP
    decision = decide(agents(("car", 30, 3.5, -10, -1)), EgoState(10.0))
    assert decision.maneuver is Maneuver.KEEP_LANE
    assert decision.ttc_s == math.inf and decision.critical_object == -1


def test_slow_lead_with_blocked_left_lane_changes_right():
    # lead: gap 34.258 m at 6 m/s, TTC 5.7 s and 0.57 m/s^2 needed: no emergency, within the 48 m look-ahead
    scene = agents(("car", 40, 0, 6, 0), ("car", 2, 3.5, 12, 0))
    decision = decide(scene, EgoState(12.0))
    assert decision.maneuver is Maneuver.CHANGE_LANE_RIGHT
    assert not decision.lane_change_left_ok and decision.lane_change_right_ok
    assert decision.critical_object == 0
    # quintic lateral move: -3.5 * s(3 / 4), s(u) = u^3 (10 - 15 u + 6 u^2)
    assert decision.trajectory[-1, 1] == pytest.approx(-3.5 * 0.75 ** 3 * (10 - 15 * 0.75 + 6 * 0.75 ** 2))


def test_slow_lead_with_both_lanes_blocked_means_follow():
    scene = agents(("car", 40, 0, 6, 0), ("car", 2, 3.5, 12, 0), ("truck", -8, -3.5, 14, 0))
    decision = decide(scene, EgoState(12.0))
    assert decision.maneuver is Maneuver.FOLLOW
    assert not decision.lane_change_left_ok and not decision.lane_change_right_ok
    assert decision.critical_object == 0
    # spare = 34.258 - (2.5 + 1.5 * 6) = 22.758 m: 6 + sqrt(2 * 2.5 * 22.758) > cruise, so the cruise speed
    assert decision.target_speed_mps == pytest.approx(13.9)
    # the rationale names what blocks each side: the car beside the ego's front, the truck closing from behind
    assert decision.reason.endswith("; not passing: left lane blocked by car #1 2.0 m ahead in the left lane at "
                                    "12.0 m/s; right lane blocked by truck #2 8.0 m behind in the right lane at "
                                    "14.0 m/s")


def test_the_follow_target_keeps_the_headway_to_the_lead():
    # the ego at 13 m/s, a lead at 12 m/s, gap 26.742 - 2.3 - 3.442 = 21 m (TTC 21 s, needs 1 / 37 m/s^2): the
    # following gap is 2.5 + 1.5 x 12 = 20.5 m, 0.5 m spare; shedding the closing speed v - 12 at 2.5 m/s^2 over it:
    # (v - 12)^2 = 2 x 2.5 x 0.5, v = 12 + sqrt(2.5) = 13.581 m/s, under the 13.9 m/s cruise speed. 12 m/s is not
    # 2 m/s under the limit (11.9): no pass. (Without the headway, 18.5 m spare: 21.6, capped to 13.9.)
    decision = decide(agents(("car", 26.742, 0, 12, 0)), EgoState(13.0))
    assert decision.maneuver is Maneuver.FOLLOW and decision.critical_object == 0
    assert decision.target_speed_mps == pytest.approx(12 + math.sqrt(2.5))


def test_a_lead_inside_the_following_gap_sets_the_speed_whose_headway_gap_is_the_gap_now():
    # the ego and a lead both at 12 m/s (not 2 m/s under the 13.9 m/s limit: no pass), gap 18 m, inside the
    # 2.5 + 1.5 x 12 = 20.5 m following gap: the target is the speed v whose gap 2.5 + 1.5 v is the 18 m now,
    # (18 - 2.5) / 1.5 = 10.333 m/s (not closing, no braking needed: no emergency)
    decision = decide(agents(("car", 18 + 2.3 + FRONT, 0, 12, 0)), EgoState(12.0))
    assert decision.maneuver is Maneuver.FOLLOW and decision.critical_object == 0
    assert decision.target_speed_mps == pytest.approx((18 - 2.5) / 1.5)


def test_a_faster_lead_closer_than_the_standstill_gap_needs_no_braking():
    # the ego at 5 m/s, a lead pulling away at 12 m/s 1.5 m ahead (inside the 2.5 m standstill gap): matching its
    # speed needs no deceleration and it does not close (TTC inf), so no BRAKE / STOP; it is followed (12 m/s is
    # not 2 m/s under the limit)
    scene = agents(("car", 1.5 + 2.3 + FRONT, 0, 12, 0))
    assessment = assess_agents(scene, 5.0, CONFIG)
    assert assessment.gap_m[0] == pytest.approx(1.5)
    assert assessment.required_decel_mps2[0] == 0.0 and assessment.ttc_s[0] == math.inf
    assert decide(scene, EgoState(5.0)).maneuver is Maneuver.FOLLOW


def test_an_urgent_agent_at_exactly_the_stopped_speed_means_stop():
    # a car at 0.5 m/s (stopped_speed_mps, inclusive) 20 m ahead of the ego at 10 m/s: gap 20 - 5.742 = 14.258 m,
    # TTC 14.258 / 9.5 = 1.5 s: urgent, and the agent counts as stopped: STOP to a standstill, not BRAKE to 0.5 m/s
    decision = decide(agents(("car", 20, 0, 0.5, 0)), EgoState(10.0))
    assert decision.maneuver is Maneuver.STOP and decision.target_speed_mps == 0.0


def test_a_pass_takes_the_faster_neighbouring_lane_at_the_speed_it_allows():
    # the slow lead of test_free_left_lane_is_preferred_on_a_tie (40 m ahead at 6 m/s, the ego at 12 m/s, look-ahead
    # 48 m); cars 45 m ahead (gap 39.258 m, within it) in the left lane at 9 m/s and in the right lane at 10.5 m/s,
    # both clear of the gap check (at 3 s 39.258 - 3 x 3 = 30.3 m and 39.258 - 3 x 1.5 = 34.8 m >= 3 + 1 x 12) and
    # both at least the 6 + 2 = 8 m/s a pass needs: the faster right lane is taken, at the 10.5 m/s it allows
    scene = agents(("car", 40, 0, 6, 0), ("car", 45, 3.5, 9, 0), ("car", 45, -3.5, 10.5, 0))
    decision = decide(scene, EgoState(12.0))
    assert decision.maneuver is Maneuver.CHANGE_LANE_RIGHT and decision.critical_object == 0
    assert decision.target_speed_mps == pytest.approx(10.5)
    assert decision.reason.endswith("right lane clear, allows 10.5 m/s")


def test_follow_names_a_clear_lane_too_slow_to_pass_in():
    # the left lane is clear of the gap check (45 - 2.3 - 3.442 = 39.3 m ahead) but its car drives 6.5 m/s, less
    # than the 2 m/s gain over the 6 m/s lead that a pass needs
    scene = agents(("car", 40, 0, 6, 0), ("car", 45, 3.5, 6.5, 0), ("truck", -8, -3.5, 14, 0))
    decision = decide(scene, EgoState(12.0))
    assert decision.maneuver is Maneuver.FOLLOW and decision.lane_change_left_ok
    assert ("not passing: left lane allows 6.5 m/s, under the 8.0 m/s a pass needs; right lane blocked by truck #2"
            in decision.reason)


def test_a_lead_under_min_speed_gain_below_the_limit_is_followed_with_no_pass_rationale():
    # the ego at 12 m/s, a lead at 12.5 m/s, gap 40 - 5.742 = 34.258 m: only 1.4 m/s under the 13.9 m/s limit
    # (a pass needs 2), so no pass is weighed and the reason names no refusal; follow speed
    # 12.5 + sqrt(5 x (34.258 - 2.5 - 18.75)) = 20.6, capped to the limit
    decision = decide(agents(("car", 40, 0, 12.5, 0)), EgoState(12.0))
    assert decision.maneuver is Maneuver.FOLLOW
    assert decision.reason == "FOLLOW: following car #0 at 12.5 m/s, 34.3 m ahead, target 13.9 m/s"


def test_free_left_lane_is_preferred_on_a_tie():
    decision = decide(agents(("car", 40, 0, 6, 0)), EgoState(12.0))
    assert decision.maneuver is Maneuver.CHANGE_LANE_LEFT
    assert decision.trajectory[-1, 1] > 3.0


def test_a_neighbouring_lane_is_slowed_only_by_agents_within_the_look_ahead():
    # the ego at 8 m/s, look-ahead max(20, 8 x 4) = 32 m; a lead at 6 m/s, gap 25 - 5.742 = 19.258 m (TTC 9.6 s,
    # needs 4 / 33.516 m/s^2), 7.9 m/s under the limit: a pass is considered. Cars at 5 m/s 80 m ahead in both
    # neighbouring lanes, gap 74.258 m (at 3 s still 65.258 >= 3 + 8), lie beyond the look-ahead: both lanes
    # allow the 13.9 m/s cruise speed, left wins the tie
    far = agents(("car", 25, 0, 6, 0), ("car", 80, 3.5, 5, 0), ("car", 80, -3.5, 5, 0))
    decision = decide(far, EgoState(8.0))
    assert decision.maneuver is Maneuver.CHANGE_LANE_LEFT
    assert decision.reason.endswith("left lane clear, allows 13.9 m/s")
    # 30 m ahead (gap 24.258 m, within 32 m; at 3 s 15.258 >= 11, clear of the gap check) they slow both lanes
    # to 5 m/s, under the 6 + 2 = 8 m/s a pass needs
    near = agents(("car", 25, 0, 6, 0), ("car", 30, 3.5, 5, 0), ("car", 30, -3.5, 5, 0))
    decision = decide(near, EgoState(8.0))
    assert decision.maneuver is Maneuver.FOLLOW
    assert "not passing: left lane allows 5.0 m/s, under the 8.0 m/s a pass needs" in decision.reason


def test_a_follower_short_of_the_rear_gap_by_its_half_length_blocks_the_lane():
    # a car 14 m behind in the left lane at the ego's 10 m/s: from its front (14 - 2.3 m behind the rear axle) to
    # the ego's rear bumper (0.642 m behind it) 14 - 2.3 - 0.642 = 11.06 m at every step, short of
    # 3 + 1 x 10 = 13 m (from its rear, 14 + 2.3 - 0.642 = 15.66 m, it would pass): the left lane is blocked,
    # the right one free. 16.5 m behind: 16.5 - 2.942 = 13.56 m, clear
    blocked = decide(agents(("car", -14, 3.5, 10, 0)), EgoState(10.0))
    assert not blocked.lane_change_left_ok and blocked.lane_change_right_ok
    assert decide(agents(("car", -16.5, 3.5, 10, 0)), EgoState(10.0)).lane_change_left_ok


def test_the_rear_gap_a_lane_change_needs_scales_with_the_follower_s_speed():
    # the ego at 13 m/s, a car 12 m behind in the left lane at 5 m/s: from its front (-12 + 2.3 = -9.7) to the
    # ego's rear bumper (-0.642) 9.058 m now, growing by 8 m/s; it needs 3 + 1 x 5 = 8 m: the left lane is clear
    # (at the ego's 13 m/s it would need 16 m). The same car at 7 m/s needs 3 + 7 = 10 m > 9.058 m: blocked
    slow = decide(agents(("car", -12, 3.5, 5, 0)), EgoState(13.0))
    assert slow.lane_change_left_ok and slow.lane_change_right_ok
    faster = decide(agents(("car", -12, 3.5, 7, 0)), EgoState(13.0))
    assert not faster.lane_change_left_ok and faster.lane_change_right_ok


def test_a_slow_car_behind_in_the_next_lane_does_not_slow_that_lane():
    # the slow lead of test_free_left_lane_is_preferred_on_a_tie (40 m ahead at 6 m/s, the ego at 12 m/s) and a
    # car 20 m behind in the left lane at 2 m/s: it falls back (its front to the ego's rear bumper
    # 20 - 2.3 - 0.642 + 10 t m, at least the 3 + 1 x 2 = 5 m it needs) and is not ahead of the ego, so the
    # left lane still allows the 13.9 m/s cruise speed: a tie with the right lane, left wins
    scene = agents(("car", 40, 0, 6, 0), ("car", -20, 3.5, 2, 0))
    decision = decide(scene, EgoState(12.0))
    assert decision.maneuver is Maneuver.CHANGE_LANE_LEFT and decision.lane_change_left_ok
    assert decision.reason.endswith("left lane clear, allows 13.9 m/s")


def test_among_followed_leads_the_one_with_the_lower_follow_speed_leads():
    # the ego at 10 m/s, look-ahead 40 m: a car at 13 m/s, gap 30.742 - 5.742 = 25 m (pulling away), follow speed
    # 13 + sqrt(2 x 2.5 x (25 - 2.5 - 19.5)) = 16.87 m/s; a stopped car, gap 35 m (TTC 3.5 s, needs
    # 100 / 65 = 1.54 m/s^2), follow speed sqrt(2 x 2.5 x 32.5) = 12.75 m/s. The farther, stopped car leads, 13.9
    # m/s under the limit: passed in the free left lane. (Led by the nearer car, 13 m/s is no pass: FOLLOW.)
    decision = decide(agents(("car", 30.742, 0, 13, 0), ("car", 40.742, 0, 0, 0)), EgoState(10.0))
    assert decision.maneuver is Maneuver.CHANGE_LANE_LEFT and decision.critical_object == 1
    assert decision.reason.startswith("CHANGE_LANE_LEFT: passing car #1 at 0.0 m/s, 35.0 m ahead")


def test_stopped_queue_means_stop():
    queue = agents(("car", 20, 0, 0, 0), ("car", 26, 0.2, 0, 0), ("car", 32, -0.1, 0, 0))
    decision = decide(queue, EgoState(8.0))
    assert decision.maneuver is Maneuver.STOP
    assert decision.critical_object == 0
    # gap 14.258: stops at 11.758 m with 64 / (2 * 11.758) = 2.72 m/s^2, standing by 2.94 s
    assert decision.trajectory[-1, 0] == pytest.approx(11.758)
    # already standing 4 m behind the queue: stays (no creeping up)
    standing = agents(("car", 4 + 2.3 + FRONT, 0, 0, 0), ("car", 16, 0, 0, 0))
    decision = decide(standing, EgoState(0.0))
    assert decision.maneuver is Maneuver.STOP
    np.testing.assert_allclose(decision.trajectory, 0.0)


def test_ttc_hand_worked():
    config = PlannerConfig(rear_axle_to_center_m=1.0, ego_length_m=2.0)  # front bumper at x = 2 m
    size = (2.0, 4.0, 1.5)
    boxes = agents(("car", 30, 0, 5, 0, size), ("car", 30, 0.5, -5, 0, size), ("car", 30, 0, 20, 0, size),
                   ("car", 30, 5.0, 0, 0, size), ("car", 30, 0, 5, 0, size, np.pi / 2))
    ttc = assess_agents(boxes, 15.0, config).ttc_s
    # gap 30 - 2 - 2 = 26 m: closing 10 -> 2.6 s; oncoming, closing 20 -> 1.3 s; opening -> inf; other lane -> inf;
    # turned 90 degrees, half its width along x: gap 27 -> 2.7 s
    np.testing.assert_allclose(ttc, [2.6, 1.3, np.inf, np.inf, 2.7])
    required = assess_agents(agents(("car", 30, 0, 0, 0, size)), 20.0, config).required_decel_mps2
    assert required[0] == pytest.approx(400 / (2 * 23.5))
    decision = decide(boxes[[3]], EgoState(15.0), config)
    assert decision.ttc_s == math.inf and decision.to_json()["ttc_s"] is None


def test_an_oncoming_car_s_forward_speed_counts_as_zero_in_the_braking_it_needs():
    # the ego at 10 m/s, an oncoming car in its lane at -5 m/s, gap 52.242 - 2.3 - 3.442 = 46.5 m: closing 15 m/s,
    # TTC 3.1 s (not below 3 s); the ego needs to come down to max(-5, 0) = 0 within 46.5 - 2.5 = 44 m:
    # 10^2 / (2 x 44) = 1.136 m/s^2, comfortable; beyond the 40 m look-ahead: KEEP_LANE. (Down to -5 m/s it would
    # be 15^2 / 88 = 2.557 m/s^2, more than the comfortable 2.5: a STOP.)
    oncoming = agents(("car", 52.242, 0, -5, 0))
    assert assess_agents(oncoming, 10.0, CONFIG).required_decel_mps2[0] == pytest.approx(100 / 88)
    decision = decide(oncoming, EgoState(10.0))
    assert decision.maneuver is Maneuver.KEEP_LANE
    assert decision.ttc_s == pytest.approx(3.1)


def test_low_scores_are_ignored_and_indices_refer_to_the_input():
    boxes = agents(("car", 15, 0, 0, 0), ("car", 25, 0, 0, 0))
    boxes = Boxes3D(boxes.centers, boxes.sizes, boxes.yaws, boxes.velocities, boxes.labels, np.array([0.1, 0.9]))
    decision = decide(boxes, EgoState(10.0))
    assert decision.maneuver is Maneuver.STOP and decision.critical_object == 1


def test_a_box_scoring_exactly_min_score_is_kept():
    # only boxes scoring below min_score (0.3) are ignored: a stopped car scoring exactly 0.3, gap
    # 20 - 5.742 = 14.258 m, TTC 1.43 s at 10 m/s, makes the ego stop
    assert CONFIG.min_score == 0.3
    boxes = agents(("car", 20, 0, 0, 0))
    boxes = Boxes3D(boxes.centers, boxes.sizes, boxes.yaws, boxes.velocities, boxes.labels, np.array([0.3]))
    decision = decide(boxes, EgoState(10.0))
    assert decision.maneuver is Maneuver.STOP and decision.critical_object == 0


@pytest.mark.parametrize("field, value", [("centers", (np.nan, 0.0, 0.9)), ("velocities", (np.inf, 0.0)),
                                          ("scores", np.nan), ("yaws", np.nan), ("sizes", (1.9, np.nan, 1.6))])
def test_a_box_that_is_not_finite_is_an_error_not_an_empty_road(field, value):
    # a car standing 4.3 m ahead makes the ego stop; the same car with one value not finite is not silently
    # dropped (a NaN centre or score fails every comparison and would leave the lane "clear")
    boxes = agents(("car", 30, 0, 0, 0), ("car", 4.3 + FRONT, 0, 0, 0))
    assert decide(boxes, EgoState(10.0)).maneuver is Maneuver.STOP
    columns = {name: np.array(getattr(boxes, name), dtype=np.float64) for name in
               ("centers", "sizes", "yaws", "velocities", "scores")}
    columns[field][1] = value
    broken = Boxes3D(columns["centers"], columns["sizes"], columns["yaws"], columns["velocities"], boxes.labels,
                     columns["scores"])
    with pytest.raises(ValueError, match=r"boxes \[1\] of 2 hold a value that is not finite"):
        decide(broken, EgoState(10.0))
    with pytest.raises(ValueError, match=r"boxes \[0\] of 2"):
        decide(boxes, EgoState(10.0), agent_accelerations_mps2=np.array([np.nan, 0.0]))


def test_curve_lowers_the_speed_and_bends_the_plan():
    ego = EgoState(10.0, yaw_rate_rps=0.5)  # curvature 0.05 1/m: sqrt(3 / 0.05) = 7.75 m/s
    assert speed_limit_mps(ego, CONFIG) == pytest.approx(math.sqrt(60))
    decision = decide(agents(), ego)
    assert decision.target_speed_mps == pytest.approx(math.sqrt(60))
    trajectory = plan_trajectory(ego, 10.0, 2.5, 0, CONFIG)  # constant speed on a circle of radius 20 m
    radius = np.hypot(trajectory[:, 0], trajectory[:, 1] - 20.0)
    np.testing.assert_allclose(radius, 20.0)
    np.testing.assert_allclose(np.hypot(*trajectory[0]), 2 * 20 * np.sin(5.0 / 40), rtol=1e-12)  # chord of 5 m arc


def test_decision_json_round_trip():
    decision = decide(agents(("car", 25, 0, 5, 0)), EgoState(13.0))
    record = json.loads(json.dumps(decision.to_json(), allow_nan=False))
    again = Decision.from_json(record)
    assert again.maneuver is decision.maneuver and again.reason == decision.reason
    np.testing.assert_array_equal(again.trajectory, decision.trajectory)
    assert again.ttc_s == decision.ttc_s


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="lane_width_m"):
        PlannerConfig(lane_width_m=0.0)
    with pytest.raises(ValueError, match="comfortable_decel_mps2"):
        PlannerConfig(comfortable_decel_mps2=7.0, max_decel_mps2=6.0)
    with pytest.raises(ValueError, match="slowdown_step_mps2 7.0 exceeds max_decel_mps2 6.0"):
        PlannerConfig(slowdown_step_mps2=7.0, max_decel_mps2=6.0)
    with pytest.raises(ValueError, match="slowdown_step_mps2 must be > 0"):
        PlannerConfig(slowdown_step_mps2=0.0)


_SIZES = st.sampled_from([("car", (1.9, 4.6, 1.6)), ("truck", (2.5, 10.0, 3.5)), ("pedestrian", (0.7, 0.7, 1.8))])


GAP_GRID_M = np.linspace(0.0, 100.0, 161)
CAUTION = {Maneuver.KEEP_LANE: 0, Maneuver.CHANGE_LANE_LEFT: 1, Maneuver.CHANGE_LANE_RIGHT: 1, Maneuver.FOLLOW: 2,
           Maneuver.BRAKE: 3, Maneuver.STOP: 4}
"""The maneuvers ranked by caution, safety first: STOP and BRAKE above FOLLOW, FOLLOW above a lane change, a lane
change above KEEP_LANE."""


@settings(max_examples=60, deadline=None)
@given(
    ego_speed=st.floats(0.0, 20.0),
    kind=_SIZES,
    y=st.floats(-1.0, 1.0),
    vx=st.floats(-5.0, 20.0),
    vy=st.floats(-0.2, 0.2),
    neighbours=st.lists(st.tuples(st.sampled_from([-3.5, 3.5]), st.floats(-30, 60), st.floats(-10, 20)), max_size=3),
)
def test_a_closer_obstacle_is_never_met_less_cautiously(ego_speed, kind, y, vx, vy, neighbours):
    """An obstacle in the ego lane (it stays there over the 3 s horizon), any speed, swept from 100 m to 0 m
    bumper-to-bumper gap, with the same traffic in the neighbouring lanes: the maneuver's caution never drops."""
    name, size = kind
    traffic = [("car", x, lane_y, v, 0.0) for lane_y, x, v in neighbours]
    ego = EgoState(ego_speed)
    cautions = [CAUTION[decide(agents((name, gap + FRONT + size[1] / 2, y, vx, vy, size), *traffic), ego).maneuver]
                for gap in GAP_GRID_M]
    assert np.all(np.diff(cautions) <= 0), list(zip(GAP_GRID_M, cautions))
