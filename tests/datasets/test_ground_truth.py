"""The devkit's evaluation filters on hand-made boxes (the real fixture has no bicycle inside a rack)."""
import numpy as np
import pytest

from perception.classes import DETECTION_CLASSES
from perception.datasets.ground_truth import evaluation_mask
from perception.geometry import Boxes3D

RANGES = {name: 50.0 for name in DETECTION_CLASSES}


def _boxes(centers, labels) -> Boxes3D:
    n = len(centers)
    return Boxes3D(np.array(centers, float), np.ones((n, 3)), np.zeros(n),
                   labels=[DETECTION_CLASSES.index(label) for label in labels])


def test_bicycles_and_motorcycles_in_a_rack_are_dropped_other_classes_kept():
    # A 4 m x 2 m rack at (10, 0), turned 90 degrees: it spans x in [9, 11], y in [-2, 2].
    rack = Boxes3D(np.array([[10.0, 0.0, 0.5]]), np.array([[2.0, 4.0, 1.0]]), np.array([np.pi / 2]))
    boxes = _boxes([[10.0, 1.9, 0.5], [10.0, -1.9, 0.4], [10.0, 0.0, 0.5], [11.5, 0.0, 0.5]],
                   ["bicycle", "motorcycle", "pedestrian", "bicycle"])
    ones = np.ones(len(boxes), int)
    mask = evaluation_mask(boxes, ones, 0 * ones, RANGES, bike_racks=rack)
    np.testing.assert_array_equal(mask, [False, False, True, True])
    np.testing.assert_array_equal(evaluation_mask(boxes, ones, 0 * ones, RANGES), [True] * 4)


def test_range_is_strict_and_points_may_be_lidar_or_radar():
    boxes = _boxes([[30.0, 40.0, 0.0], [29.9, 40.0, 0.0], [1.0, 1.0, 0.0], [2.0, 2.0, 0.0]],
                   ["car", "car", "car", "barrier"])
    mask = evaluation_mask(boxes, np.array([5, 5, 0, 0]), np.array([0, 0, 1, 0]), {**RANGES, "barrier": 30.0})
    np.testing.assert_array_equal(mask, [False, True, True, False])  # 50 m is out (devkit: dist < range)


def test_missing_class_range_is_an_error():
    with pytest.raises(ValueError, match="car"):
        evaluation_mask(_boxes([[0.0, 0.0, 0.0]], ["car"]), [1], [0], {"truck": 40.0})
