"""The learned planners' ego input from a list of past poses (hand-worked on straight and circular drives), a
plan's maneuver by the label rules (hand-built motions; the logged drive of the real scene named by its own
label), and a learned plan through the safety layer (the
hand-worked veto of tests/decision/test_safety.py)."""
import math

import numpy as np
import pytest
import torch

from perception.decision import EgoState
from perception.decision.collision import plan_headings, plan_tangent_headings
from perception.datasets.synthetic.layout import Road
from perception.decision.learned import (ego_features, judged_feasible, learned_decision, plan_maneuver,
                                         trajectory_and_maneuver)
from perception.decision.safety import checked_rule_decision, plan_label
from perception.geometry import EgoPose, RigidTransform
from perception.maneuvers import Maneuver
from perception.models.planning_types import EGO_FEATURES, EGO_HISTORY_S, PlanningOutputs
from tests.decision.helpers import agents


def _pose(t_s: float, x: float, y: float, yaw: float) -> EgoPose:
    rotation = np.array([[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]])
    return EgoPose(int(round(t_s * 1e6)), RigidTransform.from_rotation_translation(rotation, (x, y, 0.0)))


HISTORY = slice(EGO_FEATURES.index(f"x_m_{EGO_HISTORY_S[0]:g}s_ago"),
                EGO_FEATURES.index(f"known_{EGO_HISTORY_S[-1]:g}s_ago") + 1)
GAINED = slice(EGO_FEATURES.index(f"speed_gained_since_{EGO_HISTORY_S[1]:g}s_ago_mps"), len(EGO_FEATURES))


def _history(features: np.ndarray) -> np.ndarray:
    """(len(EGO_HISTORY_S), 3) [x, y, known] of the features."""
    return features[HISTORY].reshape(-1, 3)


def _straight(speed_at_mps, duration_s: float = 3.0):
    """Poses at 20 Hz along x over the last ``duration_s``, the ego's speed t s ago ``speed_at_mps(t)`` integrated
    (midpoint rule on 1 ms steps: exact for the piecewise-linear speeds used here to 1e-6 m)."""
    times = np.arange(0, duration_s + 1e-9, 0.001)
    behind = np.concatenate([[0.0], np.cumsum(speed_at_mps(times[1:] - 0.0005) * 0.001)])  # metres behind now
    return [_pose(-t, -d, 0.0, 0.0) for t, d in zip(times[::50][::-1], behind[::50][::-1])]


def test_a_straight_drive_at_constant_speed_along_a_rotated_heading():
    # 10 m/s along heading 0.7 rad, poses at 20 Hz over 3 s: t seconds ago the ego was 10 t m behind itself
    heading = 0.7
    poses = [_pose(t, 50 + 10 * t * math.cos(heading), 20 + 10 * t * math.sin(heading), heading)
             for t in np.arange(0, 3.0001, 0.05)]
    features = ego_features(poses)
    assert features.shape == (len(EGO_FEATURES),) and features.dtype == np.float32
    np.testing.assert_allclose(features[:4], [10.0, 0.0, 0.0, 1.0], atol=1e-4)
    expected = [[-10 * t, 0.0, 1.0] for t in EGO_HISTORY_S]
    np.testing.assert_allclose(_history(features), expected, atol=1e-4)


def test_a_circle_puts_the_past_to_the_side_and_a_short_log_knows_only_what_it_covers():
    # radius 50 m at 10 m/s (yaw rate 0.2 rad/s), turning left: t s ago the ego was at angle -0.2 t on the circle,
    # in its current frame (50 sin(-0.2 t), 50 - 50 cos(0.2 t))
    radius, rate = 50.0, 0.2
    poses = [_pose(t, radius * math.sin(rate * t), radius - radius * math.cos(rate * t), rate * t)
             for t in np.arange(0, 2.5001, 0.05)]
    features = ego_features(poses)
    assert features[1] == pytest.approx(rate, abs=1e-4)
    expected = [[radius * math.sin(-rate * t), radius - radius * math.cos(rate * t), 1.0] for t in EGO_HISTORY_S]
    np.testing.assert_allclose(_history(features), expected, atol=1e-3)
    short = ego_features(poses[-13:])  # 0.6 s of poses: only the position 0.5 s ago is known
    np.testing.assert_allclose(_history(short)[0], expected[0], atol=1e-3)
    assert np.array_equal(_history(short)[1:], np.zeros((3, 3)))
    alone = ego_features(poses[-1:])  # the first pose of a log: nothing is known
    assert np.array_equal(alone, np.zeros(len(EGO_FEATURES), np.float32))


