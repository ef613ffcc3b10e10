"""LIDAR_TOP: a 32-beam spinning LiDAR like the Velodyne HDL-32E that nuScenes uses.

A sweep is cast at one instant (no rolling skew within the 50 ms revolution). Points are written in the
sensor frame as nuScenes stores them: float32 (x, y, z, intensity, ring), intensity 0-255 from material
reflectivity and incidence angle, with Gaussian range noise and range- and reflectivity-dependent dropout.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from perception.datasets.synthetic.layout import Material
from perception.datasets.synthetic.raycast import Snapshot
from perception.datasets.synthetic.shading import NO_PAINT, FrenetRaster
from perception.geometry import RigidTransform
from perception.sensors import LIDAR_BEAM_COUNT, LIDAR_BEAM_ELEVATION_RANGE_DEG

ELEVATIONS_DEG = np.linspace(*LIDAR_BEAM_ELEVATION_RANGE_DEG, LIDAR_BEAM_COUNT)
"""The 32 beams' elevations (ring 0 lowest)."""
AZIMUTH_STEPS = 1084
"""Firings per revolution: 32 x 1084 = 34,688 rays per sweep."""
MIN_RANGE_M, MAX_RANGE_M = 1.0, 80.0
RANGE_NOISE_STD_M = 0.02
BASE_DROPOUT = 0.02
PAINT_REFLECTIVITY = 0.9
"""Lane paint is retro-reflective."""


def beam_directions(azimuth_offset_rad: float) -> Tuple[np.ndarray, np.ndarray]:
    """Unit ray directions (32 * AZIMUTH_STEPS, 3) in the sensor frame and their ring index (same length)."""
    azimuth = azimuth_offset_rad + np.linspace(0.0, 2 * np.pi, AZIMUTH_STEPS, endpoint=False)
    elevation = np.deg2rad(ELEVATIONS_DEG)
    az, el = np.meshgrid(azimuth, elevation)
    directions = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
    rings = np.broadcast_to(np.arange(len(elevation))[:, None], az.shape)
    return directions.reshape(-1, 3), rings.reshape(-1)


def simulate_sweep(snapshot: Snapshot, sensor_to_global: RigidTransform, frenet: FrenetRaster,
                   rng: np.random.Generator) -> np.ndarray:
    """One sweep: (N, 5) float32 points [x, y, z (m, sensor frame), intensity (0-255), ring (0-31)]."""
    directions, rings = beam_directions(float(rng.uniform(0.0, 2 * np.pi / AZIMUTH_STEPS)))
    hits = snapshot.cast(sensor_to_global.translation, sensor_to_global.apply_rotation(directions))
    distance = hits.distance + rng.normal(0.0, RANGE_NOISE_STD_M, len(directions))
    reflectivity = hits.reflectivity.astype(np.float64)
    on_ground = hits.hit & (hits.material == Material.GROUND)
    if on_ground.any():
        ground_xy = (sensor_to_global.translation + hits.distance[on_ground, None] *
                     sensor_to_global.apply_rotation(directions[on_ground]))[:, :2]
        painted = frenet.paint(ground_xy) != NO_PAINT
        reflectivity[np.flatnonzero(on_ground)[painted]] = PAINT_REFLECTIVITY
    cos_incidence = np.abs(np.einsum("nd,nd->n", hits.normal, sensor_to_global.apply_rotation(directions)))
    drop_probability = BASE_DROPOUT + 0.5 * (np.minimum(hits.distance, MAX_RANGE_M) / MAX_RANGE_M) ** 2 * (
        1.0 - reflectivity) * (1.0 - cos_incidence)
    keep = (hits.hit & (distance > MIN_RANGE_M) & (distance < MAX_RANGE_M)
            & (rng.random(len(directions)) >= drop_probability))
    intensity = 100.0 * reflectivity * (0.25 + 0.75 * cos_incidence) + rng.normal(0.0, 2.0, len(directions))
    points = np.empty((int(keep.sum()), 5), np.float32)
    points[:, :3] = directions[keep] * distance[keep, None]
    points[:, 3] = np.clip(np.round(intensity[keep]), 0, 255)
    points[:, 4] = rings[keep]
    return points
