"""The safety layer on hand-worked scenes: a plan kept with its rationale, vetoed for a collision or a missing
braking margin (numbers worked by hand), a lane change refused with the agent that blocks it."""
import numpy as np
import pytest

from perception.decision import EgoState, PlannerConfig
from perception.decision.safety import check_plan
from perception.maneuvers import Maneuver
from tests.decision.helpers import agents

CONFIG = PlannerConfig()


def _straight(speed_mps: float) -> np.ndarray:
    return np.c_[speed_mps * CONFIG.step_times_s, np.zeros(CONFIG.horizon_steps)]


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


def test_a_plan_without_braking_margin_is_vetoed():
    # car stopped at 40 m (rear 37.7 m); need 2.5 + 10^2 / (2 * 6) = 10.83 m; at 2.5 s the ego is at 25 m:
    # gap 37.7 - 25 - 3.442 = 9.26 m (at 2.0 s it was 14.26 m, enough)
    decision = check_plan(_straight(10.0), Maneuver.KEEP_LANE, agents(("car", 40, 0, 0, 0)), EgoState(10.0))
    assert decision.vetoed and decision.maneuver is Maneuver.STOP
    assert "leaves 9.3 m of the 10.8 m braking margin at 2.5 s" in decision.reason
    slow = check_plan(_straight(5.0), Maneuver.KEEP_LANE, agents(("car", 40, 0, 0, 0)), EgoState(5.0))
    assert not slow.vetoed  # 15 m travelled: gap 19.26 m >= 2.5 + 25 / 12


def test_a_blocked_lane_change_is_refused_with_what_blocks_it():
    lateral = CONFIG.lane_width_m * np.clip(CONFIG.step_times_s / 4.0, 0, 1)
    plan = np.c_[10.0 * CONFIG.step_times_s, lateral]
    blocked = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(("car", -3, 3.5, 10, 0)), EgoState(10.0))
    assert blocked.vetoed and blocked.maneuver is Maneuver.KEEP_LANE and not blocked.lane_change_left_ok
    assert "refused CHANGE_LANE_LEFT, blocked by car #0 3.0 m behind in the left lane at 10.0 m/s" in blocked.reason
    clear = check_plan(plan, Maneuver.CHANGE_LANE_LEFT, agents(("car", -40, 3.5, 10, 0)), EgoState(10.0))
    assert not clear.vetoed and clear.maneuver is Maneuver.CHANGE_LANE_LEFT and clear.lane_change_left_ok


def test_a_bad_plan_is_rejected():
    with pytest.raises(ValueError, match="trajectory"):
        check_plan(np.zeros((3, 2)), Maneuver.KEEP_LANE, agents(), EgoState(10.0))
