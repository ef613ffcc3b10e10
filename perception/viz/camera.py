"""Camera overlays: projected points coloured by depth, box wireframe edges, and the six-camera mosaic."""
from __future__ import annotations

from typing import Mapping, Sequence

import cv2
import numpy as np

BOX_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))
"""The 12 edges of a box over Boxes3D.corners() and the devkit's Box.corners() (0-3 the front face, 4-7 the
rear face)."""


def depth_colours(depths: np.ndarray, max_depth_m: float) -> np.ndarray:
    """(N,) depths [m] -> (N, 3) uint8 BGR: OpenCV's JET colour map from red (0 m) to blue (``max_depth_m`` and
    beyond)."""
    scaled = np.clip(np.asarray(depths, dtype=np.float64) / max_depth_m, 0.0, 1.0)
    return cv2.applyColorMap((255 * (1.0 - scaled)).astype(np.uint8).reshape(-1, 1), cv2.COLORMAP_JET)[:, 0]


def depth_key(width_px: int, max_depth_m: float) -> np.ndarray:
    """(H, width_px, 3) uint8 BGR, a black strip: "depth 0 m", the depth_colours from 0 to ``max_depth_m`` as a bar,
    "<max_depth_m>+ m"; its size in proportion to the width (the same on every tile of a mosaic)."""
    scale = width_px / 640.0
    font_scale, margin = 0.6 * scale, int(round(8 * scale))
    left, right = "depth 0 m", f"{max_depth_m:g}+ m"
    (left_width, text_height), _ = cv2.getTextSize(left, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    right_width = cv2.getTextSize(right, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)[0][0]
    key = np.zeros((text_height + 2 * margin, width_px, 3), np.uint8)
    bar_start, bar_end = left_width + 2 * margin, width_px - right_width - 2 * margin
    key[margin:margin + text_height, bar_start:bar_end] = depth_colours(
        np.linspace(0.0, max_depth_m, bar_end - bar_start), max_depth_m)[None]
    for text, x in ((left, margin), (right, bar_end + margin)):
        cv2.putText(key, text, (x, margin + text_height), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return key


def draw_points(image_bgr: np.ndarray, pixels: np.ndarray, depths: np.ndarray, max_depth_m: float = 50.0,
                radius_px: int = 2) -> np.ndarray:
    """(H + K, W, 3) uint8: ``image_bgr`` (H, W, 3) with (N, 2) pixels [u, v] drawn as dots coloured by (N,) depth
    [m] (depth_colours), above its depth_key (K rows)."""
    canvas = image_bgr.copy()
    for (u, v), colour in zip(np.round(pixels).astype(int), depth_colours(depths, max_depth_m)):
        cv2.circle(canvas, (int(u), int(v)), radius_px, tuple(int(c) for c in colour), -1)
    return np.concatenate([canvas, depth_key(canvas.shape[1], max_depth_m)], axis=0)


def mosaic(images_by_channel: Mapping[str, np.ndarray], channels: Sequence[str], columns: int = 3,
           tile_width_px: int = 640) -> np.ndarray:
    """Tiles the images of ``channels`` (in order, ``columns`` per row) resized to ``tile_width_px``, with the
    channel name written on each; a missing channel gets a grey tile saying so."""
    first = next(iter(images_by_channel.values()))
    tile_height_px = int(round(first.shape[0] * tile_width_px / first.shape[1]))
    tiles = []
    for channel in channels:
        image = images_by_channel.get(channel)
        if image is None:
            tile = np.full((tile_height_px, tile_width_px, 3), 64, np.uint8)
            label = f"{channel} (missing)"
        else:
            tile = cv2.resize(image, (tile_width_px, tile_height_px), interpolation=cv2.INTER_AREA)
            label = channel
        cv2.putText(tile, label, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
        tiles.append(tile)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)
