"""The lanes the decisions assume, on hand-built lane maps: which neighbours exist, lateral offsets on a curve worked
by hand, and the planner and the safety layer reading them."""
import math

import numpy as np
import pytest

from perception.datasets.lane_map import LaneCentres
from perception.decision import EgoState, Maneuver, decide
from perception.decision.lanes import EgoLanes, ego_lanes
from perception.decision.planner import plan_trajectory
from perception.decision.safety import check_plan
from perception.decision.types import PlannerConfig
from tests.decision.helpers import agents

CONFIG = PlannerConfig()
WIDTH = 3.5


def straight_road(own_y: float, *others):
    """A straight map in the ego frame: the ego lane centred at y = own_y heading +x, ``others`` (y, +1 along x / -1
    against) more lanes."""
    lines = [np.array([[-80.0, own_y], [80.0, own_y]])]
    for y, direction in others:
        lines.append(np.array([[-80.0, y], [80.0, y]])[::direction])
    return LaneCentres(tuple(lines), WIDTH)


def circle(radius: float, reverse: bool = False, degrees: float = 120.0, first: float = -30.0):
    """A lane curving left around (0, 50) from behind the ego (``first`` degrees), through radius ``radius``, 0.25
    degree steps."""
    angles = np.radians(np.arange(first, degrees, 0.25))
    line = np.c_[radius * np.sin(angles), 50.0 - radius * np.cos(angles)]
    return line[::-1] if reverse else line


def left_curve(first: float = -30.0):
    """A road curving left (radius 50 m at the ego lane's centre): the ego lane, a lane of its direction on the
    right (radius 53.5 m), an oncoming lane on the left (46.5 m); vertices from ``first`` degrees."""
    return LaneCentres(tuple(circle(radius, reverse, first=first)
                             for radius, reverse in ((50.0, False), (53.5, False), (46.5, True))), WIDTH)


def test_without_a_map_the_lanes_are_straight_and_every_lane_exists():
    lanes = ego_lanes(None, 3.2)
    assert lanes == EgoLanes(3.2) and lanes.centre_line is None
    np.testing.assert_array_equal(lanes.across_m(np.array([[10.0, 2.5], [-3.0, -7.0]])), [2.5, -7.0])
    assert all(lanes.has_lane(lane) for lane in (-2, -1, 0, 1, 2))


@pytest.mark.parametrize("own_y, others, left, right", [
    (0.0, [(3.5, +1), (7.0, -1)], True, False),     # the right lane of two: a lane of the ego's direction on the left
    (0.0, [(-3.5, +1), (3.5, -1)], False, True),    # next to the centre line: oncoming traffic on the left
    (0.4, [(-3.1, +1), (3.9, +1)], True, True),     # the middle one of three, the ego 0.4 m right of its centre
    (0.0, [(3.5, -1)], False, False),               # one lane a direction
])
def test_neighbours_are_lanes_of_the_ego_direction(own_y, others, left, right):
    lanes = ego_lanes(straight_road(own_y, *others), CONFIG.lane_width_m)
    assert (lanes.left_exists, lanes.right_exists) == (left, right)
    assert lanes.has_lane(0) and lanes.has_lane(+1) == left and lanes.has_lane(-1) == right
    assert not lanes.has_lane(2) and not lanes.has_lane(-2)
    # offsets from the ego lane's centre line, not from the ego
    np.testing.assert_allclose(lanes.across_m(np.array([[20.0, own_y + 1.0]])), [1.0])


def test_off_the_mapped_lanes_the_lanes_are_straight():
    lanes = ego_lanes(straight_road(8.0, (11.5, +1)), CONFIG.lane_width_m)  # the nearest centre line 8 m away
    assert lanes == EgoLanes(CONFIG.lane_width_m)


