"""Training augmentation: Frame -> Frame, applied consistently to every modality, seeded, composable.

Global (ego-frame) augmentations move the whole scene by a similarity ``p' = scale * Q @ p + t`` where Q is a
rotation about +z, possibly with a mirror of x or y (z stays up):

- LiDAR and radar points: positions moved; radar velocities ``v' = scale * Q v`` (so ``p + v dt`` still holds).
- Ground-truth boxes: centres moved, sizes scaled, yaws follow the rotated (or mirrored) heading, velocities
  like radar's.
- Cameras: images untouched, ``camera_to_ego`` becomes ``[Q R | scale * Q c + t]`` for a camera with rotation R
  and centre c. A pinhole image is unchanged when the scene and the camera centre scale together, so every
  pixel still projects from and lifts to the same scene point (at ``scale`` times the depth). After a mirror,
  ``Q R`` has determinant -1: the transform is an isometry, not a proper rotation, but ``apply`` and
  ``inverse`` (which transposes) stay exact.
- ``Frame.augmentation`` accumulates the (4, 4) similarity; ``Frame.ego_pose`` keeps describing the original ego
  frame.

Image augmentation (ResizeCropImages) resizes and crops each camera image and updates its intrinsics.

Corruption augmentation (RandomCorruption) applies the robustness benchmark's corruptions
(perception.datasets.corruptions) per sensor group; it is off unless a config's train pipeline lists it.

Randomness: each random transform draws from its own ``numpy.random.Generator`` seeded at construction (and
restarted per DataLoader worker, see RandomTransform); ``reseed(seed)`` restarts it.
"""
from __future__ import annotations

from dataclasses import replace
from typing import List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from perception.datasets.corruptions import CORRUPTIONS, SEVERITIES, check_corruption
from perception.datasets.frame import CameraView, Frame
from perception.geometry import CameraIntrinsics, RigidTransform, rotation_about_z
from perception.sensors import SENSOR_GROUPS


def _check_upright(linear: np.ndarray) -> None:
    upright = np.allclose(linear[2], [0, 0, 1]) and np.allclose(linear[:2, 2], 0)
    if not upright or not np.allclose(linear @ linear.T, np.eye(3), atol=1e-9):
        raise ValueError(f"an ego-frame augmentation must be orthogonal and keep +z up, got {linear.tolist()}")


def apply_ego_similarity(frame: Frame, linear: np.ndarray, scale: float = 1.0,
                         translation: Sequence[float] = (0.0, 0.0, 0.0)) -> Frame:
    """The frame with its scene moved by ``p' = scale * linear @ p + translation``.

    ``linear`` (3, 3): a rotation about +z, optionally composed with a mirror of x or y; ``scale`` > 0;
    ``translation`` (3,) [m]. See the module docstring for what each modality gets.
    """
    linear = np.asarray(linear, dtype=np.float64)
    translation = np.asarray(translation, dtype=np.float64).reshape(3)
    _check_upright(linear)
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    similarity = np.eye(4)
    similarity[:3, :3] = scale * linear
    similarity[:3, 3] = translation

    def moved(points: np.ndarray) -> np.ndarray:
        return points.astype(np.float64) @ similarity[:3, :3].T + translation

    lidar = frame.lidar
    if lidar is not None:
        points = lidar.points.copy()
        points[:, :3] = moved(points[:, :3])
        lidar = replace(lidar, points=points)
    radar = frame.radar
    if radar is not None:
        points = radar.points.copy()
        points[:, :3] = moved(points[:, :3])
        points[:, 4:6] = points[:, 4:6].astype(np.float64) @ similarity[:2, :2].T
        radar = replace(radar, points=points)
    boxes = frame.gt_boxes
    if boxes is not None:
        scaled = replace(boxes, centers=boxes.centers * scale, sizes=boxes.sizes * scale,
                         velocities=boxes.velocities * scale)
        boxes = scaled.transform(RigidTransform.from_rotation_translation(linear, translation))
    cameras = {}
    for channel, view in frame.cameras.items():
        to_ego = view.camera_to_ego
        camera_to_ego = RigidTransform.from_rotation_translation(linear @ to_ego.rotation,
                                                                 moved(to_ego.translation[None])[0])
        cameras[channel] = replace(view, camera_to_ego=camera_to_ego)
    previous = np.eye(4) if frame.augmentation is None else frame.augmentation
    return replace(frame, lidar=lidar, radar=radar, gt_boxes=boxes, cameras=cameras,
                   augmentation=similarity @ previous)


