"""LiDAR corruptions (parameters per severity: perception.datasets.corruptions.CORRUPTIONS).

Points are in the keyframe's ego frame; ranges, azimuths and elevations are taken from LIDAR_MOUNT_M
(perception.sensors), the sensor's position in that frame. Past sweeps were taken a little elsewhere (ego motion),
so for them these angles are approximate; the Frame carries no LiDAR calibration.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from perception.classes import DETECTION_CLASSES
from perception.datasets.frame import Frame
from perception.sensors import LIDAR_BEAM_COUNT, LIDAR_BEAM_ELEVATION_RANGE_DEG, LIDAR_CHANNEL, LIDAR_MOUNT_M

SCATTER_MIN_RANGE_M = 1.0
"""Fog and snow returns are placed no closer than this (the devkit removes closer points as the ego vehicle)."""
SNOW_MAX_RANGE_M = 15.0
"""Snowflakes are seen within this range (their returns are too weak further out)."""
WEATHER_RETURN_INTENSITY = 5.0
"""Intensity of fog and snow returns (0-255 scale; scattering returns are weak)."""
CROSSTALK_STD_M = 3.0
"""Standard deviation of a crosstalk return's offset from the point it copies [m]."""
VEHICLE_CLASSES = ("car", "truck", "bus", "trailer", "construction_vehicle")
"""The classes whose points incomplete echo thins (dark, specular car paint)."""


def _with_points(frame: Frame, points: np.ndarray) -> Frame:
    return replace(frame, lidar=replace(frame.lidar, points=points.astype(np.float32)))


def _rays(points: np.ndarray) -> tuple:
    """(offsets from the sensor (N, 3) float64, ranges (N,) [m])."""
    offsets = points[:, :3].astype(np.float64) - np.asarray(LIDAR_MOUNT_M)
    return offsets, np.linalg.norm(offsets, axis=1)


def _along_ray(points: np.ndarray, offsets: np.ndarray, ranges: np.ndarray, new_ranges: np.ndarray) -> np.ndarray:
    """Copy of ``points`` moved along their rays from the sensor to ``new_ranges``."""
    moved = points.astype(np.float64)
    scale = new_ranges / np.maximum(ranges, 1e-9)
    moved[:, :3] = np.asarray(LIDAR_MOUNT_M) + offsets * scale[:, None]
    return moved


def beam_index(points: np.ndarray) -> np.ndarray:
    """(N,) int: the beam (0 lowest .. 31, perception.sensors) nearest each point's elevation seen from
    LIDAR_MOUNT_M."""
    offsets, _ = _rays(points)
    elevation = np.degrees(np.arctan2(offsets[:, 2], np.hypot(offsets[:, 0], offsets[:, 1])))
    low, high = LIDAR_BEAM_ELEVATION_RANGE_DEG
    step = (high - low) / (LIDAR_BEAM_COUNT - 1)
    return np.clip(np.rint((elevation - low) / step), 0, LIDAR_BEAM_COUNT - 1).astype(int)