def test_offsets_follow_the_curve():
    lanes = ego_lanes(left_curve(), CONFIG.lane_width_m)
    assert (lanes.left_exists, lanes.right_exists) == (False, True)
    # points at radius r from the curve's centre (0, 50) lie 50 - r left of the ego lane's centre line
    angles = np.radians([0.0, 20.0, 45.0])
    radii = np.array([47.0, 52.0, 55.0])
    points = np.c_[radii * np.sin(angles), 50.0 - radii * np.cos(angles)]
    np.testing.assert_allclose(lanes.across_m(points), 50.0 - radii, atol=5e-3)  # chords 0.22 m: sagitta 0.12 mm


def test_a_missing_lane_is_not_feasible_and_the_reason_says_so():
    # a slow lead ahead; the ego drives next to the centre line: on the left is the oncoming lane, on the right a
    # car beside the ego blocks the lane of its direction
    scene = agents(("car", 40, 0, 6, 0), ("car", 2, -3.5, 12, 0))
    assert decide(scene, EgoState(12.0)).maneuver is Maneuver.CHANGE_LANE_LEFT  # straight lanes: both assumed
    decision = decide(scene, EgoState(12.0), lanes=straight_road(0.0, (-3.5, +1), (3.5, -1)))
    assert decision.maneuver is Maneuver.FOLLOW
    assert not decision.lane_change_left_ok and not decision.lane_change_right_ok
    assert decision.reason.endswith("not passing: no left lane on the lane map; right lane blocked by car #1 2.0 m "
                                    "ahead in the right lane at 12.0 m/s")


def test_on_a_curve_a_car_in_the_right_lane_blocks_the_right_lane():
    # a standing car on the right lane's centre 25 m along x: the curve puts it at y = 50 - 53.5 cos(asin(25 / 53.5))
    # = 2.70 m, in the left lane of the straight lanes
    y = 50.0 - math.sqrt(53.5 ** 2 - 25.0 ** 2)
    scene = agents(("car", 25.0, y, 0.0, 0.0))
    ego = EgoState(10.0, yaw_rate_rps=10.0 / 50.0)
    straight = decide(scene, ego)
    assert not straight.lane_change_left_ok and straight.lane_change_right_ok
    mapped = decide(scene, ego, lanes=left_curve())
    assert not mapped.lane_change_left_ok and not mapped.lane_change_right_ok  # no left lane; the car on the right


def test_the_safety_layer_refuses_a_lane_change_into_the_oncoming_lane():
    ego = EgoState(10.0)
    plan = plan_trajectory(ego, 10.0, CONFIG.comfortable_decel_mps2, +1, CONFIG)  # 3.14 m left at 3 s: lane +1
    kept = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(), ego)
    assert not kept.vetoed and kept.maneuver is Maneuver.CHANGE_LANE_LEFT
    refused = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(), ego,
                         lanes=straight_road(0.0, (-3.5, +1), (3.5, -1)))
    assert refused.vetoed and refused.maneuver is Maneuver.KEEP_LANE
    assert refused.reason.startswith("KEEP_LANE: refused CHANGE_LANE_LEFT, no left lane on the lane map; on the "
                                     "ego's current path at the plan's speeds")
    np.testing.assert_allclose(refused.trajectory[:, 1], 0.0, atol=1e-9)
    # the same plan into a lane of the ego's direction is kept, and so is one that overshoots it (6 m left at 3 s:
    # lane +2), and one that ends in the ego's lane (a lane change past its boundary: the ego lane is the target)
    two_lanes = straight_road(0.0, (3.5, +1), (7.0, -1))
    assert not check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(), ego, lanes=two_lanes).vetoed
    overshoot = plan * [1.0, 6.0 / plan[-1, 1]]
    assert not check_plan(overshoot, Maneuver.CHANGE_LANE_LEFT, agents(), ego, lanes=two_lanes).vetoed
    # a plan named for one side that ends on the other is refused by the side it ends on
    wrong_way = check_plan(plan * [1.0, -1.0], Maneuver.CHANGE_LANE_LEFT, agents(), ego,
                           lanes=straight_road(0.0, (3.5, +1), (7.0, -1)))
    assert "refused CHANGE_LANE_LEFT, no right lane on the lane map" in wrong_way.reason
    finishing = plan * [1.0, 0.0] + [0.0, 0.2]
    assert not check_plan(finishing, Maneuver.CHANGE_LANE_LEFT, agents(), ego,
                          lanes=straight_road(0.0, (-3.5, +1), (3.5, -1))).vetoed