def test_the_speed_gained_says_for_how_long_the_ego_has_been_slowing():
    # steps of 0.5 s: the last (0.5 s ago -> now), then from 1, 1.5 and 2 s ago; each feature is the last step's
    # mean speed minus that step's
    steady = ego_features(_straight(lambda t: np.full_like(t, 10.0)))
    np.testing.assert_allclose(steady[GAINED], [0.0, 0.0, 0.0], atol=1e-4)
    # braking at 1 m/s^2 for the whole history, 8 m/s now: speed t s ago 8 + t, step means 8.25, 8.75, 9.25, 9.75
    braking = ego_features(_straight(lambda t: 8.0 + t))
    np.testing.assert_allclose(braking[GAINED], [-0.5, -1.0, -1.5], atol=1e-4)
    # cruising at 10 m/s until 1 s ago, then braking at 1 m/s^2: step means 9.25, 9.75, 10, 10
    late = ego_features(_straight(lambda t: np.where(t < 1.0, 9.0 + t, 10.0)))
    np.testing.assert_allclose(late[GAINED], [-0.5, -0.75, -0.75], atol=1e-4)
    # 1.2 s of poses: the positions 0.5 and 1 s ago are known, so only the step from 1 s ago has both ends
    short = ego_features(_straight(lambda t: 8.0 + t, duration_s=1.2))
    np.testing.assert_allclose(short[GAINED], [-0.5, 0.0, 0.0], atol=1e-4)


def test_a_learned_plan_into_a_stopped_car_is_vetoed_with_its_rationale():
    maneuvers = list(Maneuver)
    logits = torch.zeros(len(maneuvers))
    logits[maneuvers.index(Maneuver.KEEP_LANE)] = 2.0
    straight = torch.stack([10.0 * 0.5 * torch.arange(1, 7.0), torch.zeros(6)], -1)
    plan = PlanningOutputs(straight, logits, torch.zeros(2))
    trajectory, maneuver = trajectory_and_maneuver(plan)
    assert maneuver is Maneuver.KEEP_LANE and trajectory.dtype == np.float64 and trajectory[-1, 0] == 30.0
    # the head says KEEP_LANE; the plan's path has a car centred on it 20 m ahead, within the labels' following
    # reach of 12 m + 1.5 s x 10 m/s = 27 m: the plan is named FOLLOW (and vetoed: the car stands)
    maneuver, decision = learned_decision(plan, agents(("car", 20, 0, 0, 0)), EgoState(10.0), STRAIGHT_PAST)
    assert maneuver is Maneuver.FOLLOW and decision.vetoed and decision.maneuver is Maneuver.STOP
    assert "collides with the plan at 1.5 s" in decision.reason and "car #0" in decision.reason
    _, kept = learned_decision(plan, agents(("car", 30, 3.5, 10, 0)), EgoState(10.0), STRAIGHT_PAST)
    assert not kept.vetoed and np.array_equal(kept.trajectory, trajectory)


STRAIGHT_PAST = [_pose(t, 10 * t, 0.0, 0.0) for t in np.arange(-2.5, 0.0001, 0.05)]
"""2.5 s of driving straight along +x at 10 m/s, ending at the origin now."""


def test_a_learned_plan_that_is_not_finite_falls_back_to_the_checked_rule_decision_with_its_reason():
    """(The replay stopped at such a frame: the safety layer refuses a trajectory it cannot check.)"""
    logits = torch.zeros(len(Maneuver))
    logits[list(Maneuver).index(Maneuver.KEEP_LANE)] = 2.0
    broken = torch.stack([10.0 * 0.5 * torch.arange(1, 7.0), torch.zeros(6)], -1)
    broken[3, 1] = float("nan")
    lead = agents(("car", 20, 0, 0, 0))
    maneuver, decision = learned_decision(PlanningOutputs(broken, logits, torch.zeros(2)), lead, EgoState(10.0),
                                          STRAIGHT_PAST)
    rules = checked_rule_decision(lead, EgoState(10.0))
    assert maneuver is Maneuver.KEEP_LANE and decision.vetoed and decision.maneuver is rules.maneuver
    np.testing.assert_array_equal(decision.trajectory, rules.trajectory)
    assert decision.reason == (f"{rules.maneuver.value}: the learned plan has 1 values not finite, the rule "
                               f"planner's decision instead ({rules.reason})")
TIMES = 0.5 * np.arange(1, 7)


