"""Corruptions: seeded, deterministic Frame -> Frame degradations at three severities, for the robustness benchmark
(perception.eval.robustness, tools/robustness.py) and corruption augmentation in training
(perception.datasets.transforms.RandomCorruption).

Each corruption is registered in ``CORRUPTIONS`` with its parameter per severity (1, 2, 3) and the benchmark the
parameters come from; README.md ("Robustness") tabulates them. ``corrupt(frame, name, severity, seed)`` draws
from a generator seeded by (seed, the frame's sample token), so a frame gets the same corruption whatever the
order, process or worker that loads it. Corruptions that pick a sensor to fail (camera crash, frozen camera)
pick it from ``seed`` alone: the same cameras fail on every frame of a run, as a broken camera would.

A corruption of a sensor group the frame does not carry (None, no cameras) returns the frame unchanged. Inputs
are never modified; outputs are finite. Corruptions that need the ground truth (incomplete echo, object failure:
the points on objects) leave a frame without annotations unchanged.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import numpy as np

from perception.datasets.corruptions import alignment, camera, lidar, radar
from perception.datasets.frame import Frame

SEVERITIES = (1, 2, 3)


@dataclass(frozen=True)
class Corruption:
    """One corruption: ``apply(frame, level, rng, seed)`` with ``level`` = ``levels[severity - 1]``.

    ``sensor``: the sensor group it changes ('lidar', 'radar', 'camera'); ``family``: the report's grouping
    ('LiDAR', 'camera', 'radar', 'across sensors'); ``parameter``: what a level means, with its unit; ``source``:
    where the levels come from. ``varies_with_severity`` False: every severity is the same corruption (a sensor
    missing), so the benchmark runs it once."""

    name: str
    sensor: str
    family: str
    apply: Callable[[Frame, object, np.random.Generator, int], Frame]
    levels: Tuple
    parameter: str
    source: str
    varies_with_severity: bool = True

    def __call__(self, frame: Frame, severity: int, rng: np.random.Generator, seed: int) -> Frame:
        if severity not in SEVERITIES:
            raise ValueError(f"corruption {self.name}: severity must be one of {SEVERITIES}, got {severity}")
        return self.apply(frame, self.levels[severity - 1], rng, seed)


_MULTICORRUPT = "MultiCorrupt (Beemelmanns et al., 2024)"
_ROBO3D = "Robo3D (Kong et al., ICCV 2023)"
_YU = "Yu et al., LiDAR-camera fusion robustness benchmark (2022)"
_NUSC_C = "nuScenes-C (RoboBEV, Xie et al., 2023)"
_HENDRYCKS = "imagecorruptions (Hendrycks & Dietterich, ICLR 2019) severities 1 / 3 / 5, as nuScenes-C applies them"
_OURS = "our choice (no benchmark value at hand)"

_ALL = (
    # LiDAR
    Corruption("beams_reducing", "lidar", "LiDAR", lidar.beams_reducing, (16, 8, 4),
               "beams kept of the 32 (every 2nd / 4th / 8th)", _MULTICORRUPT),
    Corruption("points_reducing", "lidar", "LiDAR", lidar.points_reducing, (0.5, 0.7, 0.9),
               "fraction of points dropped at random", f"{_MULTICORRUPT} (levels from memory, unverified)"),
    Corruption("limited_fov", "lidar", "LiDAR", lidar.limited_fov, (90.0, 60.0, 30.0),
               "half field of view kept about +x [deg]", _YU),
    Corruption("lidar_fog", "lidar", "LiDAR", lidar.fog, (0.01, 0.03, 0.06),
               "fog extinction coefficient beta [1/m] (meteorological visibility 3 / beta: 300 / 100 / 50 m)",
               f"{_ROBO3D}, after Hahner et al.'s fog simulation (ICCV 2021), simplified; the beta values are "
               f"among Hahner et al.'s, which three Robo3D uses is unverified"),
    Corruption("lidar_snow", "lidar", "LiDAR", lidar.snow, (0.05, 0.1, 0.2),
               "fraction of returns hitting a snowflake (within 15 m)",
               f"{_ROBO3D} (after Hahner et al., CVPR 2022), simplified; levels {_OURS}"),
    Corruption("lidar_rain", "lidar", "LiDAR", lidar.rain, ((0.05, 0.02), (0.1, 0.05), (0.2, 0.1)),
               "(fraction of returns lost per 50 m of range, range noise std [m])", _OURS),
    Corruption("crosstalk", "lidar", "LiDAR", lidar.crosstalk, (0.01, 0.02, 0.04),
               "spurious returns added, as a fraction of the points (scattered 3 m std)",
               f"{_ROBO3D} (levels from memory, unverified)"),
    Corruption("incomplete_echo", "lidar", "LiDAR", lidar.incomplete_echo, (0.75, 0.85, 0.95),
               "fraction of the points on vehicles dropped", f"{_ROBO3D} (levels from memory, unverified)"),
    Corruption("object_failure", "lidar", "LiDAR", lidar.object_failure, (0.25, 0.5, 0.75),
               "probability that an object loses all its points", f"{_YU} (0.5 is its single level)"),
    Corruption("lidar_missing", "lidar", "LiDAR", lidar.missing, (None, None, None), "no LiDAR at all",
               _YU, varies_with_severity=False),
    # camera
    Corruption("brightness", "camera", "camera", camera.brightness, (0.1, 0.3, 0.5),
               "added to HSV value (0-1)", _HENDRYCKS),
    Corruption("low_light", "camera", "camera", camera.low_light, (0.5, 0.3, 0.15),
               "light kept (image scaled), then photon noise at 100 photons for white and read noise",
               f"{_NUSC_C} (levels {_OURS})"),
    Corruption("camera_fog", "camera", "camera", camera.fog, ((1.5, 2.0), (2.5, 1.7), (3.0, 1.4)),
               "(fog strength, plasma-fractal decay)", _HENDRYCKS),
    Corruption("camera_snow", "camera", "camera", camera.snow, camera.SNOW_LEVELS,
               "(mean, std, zoom, threshold, blur radius, blur sigma, blend) of the snow layer", _HENDRYCKS),
    Corruption("motion_blur", "camera", "camera", camera.motion_blur, ((10, 3.0), (15, 8.0), (20, 15.0)),
               "(blur radius [px], Gaussian sigma [px]) at the loaded image size", _HENDRYCKS),
    Corruption("color_quant", "camera", "camera", camera.color_quant, (5, 4, 3),
               "bits kept per colour channel", f"{_NUSC_C} (levels from memory, unverified)"),
    Corruption("camera_crash", "camera", "camera", camera.camera_crash, (1, 3, 5),
               "cameras black (the same ones on every frame of a run)", f"{_MULTICORRUPT} (missing camera)"),
    Corruption("frame_lost", "camera", "camera", camera.frame_lost, (0.25, 0.5, 0.75),
               "probability that a camera's frame is black (each camera, each frame)", f"{_NUSC_C} (levels {_OURS})"),
    Corruption("frozen_camera", "camera", "camera", camera.frozen_camera, (1, 3, 6),
               f"cameras frozen {camera.FROZEN_STALENESS_S} s ago (the same ones on every frame of a run)", _OURS),
    # radar
    Corruption("radar_missing", "radar", "radar", radar.missing, (None, None, None), "no radar at all", _OURS,
               varies_with_severity=False),
    Corruption("ghost_targets", "radar", "radar", radar.ghost_targets, (0.1, 0.25, 0.5),
               "multipath ghosts added, as a fraction of the radar points", _OURS),
    Corruption("velocity_noise", "radar", "radar", radar.velocity_noise, (0.5, 1.0, 2.0),
               "Gaussian noise std on each compensated velocity component [m/s]", _OURS),
    # across sensors
    Corruption("spatial_misalignment", "camera", "across sensors", alignment.spatial_misalignment,
               ((1.0, 0.05), (2.0, 0.1), (4.0, 0.2)),
               "(rotation [deg], translation [m]) of each camera's extrinsics, random directions",
               f"{_MULTICORRUPT} / {_YU} (magnitudes {_OURS})"),
    Corruption("temporal_misalignment", "lidar", "across sensors", alignment.temporal_misalignment,
               (0.1, 0.25, 0.5), "LiDAR delay [s]", f"{_MULTICORRUPT} (delays {_OURS})"),
)

CORRUPTIONS: Dict[str, Corruption] = {corruption.name: corruption for corruption in _ALL}
"""name -> Corruption, in report order (LiDAR, camera, radar, across sensors)."""


def frame_rng(seed: int, sample_token: str) -> np.random.Generator:
    """The generator of one frame's corruption: from (seed, CRC-32 of the sample token)."""
    return np.random.default_rng([int(seed), zlib.crc32(sample_token.encode())])


