"""frenet_coordinates on hand-worked paths (straight, L-shaped, a point behind the start, a path that stands) on
both backends, and the Numba kernel against the numpy reference on random and adversarial paths."""
import functools
import math

import numpy as np
import pytest

from perception.geometry import frenet_coordinates, path_points

BACKENDS = ("reference", "numba")


def _check(result, along, across, tangent):
    np.testing.assert_allclose(result[0], along, atol=1e-12)
    np.testing.assert_allclose(result[1], across, atol=1e-12)
    np.testing.assert_allclose(result[2], tangent, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_straight_path_and_a_point_behind_it(backend):
    frenet = functools.partial(frenet_coordinates, backend=backend)
    path = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    # beside the first leg (left), beside the second (right), past the end on the straight extension
    points = np.array([[5.0, 2.0], [15.0, -1.0], [30.0, 3.0]])
    _check(frenet(path, points, end_heading_rad=0.0), [5.0, 15.0, 30.0], [2.0, -1.0, 3.0], [0, 0, 0])
    behind = np.array([[-4.0, 1.0]])
    # not extended behind: the nearest path point is the first vertex, sqrt(4^2 + 1^2) away, on the left
    _check(frenet(path, behind, 0.0), [0.0], [math.sqrt(17.0)], [0.0])
    # extended behind along the start heading: 4 m behind, 1 m left
    _check(frenet(path, behind, 0.0, start_heading_rad=0.0), [-4.0], [1.0], [0.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_l_shaped_path(backend):
    frenet = functools.partial(frenet_coordinates, backend=backend)
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
    _check(frenet(path, points, end_heading_rad=half_pi),
           [4.0, 15.0, 13.0, 35.0, 10.0], [-2.0, -2.0, 2.0, 0.0, -5.0], [0.0, half_pi, half_pi, half_pi, 0.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_path_that_stands(backend):
    frenet = functools.partial(frenet_coordinates, backend=backend)
    # the ego stood at the origin heading north: only the extension along the end heading has a direction
    standing = np.zeros((3, 2))
    _check(frenet(standing, [[1.0, 5.0]], end_heading_rad=math.pi / 2), [5.0], [-1.0], [math.pi / 2])
    _check(frenet(standing[:2], [[-3.0, 2.0]], 0.0, start_heading_rad=0.0), [-3.0], [2.0], [0.0])
    # a stop midway (a repeated vertex) does not count as a segment: arc lengths run on through it
    paused = np.array([[0.0, 0.0], [5.0, 0.0], [5.0, 0.0], [10.0, 0.0]])
    _check(frenet(paused, [[5.0, 1.0], [7.0, -1.0]], 0.0), [5.0, 7.0], [1.0, -1.0], [0.0, 0.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_points_and_no_path(backend):
    frenet = functools.partial(frenet_coordinates, backend=backend)
    along, across, tangent = frenet([[0.0, 0.0], [1.0, 0.0]], np.zeros((0, 2)), 0.0)
    assert along.shape == across.shape == tangent.shape == (0,)
    with pytest.raises(ValueError, match="no vertex"):
        frenet(np.zeros((0, 2)), [[1.0, 0.0]], 0.0)


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        frenet_coordinates([[0.0, 0.0], [1.0, 0.0]], [[0.0, 1.0]], 0.0, backend="cuda")


def _random_path(rng: np.random.Generator, case: int) -> np.ndarray:
    """Random walks of 1 to 40 vertices; every third on the integer grid (exact ties between segments and points
    on vertices), every fourth with repeated vertices (stops), every fifth a closed loop (a point equally near
    both ends), some far from the origin (rounding at large coordinates)."""
    steps = rng.normal(size=(int(rng.integers(1, 41)), 2)) * rng.choice([0.5, 3.0, 20.0])
    if case % 4 == 0:
        steps[rng.random(len(steps)) < 0.3] = 0.0
    path = np.cumsum(steps, axis=0) + (rng.normal(size=2) * 1e4 if case % 7 == 0 else 0.0)
    if case % 5 == 0 and len(path) > 2:
        path = np.vstack([path, path[:1]])
    return np.round(path) if case % 3 == 0 else path


def test_numba_matches_the_reference_on_random_and_adversarial_paths():
    rng = np.random.default_rng(20261206)
    for case in range(400):
        path = _random_path(rng, case)
        centre, spread = path.mean(axis=0), 5.0 + np.ptp(path)
        points = np.vstack([centre + rng.normal(size=(30, 2)) * spread,  # around the path and beyond its ends
                            path[rng.integers(len(path), size=5)],  # on vertices
                            (path[:-1] + path[1:])[:3] / 2])  # on segments
        if case % 3 == 0:
            points = np.round(points)
        end = float(rng.uniform(-np.pi, np.pi))
        start = float(rng.uniform(-np.pi, np.pi)) if case % 2 else None
        if case % 11 == 0:  # non-finite points, and now and then a non-finite vertex or heading
            points[:3] = [[np.nan, 0.0], [np.inf, 1.0], [-np.inf, np.inf]]
            if case % 22 == 0:
                path[0, 0] = -np.inf
            if case % 33 == 0:
                end = np.nan
        with np.errstate(invalid="ignore"):  # numpy's arithmetic on the non-finite cases
            reference = frenet_coordinates(path, points, end, start, backend="reference")
        fast = frenet_coordinates(path, points, end, start, backend="numba")
        for name, expected, got in zip(("along", "across", "tangent"), reference, fast):
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9, err_msg=f"case {case}: {name}")
    # a NaN point on a path that starts standing: its bound is NaN, so the first segment is taken, of zero length
    # (numpy divides 0 by 0 into NaN; Numba's default division raised ZeroDivisionError for every point)
    path, points = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 0.0]]), np.array([[np.nan, 0.0], [1.0, 1.0]])
    with np.errstate(invalid="ignore"):
        reference = frenet_coordinates(path, points, 0.0, backend="reference")
    for expected, got in zip(reference, frenet_coordinates(path, points, 0.0, backend="numba")):
        np.testing.assert_allclose(got, expected)
    np.testing.assert_allclose([value[1] for value in reference], [1.0, 1.0, 0.0])


def test_path_points_on_an_l_shaped_path():
    # 10 m east, then 10 m north, extended north; behind the start along the start heading (east) when asked
    path = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 0.0], [10.0, 10.0]])  # a repeated vertex: no segment
    half_pi = math.pi / 2
    xy, heading = path_points(path, [0.0, 4.0, 10.0, 15.0, 35.0], end_heading_rad=half_pi)
    np.testing.assert_allclose(xy, [[0, 0], [4, 0], [10, 0], [10, 5], [10, 25]], atol=1e-12)
    np.testing.assert_allclose(heading, [0, 0, half_pi, half_pi, half_pi])  # at the corner: the later segment's
    xy, heading = path_points(path, [-4.0], half_pi, start_heading_rad=0.0)
    np.testing.assert_allclose(xy, [[-4.0, 0.0]], atol=1e-12)
    with pytest.raises(ValueError, match="no vertex"):
        path_points(np.zeros((0, 2)), [1.0], 0.0)


