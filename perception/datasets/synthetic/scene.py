"""One scene's world model: road and buildings, the ego's drive, the objects, and the sensor poses at any
time. Rebuilt identically from (seed, scene index, samples per scene), so tests can re-render what was written."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np

from perception.datasets.synthetic.actors import Actor, Track
from perception.datasets.synthetic.ego import (AISLE_CRUISE_SPEED_M_S, MAX_EGO_SPEED_M_S, STREET_CRUISE_SPEED_M_S,
                                              EgoPlan, plan_ego)
from perception.datasets.synthetic.layout import (ROADSIDE_STRUCTURE, StaticWorld, add_aisle_car_parks,
                                                  add_car_parks, add_roadside_structure, build_car_park_aisle,
                                                  build_static_world, drives_down_aisle)
from perception.datasets.synthetic.raycast import Snapshot, StaticGeometry, WorldGeometry
from perception.datasets.synthetic.shading import FrenetRaster
from perception.datasets.synthetic.rig import CALIBRATION, KEYFRAME_PERIOD_US
from perception.datasets.synthetic.traffic import POPULATIONS, drive_stretch, populate_car_park_aisle
from perception.geometry import RigidTransform, rotation_about_z

TIME_STEP_S = 0.01
"""Spacing of the sampled trajectories."""
LEAD_IN_S = 0.5
"""Sweeps are recorded this long before the first keyframe, so it has a sweep history."""
EGO_START_S_M = 80.0
"""Arc length of the road where the ego starts [m]."""
MAP_MARGIN_M = 60.0
"""The road's outer edges keep this far from the global x and y axes and from the map image's top and right edges
(the image starts at global (0, 0)) [m]: more than the 40 * sqrt(2) = 56.6 m the devkit's ego-centric map
(NuScenes.render_ego_centric_map) crops around the ego, so that its renders' map underlay is whole."""
ROAD_AHEAD_M = 160.0


@dataclass
class SceneModel:
    """The world of scene ``index``; scene time 0 is the first keyframe's LiDAR timestamp, ``times_s`` (K,) the
    grid of every trajectory."""

    index: int
    name: str
    world: StaticWorld
    geometry: WorldGeometry
    frenet: FrenetRaster
    plan: EgoPlan
    ego_track: Track
    actors: List[Actor]
    sun_direction: np.ndarray
    times_s: np.ndarray
    population: str = "default"

    def ego_to_global(self, t_s: float) -> RigidTransform:
        """The ego pose (rear axle on the ground, yaw along its motion) at scene time t_s."""
        xy, yaw = self.ego_track.pose(t_s)
        return RigidTransform.from_rotation_translation(rotation_about_z(yaw), (xy[0], xy[1], 0.0))

    def sensor_to_global(self, channel: str, t_s: float) -> RigidTransform:
        translation, rotation, _ = CALIBRATION[channel]
        return self.ego_to_global(t_s) @ RigidTransform.from_nuscenes(translation, rotation, channel)

    def sensor_velocity(self, channel: str, t_s: float, half_step_s: float = 0.01) -> np.ndarray:
        """(3,) global velocity [m/s] of the sensor's origin (ego translation and rotation)."""
        after = self.sensor_to_global(channel, t_s + half_step_s).translation
        before = self.sensor_to_global(channel, t_s - half_step_s).translation
        return (after - before) / (2 * half_step_s)

    def snapshot(self, t_s: float, num_threads: int = 0) -> Snapshot:
        """The world at scene time t_s, ready for ray casting."""
        return self.geometry.snapshot(t_s, num_threads)


def scene_name(index: int) -> str:
    return f"synth-{index:04d}"


def scene_duration_s(samples_per_scene: int) -> float:
    """Scene time of the last keyframe [s]."""
    return (samples_per_scene - 1) * KEYFRAME_PERIOD_US * 1e-6


def check_population(population: str) -> None:
    """Raises ValueError unless ``population`` names one of traffic.POPULATIONS."""
    if population not in POPULATIONS:
        raise ValueError(f"unknown population {population!r}; known: {', '.join(POPULATIONS)}")


def build_scene(seed: int, index: int, samples_per_scene: int, population: str = "default") -> SceneModel:
    """The deterministic world of scene ``index`` of a world generated with ``seed``; ``population`` picks who is
    where (traffic.POPULATIONS), the roadside structure (layout.ROADSIDE_STRUCTURE), which scenes drive down a car
    park's aisle instead of a street (layout.AISLE_DRIVE_EVERY; traffic.populate_car_park_aisle) and the radar
    cross-sections (radar.CROSS_SECTIONS)."""
    if samples_per_scene < 1:
        raise ValueError(f"samples_per_scene must be >= 1, got {samples_per_scene}")
    check_population(population)
    duration = scene_duration_s(samples_per_scene)
    times_s = np.round(np.arange(-LEAD_IN_S - 1.0, duration + 1.0 + 1e-9, TIME_STEP_S), 6)
    road_length = EGO_START_S_M + MAX_EGO_SPEED_M_S * (duration + 3.0) + ROAD_AHEAD_M
    aisle = drives_down_aisle(population, index)
    build_world = build_car_park_aisle if aisle else build_static_world
    world = build_world(np.random.default_rng([seed, index, 1]), road_length, MAP_MARGIN_M)
    plan = plan_ego(np.random.default_rng([seed, index, 2]), world.road, index, times_s, EGO_START_S_M,
                    AISLE_CRUISE_SPEED_M_S if aisle else STREET_CRUISE_SPEED_M_S)
    if aisle:
        world = add_aisle_car_parks(np.random.default_rng([seed, index, 6]), world, (plan.s[0], plan.s[-1]))
    elif ROADSIDE_STRUCTURE[population]:
        world = add_car_parks(np.random.default_rng([seed, index, 6]), world, drive_stretch(world.road, plan))
        world = add_roadside_structure(np.random.default_rng([seed, index, 5]), world)
    ego_xy, heading = world.road.to_global(plan.s, plan.d)
    ego_track = Track.from_positions(times_s, ego_xy, float(heading[0]))
    populate = populate_car_park_aisle if aisle else POPULATIONS[population]
    actors = populate(np.random.default_rng([seed, index, 3]), world, plan, times_s, (-LEAD_IN_S, duration), ego_xy,
                      ego_track.yaw)
    sun_rng = np.random.default_rng([seed, index, 4])
    elevation, azimuth = sun_rng.uniform(0.5, 1.1), sun_rng.uniform(-np.pi, np.pi)
    sun = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    geometry = WorldGeometry(StaticGeometry.build(world), actors)
    return SceneModel(index, scene_name(index), world, geometry, FrenetRaster(world.road), plan, ego_track, actors,
                      sun, times_s, population)
