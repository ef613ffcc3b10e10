"""Bird's-eye view drawings in the ego frame: points, boxes with their velocities, and the ego's planned path.

The picture: the ego at the centre, its x axis (forward) pointing up and its y axis (left) pointing left, so the
view reads like a map seen from above with the car driving up the page.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from perception.classes import DETECTION_CLASSES
from perception.decision import PlannerConfig
from perception.geometry import Boxes3D

CLASS_COLOURS_BGR = (
    (0, 140, 255),    # car: orange
    (0, 0, 220),      # truck: red
    (180, 0, 180),    # bus: purple
    (60, 60, 160),    # trailer: brown
    (0, 200, 200),    # construction_vehicle: olive
    (255, 120, 0),    # pedestrian: blue
    (255, 0, 255),    # motorcycle: magenta
    (255, 255, 0),    # bicycle: cyan
    (160, 160, 160),  # barrier: grey
    (0, 255, 255),    # traffic_cone: yellow
)
"""One BGR colour per detection class, indexed like DETECTION_CLASSES."""
assert len(CLASS_COLOURS_BGR) == len(DETECTION_CLASSES)

EGO_COLOUR_BGR = (0, 255, 0)
PLAN_COLOUR_BGR = (80, 255, 80)
RADAR_COLOUR_BGR = (0, 0, 255)


def class_colour(label: int) -> tuple:
    """The BGR colour of a label (an index into DETECTION_CLASSES)."""
    return CLASS_COLOURS_BGR[int(label) % len(CLASS_COLOURS_BGR)]


@dataclass(frozen=True)
class BevView:
    """A square view ``2 * range_m`` metres wide around the ego at ``pixels_per_m``."""

    range_m: float = 50.0
    pixels_per_m: float = 6.0

    @property
    def size_px(self) -> int:
        return int(round(2 * self.range_m * self.pixels_per_m))

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) ego-frame [x, y] metres -> (N, 2) float pixels [u, v] (x up the image, y to the left)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        centre = self.size_px / 2.0
        return np.stack([centre - xy[:, 1] * self.pixels_per_m, centre - xy[:, 0] * self.pixels_per_m], axis=1)


def _int_points(pixels: np.ndarray) -> np.ndarray:
    return np.round(pixels).astype(np.int32)


def draw_bev(
    view: BevView = BevView(),
    lidar_points: Optional[np.ndarray] = None,
    radar_points: Optional[np.ndarray] = None,
    boxes: Optional[Boxes3D] = None,
    trajectory: Optional[np.ndarray] = None,
    text_lines: Sequence[str] = (),
    ego_car: PlannerConfig = PlannerConfig(),
) -> np.ndarray:
    """A (S, S, 3) uint8 BGR bird's-eye view, S = view.size_px.

    ``lidar_points`` (N, >=3) [x, y, z, ...] ego frame, drawn as dots shaded by height (-2 m dark .. +3 m
    bright); ``radar_points`` (M, >=6) [x, y, z, rcs, vx, vy, ...] (RADAR_COLUMNS) drawn as red dots with their
    velocity over 1 s; ``boxes`` footprints in their class colour, the front edge thick, velocity arrows over 1 s;
    ``trajectory`` (T, 2) ego-frame waypoints [x, y] drawn as a path from the ego origin; ``text_lines`` in the
    top-left corner; the ego's footprint is ``ego_car``'s (the nuScenes ego car by default).
    """
    size = view.size_px
    canvas = np.zeros((size, size, 3), np.uint8)
    centre = (size // 2, size // 2)
    for ring_m in range(10, int(view.range_m * 1.5) + 1, 10):
        cv2.circle(canvas, centre, int(round(ring_m * view.pixels_per_m)), (40, 40, 40), 1, cv2.LINE_AA)
    if lidar_points is not None and len(lidar_points):
        points = np.asarray(lidar_points)
        pixels = _int_points(view.to_pixels(points[:, :2]))
        inside = np.all((pixels >= 0) & (pixels < size), axis=1)
        shade = np.clip((points[inside, 2] + 2.0) / 5.0, 0.0, 1.0)
        grey = (70 + 185 * shade).astype(np.uint8)
        canvas[pixels[inside, 1], pixels[inside, 0]] = grey[:, None]
    if radar_points is not None and len(radar_points):
        points = np.asarray(radar_points, dtype=np.float64)
        starts = _int_points(view.to_pixels(points[:, :2]))
        ends = _int_points(view.to_pixels(points[:, :2] + points[:, 4:6]))
        for start, end in zip(starts, ends):
            cv2.line(canvas, tuple(int(v) for v in start), tuple(int(v) for v in end), RADAR_COLOUR_BGR, 1,
                     cv2.LINE_AA)
            cv2.circle(canvas, tuple(int(v) for v in start), 2, RADAR_COLOUR_BGR, -1)
    if boxes is not None and len(boxes):
        corners = view.to_pixels(boxes.bev_corners().reshape(-1, 2)).reshape(-1, 4, 2)
        centres = view.to_pixels(boxes.centers[:, :2])
        tips = view.to_pixels(boxes.centers[:, :2] + boxes.velocities)
        for polygon, centre_px, tip, label in zip(corners, centres, tips, boxes.labels):
            colour = class_colour(label)
            polygon = _int_points(polygon)
            cv2.polylines(canvas, [polygon], True, colour, 1, cv2.LINE_AA)
            cv2.line(canvas, tuple(polygon[0]), tuple(polygon[1]), colour, 3, cv2.LINE_AA)  # front edge
            if np.linalg.norm(tip - centre_px) >= 2:
                cv2.arrowedLine(canvas, tuple(_int_points(centre_px)), tuple(_int_points(tip)), colour, 1,
                                cv2.LINE_AA, tipLength=0.3)
    ego = Boxes3D(np.array([[ego_car.rear_axle_to_center_m, 0.0, 0.0]]),
                  np.array([[ego_car.ego_width_m, ego_car.ego_length_m, 1.5]]), np.zeros(1))
    ego_polygon = _int_points(view.to_pixels(ego.bev_corners()[0]))
    cv2.polylines(canvas, [ego_polygon], True, EGO_COLOUR_BGR, 2, cv2.LINE_AA)
    if trajectory is not None and len(trajectory):
        path = _int_points(view.to_pixels(np.concatenate([np.zeros((1, 2)), np.asarray(trajectory)[:, :2]])))
        cv2.polylines(canvas, [path], False, PLAN_COLOUR_BGR, 2, cv2.LINE_AA)
        for waypoint in path[1:]:
            cv2.circle(canvas, tuple(int(v) for v in waypoint), 3, PLAN_COLOUR_BGR, -1, cv2.LINE_AA)
    for row, line in enumerate(text_lines):
        cv2.putText(canvas, line, (8, 20 + 20 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return canvas
