"""LIDAR_TOP: a 32-beam spinning LiDAR like the Velodyne HDL-32E that nuScenes uses.

A sweep is cast at one instant (no rolling skew within the 50 ms revolution). Points are written in the
sensor frame as nuScenes stores them: float32 (x, y, z, intensity, ring), intensity 0-255 from material
reflectivity and incidence angle, with Gaussian range noise and range- and reflectivity-dependent dropout.
How the rest of the real sensor shows in its files is a ``LidarModel``, by population (LIDAR_MODELS).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from perception.datasets.synthetic.layout import Material
from perception.datasets.synthetic.raycast import Snapshot
from perception.datasets.synthetic.rig import CALIBRATION, EGO_BODY_BOXES_M
from perception.datasets.synthetic.shading import NO_PAINT, FrenetRaster
from perception.geometry import RigidTransform
from perception.sensors import LIDAR_BEAM_COUNT, LIDAR_BEAM_ELEVATION_RANGE_DEG, LIDAR_CHANNEL

ELEVATIONS_DEG = np.linspace(*LIDAR_BEAM_ELEVATION_RANGE_DEG, LIDAR_BEAM_COUNT)
"""The 32 beams' elevations (ring 0 lowest)."""
AZIMUTH_STEPS = 1084
"""Firings per revolution: 32 x 1084 = 34,688 rays per sweep."""
RANGE_NOISE_STD_M = 0.02
BASE_DROPOUT = 0.02
PAINT_REFLECTIVITY = 0.9
"""Lane paint is retro-reflective."""
EGO_REFLECTIVITY = 0.3
"""LiDAR reflectivity of the ego car's roof and bonnet."""