def beams_reducing(frame: Frame, beams_kept: int, rng: np.random.Generator, seed: int) -> Frame:
    """Keeps the points of every (32 / beams_kept)-th beam, beam 0 (the lowest) included."""
    if frame.lidar is None:
        return frame
    points = frame.lidar.points
    return _with_points(frame, points[beam_index(points) % (LIDAR_BEAM_COUNT // beams_kept) == 0])


def points_reducing(frame: Frame, fraction: float, rng: np.random.Generator, seed: int) -> Frame:
    """Drops each point with probability ``fraction``."""
    if frame.lidar is None:
        return frame
    points = frame.lidar.points
    return _with_points(frame, points[rng.random(len(points)) >= fraction])


def limited_fov(frame: Frame, half_fov_deg: float, rng: np.random.Generator, seed: int) -> Frame:
    """Keeps the points whose azimuth from the sensor is within +-half_fov_deg of +x (forward)."""
    if frame.lidar is None:
        return frame
    points = frame.lidar.points
    offsets, _ = _rays(points)
    azimuth = np.degrees(np.arctan2(offsets[:, 1], offsets[:, 0]))
    return _with_points(frame, points[np.abs(azimuth) <= half_fov_deg])


def fog(frame: Frame, beta: float, rng: np.random.Generator, seed: int) -> Frame:
    """Fog of extinction ``beta`` [1/m]: a return at range R comes back with probability exp(-2 beta R) (two-way
    transmittance), its intensity attenuated by that factor; otherwise the fog scatters it back from a range
    uniform in [SCATTER_MIN_RANGE_M, R] along the same ray, with WEATHER_RETURN_INTENSITY. The point count is
    kept (a simplification of Hahner et al.'s model, where the scattered return competes with the target's)."""
    if frame.lidar is None:
        return frame
    points = frame.lidar.points
    offsets, ranges = _rays(points)
    transmittance = np.exp(-2.0 * beta * ranges)
    scattered = (rng.random(len(points)) >= transmittance) & (ranges > SCATTER_MIN_RANGE_M)
    new_ranges = ranges.copy()
    new_ranges[scattered] = rng.uniform(SCATTER_MIN_RANGE_M, ranges[scattered])
    out = _along_ray(points, offsets, ranges, new_ranges)
    out[:, 3] = np.where(scattered, WEATHER_RETURN_INTENSITY, out[:, 3] * transmittance)
    return _with_points(frame, out)


def snow(frame: Frame, fraction: float, rng: np.random.Generator, seed: int) -> Frame:
    """Each return, with probability ``fraction``, hits a snowflake instead: it comes back from a range uniform
    in [SCATTER_MIN_RANGE_M, min(R, SNOW_MAX_RANGE_M)] along its ray, with WEATHER_RETURN_INTENSITY."""
    if frame.lidar is None:
        return frame
    points = frame.lidar.points
    offsets, ranges = _rays(points)
    hit = (rng.random(len(points)) < fraction) & (ranges > SCATTER_MIN_RANGE_M)
    new_ranges = ranges.copy()
    new_ranges[hit] = rng.uniform(SCATTER_MIN_RANGE_M, np.minimum(ranges[hit], SNOW_MAX_RANGE_M))
    out = _along_ray(points, offsets, ranges, new_ranges)
    out[hit, 3] = WEATHER_RETURN_INTENSITY
    return _with_points(frame, out)


def rain(frame: Frame, level: tuple, rng: np.random.Generator, seed: int) -> Frame:
    """Rain, ``level`` = (loss per 50 m, range noise std [m]): a return at range R is lost with probability
    min(1, loss * R / 50 m) (absorption by drops and wet surfaces); the others get Gaussian range noise."""
    if frame.lidar is None:
        return frame
    loss_per_50m, noise_std_m = level
    points = frame.lidar.points
    offsets, ranges = _rays(points)
    kept = rng.random(len(points)) >= np.minimum(1.0, loss_per_50m * ranges / 50.0)
    offsets, ranges, points = offsets[kept], ranges[kept], points[kept]
    noisy = np.maximum(ranges + rng.normal(0.0, noise_std_m, len(ranges)), SCATTER_MIN_RANGE_M)
    return _with_points(frame, _along_ray(points, offsets, ranges, noisy))


def crosstalk(frame: Frame, fraction: float, rng: np.random.Generator, seed: int) -> Frame:
    """Adds round(fraction * N) spurious returns (another LiDAR's pulses): copies of random points offset by a
    Gaussian of CROSSTALK_STD_M in x, y and z. The original points come first, unchanged."""
    if frame.lidar is None or len(frame.lidar.points) == 0:
        return frame
    points = frame.lidar.points
    added = points[rng.integers(0, len(points), int(round(fraction * len(points))))].astype(np.float64)
    added[:, :3] += rng.normal(0.0, CROSSTALK_STD_M, (len(added), 3))
    return _with_points(frame, np.concatenate([points.astype(np.float64), added]))


def incomplete_echo(frame: Frame, fraction: float, rng: np.random.Generator, seed: int) -> Frame:
    """Drops each point inside a ground-truth vehicle box (VEHICLE_CLASSES) with probability ``fraction``."""
    if frame.lidar is None or frame.gt_boxes is None:
        return frame
    boxes = frame.gt_boxes
    vehicles = boxes[np.isin(boxes.labels, [DETECTION_CLASSES.index(name) for name in VEHICLE_CLASSES])]
    on_vehicle = vehicles.contains(frame.lidar.points).any(axis=0)
    dropped = on_vehicle & (rng.random(len(on_vehicle)) < fraction)
    return _with_points(frame, frame.lidar.points[~dropped])


def object_failure(frame: Frame, probability: float, rng: np.random.Generator, seed: int) -> Frame:
    """Each ground-truth object, with probability ``probability``, loses every point inside its box."""
    if frame.lidar is None or frame.gt_boxes is None:
        return frame
    failed = frame.gt_boxes[rng.random(len(frame.gt_boxes)) < probability]
    return _with_points(frame, frame.lidar.points[~failed.contains(frame.lidar.points).any(axis=0)])


def missing(frame: Frame, level: None, rng: np.random.Generator, seed: int) -> Frame:
    """No LiDAR: recorded in ``Frame.missing`` like a sensor that is absent."""
    return replace(frame, lidar=None, missing=frame.missing | {"lidar", LIDAR_CHANNEL})