def test_only_the_stretch_of_the_ego_lane_near_the_ego_is_read():
    # the ego lane runs 300 m ahead, turns and comes back 7 m to its left (a hairpin): a point 6 m left of the ego
    # lies 6 m left of the ego lane's stretch near the ego, not 1 m from the lane's return beyond LANE_REACH_M
    out = np.c_[np.arange(-50.0, 301.0, 2.0), np.zeros(176)]
    back = np.c_[np.arange(300.0, -51.0, -2.0), np.full(176, 7.0)]
    hairpin = LaneCentres((np.vstack([out, back]),), WIDTH)
    lanes = ego_lanes(hairpin, CONFIG.lane_width_m)
    np.testing.assert_allclose(lanes.across_m(np.array([[20.0, 6.0], [-30.0, -2.0]])), [6.0, -2.0])
    assert not lanes.left_exists  # the return is the same line, heading the other way


def test_with_a_map_the_plan_joins_the_ego_lane_centre_line():
    # the ego 0.5 m left of its lane's centre, heading along it at a constant 10 m/s: the plan closes the offset along
    # the quintic over 4 s, 0.5 (1 - u^3 (10 - 15 u + 6 u^2)) left of the line at u = t / 4; at 3 s: 0.5 x 0.103516
    ego = EgoState(10.0)
    lanes = ego_lanes(straight_road(-0.5), CONFIG.lane_width_m)
    plan = plan_trajectory(ego, 10.0, CONFIG.comfortable_decel_mps2, 0, CONFIG, lanes)
    np.testing.assert_allclose(plan[:, 0], 10.0 * CONFIG.step_times_s)
    assert plan[5, 1] - -0.5 == pytest.approx(0.5 * 0.103515625)
    # a lane change to the left from there ends 3.5 m left of the line: 0.5 + 3.0 x 0.896484 at 3 s
    change = plan_trajectory(ego, 10.0, CONFIG.comfortable_decel_mps2, +1, CONFIG, lanes)
    assert change[5, 1] - -0.5 == pytest.approx(0.5 + 3.0 * 0.896484375)


def test_a_standing_ego_off_the_centre_line_keeps_its_place():
    # standing 0.5 m left of its lane's centre: the plan stays where the ego is, it does not slide to the line
    lanes = ego_lanes(straight_road(-0.5), CONFIG.lane_width_m)
    plan = plan_trajectory(EgoState(0.0), 0.0, CONFIG.comfortable_decel_mps2, 0, CONFIG, lanes)
    np.testing.assert_allclose(plan, 0.0, atol=1e-12)


def test_with_a_map_the_plan_follows_the_curve_the_yaw_rate_does_not_show():
    # entering the left curve (radius 50 m) with no yaw rate yet: the plan stays on the lane's centre line, 50 m
    # from the curve's centre (0, 50), where the ego's own curvature would go straight on (the ego mid-way along a
    # chord, which heads as the curve does there)
    ego = EgoState(10.0)
    curve = left_curve(first=-30.125)
    lanes = ego_lanes(curve, CONFIG.lane_width_m)
    plan = plan_trajectory(ego, 10.0, CONFIG.comfortable_decel_mps2, 0, CONFIG, lanes)
    np.testing.assert_allclose(np.hypot(plan[:, 0], plan[:, 1] - 50.0), 50.0, atol=1e-3)  # chord sagitta 0.12 mm
    # the arc lengths are the distances driven: 30 m at 3 s is 30 / 50 rad around the centre
    assert math.atan2(plan[5, 0], 50.0 - plan[5, 1]) == pytest.approx(0.6, abs=1e-4)
    straight = plan_trajectory(ego, 10.0, CONFIG.comfortable_decel_mps2, 0, CONFIG)
    np.testing.assert_allclose(straight[:, 1], 0.0)
    decision = decide(agents(), ego, lanes=curve)
    assert decision.maneuver is Maneuver.KEEP_LANE
    np.testing.assert_allclose(np.hypot(decision.trajectory[:, 0], decision.trajectory[:, 1] - 50.0), 50.0,
                               atol=1e-3)