class RandomTransform:
    """Base of the seeded transforms: draws from ``self.rng``, a Generator from ``seed``.

    Inside a DataLoader worker the generator is restarted once per worker from (seed, the worker's torch seed),
    which the loader derives from its own generator: workers draw different numbers, each epoch anew, and a
    seeded loader repeats them. Any DataLoader gets this (no worker_init_fn needed).
    """

    def __init__(self, seed: int = 0):
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._worker_seed: Optional[int] = None

    @property
    def rng(self) -> np.random.Generator:
        worker = torch.utils.data.get_worker_info()
        if worker is not None and worker.seed != self._worker_seed:
            self._rng = np.random.default_rng([self.seed, worker.seed])
            self._worker_seed = worker.seed
        return self._rng


class GlobalRotation(RandomTransform):
    """Rotates the scene about the ego +z axis by an angle uniform in ``angle_range_rad`` (BEVFusion uses
    [-pi/4, pi/4])."""

    def __init__(self, angle_range_rad: Tuple[float, float] = (-np.pi / 4, np.pi / 4), seed: int = 0):
        super().__init__(seed)
        self.angle_range_rad = angle_range_rad

    def __call__(self, frame: Frame) -> Frame:
        return apply_ego_similarity(frame, rotation_about_z(self.rng.uniform(*self.angle_range_rad)))


class GlobalScaling(RandomTransform):
    """Scales the scene about the ego origin by a factor uniform in ``scale_range``."""

    def __init__(self, scale_range: Tuple[float, float] = (0.9, 1.1), seed: int = 0):
        super().__init__(seed)
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must be positive and ordered, got {scale_range}")
        self.scale_range = scale_range

    def __call__(self, frame: Frame) -> Frame:
        return apply_ego_similarity(frame, np.eye(3), scale=self.rng.uniform(*self.scale_range))


class GlobalFlip(RandomTransform):
    """Mirrors the scene: y -> -y (left/right) with probability ``left_right_prob``, x -> -x (front/back) with
    probability ``front_back_prob``."""

    def __init__(self, left_right_prob: float = 0.5, front_back_prob: float = 0.5, seed: int = 0):
        super().__init__(seed)
        self.left_right_prob = left_right_prob
        self.front_back_prob = front_back_prob

    def __call__(self, frame: Frame) -> Frame:
        mirror = np.eye(3)
        if self.rng.random() < self.left_right_prob:
            mirror[1, 1] = -1.0
        if self.rng.random() < self.front_back_prob:
            mirror[0, 0] = -1.0
        return apply_ego_similarity(frame, mirror)


class GlobalTranslation(RandomTransform):
    """Shifts the scene by a normal offset with standard deviations ``std_m`` (x, y, z) in metres."""

    def __init__(self, std_m: Tuple[float, float, float] = (0.5, 0.5, 0.5), seed: int = 0):
        super().__init__(seed)
        self.std_m = np.asarray(std_m, dtype=np.float64)

    def __call__(self, frame: Frame) -> Frame:
        return apply_ego_similarity(frame, np.eye(3), translation=self.rng.normal(0.0, self.std_m))


def resize_crop_view(view: CameraView, scale: float, left: int, top: int, size: Tuple[int, int]) -> CameraView:
    """A camera view resized by ``scale`` then cropped to the window of ``size`` (W, H) whose top-left corner is
    pixel (left, top) of the resized image; parts of the window outside the image are black. Intrinsics follow:
    ``u' = u * W_resized / W - left`` (likewise v)."""
    height, width = view.image.shape[:2]
    resized_size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(view.image, resized_size, interpolation=interpolation)
    out_width, out_height = int(size[0]), int(size[1])
    canvas = np.zeros((out_height, out_width, 3), dtype=view.image.dtype)
    src_x0, src_y0 = max(left, 0), max(top, 0)
    src_x1, src_y1 = min(left + out_width, resized_size[0]), min(top + out_height, resized_size[1])
    if src_x1 > src_x0 and src_y1 > src_y0:
        canvas[src_y0 - top:src_y1 - top, src_x0 - left:src_x1 - left] = resized[src_y0:src_y1, src_x0:src_x1]
    intrinsics: CameraIntrinsics = view.intrinsics.scaled(resized_size[0] / width, resized_size[1] / height)
    return replace(view, image=canvas, intrinsics=intrinsics.cropped(left, top, out_width, out_height))


