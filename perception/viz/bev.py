"""Bird's-eye view drawings in the ego frame: points, boxes with their velocities, and the ego's planned path; and
the caption band under a picture: its text wrapped to the picture's width and the legend of the colours drawn.

The picture: the ego at the centre, its x axis (forward) pointing up and its y axis (left) pointing left, so the
view reads like a map seen from above with the car driving up the page.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from perception.classes import DETECTION_CLASSES
from perception.decision import PlannerConfig
from perception.geometry import Boxes3D

_COLOUR_BY_CLASS_BGR = {
    "car": (0, 255, 255),                   # yellow
    "truck": (255, 128, 32),                # blue
    "bus": (255, 0, 224),                   # violet
    "trailer": (0, 128, 192),               # ochre
    "construction_vehicle": (32, 160, 0),   # dark green
    "pedestrian": (224, 255, 0),            # aquamarine
    "motorcycle": (128, 32, 255),           # rose
    "bicycle": (255, 192, 0),               # sky blue
    "traffic_cone": (255, 160, 255),        # pink
    "barrier": (160, 255, 224),             # pale lime
}
CLASS_COLOURS_BGR = tuple(_COLOUR_BY_CLASS_BGR[name] for name in DETECTION_CLASSES)
"""One BGR colour per detection class, indexed like DETECTION_CLASSES; chosen apart from each other, from the
radar's red, the ego's green and the LiDAR's greys (at least 70 apart in RGB and 45 in CIELAB)."""

EGO_COLOUR_BGR = (0, 255, 0)
PLAN_COLOUR_BGR = EGO_COLOUR_BGR
"""The ego's footprint and its planned path share one green."""
PROPOSAL_COLOUR_BGR = (255, 96, 160)
"""Lavender: a learned plan as proposed, where the safety layer changed it (apart from the classes' colours, the
radar's, the ego's and the LiDAR's greys as they are from each other)."""
RADAR_COLOUR_BGR = (0, 0, 255)
RING_COLOUR_BGR = (40, 40, 40)
RING_SPACING_M = 10
"""Range rings around the ego, every RING_SPACING_M metres, darker than any LiDAR point."""
LIDAR_HEIGHT_RANGE_M = (-2.0, 3.0)
LIDAR_GREYS = (70, 255)
"""A LiDAR point's grey: LIDAR_GREYS[0] at or below LIDAR_HEIGHT_RANGE_M[0] (z, ego frame) up to LIDAR_GREYS[1] at
or above LIDAR_HEIGHT_RANGE_M[1]."""

TEXT_FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT_SCALE = 0.5
TEXT_COLOUR_BGR = (255, 255, 255)
LINE_HEIGHT_PX = 20
MARGIN_PX = 8
SWATCH_PX = 12
LegendEntry = Tuple[Optional[tuple], str]
"""A legend entry: a BGR colour (None: text only) and what it marks."""


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


def _given(points: Optional[np.ndarray]) -> bool:
    return points is not None and len(points) > 0