def test_a_plans_maneuver_is_its_motion_by_the_label_rules():
    cruise = np.c_[10 * TIMES, np.zeros(6)]
    nobody = agents()
    assert plan_maneuver(cruise, Maneuver.FOLLOW, STRAIGHT_PAST, nobody) is Maneuver.KEEP_LANE
    # a car 20 m ahead on the path, within 12 m + 1.5 s x 10 m/s: followed (a pedestrian there is no lead)
    assert plan_maneuver(cruise, Maneuver.KEEP_LANE, STRAIGHT_PAST, agents(("car", 20, 0, 10, 0))) is Maneuver.FOLLOW
    assert plan_maneuver(cruise, Maneuver.KEEP_LANE, STRAIGHT_PAST,
                         agents(("pedestrian", 20, 0, 0, 0))) is Maneuver.KEEP_LANE
    # slowing at 3 m/s^2 (>= 1.75 over 1 s) is a brake; down to a standstill within 3 s a stop
    braking = np.c_[10 * TIMES - 1.5 * TIMES ** 2, np.zeros(6)]
    assert plan_maneuver(braking, Maneuver.KEEP_LANE, STRAIGHT_PAST, nobody) is Maneuver.BRAKE
    stopping = np.c_[np.where(TIMES < 2, 10 * TIMES - 2.5 * TIMES ** 2, 10.0), np.zeros(6)]  # at rest from 2 s
    assert plan_maneuver(stopping, Maneuver.KEEP_LANE, STRAIGHT_PAST, nobody) is Maneuver.STOP
    # 3.5 m to the left over the plan's first 1.5 s, heading straight again (the rules measure -2 s .. +2 s)
    u = np.clip(TIMES / 1.5, 0, 1)
    left = np.c_[10 * TIMES, 3.5 * u ** 3 * (10 - 15 * u + 6 * u ** 2)]
    assert plan_maneuver(left, Maneuver.KEEP_LANE, STRAIGHT_PAST, nobody) is Maneuver.CHANGE_LANE_LEFT
    # safety first: the head's BRAKE / STOP stands when the trajectory does not brake
    assert plan_maneuver(cruise, Maneuver.BRAKE, STRAIGHT_PAST, nobody) is Maneuver.BRAKE
    # ... and only then: where the rules name a brake, theirs stands over the head's other one
    assert plan_maneuver(stopping, Maneuver.BRAKE, STRAIGHT_PAST, nobody) is Maneuver.STOP
    assert plan_maneuver(braking, Maneuver.STOP, STRAIGHT_PAST, nobody) is Maneuver.BRAKE
    # a log that starts now (no past pose): the rules read the plan alone
    assert plan_maneuver(braking, Maneuver.KEEP_LANE, STRAIGHT_PAST[-1:], nobody) is Maneuver.BRAKE


def test_plan_label_names_shapes_that_do_not_fit():
    cruise = np.c_[10 * TIMES, np.zeros(6)]
    with pytest.raises(ValueError, match=r"trajectory \(5, 2\).*expected \(6, 2\)"):
        plan_label(cruise[:5], agents())
    with pytest.raises(ValueError, match=r"past_xy \(9, 2\) and past_yaw \(9,\).*K <= 4"):
        plan_label(cruise, agents(), past_xy=np.zeros((9, 2)), past_yaw=np.zeros(9))
    with pytest.raises(ValueError, match=r"past_yaw \(3,\)"):
        plan_label(cruise, agents(), past_xy=np.zeros((2, 2)), past_yaw=np.zeros(3))


def test_with_a_lane_map_a_plan_through_a_curvature_step_keeps_its_lane():
    # the road of tests/datasets/test_maneuver_labels.py: straight to s = 120 m, then a 127 m radius left bend; the
    # ego passes s = 120 m now at 14 m/s in lane 0 and plans to stay in it: by the poses alone the step reads as a
    # lane change to the right (56^2 / (8 * 127) = 3.1 m sideways), by the lanes as none; a plan into the next lane
    # is one by the lanes
    road = Road.from_pieces((-100.0, 0.0), 0.0, [(120.0, 0.0), (200.0, 1 / 127.0)], lanes_per_direction=2)
    times = np.arange(-2.5, 0.0001, 0.05)
    xy, heading = road.to_global(120.0 + 14.0 * times, np.full(len(times), road.lane_centre(0)))
    to_now = _pose(0.0, *xy[-1], heading[-1]).ego_to_global.inverse()
    past = [EgoPose(pose.timestamp_us, to_now @ pose.ego_to_global)
            for pose in (_pose(t, *xy[i], heading[i]) for i, t in enumerate(times))]
    lanes = road.lane_centres().transformed(to_now)

    def plan(lateral_of_t):
        points, _ = road.to_global(120.0 + 14.0 * TIMES, lateral_of_t(TIMES))
        return to_now.apply(np.c_[points, np.zeros(len(TIMES))])[:, :2]

    stay = plan(lambda t: np.full(len(t), road.lane_centre(0)))
    assert plan_maneuver(stay, Maneuver.KEEP_LANE, past, agents()) is Maneuver.CHANGE_LANE_RIGHT
    assert plan_maneuver(stay, Maneuver.KEEP_LANE, past, agents(), lanes=lanes) is Maneuver.KEEP_LANE
    outward = plan(lambda t: road.lane_centre(0) + np.clip(t / 1.5, 0, 1) * (road.lane_centre(1) - road.lane_centre(0)))
    assert plan_maneuver(outward, Maneuver.KEEP_LANE, past, agents(), lanes=lanes) is Maneuver.CHANGE_LANE_RIGHT


