"""The detector interface every consumer (evaluation, replay, benchmark) calls, and the ground-truth oracle."""
from __future__ import annotations

from typing import FrozenSet, List, Optional, Protocol, Sequence

import numpy as np

from perception.datasets.frame import Frame
from perception.geometry import Boxes3D
from perception.sensors import DEFAULT_LIDAR_SWEEPS, DEFAULT_RADAR_SWEEPS, SENSOR_GROUPS
from perception.timing import StageTimer


class Detector(Protocol):
    """Turns frames into boxes, each in its frame's ego frame (scores in [0, 1], labels into DETECTION_CLASSES)."""

    sensors: FrozenSet[str]
    """The sensor groups (SENSOR_GROUPS) it reads."""

    def detect(self, frames: Sequence[Frame], timer: Optional[StageTimer] = None) -> List[Boxes3D]:
        """One Boxes3D per frame. ``timer``: the replay's or the benchmark's StageTimer, with which the detector
        may time its own stages (names in perception.timing.STAGES); None when nobody times it."""
        ...


def dropped_groups(detector: Detector) -> FrozenSet[str]:
    """The sensor groups (SENSOR_GROUPS) the detector does not read: its frames are built without them."""
    return frozenset(SENSOR_GROUPS) - frozenset(detector.sensors)


def timed_detect(detector: Detector, frame: Frame, timer: StageTimer) -> Boxes3D:
    """``detector.detect([frame], timer=timer)[0]``, the whole call timed as stage "detector"."""
    with timer.stage("detector"):
        return detector.detect([frame], timer=timer)[0]


class OracleDetector:
    """Returns each frame's ground truth with score 1: an end-to-end check of loader, conversion and writer.

    Only the boxes with at least one LiDAR or radar point, when the frame has the counts: the devkit's
    evaluation drops the others from the ground truth, so returning them would score as false positives.
    """

    sensors: FrozenSet[str] = frozenset(SENSOR_GROUPS)
    lidar_sweeps, radar_sweeps = DEFAULT_LIDAR_SWEEPS, DEFAULT_RADAR_SWEEPS
    """The sweeps the tools load for the oracle's frames (it reads none; the decision layer and the pictures see
    them): perception.sensors' defaults."""

    def detect(self, frames: Sequence[Frame], timer: Optional[StageTimer] = None) -> List[Boxes3D]:
        """The ground truth of each frame (``timer`` unused: the oracle has no stages of its own)."""
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