class ResizeCropImages(RandomTransform):
    """Each camera image resized and cropped to ``output_size`` (W, H), intrinsics updated (BEVDet-style).

    The resize factor is ``cover * u``: ``cover`` the factor at which the image just covers the output, ``u``
    uniform in ``resize_range`` (below 1 leaves black borders). The crop window's offset is a fraction, uniform in
    ``left_range`` / ``top_range``, of the free width / height (0: left / top edge, 1: right / bottom edge, where
    the road is). Deterministic test-time version: ``resize_range=(1, 1), left_range=(0.5, 0.5),
    top_range=(1, 1)``.
    """

    def __init__(self, output_size: Tuple[int, int], resize_range: Tuple[float, float] = (1.0, 1.2),
                 left_range: Tuple[float, float] = (0.0, 1.0), top_range: Tuple[float, float] = (0.0, 1.0),
                 seed: int = 0):
        super().__init__(seed)
        if min(output_size) <= 0 or not 0 < resize_range[0] <= resize_range[1]:
            raise ValueError(f"output_size must be positive and resize_range positive and ordered, got "
                             f"{output_size}, {resize_range}")
        self.output_size = (int(output_size[0]), int(output_size[1]))
        self.resize_range = resize_range
        self.left_range = left_range
        self.top_range = top_range

    def __call__(self, frame: Frame) -> Frame:
        views = {}
        out_width, out_height = self.output_size
        for channel, view in frame.cameras.items():
            height, width = view.image.shape[:2]
            scale = max(out_width / width, out_height / height) * self.rng.uniform(*self.resize_range)
            left = int(round(self.rng.uniform(*self.left_range) * (int(round(width * scale)) - out_width)))
            top = int(round(self.rng.uniform(*self.top_range) * (int(round(height * scale)) - out_height)))
            views[channel] = resize_crop_view(view, scale, left, top, self.output_size)
        return replace(frame, cameras=views)


class Compose:
    """Applies transforms in order. ``seed`` (or a later ``reseed``) gives each random member its own seed derived
    from one, so members built with the same default seed do not draw the same numbers."""

    def __init__(self, transforms: Sequence, seed: Optional[int] = None):
        self.transforms: List = list(transforms)
        if seed is not None:
            self.reseed(seed)

    def __call__(self, frame: Frame) -> Frame:
        for transform in self.transforms:
            frame = transform(frame)
        return frame

    def reseed(self, seed: int) -> None:
        children = np.random.SeedSequence(seed).spawn(len(self.transforms))
        for transform, child in zip(self.transforms, children):
            if hasattr(transform, "reseed"):
                transform.reseed(int(child.generate_state(1)[0]))


class RandomCorruption(RandomTransform):
    """Corruption augmentation (perception.datasets.corruptions): for each sensor group of ``corruptions``
    (group -> corruption names that change it), with probability ``probability``, one of its corruptions drawn
    uniformly at a severity drawn uniformly from ``severities``. Groups are visited in SENSOR_GROUPS order; a
    group the frame lacks is left as is (the corruptions leave absent sensors alone). It runs before the global
    transforms: the corruptions read the sensors where they are mounted, forward along +x (a frame already
    flipped, rotated or scaled is a ValueError)."""

    def __init__(self, corruptions: Mapping[str, Sequence[str]], probability: float = 0.5,
                 severities: Sequence[int] = SEVERITIES, seed: int = 0):
        super().__init__(seed)
        if not severities or not set(severities) <= set(SEVERITIES) or not 0.0 <= probability <= 1.0:
            raise ValueError(f"severities must be some of {SEVERITIES} and probability in [0, 1], got "
                             f"{list(severities)}, {probability}")
        for group, names in corruptions.items():
            if group not in SENSOR_GROUPS or not names:
                raise ValueError(f"corruptions: {group!r} must be one of {SENSOR_GROUPS} with at least one name")
            for name in names:
                corruption = check_corruption(name, severities[0])
                if corruption.sensor != group:
                    raise ValueError(f"corruption {name} changes {corruption.sensor}, listed under {group}")
        self.corruptions = {group: list(corruptions[group]) for group in SENSOR_GROUPS if group in corruptions}
        self.probability = probability
        self.severities = [int(severity) for severity in severities]

    def __call__(self, frame: Frame) -> Frame:
        if frame.augmentation is not None:
            raise ValueError("RandomCorruption after a global transform: the corruptions read the sensors where they "
                             "are mounted in the ego frame; put it first in the transforms")
        rng = self.rng
        for names in self.corruptions.values():
            if rng.random() < self.probability:
                name = names[rng.integers(len(names))]
                severity = self.severities[rng.integers(len(self.severities))]
                frame = CORRUPTIONS[name](frame, severity, rng, int(rng.integers(2 ** 31)))
        return frame
