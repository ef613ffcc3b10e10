"""Populates a scene with objects of all 10 detection classes: the ego's lead vehicle, moving and oncoming
traffic (cars, trucks with trailers, buses, motorcycles), parked vehicles, cyclists, walking, standing and
crossing pedestrians, and a work zone of barriers and cones with a construction vehicle.

Candidates are drawn at random and kept only when their footprint never overlaps the ego's or an accepted
object's over the scene, so nothing drives through anything.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from perception.datasets.synthetic.actors import Actor, Track
from perception.datasets.synthetic.class_specs import sample_size
from perception.datasets.synthetic.ego import LEAD_STANDSTILL_GAP_M, LEAD_TIME_HEADWAY_S, EgoPlan
from perception.datasets.synthetic.layout import LANE_WIDTH_M, PARKING_WIDTH_M, SIDEWALK_WIDTH_M, Road
from perception.datasets.synthetic.meshes import build_mesh

EGO_SIZE_WL = (2.0, 4.9)
EGO_CENTRE_AHEAD_OF_AXLE_M = 1.4
FOOTPRINT_CLEARANCE_M = 0.4
"""Footprints are grown by this on every side before the overlap test [m]."""
CHECK_EVERY_S = 0.2


def _footprint_corners(xy: np.ndarray, yaw: np.ndarray, width: float, length: float) -> np.ndarray:
    """(K, 4, 2) corners of oriented rectangles centred at xy (K, 2) with yaw (K,)."""
    half = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]]) * 0.5 * np.array([length, width])
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    return np.stack([xy[:, None, 0] + c * half[:, 0] - s * half[:, 1],
                     xy[:, None, 1] + s * half[:, 0] + c * half[:, 1]], axis=-1)


def rectangles_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(K,) bool: do the convex quadrilaterals a[k] and b[k] (K, 4, 2) overlap (separating-axis test)?"""
    overlap = np.ones(len(a), dtype=bool)
    for poly in (a, b):
        for i in range(4):
            edge = poly[:, (i + 1) % 4] - poly[:, i]
            axis = np.stack([-edge[:, 1], edge[:, 0]], axis=1)
            proj_a = np.einsum("kvd,kd->kv", a, axis)
            proj_b = np.einsum("kvd,kd->kv", b, axis)
            overlap &= ~((proj_a.max(1) < proj_b.min(1)) | (proj_b.max(1) < proj_a.min(1)))
    return overlap


class Population:
    """Accepted objects with their footprints on the check times."""

    def __init__(self, check_times: np.ndarray, ego_xy: np.ndarray, ego_yaw: np.ndarray) -> None:
        self.check_times = check_times
        grown = (EGO_SIZE_WL[0] + 2 * FOOTPRINT_CLEARANCE_M, EGO_SIZE_WL[1] + 2 * FOOTPRINT_CLEARANCE_M)
        centre = ego_xy + EGO_CENTRE_AHEAD_OF_AXLE_M * np.stack([np.cos(ego_yaw), np.sin(ego_yaw)], axis=1)
        self.footprints = [_footprint_corners(centre, ego_yaw, *grown)]
        self.actors: List[Actor] = []

    def _footprint(self, actor: Actor) -> np.ndarray:
        xy = np.stack([np.interp(self.check_times, actor.track.times_s, actor.track.xy[:, i]) for i in (0, 1)], 1)
        yaw = np.interp(self.check_times, actor.track.times_s, actor.track.yaw)
        width, length = actor.size_wlh[0] + 2 * FOOTPRINT_CLEARANCE_M, actor.size_wlh[1] + 2 * FOOTPRINT_CLEARANCE_M
        return _footprint_corners(xy, yaw, width, length)

    def try_add(self, actors: List[Actor]) -> bool:
        """Adds the group (e.g. a truck and its trailer) when none of it overlaps what is there; True if added."""
        footprints = [self._footprint(a) for a in actors]
        for new in footprints:
            centre_new = new.mean(axis=1)
            for old in self.footprints:
                near = np.linalg.norm(old.mean(axis=1) - centre_new, axis=1) < 20.0
                if near.any() and rectangles_overlap(new[near], old[near]).any():
                    return False
        self.footprints += footprints
        self.actors += actors
        return True


