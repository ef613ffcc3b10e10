import math

import numpy as np
import pytest
from nuscenes.utils.data_classes import Box
from nuscenes.utils.geometry_utils import points_in_box
from pyquaternion import Quaternion
from shapely.geometry import Polygon

from perception.geometry import Boxes3D, RigidTransform, footprints_overlap, rotation_from_vector


def random_boxes(n: int, seed: int = 0) -> Boxes3D:
    rng = np.random.default_rng(seed)
    return Boxes3D(
        centers=rng.uniform(-50, 50, (n, 3)), sizes=rng.uniform(0.3, 12, (n, 3)), yaws=rng.uniform(-np.pi, np.pi, n),
        velocities=rng.normal(0, 5, (n, 2)), labels=rng.integers(0, 10, n), scores=rng.uniform(0, 1, n),
    )


def test_corners_equal_devkit_box_corners():
    boxes = random_boxes(50)
    ours = boxes.corners()
    for i, devkit_box in enumerate(boxes.to_devkit()):
        np.testing.assert_allclose(ours[i], devkit_box.corners().T, atol=1e-9)


def test_bev_footprint_hand_worked():
    # A 2 m wide, 4 m long box at the origin turned by 90 degrees: its front points along +y.
    boxes = Boxes3D(centers=[[0, 0, 0]], sizes=[[2, 4, 1.5]], yaws=[np.pi / 2])
    np.testing.assert_allclose(boxes.bev_corners()[0], [[-1, 2], [1, 2], [1, -2], [-1, -2]], atol=1e-12)


def test_transform_matches_devkit_rotate_translate():
    boxes = random_boxes(20, seed=1)
    rotation = Quaternion(axis=[0, 0, 1], radians=0.7)
    transform = RigidTransform.from_nuscenes([3.0, -2.0, 0.5], rotation.elements)
    moved = boxes.transform(transform)
    for i, box in enumerate(boxes.to_devkit()):
        box.rotate(rotation)
        box.translate(np.array([3.0, -2.0, 0.5]))
        np.testing.assert_allclose(moved.corners()[i], box.corners().T, atol=1e-9)
        np.testing.assert_allclose(moved.velocities[i], box.velocity[:2], atol=1e-9)


def test_devkit_round_trip_keeps_every_field():
    boxes = random_boxes(10, seed=2)
    back = Boxes3D.from_devkit(boxes.to_devkit())
    for name in ("centers", "sizes", "velocities", "labels", "scores"):
        np.testing.assert_allclose(getattr(back, name), getattr(boxes, name), atol=1e-9)
    np.testing.assert_allclose(np.cos(back.yaws - boxes.yaws), 1.0, atol=1e-12)


def test_from_devkit_unknown_velocity_becomes_zero():
    box = Box([1, 2, 3], [2, 4, 1.5], Quaternion(), name="car", velocity=(np.nan, np.nan, np.nan))
    assert np.all(Boxes3D.from_devkit([box]).velocities == 0)


def test_mask_and_concatenate():
    boxes = random_boxes(6)
    mask = boxes.labels % 2 == 0
    joined = Boxes3D.concatenate([boxes[mask], boxes[~mask]])
    assert len(joined) == 6 and len(Boxes3D.empty()) == 0
    np.testing.assert_array_equal(np.sort(joined.scores), np.sort(boxes.scores))


@pytest.mark.parametrize("columns, named", [
    (dict(centers=np.ones((3, 2)), sizes=np.ones((2, 3)), yaws=np.zeros(2)), r"centers has shape \(3, 2\)"),
    (dict(centers=np.ones((2, 3)), sizes=np.ones((2, 2)), yaws=np.zeros(2)), r"sizes has shape \(2, 2\)"),
    (dict(centers=np.ones((2, 3)), sizes=np.ones((2, 3)), yaws=np.zeros(2), velocities=np.ones((2, 3))),
     r"velocities has shape \(2, 3\), expected \(N, 2\)"),
])
def test_columns_of_another_width_are_named(columns, named):
    """Centers (3, 2) read as two boxes of scrambled x, y, z before, and sizes (2, 2) gave numpy's reshape error."""
    with pytest.raises(ValueError, match=f"Boxes3D: {named}"):
        Boxes3D(**columns)


