"""EgoState.from_poses against motions whose speed, yaw rate and acceleration are known in closed form."""
import math

import numpy as np
import pytest

from perception.decision import EgoState
from perception.geometry import EgoPose, RigidTransform


def _pose(t_s: float, x: float, y: float, yaw: float) -> EgoPose:
    rotation = np.array([[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]])
    return EgoPose(int(round(t_s * 1e6)), RigidTransform.from_rotation_translation(rotation, (x, y, 0.0)))


def test_constant_acceleration_along_a_rotated_heading():
    # s(t) = 5 t + 0.5 * 2 t^2 along heading 0.7 rad; uneven spacing (nuScenes sweeps are not exactly 50 ms)
    times = np.array([0.0, 0.05, 0.1, 0.16, 0.2])
    heading = 0.7
    poses = [_pose(t, 100 + (5 * t + t ** 2) * math.cos(heading), -40 + (5 * t + t ** 2) * math.sin(heading), heading)
             for t in times]
    state = EgoState.from_poses(poses, 2)
    # central difference of a quadratic: the speed at the interval's midpoint (0.05 + 0.16) / 2 = 0.105 s
    assert state.speed_mps == pytest.approx(5 + 2 * 0.105)
    assert state.yaw_rate_rps == pytest.approx(0.0, abs=1e-9)
    assert state.acceleration_mps2 == pytest.approx(2.0)
    assert EgoState.from_poses(poses, 0).speed_mps == pytest.approx(5 + 2 * 0.025)  # one-sided at the start
    assert EgoState.from_poses(poses, -1).acceleration_mps2 == pytest.approx(2.0)


def test_circle_gives_the_yaw_rate_and_a_chord_speed():
    radius, rate = 20.0, 0.4  # 8 m/s on a circle, counter-clockwise
    times = np.arange(3) * 0.5
    poses = [_pose(t, radius * math.sin(rate * t), radius * (1 - math.cos(rate * t)), rate * t) for t in times]
    state = EgoState.from_poses(poses, 1)
    assert state.yaw_rate_rps == pytest.approx(rate)
    # the chord over 1 s (0.4 rad) projected on the heading at the middle pose
    assert state.speed_mps == pytest.approx(2 * radius * math.sin(0.2) / 1.0)


def test_reversing_is_negative_and_a_single_pose_is_at_rest():
    poses = [_pose(0.0, 0.0, 0.0, 0.0), _pose(0.5, -1.0, 0.0, 0.0)]
    assert EgoState.from_poses(poses, 1).speed_mps == pytest.approx(-2.0)
    assert EgoState.from_poses(poses, 1).acceleration_mps2 is None
    assert EgoState.from_poses(poses[:1], 0) == EgoState(0.0, 0.0, None)


def test_bad_poses_are_rejected():
    with pytest.raises(ValueError, match="no poses"):
        EgoState.from_poses([], 0)
    with pytest.raises(ValueError, match="strictly increase"):
        EgoState.from_poses([_pose(0.5, 0, 0, 0), _pose(0.5, 1, 0, 0)], 0)
    with pytest.raises(IndexError):
        EgoState.from_poses([_pose(0.0, 0, 0, 0)], 3)
    with pytest.raises(ValueError, match="finite"):
        EgoState(float("nan"))
