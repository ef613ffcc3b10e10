"""Camera corruptions (parameters per severity: perception.datasets.corruptions.CORRUPTIONS).

Brightness, fog, snow and motion blur follow the imagecorruptions package (Hendrycks & Dietterich's ImageNet-C
code) written with numpy and OpenCV; they act on the image as loaded (already resized to the model's image size).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Dict

import cv2
import numpy as np

from perception.datasets.corruptions.alignment import ego_motion_shift
from perception.datasets.frame import CameraView, Frame
from perception.sensors import CAMERA_CHANNELS

SNOW_LEVELS = ((0.1, 0.3, 3.0, 0.5, 10, 4.0, 0.8), (0.55, 0.3, 4.0, 0.9, 12, 8.0, 0.7),
               (0.55, 0.3, 2.5, 0.85, 12, 12.0, 0.55))
"""imagecorruptions' snow at its severities 1, 3, 5: (layer mean, layer std, zoom, threshold, blur radius [px],
blur sigma [px], blend of the original image)."""
LOW_LIGHT_PHOTONS = 100.0
LOW_LIGHT_READ_NOISE = 0.01
"""Low light: photon (Poisson) noise at LOW_LIGHT_PHOTONS for a white pixel, Gaussian read noise of this std
(image scale 0-1)."""
FROZEN_STALENESS_S = 0.5
"""How old a frozen camera's image is [s]."""


def _map_images(frame: Frame, change: Callable[[np.ndarray], np.ndarray], channels=None) -> Frame:
    """The frame with ``change`` (float image 0-1 (H, W, 3) -> float image) applied to the cameras in
    ``channels`` (default all), back to uint8."""
    views: Dict[str, CameraView] = {}
    for channel, view in frame.cameras.items():
        if channels is None or channel in channels:
            changed = change(view.image.astype(np.float32) / 255.0)
            view = replace(view, image=np.clip(np.rint(changed * 255.0), 0, 255).astype(np.uint8))
        views[channel] = view
    return replace(frame, cameras=views)


def brightness(frame: Frame, shift: float, rng: np.random.Generator, seed: int) -> Frame:
    """imagecorruptions' brightness: ``shift`` added to the HSV value channel."""
    def brighter(image: np.ndarray) -> np.ndarray:
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        hsv[..., 2] = np.clip(hsv[..., 2] + shift, 0.0, 1.0)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)

    return _map_images(frame, brighter)


def low_light(frame: Frame, light: float, rng: np.random.Generator, seed: int) -> Frame:
    """The image scaled by ``light``, then photon noise (LOW_LIGHT_PHOTONS for white) and read noise."""
    def darker(image: np.ndarray) -> np.ndarray:
        photons = rng.poisson(image * light * LOW_LIGHT_PHOTONS) / LOW_LIGHT_PHOTONS
        return photons + rng.normal(0.0, LOW_LIGHT_READ_NOISE, image.shape)

    return _map_images(frame, darker)


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """imagecorruptions' diamond-square fractal: (size, size) in [0, 1], ``size`` a power of two."""
    grid = np.zeros((size, size))
    step, wibble = size, 100.0

    def wibbled_mean(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0:size:step, 0:size:step]
        squares = corners + np.roll(corners, -1, axis=0)
        squares += np.roll(squares, -1, axis=1)
        grid[half:size:step, half:size:step] = wibbled_mean(squares)
        centres = grid[half:size:step, half:size:step]
        corners = grid[0:size:step, 0:size:step]
        grid[0:size:step, half:size:step] = wibbled_mean(centres + np.roll(centres, 1, axis=0)
                                                         + corners + np.roll(corners, -1, axis=1))
        grid[half:size:step, 0:size:step] = wibbled_mean(centres + np.roll(centres, 1, axis=1)
                                                         + corners + np.roll(corners, -1, axis=0))
        step //= 2
        wibble /= decay
    grid -= grid.min()
    return grid / max(grid.max(), 1e-12)


def fog(frame: Frame, level: tuple, rng: np.random.Generator, seed: int) -> Frame:
    """imagecorruptions' fog, ``level`` = (strength, fractal decay): a plasma fractal times ``strength`` added,
    then the image rescaled by max / (max + strength)."""
    strength, decay = level

    def foggy(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        size = 1 << int(np.ceil(np.log2(max(height, width, 2))))
        peak = image.max()
        fogged = image + strength * plasma_fractal(size, decay, rng)[:height, :width, None]
        return fogged * peak / (peak + strength)

    return _map_images(frame, foggy)


def motion_kernel(radius: int, sigma: float, angle_deg: float) -> np.ndarray:
    """imagecorruptions' motion-blur kernel: 2 * radius + 1 taps along one direction from the centre pixel,
    weighted by a Gaussian of ``sigma`` [px] in the distance, normalised to sum 1; (K, K) float32 for
    cv2.filter2D."""
    taps = 2 * radius + 1
    weights = np.exp(-np.arange(taps) ** 2 / (2 * sigma ** 2))
    weights /= weights.sum()
    kernel = np.zeros((2 * taps + 1, 2 * taps + 1), dtype=np.float32)
    angle = np.deg2rad(angle_deg)
    for i, weight in enumerate(weights):
        dy, dx = int(np.ceil(i * np.sin(angle) - 0.5)), int(np.ceil(i * np.cos(angle) - 0.5))
        kernel[taps + dy, taps + dx] += weight
    return kernel


def motion_blur(frame: Frame, level: tuple, rng: np.random.Generator, seed: int) -> Frame:
    """imagecorruptions' motion blur, ``level`` = (radius, sigma) [px], at an angle uniform in [-45, 45] deg."""
    radius, sigma = level

    def blurred(image: np.ndarray) -> np.ndarray:
        kernel = motion_kernel(radius, sigma, rng.uniform(-45.0, 45.0))
        return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REPLICATE)

    return _map_images(frame, blurred)