def test_one_box_and_no_box_keep_their_shapes():
    one = Boxes3D([1.0, 2.0, 3.0], [2.0, 4.0, 1.5], 0.5, velocities=[1.0, 0.0])
    assert one.centers.shape == (1, 3) and one.velocities.shape == (1, 2) and one.yaws.shape == (1,)
    assert len(Boxes3D(np.zeros(0), np.zeros(0), np.zeros(0))) == 0


def test_contains_where_a_moving_box_was_at_each_points_sweep():
    # a car 4 m long at x = 20 m driving +x at 10 m/s: 0.5 s before the keyframe it stood at 15 m
    car = Boxes3D([[20.0, 0.0, 1.0], [0.0, 30.0, 1.0]], [[2.0, 4.0, 2.0]] * 2, [0.0, np.pi / 2],
                  velocities=[[10.0, 0.0], [np.nan, np.nan]])
    points = np.array([[20.0, 0.0, 1.0], [15.0, 0.0, 1.0], [15.0, 0.0, 1.0], [21.9, 0.0, 1.0], [0.0, 31.9, 1.0]])
    lags = np.array([0.0, 0.5, 0.0, 0.0, 0.5])
    assert car.contains(points).tolist() == [[True, False, False, True, False], [False] * 4 + [True]]
    # the point at 15 m of the sweep 0.5 s old is the car's; the same point at the keyframe is not; a box of
    # unknown velocity counts as standing
    assert car.contains(points, lags).tolist() == [[True, True, False, True, False], [False] * 4 + [True]]
    assert car.contains(points, np.full(5, 0.1))[0].tolist() == [True, False, False, False, False]  # at 19 m


def test_contains_matches_devkit_points_in_box_for_turned_boxes():
    # boxes turned by several yaws (at yaw 0 a sign slip in the sine terms of the box frame would not show),
    # points spread over and around them: the devkit's points_in_box is the oracle
    rng = np.random.default_rng(3)
    boxes = Boxes3D(centers=[[5.0, -3.0, 1.0], [-10.0, 4.0, 0.5], [0.0, 0.0, 0.0]],
                    sizes=[[2.0, 6.0, 2.0], [1.0, 4.0, 1.5], [3.0, 8.0, 2.0]], yaws=[0.6, -2.2, 1.1])
    points = np.concatenate([center + rng.uniform(-4, 4, (400, 3)) * [1, 1, 0.15] for center in boxes.centers])
    ours = boxes.contains(points)
    devkit = np.stack([points_in_box(box, points.T) for box in boxes.to_devkit()])
    assert np.all(devkit.sum(axis=1) >= 15)  # every box holds some of the points, and most lie outside it
    np.testing.assert_array_equal(ours, devkit)


def test_contains_includes_the_side_faces():
    # a box along x (yaw 0) 2 m wide, 4 m long, 1 m high at (1, 2, 0.5): points exactly on its left and right
    # faces (y = 3 and 1), its front and rear (x = 3 and -1) and its top are inside, as the devkit's
    # points_in_box says; a hair beyond the left face is not
    box = Boxes3D([[1.0, 2.0, 0.5]], [[2.0, 4.0, 1.0]], [0.0])
    points = np.array([[1.0, 3.0, 0.5], [1.0, 1.0, 0.5], [3.0, 2.0, 0.5], [-1.0, 2.0, 0.5], [1.0, 2.0, 1.0],
                       [1.0, 3.0 + 1e-9, 0.5]])
    expected = points_in_box(box.to_devkit()[0], points.T)
    assert expected.tolist() == [True] * 5 + [False]
    assert box.contains(points)[0].tolist() == expected.tolist()


