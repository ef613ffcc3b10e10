"""points_in_boxes: nuscenes-devkit's points_in_box as the oracle, hand-worked faces, backends agree."""
import numpy as np
import pytest
import torch
from nuscenes.utils.geometry_utils import points_in_box

from perception.geometry import Boxes3D
from perception.ops import points_in_boxes, points_in_boxes_mask


def random_boxes(rng: np.random.Generator, k: int) -> Boxes3D:
    return Boxes3D(centers=rng.uniform(-5, 5, (k, 3)), sizes=rng.uniform(0.5, 4.0, (k, 3)),
                   yaws=rng.uniform(-np.pi, np.pi, k))


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_points_in_boxes_matches_devkit(backend):
    rng = np.random.default_rng(0)
    boxes = random_boxes(rng, 12)
    points = rng.uniform(-7, 7, (2000, 3)).astype(np.float32)
    expected_mask = np.stack([points_in_box(box, points.T.astype(np.float64)) for box in boxes.to_devkit()])
    mask = points_in_boxes_mask(points, boxes, backend=backend)
    np.testing.assert_array_equal(mask, expected_mask)
    first = points_in_boxes(points, boxes, backend=backend)
    expected_first = np.where(expected_mask.any(0), expected_mask.argmax(0), -1)
    np.testing.assert_array_equal(first, expected_first)
    assert first.dtype == np.int64 and 50 < int((first >= 0).sum()) < 2000


def test_points_in_boxes_hand_worked_faces_and_yaw():
    """A 2 m wide, 4 m long, 1 m high box turned 90 degrees: its length now runs along y."""
    boxes = np.array([[10.0, 0.0, 0.0, 2.0, 4.0, 1.0, np.pi / 2]])
    points = np.array([
        [10.0, 1.9, 0.0],   # inside along the length
        [10.0, 2.1, 0.0],   # past the length
        [10.9, 0.0, 0.4],   # inside along the width
        [11.1, 0.0, 0.0],   # past the width
        [10.0, 0.0, 0.6],   # above
        [np.nan, 0.0, 0.0],
    ], np.float32)
    for backend in ("reference", "numba"):
        np.testing.assert_array_equal(points_in_boxes(points, boxes, backend=backend), [0, -1, 0, -1, -1, -1])
    axis_aligned = np.array([[0.0, 0.0, 0.0, 2.0, 4.0, 1.0, 0.0], [0.0, 0.0, 0.0, 8.0, 8.0, 8.0, 0.0]])
    on_faces = np.array([[2.0, 1.0, 0.5], [-2.0, -1.0, -0.5], [2.0, 0.0, 0.0]], np.float32)
    for backend in ("reference", "numba"):
        np.testing.assert_array_equal(points_in_boxes(on_faces, axis_aligned, backend=backend), [0, 0, 0])
        np.testing.assert_array_equal(points_in_boxes(on_faces[:, [1, 0, 2]], axis_aligned, backend=backend),
                                      [1, 1, 1])


def test_points_in_boxes_torch_and_empty():
    rng = np.random.default_rng(1)
    boxes = random_boxes(rng, 5)
    points = rng.uniform(-6, 6, (500, 4)).astype(np.float32)
    got = points_in_boxes(torch.from_numpy(points), boxes)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), points_in_boxes(points, boxes, backend="reference"))
    for backend in ("reference", "numba"):
        assert points_in_boxes(points[:0], boxes, backend=backend).shape == (0,)
        np.testing.assert_array_equal(points_in_boxes(points, Boxes3D.empty(), backend=backend), np.full(500, -1))
        assert points_in_boxes_mask(points, Boxes3D.empty(), backend=backend).shape == (0, 500)


def test_points_in_boxes_rejects_bad_boxes():
    with pytest.raises(ValueError, match=r"\(K, 7\)"):
        points_in_boxes(np.zeros((3, 3), np.float32), np.zeros((2, 6)))


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_points_in_boxes_array_yaw_turns_counterclockwise(backend):
    """A (K, 7) box [x, y, z, w, l, h, yaw] 2 m wide, 4 m long at yaw +45 degrees: its length runs along (1, 1).
    By hand: (1.2, 1.2) lies 1.2 * sqrt(2) = 1.70 m along the length (<= 2) and 0 across: inside; (1.2, -1.2) lies
    1.70 m across (> 1): outside. A yaw read the other way round (-45 degrees) swaps them."""
    boxes = np.array([[0.0, 0.0, 0.0, 2.0, 4.0, 2.0, np.pi / 4]])
    points = np.float32([[1.2, 1.2, 0.0], [1.2, -1.2, 0.0], [-1.2, -1.2, 0.9], [-1.2, 1.2, 0.0]])
    np.testing.assert_array_equal(points_in_boxes(points, boxes, backend=backend), [0, -1, 0, -1])
    np.testing.assert_array_equal(points_in_boxes_mask(torch.from_numpy(points), torch.from_numpy(boxes),
                                                       backend=backend).numpy(), [[True, False, True, False]])