def check_corruption(name: str, severity: int) -> Corruption:
    """The registered corruption ``name``; ValueError naming the choices for an unknown name or severity."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"corruption {name}: severity must be one of {SEVERITIES}, got {severity}")
    return CORRUPTIONS[name]


def corrupt(frame: Frame, name: str, severity: int, seed: int = 0) -> Frame:
    """``frame`` under corruption ``name`` at ``severity`` (1-3), deterministic in (seed, frame.sample_token)."""
    return check_corruption(name, severity)(frame, severity, frame_rng(seed, frame.sample_token), seed)


def parse_cell(text: str) -> Tuple[str, int]:
    """'NAME:SEVERITY' -> (name, severity), checked against the registry."""
    name, _, severity = text.partition(":")
    if not severity.isdigit():
        raise ValueError(f"expected NAME:SEVERITY (e.g. lidar_fog:2), got {text!r}")
    check_corruption(name, int(severity))
    return name, int(severity)


class CorruptFrames:
    """Frame -> Frame: one corruption at one severity with one seed (picklable, for DataLoader workers)."""

    def __init__(self, name: str, severity: int, seed: int = 0):
        check_corruption(name, severity)
        self.name, self.severity, self.seed = name, int(severity), int(seed)

    def __call__(self, frame: Frame) -> Frame:
        return corrupt(frame, self.name, self.severity, self.seed)

    def __repr__(self) -> str:
        return f"corruption {self.name}:{self.severity} (seed {self.seed})"