def test_transformed_yaws_are_libm_atan2_of_the_rotated_heading_every_time():
    """The same boxes give the same yaws bit for bit, call after call (numpy's vectorised arctan2 differed from call
    to call in the last bit with the arrays' placement in memory, and from libm's in 306 of 1000 random headings)."""
    rng = np.random.default_rng(0)
    n = 1000
    boxes = Boxes3D(rng.normal(size=(n, 3)) * 20, rng.uniform(0.5, 5, size=(n, 3)), rng.uniform(-np.pi, np.pi, n))
    transform = RigidTransform.from_rotation_translation(rotation_from_vector(np.array([0.01, -0.02, 0.7])),
                                                         [100.0, -50.0, 2.0])
    heading = transform.apply_rotation(np.stack([np.cos(boxes.yaws), np.sin(boxes.yaws), np.zeros(n)], axis=1))
    expected = np.array([math.atan2(y, x) for x, y, _ in heading])
    seen = set()
    for size in range(1, 40):
        _ = np.empty(size * 37)  # moves where the next arrays land
        yaws = boxes.transform(transform).yaws
        np.testing.assert_array_equal(yaws, expected)
        seen.add(yaws.tobytes())
    assert len(seen) == 1


def test_footprint_overlap_matches_shapely():
    rng = np.random.default_rng(0)
    count = 400
    boxes = Boxes3D(np.concatenate([rng.uniform(-4, 4, (count, 2)), np.zeros((count, 1))], 1),
                    np.concatenate([rng.uniform(0.3, 4, (count, 2)), np.ones((count, 1))], 1),
                    rng.uniform(-np.pi, np.pi, count))
    reference = Boxes3D(np.zeros((1, 3)), [[1.85, 4.084, 1.0]], [0.3]).bev_corners()[0]
    corners = boxes.bev_corners()
    ours = footprints_overlap(reference, corners)
    oracle = np.array([Polygon(reference).intersection(Polygon(c)).area > 0 for c in corners])
    clear = np.array([Polygon(reference).distance(Polygon(c)) > 1e-6 or Polygon(reference).intersection(
        Polygon(c)).area > 1e-6 for c in corners])  # leave out grazing contacts
    assert clear.sum() > 390 and 50 < oracle.sum() < 390
    np.testing.assert_array_equal(ours[clear], oracle[clear])
    # edge to edge: touching is no collision; a hair more is
    touching = Boxes3D([[4.084, 0.0, 0.0], [4.083, 0.0, 0.0]], [[1.85, 4.084, 1.0]] * 2, [0.0, 0.0]).bev_corners()
    square = Boxes3D(np.zeros((1, 3)), [[1.85, 4.084, 1.0]], [0.0]).bev_corners()[0]
    np.testing.assert_array_equal(footprints_overlap(square, touching), [False, True])


def test_footprints_that_only_touch_do_not_overlap():
    # unit squares on exact coordinates: sharing an edge, sharing a corner, and overlapping by half; shapely's
    # intersection area is the oracle (0, 0, 0.5)
    square = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    others = np.stack([square + [1.0, 0.0], square + [1.0, 1.0], square + [0.5, 0.0]])
    oracle = [Polygon(square).intersection(Polygon(other)).area > 0 for other in others]
    assert oracle == [False, False, True]
    np.testing.assert_array_equal(footprints_overlap(square, others), oracle)


def test_footprints_separated_only_along_the_other_ones_edges_do_not_overlap():
    # the square [0, 2] x [0, 2] and a diamond centred at (3, 3), 1.2 m from its centre to each corner: on x and y
    # (the square's edge normals) their shadows [0, 2] and [1.8, 4.2] overlap, but along the diamond's normal
    # (1, 1) the square reaches x + y = 4 and the diamond starts at 6 - 1.2 = 4.8: a gap. Shapely: 0.8 / sqrt(2)
    # = 0.566 m apart
    square = np.array([[0.0, 0.0], [0.0, 2.0], [2.0, 2.0], [2.0, 0.0]])
    diamond = np.array([[3.0, 4.2], [4.2, 3.0], [3.0, 1.8], [1.8, 3.0]])
    assert Polygon(square).distance(Polygon(diamond)) == pytest.approx(0.8 / np.sqrt(2))
    assert footprints_overlap(square, diamond[None]).tolist() == [False]
    assert footprints_overlap(diamond, square[None]).tolist() == [False]
    # moved by (-0.5, -0.5) the diamond starts at x + y = 3.8, inside the square's 4: they overlap
    closer = diamond - 0.5
    assert Polygon(square).intersection(Polygon(closer)).area > 0
    assert footprints_overlap(square, closer[None]).tolist() == [True]
