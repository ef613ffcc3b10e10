"""EgoState.from_poses against motions whose speed, yaw rate and acceleration are known in closed form, and its
promise to read no pose later than the current one."""
import math

import numpy as np
import pytest

from perception.decision import EgoState
from perception.geometry import EgoPose, RigidTransform


def _pose(t_s: float, x: float, y: float, yaw: float) -> EgoPose:
    rotation = np.array([[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]])
    return EgoPose(int(round(t_s * 1e6)), RigidTransform.from_rotation_translation(rotation, (x, y, 0.0)))


def _accelerating(times, heading=0.7):
    # s(t) = 5 t + 0.5 * 2 t^2 along ``heading``
    return [_pose(t, 100 + (5 * t + t ** 2) * math.cos(heading), -40 + (5 * t + t ** 2) * math.sin(heading), heading)
            for t in times]


def test_constant_acceleration_along_a_rotated_heading():
    times = np.array([0.0, 0.05, 0.1, 0.16, 0.2])  # uneven spacing: nuScenes sweeps are not exactly 50 ms apart
    poses = _accelerating(times)
    state = EgoState.from_poses(poses, 3)
    # backward difference of a quadratic: the speed at the last interval's midpoint (0.1 + 0.16) / 2 = 0.13 s
    assert state.speed_mps == pytest.approx(5 + 2 * 0.13)
    assert state.yaw_rate_rps == pytest.approx(0.0, abs=1e-9)
    assert state.acceleration_mps2 == pytest.approx(2.0)
    assert EgoState.from_poses(poses, 1).speed_mps == pytest.approx(5 + 2 * 0.025)
    assert EgoState.from_poses(poses, 1).acceleration_mps2 is None  # two poses up to it
    assert EgoState.from_poses(poses, -1).speed_mps == pytest.approx(5 + 2 * 0.18)


def test_the_first_pose_knows_no_motion():
    assert EgoState.from_poses(_accelerating([0.0, 0.5, 1.0]), 0) == EgoState(0.0, 0.0, None)


def test_no_future_pose_changes_the_state():
    times = np.arange(8) * 0.05
    poses = _accelerating(times)
    state = EgoState.from_poses(poses, 4)
    swerving = poses[:5] + [_pose(t, -300.0, 70.0 * t, 2.0 + t) for t in times[5:]]
    assert EgoState.from_poses(swerving, 4) == state
    # and a later pose is never even touched: a sequence that raises on any index past 4
    class PastOnly(list):
        def __getitem__(self, item):
            stop = item.stop if isinstance(item, slice) else item
            if stop is None or stop > 5 or (not isinstance(item, slice) and item > 4):
                raise AssertionError(f"read {item}, past the current pose 4")
            return list.__getitem__(self, item)
    assert EgoState.from_poses(PastOnly(poses), 4) == state


def test_circle_gives_the_yaw_rate_and_a_chord_speed():
    radius, rate = 20.0, 0.4  # 8 m/s on a circle, counter-clockwise
    times = np.arange(3) * 0.5
    poses = [_pose(t, radius * math.sin(rate * t), radius * (1 - math.cos(rate * t)), rate * t) for t in times]
    state = EgoState.from_poses(poses, 1)
    assert state.yaw_rate_rps == pytest.approx(rate)
    # the chord over 0.5 s (0.2 rad) projected on the heading at its end: 2 r sin(0.1) cos(0.1) / 0.5
    assert state.speed_mps == pytest.approx(2 * radius * math.sin(0.1) * math.cos(0.1) / 0.5)
    assert EgoState.from_poses(poses, 2).acceleration_mps2 == pytest.approx(0.0, abs=1e-9)  # constant speed


def test_reversing_is_negative():
    poses = [_pose(0.0, 0.0, 0.0, 0.0), _pose(0.5, -1.0, 0.0, 0.0)]
    assert EgoState.from_poses(poses, 1).speed_mps == pytest.approx(-2.0)
    assert EgoState.from_poses(poses, 1).acceleration_mps2 is None


