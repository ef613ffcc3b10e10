"""LiDAR corruptions (parameters per severity: perception.datasets.corruptions.CORRUPTIONS).

Points are in the keyframe's ego frame; ranges, azimuths and elevations are taken from LIDAR_MOUNT_M
(perception.sensors), the sensor's position in that frame, and beam elevations in the sensor's own axes
(LIDAR_MOUNT_ROTATION_WXYZ: it is tilted by about a degree). Past sweeps were taken a little elsewhere (ego
motion), so for them these angles are approximate; the Frame carries no LiDAR calibration: these are nuScenes'
(the real fixtures' and the synthetic rig's).
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Tuple

import numpy as np

from perception.classes import DETECTION_CLASSES, MOTOR_VEHICLE_CLASSES
from perception.datasets.frame import LIDAR_COLUMNS, Frame
from perception.geometry import quaternion_to_matrix
from perception.sensors import (LIDAR_BEAM_COUNT, LIDAR_BEAM_ELEVATION_RANGE_DEG, LIDAR_CHANNEL, LIDAR_MOUNT_M,
                                LIDAR_MOUNT_ROTATION_WXYZ)

SCATTER_MIN_RANGE_M = 1.0
"""Snow returns are placed no closer than this (the devkit removes closer points as the ego vehicle); fog's
range-noise draw is floored at it."""
SNOW_MAX_RANGE_M = 15.0
"""Snowflakes are seen within this range (their returns are too weak further out)."""
WEATHER_RETURN_INTENSITY = 5.0
"""Intensity of snow returns (0-255 scale; scattering returns are weak)."""
SPEED_OF_LIGHT_M_S = 299_792_458.0
FOG_PULSE_WIDTH_S = 20e-9
"""Half-power pulse width tau_h of the fog model's LiDAR [s]. This and the next three: Hahner et al.'s defaults
(LiDAR_fog_sim fog_simulation.py ParameterSet), which MultiCorrupt keeps."""
FOG_OVERLAP_RANGE_M = (0.9, 1.0)
"""(r_1, r_2) [m]: the receiver's field of view starts to cover the beam at r_1 and covers it fully from r_2; the
overlap xi rises linearly in between."""
FOG_TARGET_REFLECTIVITY = 1e-6 / np.pi
"""Differential reflectivity beta_0 = Gamma / pi of the hard target, Gamma = 1e-6 [1/sr]."""
FOG_RANGE_NOISE_M = 10.0
"""Half-width of the uniform noise on a fog return's range (their noise variant 'v1' with noise 10)."""
_SENSOR_TO_EGO_ROTATION = quaternion_to_matrix(LIDAR_MOUNT_ROTATION_WXYZ, "LIDAR_MOUNT_ROTATION_WXYZ")
"""(3, 3) LIDAR_TOP's rotation, sensor axes to ego axes."""
CROSSTALK_STD_M = 3.0
"""Standard deviation of a crosstalk return's offset from the point it copies [m]."""
TIME_LAG = LIDAR_COLUMNS.index("time_lag")


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


def beam_index(points: np.ndarray, mark_off_fan: bool = False) -> np.ndarray:
    """``points`` (N, >= 3) [x, y, z, ...] [m] in the ego frame -> (N,) int: the beam (0 lowest .. 31,
    perception.sensors) nearest each point's elevation seen from LIDAR_MOUNT_M in the sensor's axes
    (LIDAR_MOUNT_ROTATION_WXYZ). An elevation more than half a beam spacing outside the fan gets the nearest end
    beam, or -1 with ``mark_off_fan``."""
    offsets, _ = _rays(points)
    in_sensor = offsets @ _SENSOR_TO_EGO_ROTATION  # rows: R^T (p - t)
    elevation = np.degrees(np.arctan2(in_sensor[:, 2], np.hypot(in_sensor[:, 0], in_sensor[:, 1])))
    low, high = LIDAR_BEAM_ELEVATION_RANGE_DEG
    step = (high - low) / (LIDAR_BEAM_COUNT - 1)
    beam = np.rint((elevation - low) / step)
    if mark_off_fan:
        return np.where((beam >= 0) & (beam < LIDAR_BEAM_COUNT), beam, -1).astype(int)
    return np.clip(beam, 0, LIDAR_BEAM_COUNT - 1).astype(int)


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


@lru_cache(maxsize=None)
def fog_backscatter_peak(alpha: float) -> Tuple[float, float]:
    """(range [m], strength F [s/m^2]) of the fog's backscatter peak under extinction ``alpha`` [1/m], in Hahner
    et al.'s model (ICCV 2021) with FOG_PULSE_WIDTH_S and FOG_OVERLAP_RANGE_M.

    The fog's received power at range R is C_A P_0 beta F(R), F(R) = integral over t in [0, 2 tau_h] of
    sin^2(pi t / (2 tau_h)) exp(-2 alpha r) xi(r) / r^2 dt, with r = R - c t / 2 the range of the scattering
    fog (no return from r <= r_1). The peak is F's maximum over R (5 mm steps, the integral on 2001 points), its
    range set back by c tau_h / 2 to where a hard target's peak would read, as their lookup table does. For a
    target further out than the peak is read (about 4.7 m) F does not depend on the target's range."""
    pulse_length = SPEED_OF_LIGHT_M_S * FOG_PULSE_WIDTH_S
    overlap_start, overlap_full = FOG_OVERLAP_RANGE_M
    readings = np.arange(overlap_start, overlap_start + pulse_length, 0.005)[:, None]
    phase = np.linspace(0.0, 1.0, 2001)[None, :]  # t / (2 tau_h)
    fog_ranges = readings - pulse_length * phase
    overlap = np.clip((fog_ranges - overlap_start) / (overlap_full - overlap_start), 0.0, 1.0)
    integrand = (np.sin(np.pi * phase) ** 2 * np.exp(-2.0 * alpha * fog_ranges) * overlap
                 / np.maximum(fog_ranges, overlap_start) ** 2)
    strength = 2.0 * FOG_PULSE_WIDTH_S * np.trapz(integrand, phase, axis=1)
    peak = int(np.argmax(strength))
    return float(readings[peak, 0] - pulse_length / 2.0), float(strength[peak])


