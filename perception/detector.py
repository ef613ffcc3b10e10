"""The detector interface every consumer (evaluation, replay, benchmark) calls, and the ground-truth oracle."""
from __future__ import annotations

from typing import FrozenSet, List, Protocol, Sequence

import numpy as np

from perception.datasets.frame import SENSOR_GROUPS, Frame
from perception.geometry import Boxes3D


class Detector(Protocol):
    """Turns frames into boxes, each in its frame's ego frame (scores in [0, 1], labels into DETECTION_CLASSES)."""

    sensors: FrozenSet[str]
    """The sensor groups (SENSOR_GROUPS) it reads."""

    def detect(self, frames: Sequence[Frame]) -> List[Boxes3D]:
        ...


class OracleDetector:
    """Returns each frame's ground truth with score 1: an end-to-end check of loader, conversion and writer.

    Only the boxes with at least one LiDAR or radar point, when the frame has the counts: the devkit's
    evaluation drops the others from the ground truth, so returning them would score as false positives.
    """

    sensors: FrozenSet[str] = frozenset(SENSOR_GROUPS)

    def detect(self, frames: Sequence[Frame]) -> List[Boxes3D]:
        results = []
        for frame in frames:
            if frame.gt_boxes is None:
                raise ValueError(f"sample {frame.sample_token}: the oracle needs ground truth, the split has none")
            boxes = frame.gt_boxes
            if frame.gt_num_lidar_points is not None and frame.gt_num_radar_points is not None:
                boxes = boxes[(frame.gt_num_lidar_points + frame.gt_num_radar_points) > 0]
            results.append(Boxes3D(boxes.centers, boxes.sizes, boxes.yaws, boxes.velocities, boxes.labels,
                                   np.ones(len(boxes)), boxes.attributes))
        return results