def snow(frame: Frame, level: tuple, rng: np.random.Generator, seed: int) -> Frame:
    """After imagecorruptions' snow: a thresholded, zoomed Gaussian layer, motion-blurred (angle uniform in [-135,
    -45] deg), added twice (once turned 180 deg) to the image whitened towards 1.5 x gray + 0.5. Not its exact
    arithmetic: the layer is zoomed by cubic interpolation (theirs linear), clipped to [0, 1] after the blur (theirs
    before) and not rounded to 8 bits; the cubic zoom makes the image 7 / 10 / 8 % brighter on average than theirs
    at severities 1 / 2 / 3 (measured on real cameras: README.md, "Robustness")."""
    mean, std, zoom, threshold, radius, sigma, blend = level

    def snowy(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        layer = rng.normal(mean, std, (height, width)).astype(np.float32)
        crop_h, crop_w = max(1, int(np.ceil(height / zoom))), max(1, int(np.ceil(width / zoom)))
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        layer = cv2.resize(layer[top:top + crop_h, left:left + crop_w], (width, height),
                           interpolation=cv2.INTER_CUBIC)
        layer[layer < threshold] = 0
        layer = cv2.filter2D(layer, -1, motion_kernel(radius, sigma, rng.uniform(-135.0, -45.0)),
                             borderType=cv2.BORDER_REPLICATE)
        layer = np.clip(layer, 0.0, 1.0)[..., None]
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None]
        whitened = blend * image + (1 - blend) * np.maximum(image, gray * 1.5 + 0.5)
        return whitened + layer + np.rot90(layer, k=2)

    return _map_images(frame, snowy)


def color_quant(frame: Frame, bits: int, rng: np.random.Generator, seed: int) -> Frame:
    """Each colour channel kept to ``bits`` bits: a value becomes the middle of its 2^(8 - bits) wide bin (PIL's
    posterize, which nuScenes-C uses, takes the bin's lower edge: half a bin darker)."""
    width = 1 << (8 - bits)
    views = {channel: replace(view, image=((view.image // width) * width + width // 2).astype(np.uint8))
             for channel, view in frame.cameras.items()}
    return replace(frame, cameras=views)


def failed_cameras(count: int, seed: int) -> tuple:
    """The ``count`` cameras of CAMERA_CHANNELS that fail in a run of ``seed`` (a seeded draw without
    replacement, the same on every frame)."""
    order = np.random.default_rng(seed).permutation(len(CAMERA_CHANNELS))
    return tuple(CAMERA_CHANNELS[i] for i in sorted(order[:count]))


def _black(frame: Frame, channels) -> Frame:
    return _map_images(frame, np.zeros_like, channels)


def camera_crash(frame: Frame, count: int, rng: np.random.Generator, seed: int) -> Frame:
    """The images of failed_cameras(count, seed) all black (the view stays, as a crashed camera's stream would)."""
    return _black(frame, failed_cameras(count, seed))


def frame_lost(frame: Frame, probability: float, rng: np.random.Generator, seed: int) -> Frame:
    """Each camera's image black with probability ``probability``, drawn anew per frame."""
    lost = [channel for channel, draw in zip(CAMERA_CHANNELS, rng.random(len(CAMERA_CHANNELS)))
            if draw < probability]
    return _black(frame, lost)


def frozen_camera(frame: Frame, count: int, rng: np.random.Generator, seed: int) -> Frame:
    """failed_cameras(count, seed) deliver an image FROZEN_STALENESS_S old, lifted with today's pose.

    Approximation within one frame (a Frame holds no earlier image): the current image with its camera_to_ego
    moved by the ego motion over the staleness (alignment.ego_motion_shift), which is where the static scene
    of the stale image lands when lifted with the current pose; moving objects are not set back, and the view's
    timestamp is set back by the staleness."""
    frozen = set(failed_cameras(count, seed))
    shift = ego_motion_shift(FROZEN_STALENESS_S)
    views = {channel: (replace(view, camera_to_ego=shift @ view.camera_to_ego,
                               timestamp_us=view.timestamp_us - int(round(FROZEN_STALENESS_S * 1e6)))
                       if channel in frozen else view)
             for channel, view in frame.cameras.items()}
    return replace(frame, cameras=views)