@dataclass(frozen=True)
class LidarModel:
    """How a sweep shows the sensor: returns kept between ``min_range_m`` and ``max_range_m`` [m]; ``ego_body``:
    the ego car (rig.EGO_BODY_BOXES_M) returns the beams that meet it; ``no_return_points``: every firing is
    written, one without a return (nothing hit, out of range or dropped) as a point at most
    ``no_return_spread_m`` from the sensor on its -y axis, with a log-normal intensity of median
    ``no_return_intensity`` and log spread ``no_return_intensity_log_std``; ``intensity_log_mean`` and
    ``intensity_log_std``: log mean and log spread of a per-point log-normal factor on the intensity (surface
    texture, wetness, the sensor's per-beam gain; none at log std 0)."""

    min_range_m: float = 1.0
    max_range_m: float = 80.0
    ego_body: bool = False
    no_return_points: bool = False
    no_return_spread_m: float = 0.0
    no_return_intensity: float = 0.0
    no_return_intensity_log_std: float = 0.0
    intensity_log_mean: float = 0.0
    intensity_log_std: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_range_m < self.max_range_m:
            raise ValueError(f"LidarModel needs 0 <= min_range_m < max_range_m, got {self.min_range_m} and "
                             f"{self.max_range_m}")
        for name in ("no_return_spread_m", "no_return_intensity_log_std", "intensity_log_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"LidarModel.{name} must be >= 0, got {getattr(self, name)}")
        if self.no_return_points and self.no_return_intensity <= 0:
            raise ValueError(f"LidarModel.no_return_intensity must be > 0 with no_return_points, got "
                             f"{self.no_return_intensity}")


LIDAR_MODELS = {
    "default": LidarModel(),
    "nuscenes": LidarModel(min_range_m=0.0, max_range_m=100.0, ego_body=True, no_return_points=True,
                           no_return_spread_m=0.27, no_return_intensity=9.0, no_return_intensity_log_std=1.1,
                           intensity_log_mean=-0.3, intensity_log_std=0.8),
}
"""By population (scene.build_scene). ``nuscenes``: the HDL-32E measures up to 100 m (Velodyne Lidar, HDL-32E
data sheet: "measurement range up to 100 m"); nuScenes' keyframe files keep every firing (32 x
1080-1086 points in scene-0916's real_finetune keyframes: 13 % no-return points within 0.27 m of the sensor on its
-y axis, intensity median 9; 12 % off the ego car within 2 m), which the model writes the same way. The intensity
factor (log mean -0.3, log std 0.8, on top of the reflectivity model) is fitted to real_finetune's intensities
beyond 3 m (p10 / median / p90 / p99: real 3 / 15 / 50 / 91, without the factor 9 / 14 / 42 / 51, with it
3 / 13 / 47 / 132)."""


def beam_directions(azimuth_offset_rad: float) -> Tuple[np.ndarray, np.ndarray]:
    """Unit ray directions (32 * AZIMUTH_STEPS, 3) in the sensor frame and their ring index (same length)."""
    azimuth = azimuth_offset_rad + np.linspace(0.0, 2 * np.pi, AZIMUTH_STEPS, endpoint=False)
    elevation = np.deg2rad(ELEVATIONS_DEG)
    az, el = np.meshgrid(azimuth, elevation)
    directions = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
    rings = np.broadcast_to(np.arange(len(elevation))[:, None], az.shape)
    return directions.reshape(-1, 3), rings.reshape(-1)


def ray_box_distance(origin: np.ndarray, directions: np.ndarray, box_min: np.ndarray,
                     box_max: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Where rays from ``origin`` (3,) outside an axis-aligned box along unit ``directions`` (N, 3) enter the box
    (min / max corner (3,)) [m]: distance (N,) (inf: the ray misses) and the axis (N,) of the face entered."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = (box_min - origin) / directions
        t1 = (box_max - origin) / directions
    near, far = np.fmin(t0, t1), np.fmax(t0, t1)
    near = np.where(np.isnan(near), -np.inf, near)  # a ray parallel to a slab's faces and inside it
    far = np.where(np.isnan(far), np.inf, far)
    entry, leave = near.max(axis=1), far.min(axis=1)
    hit = (entry <= leave) & (entry > 0.0)
    return np.where(hit, entry, np.inf), near.argmax(axis=1)


def ego_body_hits(directions: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Distance (N,) [m] (inf: no hit) and unit normal (N, 3) of the ego car's body (rig.EGO_BODY_BOXES_M) along
    the unit ray ``directions`` (N, 3) in LIDAR_TOP's frame, from the sensor."""
    translation, rotation, _ = CALIBRATION[LIDAR_CHANNEL]
    sensor_to_ego = RigidTransform.from_nuscenes(translation, rotation, LIDAR_CHANNEL)
    ego_directions = sensor_to_ego.apply_rotation(directions)
    distance = np.full(len(directions), np.inf)
    axis = np.zeros(len(directions), np.int64)
    for box_min, box_max in EGO_BODY_BOXES_M:
        box_distance, box_axis = ray_box_distance(sensor_to_ego.translation, ego_directions, np.asarray(box_min),
                                                  np.asarray(box_max))
        nearer = box_distance < distance
        distance[nearer], axis[nearer] = box_distance[nearer], box_axis[nearer]
    normal_ego = np.zeros((len(directions), 3))
    normal_ego[np.arange(len(directions)), axis] = 1.0
    return distance, sensor_to_ego.inverse().apply_rotation(normal_ego)


def simulate_sweep(snapshot: Snapshot, sensor_to_global: RigidTransform, frenet: FrenetRaster,
                   rng: np.random.Generator, model: LidarModel = LIDAR_MODELS["default"]) -> np.ndarray:
    """One sweep: (N, 5) float32 points [x, y, z (m, sensor frame), intensity (0-255), ring (0-31)]."""
    directions, rings = beam_directions(float(rng.uniform(0.0, 2 * np.pi / AZIMUTH_STEPS)))
    directions_global = sensor_to_global.apply_rotation(directions)
    hits = snapshot.cast(sensor_to_global.translation, directions_global)
    hit, true_distance, reflectivity = hits.hit, hits.distance, hits.reflectivity.astype(np.float64)
    cos_incidence = np.abs(np.einsum("nd,nd->n", hits.normal, directions_global))
    if model.ego_body:
        ego_distance, ego_normal = ego_body_hits(directions)
        on_ego = ego_distance < true_distance
        hit = hit | on_ego
        true_distance = np.where(on_ego, ego_distance, true_distance)
        reflectivity[on_ego] = EGO_REFLECTIVITY
        cos_incidence[on_ego] = np.abs(np.einsum("nd,nd->n", ego_normal[on_ego], directions[on_ego]))
    else:
        on_ego = np.zeros(len(directions), dtype=bool)
    distance = true_distance + rng.normal(0.0, RANGE_NOISE_STD_M, len(directions))
    on_ground = hit & ~on_ego & (hits.material == Material.GROUND)
    if on_ground.any():
        ground_xy = (sensor_to_global.translation + hits.distance[on_ground, None] *
                     sensor_to_global.apply_rotation(directions[on_ground]))[:, :2]
        painted = frenet.paint(ground_xy) != NO_PAINT
        reflectivity[np.flatnonzero(on_ground)[painted]] = PAINT_REFLECTIVITY
    relative_range = np.minimum(true_distance, model.max_range_m) / model.max_range_m
    drop_probability = BASE_DROPOUT + 0.5 * relative_range ** 2 * (1.0 - reflectivity) * (1.0 - cos_incidence)
    keep = (hit & (distance > model.min_range_m) & (distance < model.max_range_m)
            & (rng.random(len(directions)) >= drop_probability))
    intensity = 100.0 * reflectivity * (0.25 + 0.75 * cos_incidence) + rng.normal(0.0, 2.0, len(directions))
    xyz = directions * distance[:, None]
    if model.intensity_log_std > 0:
        intensity *= rng.lognormal(model.intensity_log_mean, model.intensity_log_std, len(directions))
    if model.no_return_points:
        no_return = ~keep
        xyz[no_return] = 0.0
        xyz[no_return, 1] = -rng.uniform(0.0, model.no_return_spread_m, int(no_return.sum()))
        intensity[no_return] = rng.lognormal(np.log(model.no_return_intensity), model.no_return_intensity_log_std,
                                             int(no_return.sum()))
        keep = np.ones(len(directions), dtype=bool)
    points = np.empty((int(keep.sum()), 5), np.float32)
    points[:, :3] = xyz[keep]
    points[:, 3] = np.clip(np.round(intensity[keep]), 0, 255)
    points[:, 4] = rings[keep]
    return points
