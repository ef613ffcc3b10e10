"""Corruptions: seeded, deterministic Frame -> Frame degradations at three severities, for the robustness benchmark
(perception.eval.robustness, tools/robustness.py) and corruption augmentation in training
(perception.datasets.transforms.RandomCorruption).

Each corruption is registered in ``CORRUPTIONS`` with its parameter per severity (1, 2, 3) and its source: the
benchmark file its levels were checked against, or "ours" with the benchmark's levels beside them; README.md
("Robustness") tabulates them. ``corrupt(frame, name, severity, seed)`` draws
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
    missing), so the benchmark runs it once. ``revision``: the version of ``apply``'s definition, raised whenever
    the function changes what it does (a robustness cell records it with the level, and is rerun when either
    changed: perception.eval.robustness.read_cell)."""

    name: str
    sensor: str
    family: str
    apply: Callable[[Frame, object, np.random.Generator, int], Frame]
    levels: Tuple
    parameter: str
    source: str
    varies_with_severity: bool = True
    revision: int = 1

    def __call__(self, frame: Frame, severity: int, rng: np.random.Generator, seed: int) -> Frame:
        if severity not in SEVERITIES:
            raise ValueError(f"corruption {self.name}: severity must be one of {SEVERITIES}, got {severity}")
        return self.apply(frame, self.levels[severity - 1], rng, seed)


_MULTICORRUPT = "MultiCorrupt (Beemelmanns et al., 2024)"
_ROBO3D = "Robo3D (Kong et al., ICCV 2023)"
_YU = "Yu et al., LiDAR-camera fusion robustness benchmark (2022)"
_NUSC_C = "nuScenes-C (RoboBEV, Xie et al., 2023)"
_HENDRYCKS = "imagecorruptions (Hendrycks & Dietterich, ICLR 2019) severities 1 / 3 / 5"
_NO_BENCHMARK = "our choice (no such corruption in MultiCorrupt, Robo3D, nuScenes-C or Yu et al.)"
# Where a source names a file, the levels were read from that file of the benchmark's public repository
# (ika-rwth-aachen/MultiCorrupt, ldkong1205/Robo3D, Daniel-xsy/RoboBEV, kcyu2014/lidar-camera-robust-benchmark,
# bethgelab/imagecorruptions); "levels ours" says ours differ and gives theirs.

