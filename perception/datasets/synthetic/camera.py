"""Cameras: pinhole images ray cast through every pixel centre and shaded per surface (``shading.shade_pixels``:
Lambert with a sun and ambient light, lane markings, building windows, sky and haze), saved as JPEG."""
from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np

from perception.datasets.synthetic.raycast import Snapshot
from perception.datasets.synthetic.shading import FrenetRaster, shade_pixels
from perception.geometry import RigidTransform

JPEG_QUALITY = 90


def pixel_rays(intrinsic: np.ndarray, image_size: Tuple[int, int]) -> np.ndarray:
    """Unit ray directions (H * W, 3) float32 in the camera frame through the pixel centres (row-major)."""
    width, height = image_size
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    rays = np.stack([(u - intrinsic[0, 2]) / intrinsic[0, 0], (v - intrinsic[1, 2]) / intrinsic[1, 1],
                     np.ones_like(u)], axis=-1).reshape(-1, 3)
    return (rays / np.linalg.norm(rays, axis=1, keepdims=True)).astype(np.float32)


def render(snapshot: Snapshot, camera_to_global: RigidTransform, rays_camera: np.ndarray, image_size: Tuple[int, int],
           sun_direction: np.ndarray, frenet: FrenetRaster, rng: np.random.Generator, with_owners: bool = False
           ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Image (H, W, 3) uint8 BGR of the camera at ``camera_to_global`` (``rays_camera`` from ``pixel_rays``)
    and, with ``with_owners``, the object index under each pixel (H, W) int32 (-1: none), else None."""
    width, height = image_size
    directions = rays_camera @ camera_to_global.rotation.T.astype(np.float32)
    origin = camera_to_global.translation
    distance, triangle = snapshot.cast_triangles(origin, directions)
    road = frenet.road
    image = shade_pixels(distance, triangle, directions, origin.astype(np.float64), snapshot.colours,
                         snapshot.triangle_normals(), snapshot.material, frenet.table, float(frenet.origin[0]),
                         float(frenet.origin[1]), frenet.RESOLUTION_M, road.lanes_per_direction, road.half_width,
                         road.length, np.asarray(sun_direction, np.float64), np.uint64(rng.integers(2 ** 63)))
    owners = snapshot.owners(triangle).reshape(height, width).astype(np.int32) if with_owners else None
    return image.reshape(height, width, 3), owners


def encode_jpeg(image_bgr: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("OpenCV failed to encode a JPEG image")
    return data.tobytes()