def test_bad_poses_are_rejected():
    with pytest.raises(ValueError, match="no poses"):
        EgoState.from_poses([], 0)
    with pytest.raises(ValueError, match="strictly increase"):
        EgoState.from_poses([_pose(0.5, 0, 0, 0), _pose(0.5, 1, 0, 0)], 1)
    with pytest.raises(IndexError):
        EgoState.from_poses([_pose(0.0, 0, 0, 0)], 3)
    with pytest.raises(ValueError, match="finite"):
        EgoState(float("nan"))


def test_a_westbound_circle_wraps_the_yaw_at_pi():
    # the circle of test_circle_gives_the_yaw_rate_and_a_chord_speed, driven where the heading passes +-pi:
    # yaw(t) = pi - 0.1 + 0.4 t, 0.4 rad/s counter-clockwise on radius 20 m (8 m/s); the centre c lies left of
    # the heading, so the ego sits at c + r (sin yaw, -cos yaw). The logged yaw jumps from pi - 0.1 to -pi + 0.1:
    # the rate is the wrapped change 0.2 rad over 0.5 s = 0.4 rad/s, not (-2 pi + 0.2) / 0.5 = -12.2 rad/s
    radius, rate = 20.0, 0.4
    yaws = [math.pi - 0.1 + rate * t for t in (0.0, 0.5)]
    poses = [_pose(t, 300.0 + radius * math.sin(yaw), -50.0 - radius * math.cos(yaw), yaw)
             for t, yaw in zip((0.0, 0.5), yaws)]
    assert poses[1].ego_to_global.yaw < 0 < poses[0].ego_to_global.yaw  # the log's yaw did wrap
    state = EgoState.from_poses(poses, 1)
    assert state.yaw_rate_rps == pytest.approx(rate)
    assert state.speed_mps == pytest.approx(2 * radius * math.sin(0.1) * math.cos(0.1) / 0.5)  # the chord, as above


def test_the_speed_is_projected_on_the_heading_at_the_end():
    # the rear axle moves 1 m along x in 0.5 s while the heading turns from 0 to 0.5 rad (a car pivoting at the
    # end of the interval): along the heading at the end, 1 m x cos(0.5) / 0.5 s = 1.755 m/s; along the heading
    # at the start it would read 2.0 m/s
    poses = [_pose(0.0, 10.0, 5.0, 0.0), _pose(0.5, 11.0, 5.0, 0.5)]
    assert EgoState.from_poses(poses, 1).speed_mps == pytest.approx(2.0 * math.cos(0.5))


def test_the_index_range_is_that_of_a_list():
    # -len(poses) is the first pose (as for a list), len(poses) is past the end: an IndexError, not the first pose
    poses = _accelerating([0.0, 0.05, 0.1])
    assert EgoState.from_poses(poses, -3) == EgoState(0.0, 0.0, None)
    assert EgoState.from_poses(poses, -2).speed_mps == pytest.approx(5 + 2 * 0.025)
    with pytest.raises(IndexError, match="index 3 out of range for 3 poses"):
        EgoState.from_poses(poses, 3)
    with pytest.raises(IndexError, match="index -4 out of range for 3 poses"):
        EgoState.from_poses(poses, -4)


def test_every_timestamp_up_to_the_current_pose_is_checked():
    # a step back at 0.1 s, two poses before the last three the state is computed from, is still refused
    poses = _accelerating([0.0, 0.15, 0.1, 0.2, 0.25, 0.3])
    with pytest.raises(ValueError, match="a pose at 100000 us follows one at 150000 us"):
        EgoState.from_poses(poses, 5)


def test_a_later_pose_is_not_even_looked_at():
    # poses after the current one whose every attribute raises (their timestamps included): the state at index 2
    # reads only poses 0-2, so a later pose stamped out of order (or not yet logged) cannot matter
    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"read {name} of a pose after the current one")

    poses = _accelerating([0.0, 0.05, 0.1])
    assert EgoState.from_poses(poses + [Untouchable(), Untouchable()], 2) == EgoState.from_poses(poses, 2)