_ALL = (
    # LiDAR
    Corruption("beams_reducing", "lidar", "LiDAR", lidar.beams_reducing, (16, 8, 4),
               "beams kept of the 32, by elevation: 0 (the lowest), 2, .. 30 / 0, 4, .. 28 / 0, 8, 16, 24",
               f"levels as in {_MULTICORRUPT}, converter/lidar.py, not its beams: reduce_LiDAR_beamsV2 keeps the "
               f"file's rings (ring index, 0 the lowest) 1, 3, .. 31 / 1, 5, .. 29 / 1, 9, 17, 25, one higher; the "
               f"firings without a return (points within 1 m of the sensor, 19 - 28 % of a scene-0916 keyframe) "
               f"it keeps by ring like the others, we by the beam their elevation gives, so 43 - 60 % of a "
               f"keyframe is kept at 16 beams (README)", revision=2),
    Corruption("points_reducing", "lidar", "LiDAR", lidar.points_reducing, (0.7, 0.8, 0.9),
               "fraction of points dropped at random",
               f"levels as in {_MULTICORRUPT}, converter/lidar.py (an earlier version dropped 0.2 / 0.4 / 0.6)"),
    Corruption("limited_fov", "lidar", "LiDAR", lidar.limited_fov, (90.0, 60.0, 30.0),
               "half field of view kept about +x [deg]",
               f"severities 1, 2 as in {_YU}, Toolkit_nuscene.md (+-90 / +-60 deg, its only levels); +-30 ours"),
    Corruption("lidar_fog", "lidar", "LiDAR", lidar.fog, ((0.02, 0.008), (0.03, 0.008), (0.06, 0.05)),
               "(extinction alpha [1/m], backscatter beta [1/(m sr)]) of Hahner et al.'s fog model",
               f"Hahner et al.'s fog simulation (ICCV 2021, MartinHahner/LiDAR_fog_sim fog_simulation.py) with "
               f"levels as in {_MULTICORRUPT}, converter/lidar.py; {_ROBO3D}, nuScenes-C fog_simulation.py, "
               f"uses backscatter 0.008 / 0.05 / 0.2 with the extinction drawn per frame from 0 - 0.06",
               revision=2),
    Corruption("lidar_snow", "lidar", "LiDAR", lidar.snow, (0.05, 0.1, 0.2),
               "fraction of returns hitting a snowflake (within 15 m)",
               f"after Hahner et al.'s snowfall simulation (CVPR 2022), simplified; levels ours, not comparable: "
               f"{_MULTICORRUPT}, converter/lidar.py, simulates (snowfall [mm/h], terminal velocity [m/s]) "
               f"(0.5, 1.2) / (2.5, 1.6) / (1.5, 0.4), {_ROBO3D}, nuScenes-C snow/simulation.py, "
               f"(0.5, 2.0) / (1.0, 1.6) / (2.5, 1.6)"),
    Corruption("lidar_rain", "lidar", "LiDAR", lidar.rain, ((0.05, 0.02), (0.1, 0.05), (0.2, 0.1)),
               "(fraction of returns lost per 50 m of range, range noise std [m])", _NO_BENCHMARK,
               revision=2),
    Corruption("crosstalk", "lidar", "LiDAR", lidar.crosstalk, (0.01, 0.02, 0.04),
               "spurious returns added, as a fraction of the points (scattered 3 m std)",
               f"levels ours; {_ROBO3D}, nuScenes-C gen_crosstalk.py, moves (does not add) 0.03 of the points "
               f"by 3 m std at light (crosstalk.sh), 0.07 at moderate (Kong et al.'s Place3D, 2024, app. B.2); "
               f"heavy not found"),
    Corruption("incomplete_echo", "lidar", "LiDAR", lidar.incomplete_echo, (0.75, 0.85, 0.95),
               "fraction of the points on vehicles dropped",
               f"levels as in {_ROBO3D}, nuScenes-C gen_incomplete_echo.py (it also thins bicycles and "
               f"motorcycles)", revision=2),
    Corruption("object_failure", "lidar", "LiDAR", lidar.object_failure, (0.25, 0.5, 0.75),
               "probability that an object loses all its points",
               f"levels ours; {_YU}, create_noise_data_nuscenes.py, drops the points of every object of a frame "
               f"with probability 0.5 (one level)", revision=2),
    Corruption("lidar_missing", "lidar", "LiDAR", lidar.missing, (None, None, None), "no LiDAR at all",
               "a sensor absent: no level to verify", varies_with_severity=False),
    # camera
    Corruption("brightness", "camera", "camera", camera.brightness, (0.1, 0.3, 0.5),
               "added to HSV value (0-1)",
               f"levels as in {_MULTICORRUPT}, converter/img.py (= {_HENDRYCKS}); {_NUSC_C}, docs/CREATE.md, "
               f"uses severities 2 / 4 / 5: 0.2 / 0.4 / 0.5"),
    Corruption("low_light", "camera", "camera", camera.low_light, (0.5, 0.3, 0.15),
               "light kept (image scaled), then photon noise at 100 photons for white and read noise",
               f"levels ours; {_NUSC_C}, corruptions.py LowLight at severities 2 / 3 / 4, maps the image to "
               f"[0, c] with gamma 2, c = 0.4 / 0.3 / 0.2, photon noise at 120 / 50 / 30, read noise 0.018 / "
               f"0.026 / 0.038; {_MULTICORRUPT}, converter/img.py: c = 0.6 / 0.4 / 0.3, 250 / 120 / 50, "
               f"0.008 / 0.018 / 0.026"),
    Corruption("camera_fog", "camera", "camera", camera.fog, ((1.5, 2.0), (2.5, 1.7), (3.0, 1.4)),
               "(fog strength, plasma-fractal decay)",
               f"{_HENDRYCKS}; {_NUSC_C} uses severities 2 / 4 / 5: (2, 2) / (2.5, 1.5) / (3, 1.4); "
               f"{_MULTICORRUPT} has its own fog (converter/img.py)"),
    Corruption("camera_snow", "camera", "camera", camera.snow, camera.SNOW_LEVELS,
               "(mean, std, zoom, threshold, blur radius, blur sigma, blend) of the snow layer",
               f"{_HENDRYCKS}; {_NUSC_C} uses severities 1 / 2 / 3 (its heaviest is our severity 2); "
               f"{_MULTICORRUPT} has its own snow (converter/img.py)"),
    Corruption("motion_blur", "camera", "camera", camera.motion_blur, ((10, 3.0), (15, 8.0), (20, 15.0)),
               "(blur radius [px], Gaussian sigma [px]) at the loaded image size",
               f"{_HENDRYCKS} (there on 1600 x 900 images); {_NUSC_C} uses severities 2 / 4 / 5: (15, 5) / "
               f"(15, 12) / (20, 15); {_MULTICORRUPT}, converter/img.py: radius 15, sigma 6 / 10 / 13"),
    Corruption("color_quant", "camera", "camera", camera.color_quant, (4, 3, 2),
               "bits kept per colour channel (a value moved to its bin's middle)",
               f"bits as in {_NUSC_C}, corruptions.py ColorQuant at severities 1 / 2 / 3, not its values: it "
               f"posterizes (PIL.ImageOps.posterize: a value to its bin's lower edge), we take the bin's middle, "
               f"8 / 16 / 32 higher (real CAM_FRONT images, mean 110.3: ours 110.3 / 109.9 / 107.9, theirs 102.3 / "
               f"93.9 / 75.9); RA not comparable"),
    Corruption("camera_crash", "camera", "camera", camera.camera_crash, (1, 3, 5),
               "cameras black (the same ones on every frame of a run)",
               f"levels ours; {_NUSC_C}, corruptions.py CameraCrash at severities 2 / 4 / 5, blacks 2 / 4 / 5 "
               f"cameras drawn with replacement, the same for the whole run"),
    Corruption("frame_lost", "camera", "camera", camera.frame_lost, (0.2, 0.4, 0.6),
               "probability that a camera's frame is black (each camera, each frame)",
               f"levels as in {_MULTICORRUPT}'s missing camera, converter/img_converter.py; {_NUSC_C}, "
               f"corruptions.py FrameLost at severities 2 / 4 / 5: 1/3 / 2/3 / 5/6"),
    Corruption("frozen_camera", "camera", "camera", camera.frozen_camera, (1, 3, 6),
               f"cameras frozen {camera.FROZEN_STALENESS_S} s ago (the same ones on every frame of a run)",
               f"our choice; {_YU}, create_noise_data_nuscenes.py, instead replaces 10 - 90 % of a camera's "
               f"frames by its previous keyframe"),
    # radar
    Corruption("radar_missing", "radar", "radar", radar.missing, (None, None, None), "no radar at all",
               _NO_BENCHMARK, varies_with_severity=False),
    Corruption("ghost_targets", "radar", "radar", radar.ghost_targets, (0.1, 0.25, 0.5),
               "multipath ghosts added, as a fraction of the radar points", _NO_BENCHMARK),
    Corruption("velocity_noise", "radar", "radar", radar.velocity_noise, (0.5, 1.0, 2.0),
               "Gaussian noise std on each compensated velocity component [m/s]", _NO_BENCHMARK),
    # across sensors
    Corruption("spatial_misalignment", "camera", "across sensors", alignment.spatial_misalignment,
               ((1.0, 0.05), (2.0, 0.1), (4.0, 0.2)),
               "(rotation [deg], translation [m]) of each camera's extrinsics, random directions",
               f"magnitudes ours; {_YU}, create_noise_data_nuscenes.py: each camera turned 0.5 - 2.5 deg (its "
               f"[1, 5] deg halved by a division by 360) about a random axis and moved 0.5 - 1 cm per axis, one "
               f"level; {_MULTICORRUPT}, converter/lidar.py, moves the LiDAR instead: in 20 / 40 / 60 % of the "
               f"frames turned 1 / 2 / 3 deg about x, y and z and shifted 2 m along x"),
    Corruption("temporal_misalignment", "lidar", "across sensors", alignment.temporal_misalignment,
               (0.1, 0.25, 0.5), "LiDAR delay [s]",
               f"delays ours; {_MULTICORRUPT}, converter/lidar_converter.py and img_converter.py, gives the LiDAR "
               f"and each camera the previous keyframe's data (about 0.5 s old) in 20 / 40 / 60 % of the frames"),
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
        """Names what the corruption does: its level at this severity and its revision (a resumed evaluation
        compares it), and the seed."""
        corruption = CORRUPTIONS[self.name]
        return (f"corruption {self.name}:{self.severity} (level {corruption.levels[self.severity - 1]}, revision "
                f"{corruption.revision}, seed {self.seed})")
