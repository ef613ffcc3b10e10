"""frenet_coordinates on hand-worked paths: straight, L-shaped, a point behind the start, a path that stands."""
import math

import numpy as np
import pytest

from perception.geometry import frenet_coordinates


def _check(result, along, across, tangent):
    np.testing.assert_allclose(result[0], along, atol=1e-12)
    np.testing.assert_allclose(result[1], across, atol=1e-12)
    np.testing.assert_allclose(result[2], tangent, atol=1e-12)


def test_a_straight_path_and_a_point_behind_it():
    path = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    # beside the first leg (left), beside the second (right), past the end on the straight extension
    points = np.array([[5.0, 2.0], [15.0, -1.0], [30.0, 3.0]])
    _check(frenet_coordinates(path, points, end_heading_rad=0.0), [5.0, 15.0, 30.0], [2.0, -1.0, 3.0], [0, 0, 0])
    behind = np.array([[-4.0, 1.0]])
    # not extended behind: the nearest path point is the first vertex, sqrt(4^2 + 1^2) away, on the left
    _check(frenet_coordinates(path, behind, 0.0), [0.0], [math.sqrt(17.0)], [0.0])
    # extended behind along the start heading: 4 m behind, 1 m left
    _check(frenet_coordinates(path, behind, 0.0, start_heading_rad=0.0), [-4.0], [1.0], [0.0])


def test_an_l_shaped_path():
    # 10 m east, then 10 m north, extended north
    path = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    points = np.array([
        [4.0, -2.0],  # right of the first leg
        [12.0, 5.0],  # right of the second leg (east of a path heading north): 10 + 5 along
        [8.0, 3.0],  # inside the corner: 2 m from the second leg (3 m from the first), on its left
        [10.0, 25.0],  # on the extension, 15 m past the end
        [13.0, -4.0],  # outside the corner: the corner vertex is nearest (5 m) for both legs, the first leg's
    ])
    half_pi = math.pi / 2
    _check(frenet_coordinates(path, points, end_heading_rad=half_pi),
           [4.0, 15.0, 13.0, 35.0, 10.0], [-2.0, -2.0, 2.0, 0.0, -5.0], [0.0, half_pi, half_pi, half_pi, 0.0])


def test_a_path_that_stands():
    # the ego stood at the origin heading north: only the extension along the end heading has a direction
    standing = np.zeros((3, 2))
    _check(frenet_coordinates(standing, [[1.0, 5.0]], end_heading_rad=math.pi / 2), [5.0], [-1.0], [math.pi / 2])
    _check(frenet_coordinates(standing[:2], [[-3.0, 2.0]], 0.0, start_heading_rad=0.0), [-3.0], [2.0], [0.0])
    # a stop midway (a repeated vertex) does not count as a segment: arc lengths run on through it
    paused = np.array([[0.0, 0.0], [5.0, 0.0], [5.0, 0.0], [10.0, 0.0]])
    _check(frenet_coordinates(paused, [[5.0, 1.0], [7.0, -1.0]], 0.0), [5.0, 7.0], [1.0, -1.0], [0.0, 0.0])


def test_no_points_and_no_path():
    along, across, tangent = frenet_coordinates([[0.0, 0.0], [1.0, 0.0]], np.zeros((0, 2)), 0.0)
    assert along.shape == across.shape == tangent.shape == (0,)
    with pytest.raises(ValueError, match="no vertex"):
        frenet_coordinates(np.zeros((0, 2)), [[1.0, 0.0]], 0.0)