def test_with_a_map_the_plan_leaves_along_the_ego_heading():
    # the lane heads 0.1 rad left of the ego, through the rear axle: the plan starts along the ego's heading (its
    # lateral speed across the lane, 10 sin(-0.1) m/s, carried into the quintic) and runs on the line from 4 s
    heading = 0.1
    line = np.outer(np.arange(-80.0, 81.0, 2.0), [math.cos(heading), math.sin(heading)])
    lanes = ego_lanes(LaneCentres((line,), WIDTH), CONFIG.lane_width_m)
    plan = plan_trajectory(EgoState(10.0), 10.0, CONFIG.comfortable_decel_mps2, 0, CONFIG, lanes)
    assert abs(math.atan2(plan[0, 1], plan[0, 0])) < 0.01  # the first 0.5 s along the ego's heading, not 0.1 off
    across_line = plan[:, 1] * math.cos(heading) - plan[:, 0] * math.sin(heading)
    np.testing.assert_allclose(across_line[CONFIG.step_times_s >= 4.0], 0.0, atol=1e-9)
    assert np.all(across_line[CONFIG.step_times_s < 4.0] < 0)  # right of the line on the way, as the ego heads


def test_the_safety_layer_does_not_steer_along_the_map():
    # on the left curve a left lane change heads into the oncoming lane: refused, its speeds kept on the ego's
    # current path (no yaw rate yet: straight on), not led along the ego lane's centre line as the rule planner's
    # plans are (safety module docstring)
    ego = EgoState(10.0)
    curve = left_curve(first=-30.125)  # the ego mid-way along a chord
    plan = plan_trajectory(ego, 10.0, CONFIG.comfortable_decel_mps2, +1, CONFIG, ego_lanes(curve, CONFIG.lane_width_m))
    refused = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(), ego, lanes=curve)
    assert refused.vetoed and refused.reason.startswith("KEEP_LANE: refused CHANGE_LANE_LEFT, no left lane")
    np.testing.assert_allclose(refused.trajectory[:, 1], 0.0, atol=1e-9)


@pytest.mark.parametrize("other_y, exists", [(4.0, True), (4.4, False)])
def test_a_neighbour_is_one_width_from_the_ego_lane_centre_line_not_from_the_ego(other_y, exists):
    # the ego 1.0 m left of its lane's centre line (y = -1.0); a lane of its direction centred at y = 4.0 is 5.0 m
    # from that line, within half a width (1.75 m) of one width (3.5 m): the left neighbour. One at y = 4.4 is 5.4 m
    # from the line, 1.9 m off one width: no neighbour, though it is 4.4 m from the ego (0.9 m off one width)
    lanes = ego_lanes(straight_road(-1.0, (other_y, +1)), CONFIG.lane_width_m)
    assert lanes.centre_line is not None and (lanes.left_exists, lanes.right_exists) == (exists, False)


def test_the_ego_lane_stretch_leaves_out_the_road_before_it_beyond_the_reach():
    # the mirror image of the hairpin: the ego lane comes from 7 m to the ego's right, heading back (-x) to 300 m
    # behind, turns and runs through the ego (+x). A point 6 m right of the ego lies 6 m right of the ego lane's
    # stretch near the ego, not 1 m from the road it came along, which lies before the reach on the way in
    back = np.c_[np.arange(20.0, -301.0, -2.0), np.full(161, -7.0)]
    out = np.c_[np.arange(-300.0, 301.0, 2.0), np.zeros(301)]
    hairpin = LaneCentres((np.vstack([back, out]),), WIDTH)
    lanes = ego_lanes(hairpin, CONFIG.lane_width_m)
    np.testing.assert_allclose(lanes.across_m(np.array([[10.0, -6.0], [-30.0, 2.0]])), [-6.0, 2.0])
    assert not lanes.right_exists and not lanes.left_exists