def fog(frame: Frame, level: tuple, rng: np.random.Generator, seed: int) -> Frame:
    """Fog, ``level`` = (extinction alpha [1/m], backscatter beta [1/(m sr)]), after Hahner et al.'s LiDAR fog
    simulation (ICCV 2021; MartinHahner/LiDAR_fog_sim fog_simulation.py, as MultiCorrupt's converter/lidar.py runs
    it, with noise 10).

    A return at range R with intensity I comes back attenuated, round(I exp(-2 alpha R)) (the target's peak
    power scales with beta_0 exp(-2 alpha R) / R^2, beta_0 = FOG_TARGET_REFLECTIVITY), unless the fog's peak,
    intensity min(255, I R^2 beta F / beta_0) (F: fog_backscatter_peak), is stronger: then a fog return replaces
    it on the same ray at d R / U, d the peak's range (about 1.7 m), U uniform in [R - FOG_RANGE_NOISE_M,
    R + FOG_RANGE_NOISE_M]. I cancels out of the comparison: up to the rounding, every return beyond
    R_t = W(alpha K) / alpha, K^2 = beta_0 / (beta F), W the Lambert W function (where R^2 exp(2 alpha R) = K^2),
    is replaced (41.6 / 34.5 / 15.8 m at the registered levels), and nearer ones whose attenuated intensity
    rounds to 0; intensity 0 stays (no fog response), as does a return within FOG_OVERLAP_RANGE_M[0] of the
    sensor (no fog seen there). Point count kept. Where their draw of U can be 0 or negative (R < 10 m), U is
    floored at SCATTER_MIN_RANGE_M and the fog return kept in front of its target."""
    if frame.lidar is None:
        return frame
    alpha, beta = level
    peak_range, strength = fog_backscatter_peak(alpha)
    points = frame.lidar.points
    offsets, ranges = _rays(points)
    intensity = points[:, 3].astype(np.float64)
    attenuated = np.round(intensity * np.exp(-2.0 * alpha * ranges))
    fog_intensity = np.minimum(intensity * ranges ** 2 * beta * strength / FOG_TARGET_REFLECTIVITY, 255.0)
    replaced = (fog_intensity > attenuated) & (ranges > FOG_OVERLAP_RANGE_M[0])
    target_ranges = ranges[replaced]
    noise = rng.uniform(np.maximum(target_ranges - FOG_RANGE_NOISE_M, SCATTER_MIN_RANGE_M),
                        target_ranges + FOG_RANGE_NOISE_M)
    new_ranges = ranges.copy()
    new_ranges[replaced] = np.minimum(peak_range * target_ranges / noise, target_ranges)
    out = _along_ray(points, offsets, ranges, new_ranges)
    out[:, 3] = np.where(replaced, fog_intensity, attenuated)
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
    min(1, loss * R / 50 m) (absorption by drops and wet surfaces); the others get Gaussian range noise (kept on
    their side of the sensor: a range below 0 becomes 0)."""
    if frame.lidar is None:
        return frame
    loss_per_50m, noise_std_m = level
    points = frame.lidar.points
    offsets, ranges = _rays(points)
    kept = rng.random(len(points)) >= np.minimum(1.0, loss_per_50m * ranges / 50.0)
    offsets, ranges, points = offsets[kept], ranges[kept], points[kept]
    noisy = np.maximum(ranges + rng.normal(0.0, noise_std_m, len(ranges)), 0.0)
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
    """Drops each point on a motor vehicle (MOTOR_VEHICLE_CLASSES: dark, specular car paint), inside its
    ground-truth box where the box was at the point's sweep (Boxes3D.contains with the time lags), with probability
    ``fraction``."""
    if frame.lidar is None or frame.gt_boxes is None:
        return frame
    boxes, points = frame.gt_boxes, frame.lidar.points
    vehicles = boxes[np.isin(boxes.labels, [DETECTION_CLASSES.index(name) for name in MOTOR_VEHICLE_CLASSES])]
    on_vehicle = vehicles.contains(points, points[:, TIME_LAG]).any(axis=0)
    dropped = on_vehicle & (rng.random(len(on_vehicle)) < fraction)
    return _with_points(frame, frame.lidar.points[~dropped])


def object_failure(frame: Frame, probability: float, rng: np.random.Generator, seed: int) -> Frame:
    """Each ground-truth object, with probability ``probability``, loses every point inside its box, of every
    sweep (where the box was at the point's sweep: Boxes3D.contains with the time lags)."""
    if frame.lidar is None or frame.gt_boxes is None:
        return frame
    failed = frame.gt_boxes[rng.random(len(frame.gt_boxes)) < probability]
    points = frame.lidar.points
    return _with_points(frame, points[~failed.contains(points, points[:, TIME_LAG]).any(axis=0)])


def missing(frame: Frame, level: None, rng: np.random.Generator, seed: int) -> Frame:
    """No LiDAR: recorded in ``Frame.missing`` like a sensor that is absent."""
    return replace(frame, lidar=None, missing=frame.missing | {"lidar", LIDAR_CHANNEL})
