"""Pinhole camera intrinsics, projection of 3D points to pixels and image resizing with the
intrinsics scaled to match (conventions: perception.geometry)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from perception.geometry.values import numeric_array

DEFAULT_MIN_DEPTH_M = 1.0
"""Points nearer than this along the optical axis are 'not in front' (the devkit's map_pointcloud_to_image uses 1 m)."""


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels, with the image size when known (width, height in pixels)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: Optional[int] = None
    height: Optional[int] = None
    channel: str = "camera"

    def __post_init__(self) -> None:
        values = np.array([self.fx, self.fy, self.cx, self.cy], dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{self.channel}: camera intrinsics contain NaN or Inf: {values.tolist()}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"{self.channel}: focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        for name in ("width", "height"):
            size = getattr(self, name)
            if size is not None and size <= 0:
                raise ValueError(f"{self.channel}: image {name} must be positive, got {size}")

    @classmethod
    def from_matrix(
        cls, matrix: Sequence[Sequence[float]], channel: str = "camera", width: Optional[int] = None,
        height: Optional[int] = None,
    ) -> "CameraIntrinsics":
        """From a (3, 3) matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] (skew must be 0, as in nuScenes)."""
        k = numeric_array(matrix, "camera intrinsic matrix", channel)
        if k.shape != (3, 3):
            raise ValueError(f"{channel}: camera intrinsic matrix must be 3x3, got shape {k.shape}")
        if not np.all(np.isfinite(k)):
            raise ValueError(f"{channel}: camera intrinsic matrix contains NaN or Inf: {k.tolist()}")
        if abs(np.linalg.det(k)) < 1e-9:
            raise ValueError(f"{channel}: camera intrinsic matrix is singular: {k.tolist()}")
        if not np.allclose(k[2], [0, 0, 1]) or abs(k[1, 0]) > 1e-9 or abs(k[0, 1]) > 1e-9:
            raise ValueError(f"{channel}: camera intrinsic matrix is not a zero-skew pinhole matrix: {k.tolist()}")
        return cls(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), width, height, channel)

    @property
    def matrix(self) -> np.ndarray:
        """(3, 3) intrinsic matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, scale_x: float, scale_y: float) -> "CameraIntrinsics":
        """Intrinsics after resizing the image by (scale_x, scale_y)."""
        width = None if self.width is None else int(round(self.width * scale_x))
        height = None if self.height is None else int(round(self.height * scale_y))
        return CameraIntrinsics(self.fx * scale_x, self.fy * scale_y, self.cx * scale_x, self.cy * scale_y,
                                width, height, self.channel)

    def cropped(self, left: float, top: float, width: int, height: int) -> "CameraIntrinsics":
        """Intrinsics after cropping the image to the window starting at pixel (left, top)."""
        return CameraIntrinsics(self.fx, self.fy, self.cx - left, self.cy - top, width, height, self.channel)


@dataclass(frozen=True)
class Projection:
    """Result of projecting N points: pixels (N, 2) [u, v], depth (N,) [m] along the optical axis, and masks."""

    pixels: np.ndarray
    depth: np.ndarray
    in_front: np.ndarray
    in_image: np.ndarray

    @property
    def visible(self) -> np.ndarray:
        """(N,) bool: in front of the camera and inside the image."""
        return self.in_front & self.in_image


def resize_image(image: np.ndarray, intrinsics: CameraIntrinsics,
                 size: Tuple[int, int]) -> Tuple[np.ndarray, CameraIntrinsics]:
    """A camera image resized to ``size`` (W, H), with ``intrinsics`` (those of the full image, whose size they
    carry; ``image`` may be a reduced decode of it) scaled to match. Pixel corners stay aligned:
    u' = u * W / W_full, as OpenCV's resize samples."""
    width, height = int(size[0]), int(size[1])
    if width <= 0 or height <= 0:
        raise ValueError(f"image_size must be positive (width, height), got {size}")
    if intrinsics.width is None or intrinsics.height is None:
        raise ValueError(f"{intrinsics.channel}: image size unknown; cannot scale the intrinsics to {size}")
    shrinking = width < image.shape[1] and height < image.shape[0]
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    scaled = intrinsics.scaled(width / intrinsics.width, height / intrinsics.height)
    return resized, replace(scaled, width=width, height=height)


def project_points(
    points_camera: np.ndarray, intrinsics: CameraIntrinsics, min_depth: float = DEFAULT_MIN_DEPTH_M,
    border_px: float = 0.0,
) -> Projection:
    """(N, 3) points in the camera frame [m] -> pixels, depth and masks.

    ``in_front``: depth > min_depth and finite. ``in_image``: in front and border_px < u < width - border_px and
    likewise for v (needs the image size); the devkit's map_pointcloud_to_image uses border_px=1.
    Points at or behind the camera get NaN pixels.
    """
    points_camera = np.asarray(points_camera, dtype=np.float64).reshape(-1, 3)
    depth = points_camera[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        safe_depth = np.where(depth > 0, depth, np.nan)
        u = intrinsics.fx * points_camera[:, 0] / safe_depth + intrinsics.cx
        v = intrinsics.fy * points_camera[:, 1] / safe_depth + intrinsics.cy
    pixels = np.stack([u, v], axis=1)
    in_front = np.isfinite(depth) & (depth > min_depth) & np.all(np.isfinite(pixels), axis=1)
    if intrinsics.width is None or intrinsics.height is None:
        raise ValueError(f"{intrinsics.channel}: image size unknown; cannot tell which points are in the image")
    with np.errstate(invalid="ignore"):
        in_image = (
            (u > border_px) & (u < intrinsics.width - border_px) & (v > border_px) & (v < intrinsics.height - border_px)
        )
    return Projection(pixels, depth, in_front, in_image & in_front)
