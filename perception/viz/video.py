"""Replay pictures: boxes projected into the cameras, the six-camera mosaic beside the bird's-eye view, and video.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from perception.datasets.frame import CameraView
from perception.geometry import Boxes3D, project_points
from perception.sensors import CAMERA_CHANNELS
from perception.viz.bev import class_colour
from perception.viz.camera import BOX_EDGES, mosaic
_DRAWN_LINES = BOX_EDGES + ((0, 2), (1, 3))  # the edges and a cross on the front face


def draw_boxes_on_camera(image_bgr: np.ndarray, view: CameraView, boxes: Boxes3D) -> np.ndarray:
    """A copy of ``image_bgr`` (H, W, 3) uint8, the image of ``view``, with the ego-frame ``boxes`` drawn as
    wireframes in their class colours (the front face crossed). An edge is drawn when both its corners lie in
    front of the camera (depth > 1 m, perception.geometry.project_points); OpenCV clips it to the image."""
    canvas = image_bgr.copy()
    if not len(boxes):
        return canvas
    corners_ego = boxes.corners().reshape(-1, 3)
    projection = project_points(view.camera_to_ego.inverse().apply(corners_ego), view.intrinsics)
    pixels = projection.pixels.reshape(len(boxes), 8, 2)
    in_front = projection.in_front.reshape(len(boxes), 8)
    for box_pixels, box_in_front, label in zip(pixels, in_front, boxes.labels):
        if not box_in_front.any():
            continue
        colour = class_colour(label)
        for a, b in _DRAWN_LINES:
            if box_in_front[a] and box_in_front[b]:
                cv2.line(canvas, tuple(np.round(box_pixels[a]).astype(int)), tuple(np.round(box_pixels[b]).astype(int)),
                         colour, 2, cv2.LINE_AA)
    return canvas


def camera_mosaic(cameras: Mapping[str, CameraView], boxes: Boxes3D, tile_width_px: int = 480) -> np.ndarray:
    """The six cameras (CAMERA_CHANNELS order, 3 per row) with ``boxes`` projected, as one BGR image; a camera
    absent from ``cameras`` is a grey tile saying so (perception.viz.camera.mosaic). Needs one camera at least."""
    images = {channel: draw_boxes_on_camera(cv2.cvtColor(view.image, cv2.COLOR_RGB2BGR), view, boxes)
              for channel, view in cameras.items()}
    return mosaic(images, CAMERA_CHANNELS, columns=3, tile_width_px=tile_width_px)


def side_by_side(left_bgr: np.ndarray, right_bgr: np.ndarray) -> np.ndarray:
    """``left_bgr`` beside ``right_bgr``, the right one resized to the left one's height."""
    height = left_bgr.shape[0]
    width = int(round(right_bgr.shape[1] * height / right_bgr.shape[0]))
    right = cv2.resize(right_bgr, (width, height), interpolation=cv2.INTER_AREA)
    return np.concatenate([left_bgr, right], axis=1)


def fit_into(image_bgr: np.ndarray, width_px: int, height_px: int) -> np.ndarray:
    """``image_bgr`` in a (height_px, width_px, 3) frame: scaled down to fit when it is larger (its aspect ratio
    kept), at the top left, the rest black."""
    scale = min(1.0, width_px / image_bgr.shape[1], height_px / image_bgr.shape[0])
    if scale < 1.0:
        size = (int(image_bgr.shape[1] * scale), int(image_bgr.shape[0] * scale))  # rounded down: it fits
        image_bgr = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
    frame = np.zeros((height_px, width_px, 3), np.uint8)
    frame[:image_bgr.shape[0], :image_bgr.shape[1]] = image_bgr
    return frame


def write_video(image_paths: Sequence[str], video_path: str, fps: float,
                repeats: Optional[Sequence[int]] = None, size_px: Optional[Tuple[int, int]] = None) -> str:
    """Writes the images (in order) to an MPEG-4 Part 2 video (OpenCV's 'mp4v') at ``fps``, each image
    ``repeats[i]`` video frames (default 1), in frames of ``size_px`` (width, height; default the first image's):
    an image of another size is fitted into it (fit_into). Returns ``video_path``. Raises ValueError when there is
    no image, a repeat count below 1 or OpenCV cannot open the writer, FileNotFoundError naming an unreadable
    image."""
    if not image_paths:
        raise ValueError(f"{video_path}: no images to write")
    if not fps > 0:
        raise ValueError(f"{video_path}: fps must be positive, got {fps}")
    repeats = [1] * len(image_paths) if repeats is None else [int(count) for count in repeats]
    if len(repeats) != len(image_paths) or min(repeats) < 1:
        raise ValueError(f"{video_path}: one repeat count >= 1 per image, got {repeats} for {len(image_paths)} "
                         f"images")
    first = cv2.imread(image_paths[0])
    if first is None:
        raise FileNotFoundError(f"{image_paths[0]}: cannot read the image")
    width, height = (first.shape[1], first.shape[0]) if size_px is None else size_px
    os.makedirs(os.path.dirname(os.path.abspath(video_path)), exist_ok=True)
    writer = cv2.VideoWriter(video_path, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    if not writer.isOpened():
        raise ValueError(f"{video_path}: OpenCV cannot open an mp4v video writer")
    try:
        for path, count in zip(image_paths, repeats):
            image = first if path == image_paths[0] else cv2.imread(path)
            if image is None:
                raise FileNotFoundError(f"{path}: cannot read the image")
            if image.shape[:2] != (height, width):
                image = fit_into(image, width, height)
            for _ in range(count):
                writer.write(image)
    finally:
        writer.release()
    return video_path
