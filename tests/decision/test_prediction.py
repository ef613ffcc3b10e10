"""Agent prediction and lane occupancy worked by hand."""

import numpy as np
import pytest

from perception.decision.prediction import (
    half_length_along_x, lane_index, lane_segments, predict_agents, speed_factors_at,
)
from tests.decision.helpers import agents


def test_constant_velocity():
    boxes = agents(("car", 10, 2, 3, -1, (1.9, 4.6, 1.6), 0.3))
    predicted = predict_agents(boxes, np.array([0.0, 0.5, 3.0]))
    np.testing.assert_allclose(predicted[0], [[10, 2, 0.3], [11.5, 1.5, 0.3], [19, -1, 0.3]])


def test_constant_acceleration_stops_a_braking_agent():
    # 10 m/s along +x braking at 5 m/s^2: 7.5 m after 1 s, stopped after 2 s at 10 m; 4 m/s along -y speeding up
    # at 2 m/s^2: 5 m after 1 s, 12 m after 2 s; a standing agent stays whatever its acceleration
    boxes = agents(("car", 10, 0, 10, 0), ("car", 0, 5, 0, -4), ("car", 1, 1, 0, 0))
    times = np.array([0.0, 1.0, 2.0, 3.0])
    predicted = predict_agents(boxes, times, accelerations_mps2=np.array([-5.0, 2.0, -3.0]))
    np.testing.assert_allclose(predicted[0, :, :2], [[10, 0], [17.5, 0], [20, 0], [20, 0]])
    np.testing.assert_allclose(predicted[1, :, :2], [[0, 5], [0, 0], [0, -7], [0, -16]])
    np.testing.assert_allclose(predicted[2, :, :2], [[1, 1]] * 4)
    np.testing.assert_allclose(speed_factors_at(boxes, np.array([-5.0, 2.0, -3.0]), times),
                               [[1, 0.5, 0, 0], [1, 1.5, 2, 2.5], [1, 1, 1, 1]])
    # zero accelerations are constant velocity
    np.testing.assert_allclose(predict_agents(boxes, times, accelerations_mps2=np.zeros(3)),
                               predict_agents(boxes, times))
    with pytest.raises(ValueError, match="accelerations_mps2 must be 3 finite values"):
        predict_agents(boxes, times, accelerations_mps2=np.array([0.0, np.nan, 1.0]))


def test_lane_index_rounds_halves_up():
    np.testing.assert_array_equal(lane_index([-5.3, -1.75, 0.0, 1.74, 1.75, 3.5, 5.26], 3.5), [-2, 0, 0, 0, 1, 1, 2])


def test_a_fast_crossing_between_two_steps_is_seen():
    # from y = 5 to y = -5 within one 0.5 s step: never in lane 0 at a step, but the segment crosses it
    segments = lane_segments(np.array([[5.0, -5.0], [5.0, 2.0], [-1.0, 1.0]]), 0, 3.5)
    np.testing.assert_array_equal(segments[:, 0], [True, False, True])
    with pytest.raises(ValueError, match="T >= 2"):
        lane_segments(np.zeros((2, 1)), 0, 3.5)


def test_a_segment_touches_a_lane_up_to_its_lower_edge_and_short_of_its_upper_one():
    # lane 0 of 3.5 m spans [-1.75, 1.75) as lane_index rounds (1.75 is lane 1, -1.75 lane 0): a segment from
    # 1.75 to 3 m lies in lane 1 only; one from -3 to -1.75 m reaches lane 0
    segments = np.array([[1.75, 3.0], [-3.0, -1.75]])
    np.testing.assert_array_equal(lane_segments(segments, 0, 3.5)[:, 0], [False, True])
    np.testing.assert_array_equal(lane_segments(segments, 1, 3.5)[:, 0], [True, False])
    np.testing.assert_array_equal(lane_segments(segments, -1, 3.5)[:, 0], [False, True])


def test_accelerations_must_be_one_per_agent():
    # one value for three agents was broadcast to all of them; two raised numpy's broadcasting error: both are a
    # caller's mistake named by the argument
    boxes = agents(("car", 10, 0, 10, 0), ("car", 0, 5, 0, -4), ("car", 1, 1, 0, 0))
    for wrong in (np.array([-5.0]), np.array([-5.0, 2.0]), np.zeros(4)):
        with pytest.raises(ValueError, match="accelerations_mps2 must be 3 finite values"):
            predict_agents(boxes, np.array([0.0, 1.0]), accelerations_mps2=wrong)
        with pytest.raises(ValueError, match="accelerations_mps2 must be 3 finite values"):
            speed_factors_at(boxes, wrong, np.array([0.0, 1.0]))


def test_lane_segments_names_a_one_dimensional_track():
    # a single agent's track (T,) without its agent axis is refused with the shape, not an IndexError
    with pytest.raises(ValueError, match=r"must be \(N, T >= 2\), got shape \(3,\)"):
        lane_segments(np.array([0.0, 1.0, 2.0]), 0, 3.5)


def test_half_length_along_x_by_hand():
    # a 1.9 m x 4.6 m car: along x 2.3 m; across (+-90 deg) 0.95 m; at -30 deg (4.6 cos 30 + 1.9 sin 30) / 2 =
    # (3.9837 + 0.95) / 2 = 2.4669 m, as at +30 deg and 150 deg (the extent ignores the sign and the direction)
    sizes = np.array([[1.9, 4.6, 1.6]] * 5)
    yaws = np.array([0.0, np.pi / 2, -np.pi / 2, -np.pi / 6, 5 * np.pi / 6])
    expected = [2.3, 0.95, 0.95, (4.6 * np.sqrt(3) / 2 + 1.9 / 2) / 2, (4.6 * np.sqrt(3) / 2 + 1.9 / 2) / 2]
    np.testing.assert_allclose(half_length_along_x(sizes, yaws), expected)