@pytest.mark.parametrize("logits", [(0.3, -0.2), (0.0, -1e-6), (-4.0, 4.0)])
def test_feasibility_is_a_probability_of_at_least_one_half(logits):
    outputs = PlanningOutputs(torch.zeros(6, 2), torch.zeros(len(Maneuver)), torch.tensor(logits))
    assert judged_feasible(outputs) == tuple(bool(p >= 0.5) for p in torch.sigmoid(torch.tensor(logits)).tolist())


def test_the_ego_acceleration_input_is_the_braking_read_from_the_poses():
    # braking at 1 m/s^2, 8 m/s now: the last two 50 ms intervals' mean speeds 8.025 and 8.075 m/s, 0.05 s apart
    # (their midpoints): -1 m/s^2, known; from the last two poses alone: not known, 0
    assert EGO_FEATURES[2:4] == ("acceleration_mps2", "acceleration_known")
    poses = _straight(lambda t: 8.0 + t)
    np.testing.assert_allclose(ego_features(poses)[2:4], [-1.0, 1.0], atol=1e-4)
    np.testing.assert_array_equal(ego_features(poses[-2:])[2:4], [0.0, 0.0])


def test_a_learned_plan_is_checked_with_the_tracked_accelerations():
    # the lead 20 m ahead (14.3 m between bumpers) at the ego's 10 m/s: at constant speed it keeps its distance and
    # the plan is kept; braking at 5 m/s^2 it stops after 2 s at 20 + 10 x 2 - 5 x 2^2 / 2 = 30 m, where the
    # cruising plan is at 3 s: the safety layer slows the plan, naming the lead's braking
    maneuvers = list(Maneuver)
    logits = torch.zeros(len(maneuvers))
    logits[maneuvers.index(Maneuver.FOLLOW)] = 2.0
    plan = PlanningOutputs(torch.stack([10.0 * 0.5 * torch.arange(1, 7.0), torch.zeros(6)], -1), logits,
                           torch.zeros(2))
    lead = agents(("car", 20, 0, 10, 0))
    maneuver, steady = learned_decision(plan, lead, EgoState(10.0), STRAIGHT_PAST)
    assert maneuver is Maneuver.FOLLOW
    assert not steady.vetoed and "not closing" in steady.reason
    _, braking = learned_decision(plan, lead, EgoState(10.0), STRAIGHT_PAST, agent_accelerations_mps2=np.array([-5.0]))
    assert braking.vetoed and "braking at 5.0 m/s^2" in braking.reason and "collides" in braking.reason


def test_a_short_log_s_plan_is_named_from_the_past_it_covers():
    # the 3.5 m move to the left of the test above, after only 0.5 s or 1.5 s of logged driving (the positions
    # 2 s ago and more not known): still a lane change to the left, from the known past on
    u = np.clip(TIMES / 1.5, 0, 1)
    left = np.c_[10 * TIMES, 3.5 * u ** 3 * (10 - 15 * u + 6 * u ** 2)]
    for covered in (STRAIGHT_PAST[-11:], STRAIGHT_PAST[-31:]):
        assert covered[-1].timestamp_us - covered[0].timestamp_us < 2_000_000
        assert plan_maneuver(left, Maneuver.KEEP_LANE, covered, agents()) is Maneuver.CHANGE_LANE_LEFT


