"""Where a frustum point's pixel sits, written once for the Numba CPU and CUDA kernels of perception.ops.bev_pool.

Frustum points are numbered ((b * N + n) * D + d) * H * W + h * W + w (depth (B, N, D, H, W) flattened), context
rows (b * N + n) * H * W + h * W + w (context (B, N, H, W, C) flattened to rows of C).
"""
from __future__ import annotations


def pixel_of_point(point, depth_bins, pixels_per_image):
    """The context row of frustum point ``point``."""
    return point // (depth_bins * pixels_per_image) * pixels_per_image + point % pixels_per_image


def point_of_pixel(pixel, depth_bin, depth_bins, pixels_per_image):
    """The frustum point of context row ``pixel`` at depth bin ``depth_bin``."""
    return (pixel // pixels_per_image * depth_bins + depth_bin) * pixels_per_image + pixel % pixels_per_image