def test_path_points_before_a_path_that_starts_standing():
    # the first segment (0, 0) -> (0, 0) has no direction: 2 m before the start the path goes on straight along
    # the first segment that moves (east), to (-2, 0), heading 0
    xy, heading = path_points([[0.0, 0.0], [0.0, 0.0], [10.0, 0.0]], [-2.0], 0.0)
    np.testing.assert_allclose(xy, [[-2.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(heading, [0.0], atol=1e-12)


def test_path_points_are_where_frenet_coordinates_find_them():
    rng = np.random.default_rng(7)
    for case in range(50):
        path = np.cumsum(rng.normal(size=(int(rng.integers(2, 20)), 2)) * 5.0, axis=0)
        end, start = rng.uniform(-np.pi, np.pi, size=2)
        length = np.hypot(*np.diff(path, axis=0).T).sum()
        along = np.sort(rng.uniform(-50.0, length + 150.0, size=20))  # within the extensions (200 m)
        xy, heading = path_points(path, along, end, start)
        # each point lies on the path, at the arc length asked, where the path heads as said
        found_along, across, tangent = frenet_coordinates(path, xy, end, start, backend="reference")
        np.testing.assert_allclose(across, 0.0, atol=1e-9, err_msg=f"case {case}")
        np.testing.assert_allclose(found_along, along, atol=1e-6, err_msg=f"case {case}")
        np.testing.assert_allclose(np.cos(tangent - heading), 1.0, atol=1e-9, err_msg=f"case {case}")