def draw_bev(
    view: BevView = BevView(),
    lidar_points: Optional[np.ndarray] = None,
    radar_points: Optional[np.ndarray] = None,
    boxes: Optional[Boxes3D] = None,
    trajectory: Optional[np.ndarray] = None,
    ego_car: PlannerConfig = PlannerConfig(),
    proposal: Optional[np.ndarray] = None,
) -> np.ndarray:
    """A (S, S, 3) uint8 BGR bird's-eye view, S = view.size_px, nothing but the scene (its words go in a caption
    band: with_caption, bev_legend).

    Range rings every RING_SPACING_M; ``lidar_points`` (N, >=3) [x, y, z, ...] ego frame, drawn as dots in grey by
    height (LIDAR_GREYS over LIDAR_HEIGHT_RANGE_M); ``radar_points`` (M, >=6) [x, y, z, rcs, vx, vy, ...]
    (RADAR_COLUMNS) drawn as red dots with their velocity over 1 s; ``boxes`` footprints in their class colour, the
    front edge thick, velocity arrows over 1 s; ``trajectory`` (T, 2) ego-frame waypoints [x, y] drawn as a path
    from the ego origin, and under it a ``proposal`` (T, 2) the safety layer changed, thinner, in
    PROPOSAL_COLOUR_BGR; the ego's footprint is ``ego_car``'s (the nuScenes ego car by default).
    """
    size = view.size_px
    canvas = np.zeros((size, size, 3), np.uint8)
    centre = (size // 2, size // 2)
    for ring_m in range(RING_SPACING_M, int(view.range_m * 1.5) + 1, RING_SPACING_M):
        cv2.circle(canvas, centre, int(round(ring_m * view.pixels_per_m)), RING_COLOUR_BGR, 1, cv2.LINE_AA)
    if _given(lidar_points):
        points = np.asarray(lidar_points)
        pixels = _int_points(view.to_pixels(points[:, :2]))
        inside = np.all((pixels >= 0) & (pixels < size), axis=1)
        (low_m, high_m), (dark, bright) = LIDAR_HEIGHT_RANGE_M, LIDAR_GREYS
        shade = np.clip((points[inside, 2] - low_m) / (high_m - low_m), 0.0, 1.0)
        grey = (dark + (bright - dark) * shade).astype(np.uint8)
        canvas[pixels[inside, 1], pixels[inside, 0]] = grey[:, None]
    if _given(radar_points):
        points = np.asarray(radar_points, dtype=np.float64)
        starts = _int_points(view.to_pixels(points[:, :2]))
        ends = _int_points(view.to_pixels(points[:, :2] + points[:, 4:6]))
        for start, end in zip(starts, ends):
            cv2.line(canvas, tuple(int(v) for v in start), tuple(int(v) for v in end), RADAR_COLOUR_BGR, 1,
                     cv2.LINE_AA)
            cv2.circle(canvas, tuple(int(v) for v in start), 2, RADAR_COLOUR_BGR, -1)
    if _given(boxes):
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
    for path, colour, width, radius in ((proposal, PROPOSAL_COLOUR_BGR, 1, 2), (trajectory, PLAN_COLOUR_BGR, 2, 3)):
        if _given(path):
            pixels = _int_points(view.to_pixels(np.concatenate([np.zeros((1, 2)), np.asarray(path)[:, :2]])))
            cv2.polylines(canvas, [pixels], False, colour, width, cv2.LINE_AA)
            for waypoint in pixels[1:]:
                cv2.circle(canvas, tuple(int(v) for v in waypoint), radius, colour, -1, cv2.LINE_AA)
    return canvas


def bev_legend(lidar_points: Optional[np.ndarray] = None, radar_points: Optional[np.ndarray] = None,
               boxes: Optional[Boxes3D] = None, trajectory: Optional[np.ndarray] = None,
               proposal: Optional[np.ndarray] = None) -> List[LegendEntry]:
    """The legend of draw_bev given the same arguments: each class among ``boxes`` (DETECTION_CLASSES order),
    the LiDAR, the radar, the ego (and its plan, and the proposal the safety layer changed) where drawn, and the
    rings' spacing."""
    labels = sorted({int(label) % len(DETECTION_CLASSES) for label in boxes.labels}) if _given(boxes) else []
    entries: List[LegendEntry] = [(class_colour(label), DETECTION_CLASSES[label]) for label in labels]
    if _given(lidar_points):
        low_m, high_m = LIDAR_HEIGHT_RANGE_M
        entries.append(((sum(LIDAR_GREYS) // 2,) * 3, f"LiDAR, dark to bright by height {low_m:g} .. {high_m:g} m"))
    if _given(radar_points):
        entries.append((RADAR_COLOUR_BGR, "radar"))
    entries.append((EGO_COLOUR_BGR, "ego and its plan" if _given(trajectory) else "ego"))
    if _given(proposal):
        entries.append((PROPOSAL_COLOUR_BGR, "learned plan as proposed, changed by the safety layer"))
    entries.append((None, f"arrows: velocity over 1 s; rings every {RING_SPACING_M} m"))
    return entries


def text_width_px(text: str) -> int:
    """How wide ``text`` is drawn in the caption's font [px] (cv2.getTextSize)."""
    return cv2.getTextSize(text, TEXT_FONT, TEXT_SCALE, 1)[0][0]


def wrap_to_width(text: str, width_px: int) -> List[str]:
    """``text``'s words, in order, in lines at most ``width_px`` wide as drawn (text_width_px); a single word wider
    than that stays whole on a line of its own."""
    lines: List[str] = []
    for word in text.split():
        if lines and text_width_px(f"{lines[-1]} {word}") <= width_px:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def caption_band(lines: Sequence[str], legend: Sequence[LegendEntry], width_px: int) -> np.ndarray:
    """(H, width_px, 3) uint8 BGR, black under a grey top line: each of ``lines`` wrapped to the width
    (wrap_to_width), then the ``legend``'s entries (a colour swatch before each name that has a colour) in rows
    that fit the width."""
    text_width = width_px - 2 * MARGIN_PX
    rows: List[List[Tuple[int, Optional[tuple], str]]] = [[(0, None, part)] for line in lines
                                                          for part in wrap_to_width(line, text_width)]
    if legend:
        rows.append([])  # the legend starts on a row of its own
    x = 0
    for colour, name in legend:
        width = text_width_px(name) + (SWATCH_PX + 4 if colour is not None else 0)
        if x > 0 and x + width > text_width:
            rows.append([])
            x = 0
        rows[-1].append((x, colour, name))
        x += width + 3 * MARGIN_PX
    band = np.zeros((2 * MARGIN_PX + LINE_HEIGHT_PX * len(rows), width_px, 3), np.uint8)
    band[0] = 128
    for row, entries in enumerate(rows):
        baseline = MARGIN_PX + 15 + LINE_HEIGHT_PX * row
        for x, colour, name in entries:
            x += MARGIN_PX
            if colour is not None:
                cv2.rectangle(band, (x, baseline - SWATCH_PX + 1), (x + SWATCH_PX - 1, baseline), colour, -1)
                x += SWATCH_PX + 4
            cv2.putText(band, name, (x, baseline), TEXT_FONT, TEXT_SCALE, TEXT_COLOUR_BGR, 1, cv2.LINE_AA)
    return band


def with_caption(picture_bgr: np.ndarray, lines: Sequence[str], legend: Sequence[LegendEntry] = ()) -> np.ndarray:
    """``picture_bgr`` (H, W, 3) with its caption_band below it, so that no word covers the picture."""
    return np.concatenate([picture_bgr, caption_band(lines, legend, picture_bgr.shape[1])], axis=0)