def _road_actor(name: str, road: Road, times_s: np.ndarray, s: np.ndarray, d: np.ndarray, behaviour: str,
                rng: np.random.Generator, size: Optional[np.ndarray] = None, with_rider: Optional[bool] = None,
                yaw_offset: float = 0.0) -> Actor:
    """An object moving along Frenet (s(t), d(t)); standing objects face along the road (+ yaw_offset)."""
    size = sample_size(name, rng, with_rider) if size is None else size
    xy, heading = road.to_global(s, d)
    direction = 0.0 if len(s) < 2 or s[-1] >= s[0] else np.pi
    track = Track.from_positions(times_s, xy, float(heading[0]) + direction + yaw_offset)
    return Actor(name, size, build_mesh(name, size, rng, with_rider), track, behaviour, with_rider)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * x)


def lead_vehicle_s(plan: EgoPlan, start_s: float, end_s: float, size_length: float) -> np.ndarray:
    """Arc length (K,) [m] of a lead vehicle's centre: it drives what the ego drives LEAD_TIME_HEADWAY_S later,
    LEAD_STANDSTILL_GAP_M ahead, during [start_s, end_s]; before and after, it is up to 10 m further ahead."""
    t = plan.times_s
    future = np.interp(t + LEAD_TIME_HEADWAY_S, t, plan.s)
    beyond = t + LEAD_TIME_HEADWAY_S > t[-1]
    final_speed = (plan.s[-1] - plan.s[-2]) / (t[-1] - t[-2])
    future[beyond] = plan.s[-1] + final_speed * (t[beyond] + LEAD_TIME_HEADWAY_S - t[-1])
    extra = 10.0 * (_smoothstep((start_s - t) / 4.0) + _smoothstep((t - end_s) / 4.0))
    gap = LEAD_STANDSTILL_GAP_M + max(0.0, size_length - 4.6) / 2.0
    return np.maximum.accumulate(future + gap + extra)