def test_a_learned_plan_is_checked_against_the_lane_map():
    # a straight road of two lanes per direction, lane centres 1.75 m and 5.25 m right of the centre line: in lane 0
    # the ego has no lane of its direction to its left (oncoming traffic), one to its right; in lane 1 the other
    # way round. Without a map both changes are open
    road = Road.from_pieces((-100.0, 0.0), 0.0, [(300.0, 0.0)], lanes_per_direction=2)
    assert [road.lane_centre(0), road.lane_centre(1)] == [-1.75, -5.25]
    logits = torch.zeros(len(Maneuver))
    logits[list(Maneuver).index(Maneuver.KEEP_LANE)] = 2.0
    plan = PlanningOutputs(torch.stack([10.0 * 0.5 * torch.arange(1, 7.0), torch.zeros(6)], -1), logits,
                           torch.zeros(2))
    for lane, expected in ((0, (False, True)), (1, (True, False))):
        xy, heading = road.to_global(np.array([100.0]), np.array([road.lane_centre(lane)]))
        lanes = road.lane_centres().transformed(_pose(0.0, *xy[0], heading[0]).ego_to_global.inverse())
        _, decision = learned_decision(plan, agents(), EgoState(10.0), STRAIGHT_PAST, lanes=lanes)
        assert (decision.lane_change_left_ok, decision.lane_change_right_ok) == expected
    _, unmapped = learned_decision(plan, agents(), EgoState(10.0), STRAIGHT_PAST)
    assert (unmapped.lane_change_left_ok, unmapped.lane_change_right_ok) == (True, True)


def test_a_plan_is_named_with_its_tangent_headings_where_it_moves_ahead():
    # a left circle of 50 m radius at 10 m/s: waypoint k at angle theta_k = 10 t_k / 50 on the circle, heading
    # theta_k; the chord from the waypoint before points half a step's turn (0.05 rad) behind it
    radius, turn = 50.0, 10 * 0.5 / 50.0
    theta = 10 * TIMES / radius
    circle = np.c_[radius * np.sin(theta), radius * (1 - np.cos(theta))]
    np.testing.assert_allclose(plan_headings(circle), theta - turn / 2, atol=1e-12)
    tangents = plan_tangent_headings(circle)
    np.testing.assert_allclose(tangents[:-1], theta[:-1], atol=1e-12)  # between two neighbours: the tangent
    assert tangents[-1] == pytest.approx(theta[-1] - turn / 2, abs=1e-12)  # the last: from the one before
    # standing, or stepping back: the chord's heading, as the footprint's
    standing = np.zeros((6, 2))
    np.testing.assert_array_equal(plan_tangent_headings(standing), plan_headings(standing))
    back = np.c_[[1.0, 2.0, 1.9, 1.8, 1.7, 1.6], [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]]
    assert plan_tangent_headings(back)[2:].tolist() == plan_headings(back)[2:].tolist() == [math.pi / 4] * 4


def test_the_logged_drive_as_a_plan_is_named_by_its_own_label():
    """scene-0916's logged drive (its future positions as the plan, its annotated vehicles as the road users) named by
    plan_maneuver as logged_maneuver labels it: with the chord's headings two keyframes on its bends were not."""
    from perception.datasets.ego_log import ego_track, keyframe_lidar_pose
    from perception.datasets.ground_truth import sample_ground_truth
    from perception.datasets.maneuver_labels import logged_maneuver
    from perception.datasets.records import open_nuscenes
    from perception.decision import PlannerConfig
    from perception.decision.learned import ego_history
    from tests.conftest import REAL_SCENE_FIXTURE_ROOT

    if not (REAL_SCENE_FIXTURE_ROOT / "v1.0-mini").is_dir():
        pytest.skip(f"real scene fixture absent: expected tables at {REAL_SCENE_FIXTURE_ROOT / 'v1.0-mini'}")
    nusc = open_nuscenes(str(REAL_SCENE_FIXTURE_ROOT), "v1.0-mini")
    config, named = PlannerConfig(), {}
    for sample in nusc.sample:
        label = logged_maneuver(nusc, sample["token"])
        if label is None:
            continue
        future_xy = ego_track(nusc, sample["token"], config.step_times_s)[0]
        truth = sample_ground_truth(nusc, sample["token"], keyframe_lidar_pose(nusc, sample["token"]).ego_to_global)
        past = ego_history(nusc, sample["token"])
        named[sample["token"]] = (label, plan_maneuver(future_xy, Maneuver.KEEP_LANE, past, truth.boxes, config))
    assert len(named) == 29 and {Maneuver.CHANGE_LANE_RIGHT} <= {label for label, _ in named.values()}
    assert {token: pair for token, pair in named.items() if pair[0] is not pair[1]} == {}