def populate(rng: np.random.Generator, road: Road, plan: EgoPlan, times_s: np.ndarray,
             scene_span_s: Tuple[float, float], ego_xy: np.ndarray, ego_yaw: np.ndarray) -> List[Actor]:
    """All objects of a scene, on the time grid ``times_s`` [s]; ``scene_span_s`` is the (start, end) of the
    recorded data (overlaps are only checked there)."""
    check_times = np.arange(scene_span_s[0], scene_span_s[1] + 1e-9, CHECK_EVERY_S)
    population = Population(check_times, ego_xy[np.searchsorted(times_s, check_times)],
                            ego_yaw[np.searchsorted(times_s, check_times)])
    n = road.lanes_per_direction
    ego_s0, ego_s1 = float(plan.s[0]), float(plan.s[-1])
    near = (max(5.0, ego_s0 - 50.0), min(road.length - 5.0, ego_s1 + 70.0))
    t0 = times_s - scene_span_s[0]

    def drive(name: str, lane: int, speed: float, s_start: float, **kwargs) -> Actor:
        sign = 1.0 if lane >= 0 else -1.0
        accel_wobble = 0.5 * np.sin(2 * np.pi * t0 / rng.uniform(6.0, 12.0) + rng.uniform(0, 2 * np.pi))
        s = s_start + sign * (speed * t0 + accel_wobble)
        return _road_actor(name, road, times_s, s, np.full_like(s, road.lane_centre(lane)), "driving", rng, **kwargs)

    # the lead vehicle of each follow .. drive-off block
    for start, end, lane in plan.lead_blocks():
        size = sample_size("car", rng)
        s = lead_vehicle_s(plan, start, end, float(size[1]))
        actor = _road_actor("car", road, times_s, s, np.full_like(s, road.lane_centre(lane)), "driving", rng, size)
        population.try_add([actor])

    _add_work_zone(rng, road, times_s, (max(5.0, ego_s0 - 20.0), min(road.length - 30.0, ego_s1 + 30.0)), population)
    curb = road.half_width
    parking_d = curb - 0.5 * PARKING_WIDTH_M
    density = (near[1] - near[0]) / 100.0
    for _ in range(int(6 * density)):  # traffic in both directions
        lane = int(rng.integers(-n, n))
        name = str(rng.choice(["car", "car", "car", "truck", "bus", "motorcycle", "truck_trailer"]))
        speed = float(rng.uniform(5.0, 13.0))
        s_start = float(rng.uniform(*near))
        if name == "truck_trailer":
            truck = drive("truck", lane, speed, s_start)
            trailer_size = sample_size("trailer", rng)
            offset = -(1.0 if lane >= 0 else -1.0) * (0.5 * truck.size_wlh[1] + 0.5 * trailer_size[1] + 0.6)
            population.try_add([truck, drive("trailer", lane, speed, s_start + offset, size=trailer_size)])
        else:
            population.try_add([drive(name, lane, speed, s_start,
                                      with_rider=True if name == "motorcycle" else None)])
    for _ in range(int(2 * density)):  # cyclists at the edge of the outer lanes
        side = float(rng.choice([-1.0, 1.0]))
        s = float(rng.uniform(*near)) + side * -1.0 * rng.uniform(3.0, 5.5) * t0
        d = np.full_like(s, side * (n * LANE_WIDTH_M - 0.7))
        population.try_add([_road_actor("bicycle", road, times_s, s, d, "driving", rng, with_rider=True)])
    for _ in range(int(5 * density)):  # parked vehicles, a stopped bus, parked trailers, parked two-wheelers
        side = float(rng.choice([-1.0, 1.0]))
        s = np.full_like(times_s, rng.uniform(*near))
        name = str(rng.choice(["car", "car", "car", "truck", "trailer", "bus", "motorcycle", "bicycle"]))
        if name in ("motorcycle", "bicycle"):
            d = np.full_like(s, side * (curb + 1.0))
            actor = _road_actor(name, road, times_s, s, d, "parked", rng, with_rider=False,
                                yaw_offset=float(rng.choice([0.5, -0.5]) * np.pi))
        else:
            d = np.full_like(s, side * parking_d)
            yaw_offset = 0.0 if side < 0 else np.pi
            actor = _road_actor(name, road, times_s, s, d, "driving" if name == "bus" else "parked", rng,
                                yaw_offset=yaw_offset)
        population.try_add([actor])
    for _ in range(int(8 * density)):  # pedestrians on the sidewalks
        side = float(rng.choice([-1.0, 1.0]))
        d_walk = side * (curb + rng.uniform(1.3, SIDEWALK_WIDTH_M - 0.6))
        s0 = float(rng.uniform(*near))
        if rng.random() < 0.6:
            s = s0 + float(rng.choice([-1.0, 1.0])) * rng.uniform(0.9, 1.6) * t0
            population.try_add([_road_actor("pedestrian", road, times_s, s, np.full_like(s, d_walk), "walking", rng)])
        else:
            s = np.full_like(times_s, s0)
            population.try_add([_road_actor("pedestrian", road, times_s, s, np.full_like(s, d_walk), "standing", rng,
                                            yaw_offset=float(rng.uniform(-np.pi, np.pi)))])
    for _ in range(int(1 * density) + 1):  # pedestrians crossing the road
        side = float(rng.choice([-1.0, 1.0]))
        speed = float(rng.uniform(1.0, 1.5))
        start_t = float(rng.uniform(-4.0, (scene_span_s[1] - scene_span_s[0])))
        d = np.clip(side * (curb + 1.5) - side * speed * (t0 - start_t), -(curb + 1.5), curb + 1.5)
        s = np.full_like(times_s, rng.uniform(*near))
        population.try_add([_road_actor("pedestrian", road, times_s, s, d, "walking", rng)])
    return population.actors


def _add_work_zone(rng: np.random.Generator, road: Road, times_s: np.ndarray, span: Tuple[float, float],
                   population: Population) -> None:
    """A closed parking strip starting somewhere in ``span`` (arc lengths [m]): a construction vehicle, cones
    along the lane edge before and after it, barriers across both ends."""
    side = float(rng.choice([-1.0, 1.0]))
    length = float(rng.uniform(18.0, 26.0))
    s0 = float(rng.uniform(span[0], max(span[0] + 1.0, span[1] - length)))
    cone_d = side * (road.lanes_per_direction * LANE_WIDTH_M + 0.3)
    parking_d = side * (road.half_width - 0.5 * PARKING_WIDTH_M)

    def place(name: str, s: float, d: float, behaviour: str, yaw_offset: float = 0.0) -> Actor:
        return _road_actor(name, road, times_s, np.full_like(times_s, s), np.full_like(times_s, d), behaviour,
                           rng, yaw_offset=yaw_offset)

    vehicle_s = s0 + 0.5 * length
    vehicle = place("construction_vehicle", vehicle_s, side * (road.half_width - 1.25), "parked",
                    0.0 if side < 0 else np.pi)
    clear = 0.5 * float(vehicle.size_wlh[1]) + 1.0
    group = [vehicle]
    group += [place("traffic_cone", float(s), cone_d, "static") for s in np.arange(s0, s0 + length, 3.0)
              if abs(s - vehicle_s) > clear]
    group += [place("barrier", float(s), parking_d, "static") for s in (s0 - 1.5, s0 + length + 1.5)]
    population.try_add(group)
