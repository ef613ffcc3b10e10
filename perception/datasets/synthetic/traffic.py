"""Populates a scene with objects of all 10 detection classes: the ego's lead vehicle, moving and oncoming
traffic (cars, trucks with trailers, buses, motorcycles), parked vehicles, cyclists, walking, standing and
crossing pedestrians, and a work zone of barriers and cones with a construction vehicle. Two populations
(POPULATIONS): ``populate`` (the default world) and ``populate_nuscenes_mix`` (nuScenes' class shares), whose
drives down a car park's aisle are ``populate_car_park_aisle``.

Candidates are drawn at random and kept only when their footprint never overlaps the ego's or an accepted
object's over the scene, nor the footprint of another member of their group (a truck and its trailer), nor a pole
of the static world (a lamp post, a tree's trunk, a sign post, a bollard), so nothing drives or walks through
anything.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from perception.datasets.synthetic.actors import Actor, Track
from perception.datasets.synthetic.class_specs import NUSCENES_TRAIN_ANNOTATIONS, sample_size
from perception.datasets.synthetic.ego import LEAD_STANDSTILL_GAP_M, LEAD_TIME_HEADWAY_S, EgoPlan
from perception.datasets.synthetic.layout import (BAY_DEPTH_M, LANE_WIDTH_M, SIDEWALK_WIDTH_M, CarPark, Pole,
                                                  Road, StaticWorld)
from perception.datasets.synthetic.meshes import build_mesh
from perception.datasets.synthetic.rig import EGO_BODY_BOXES_M
from perception.geometry import Boxes3D, footprints_overlap

_EGO_LOW_M, _EGO_HIGH_M = np.min(EGO_BODY_BOXES_M, axis=(0, 1)), np.max(EGO_BODY_BOXES_M, axis=(0, 1))
EGO_SIZE_WL = (float(_EGO_HIGH_M[1] - _EGO_LOW_M[1]), float(_EGO_HIGH_M[0] - _EGO_LOW_M[0]))
EGO_CENTRE_AHEAD_OF_AXLE_M = float(_EGO_HIGH_M[0] + _EGO_LOW_M[0]) / 2
"""The ego car's footprint (width, length) [m] and how far its centre stands ahead of the rear axle [m]: the rig's
body boxes (rig.EGO_BODY_BOXES_M, a Renault ZOE) seen from above, grown by FOOTPRINT_CLEARANCE_M as every footprint."""
FOOTPRINT_CLEARANCE_M = 0.4
"""Footprints are grown by this on every side before the overlap test with other groups [m] (the members of one
group are placed together on purpose, a trailer TOW_GAP_M behind its truck, and are tested as they are)."""
TOW_GAP_M = 0.6
"""Gap between a truck's rear and its trailer's front along their lane's centre line [m]."""
CHECK_EVERY_S = 0.2


def _footprint_corners(xy: np.ndarray, yaw: np.ndarray, width: float, length: float) -> np.ndarray:
    """(K, 4, 2) Boxes3D.bev_corners of the width x length footprints centred at xy (K, 2) with yaw (K,)."""
    return Boxes3D(np.column_stack([xy, np.zeros(len(xy))]), np.tile([width, length, 0.0], (len(xy), 1)),
                   yaw).bev_corners()


class Population:
    """Accepted objects with their footprints on the check times, and the static world's poles."""

    def __init__(self, check_times: np.ndarray, ego_xy: np.ndarray, ego_yaw: np.ndarray,
                 poles: Sequence[Pole] = ()) -> None:
        self.check_times = check_times
        grown = (EGO_SIZE_WL[0] + 2 * FOOTPRINT_CLEARANCE_M, EGO_SIZE_WL[1] + 2 * FOOTPRINT_CLEARANCE_M)
        centre = ego_xy + EGO_CENTRE_AHEAD_OF_AXLE_M * np.stack([np.cos(ego_yaw), np.sin(ego_yaw)], axis=1)
        self.footprints = [_footprint_corners(centre, ego_yaw, *grown)]
        self.actors: List[Actor] = []
        self.pole_xy = np.array([pole.xy for pole in poles], dtype=np.float64).reshape(-1, 2)
        self.pole_radii = np.array([pole.radius for pole in poles], dtype=np.float64)

    def _pose(self, actor: Actor) -> Tuple[np.ndarray, np.ndarray]:
        """The actor's box centre xy (K, 2) [m] and yaw (K,) [rad] on the check times."""
        xy = np.stack([np.interp(self.check_times, actor.track.times_s, actor.track.xy[:, i]) for i in (0, 1)], 1)
        return xy, np.interp(self.check_times, actor.track.times_s, actor.track.yaw)

    def _footprint(self, actor: Actor, clearance_m: float) -> np.ndarray:
        """(K, 4, 2) the actor's footprint on the check times, grown by ``clearance_m`` on every side."""
        width, length = actor.size_wlh[0] + 2 * clearance_m, actor.size_wlh[1] + 2 * clearance_m
        return _footprint_corners(*self._pose(actor), width, length)

    def _meets_pole(self, actor: Actor) -> bool:
        """Does the actor's box meet a pole's circle at a check time (the distance from the pole's axis to the
        rectangle below its radius)?"""
        if not len(self.pole_radii):
            return False
        xy, yaw = self._pose(actor)
        offset = self.pole_xy[None] - xy[:, None]  # (K, P, 2)
        cos, sin = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
        beyond_length = np.abs(offset[..., 0] * cos + offset[..., 1] * sin) - 0.5 * actor.size_wlh[1]
        beyond_width = np.abs(offset[..., 1] * cos - offset[..., 0] * sin) - 0.5 * actor.size_wlh[0]
        distance = np.hypot(np.maximum(beyond_length, 0.0), np.maximum(beyond_width, 0.0))
        return bool((distance < self.pole_radii).any())

    def try_add(self, actors: List[Actor]) -> bool:
        """Adds the group (e.g. a truck and its trailer) when none of it overlaps what is there (FOOTPRINT_CLEARANCE_M)
        or meets a pole, and no two of its members overlap each other; True if added."""
        footprints = [self._footprint(a, FOOTPRINT_CLEARANCE_M) for a in actors]
        if any(_overlap(new, old) for new in footprints for old in self.footprints):
            return False
        bare = [self._footprint(a, 0.0) for a in actors]
        if any(_overlap(bare[i], bare[j]) for i in range(len(bare)) for j in range(i + 1, len(bare))):
            return False
        if any(self._meets_pole(a) for a in actors):
            return False
        self.footprints += footprints
        self.actors += actors
        return True


def _overlap(first: np.ndarray, second: np.ndarray) -> bool:
    """Do two footprints on the same check times (K, 4, 2) overlap at some check time?"""
    near = np.linalg.norm(first.mean(axis=1) - second.mean(axis=1), axis=1) < 20.0
    return bool(near.any() and footprints_overlap(first[near], second[near]).any())


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


@dataclass
class _Street:
    """What every placement needs: the road, the time grid ``times_s`` (K,) [s], ``t0`` (K,) [s] since the
    first recorded instant, and ``near`` = (s_min, s_max) [m], the stretch of road around the ego's drive."""

    road: Road
    times_s: np.ndarray
    t0: np.ndarray
    near: Tuple[float, float]
    duration_s: float

    @property
    def parking_d(self) -> float:
        """|d| [m] of the parking strips' centre line."""
        return self.road.half_width - 0.5 * self.road.parking_width_m


def _start(world: StaticWorld, plan: EgoPlan, times_s: np.ndarray, scene_span_s: Tuple[float, float],
           ego_xy: np.ndarray, ego_yaw: np.ndarray) -> Tuple[Population, _Street]:
    """An empty population (the ego's footprint and the world's poles only) and the street of a scene."""
    check_times = np.arange(scene_span_s[0], scene_span_s[1] + 1e-9, CHECK_EVERY_S)
    population = Population(check_times, ego_xy[np.searchsorted(times_s, check_times)],
                            ego_yaw[np.searchsorted(times_s, check_times)], world.poles)
    road = world.road
    near = drive_stretch(road, plan)
    return population, _Street(road, times_s, times_s - scene_span_s[0], near, scene_span_s[1] - scene_span_s[0])


def drive_stretch(road: Road, plan: EgoPlan) -> Tuple[float, float]:
    """(s_min, s_max) [m]: the stretch of road around the ego's drive where objects are placed."""
    ego_s0, ego_s1 = float(plan.s[0]), float(plan.s[-1])
    return max(5.0, ego_s0 - 50.0), min(road.length - 5.0, ego_s1 + 70.0)


def _lane_s(rng: np.random.Generator, street: _Street, lane: int, speed: float, s_start: float) -> np.ndarray:
    """Arc length (K,) [m] of a vehicle driving in ``lane`` at about ``speed`` [m/s] from ``s_start`` [m]: the
    speed wobbles (0.5 m of arc length, a period of 6-12 s)."""
    sign = 1.0 if lane >= 0 else -1.0
    accel_wobble = 0.5 * np.sin(2 * np.pi * street.t0 / rng.uniform(6.0, 12.0) + rng.uniform(0, 2 * np.pi))
    return s_start + sign * (speed * street.t0 + accel_wobble)


def _drive(rng: np.random.Generator, street: _Street, name: str, lane: int, s: np.ndarray, **kwargs) -> Actor:
    """An object driving in ``lane`` along arc length ``s`` (K,) [m] (``_lane_s``)."""
    return _road_actor(name, street.road, street.times_s, s, np.full_like(s, street.road.lane_centre(lane)),
                       "driving", rng, **kwargs)


def _traffic(rng: np.random.Generator, street: _Street, name: Union[str, List[str]]) -> List[Actor]:
    """One vehicle of ``name`` (or of one drawn from the list) in a random lane (``truck_trailer``: a truck towing
    a trailer TOW_GAP_M behind it along the lane, both on the truck's motion)."""
    lane = int(rng.integers(-street.road.lanes_per_direction, street.road.lanes_per_direction))
    name = str(rng.choice(name)) if isinstance(name, list) else name
    speed = float(rng.uniform(5.0, 13.0))
    s_start = float(rng.uniform(*street.near))
    s = _lane_s(rng, street, lane, speed, s_start)
    if name == "truck_trailer":
        truck = _drive(rng, street, "truck", lane, s)
        trailer_size = sample_size("trailer", rng)
        behind = (1.0 if lane >= 0 else -1.0) * (0.5 * truck.size_wlh[1] + 0.5 * trailer_size[1] + TOW_GAP_M)
        s_trailer = street.road.along_offset_line(s, street.road.lane_centre(lane), -behind)
        return [truck, _drive(rng, street, "trailer", lane, s_trailer, size=trailer_size)]
    return [_drive(rng, street, name, lane, s, with_rider=True if name == "motorcycle" else None)]


def _cyclist(rng: np.random.Generator, street: _Street) -> List[Actor]:
    """A cyclist riding at the edge of an outer lane."""
    side = float(rng.choice([-1.0, 1.0]))
    s = float(rng.uniform(*street.near)) + side * -1.0 * rng.uniform(3.0, 5.5) * street.t0
    d = np.full_like(s, side * (street.road.lanes_per_direction * LANE_WIDTH_M - 0.7))
    return [_road_actor("bicycle", street.road, street.times_s, s, d, "driving", rng, with_rider=True)]


def _parked(rng: np.random.Generator, street: _Street, name: str, side: float, s_m: float) -> List[Actor]:
    """A vehicle parked at arc length ``s_m`` [m] on ``side`` (+1 left, -1 right): two-wheelers across the
    sidewalk's edge without rider, a bus stopped at the curb, the rest in the parking strip facing the traffic
    of their side."""
    road, times_s = street.road, street.times_s
    s = np.full_like(times_s, s_m)
    if name in ("motorcycle", "bicycle"):
        d = np.full_like(s, side * (road.half_width + 1.0))
        return [_road_actor(name, road, times_s, s, d, "parked", rng, with_rider=False,
                            yaw_offset=float(rng.choice([0.5, -0.5]) * np.pi))]
    d = np.full_like(s, side * street.parking_d)
    yaw_offset = 0.0 if side < 0 else np.pi
    return [_road_actor(name, road, times_s, s, d, "driving" if name == "bus" else "parked", rng,
                        yaw_offset=yaw_offset)]


def _in_bay(rng: np.random.Generator, street: _Street, s_m: float, d_m: float, yaw_offset: float,
            perpendicular: bool, name: str = "car") -> List[Actor]:
    """A car (or a riderless two-wheeler) parked in a car park's bay centred at (``s_m``, ``d_m``) [m] whose axis
    points ``yaw_offset`` [rad] off the road's heading (layout.CarPark.bays): nose in, or backed in half of the
    time in a perpendicular bay."""
    backed_in = perpendicular and rng.random() < 0.5
    s = np.full_like(street.times_s, s_m)
    return [_road_actor(name, street.road, street.times_s, s, np.full_like(s, d_m), "parked", rng,
                        with_rider=False if name in ("motorcycle", "bicycle") else None,
                        yaw_offset=yaw_offset + (np.pi if backed_in else 0.0))]


def _sidewalk_pedestrian(rng: np.random.Generator, street: _Street) -> List[Actor]:
    """A pedestrian walking along (60 %) or standing on a sidewalk."""
    side = float(rng.choice([-1.0, 1.0]))
    d_walk = side * (street.road.half_width + rng.uniform(1.3, SIDEWALK_WIDTH_M - 0.6))
    return _pedestrian_along(rng, street, d_walk, float(rng.uniform(*street.near)))


def _pedestrian_along(rng: np.random.Generator, street: _Street, d_walk: float, s0: float) -> List[Actor]:
    """A pedestrian walking along the road at ``d_walk`` [m] from arc length ``s0`` [m] (60 %), or standing
    there."""
    road, times_s = street.road, street.times_s
    if rng.random() < 0.6:
        s = s0 + float(rng.choice([-1.0, 1.0])) * rng.uniform(0.9, 1.6) * street.t0
        return [_road_actor("pedestrian", road, times_s, s, np.full_like(s, d_walk), "walking", rng)]
    s = np.full_like(times_s, s0)
    return [_road_actor("pedestrian", road, times_s, s, np.full_like(s, d_walk), "standing", rng,
                        yaw_offset=float(rng.uniform(-np.pi, np.pi)))]


def _crossing_pedestrian(rng: np.random.Generator, street: _Street) -> List[Actor]:
    """A pedestrian crossing the road from one sidewalk to the other."""
    curb = street.road.half_width
    side = float(rng.choice([-1.0, 1.0]))
    speed = float(rng.uniform(1.0, 1.5))
    start_t = float(rng.uniform(-4.0, street.duration_s))
    d = np.clip(side * (curb + 1.5) - side * speed * (street.t0 - start_t), -(curb + 1.5), curb + 1.5)
    s = np.full_like(street.times_s, rng.uniform(*street.near))
    return [_road_actor("pedestrian", street.road, street.times_s, s, d, "walking", rng)]


def _add_lead_vehicles(rng: np.random.Generator, street: _Street, plan: EgoPlan, population: Population) -> None:
    """The lead car of each follow .. drive-off block of the ego's plan."""
    for start, end, lane in plan.lead_blocks():
        size = sample_size("car", rng)
        s = lead_vehicle_s(plan, start, end, float(size[1]))
        actor = _road_actor("car", street.road, street.times_s, s, np.full_like(s, street.road.lane_centre(lane)),
                            "driving", rng, size)
        population.try_add([actor])


def _work_zone_span(street: _Street, plan: EgoPlan) -> Tuple[float, float]:
    return (max(5.0, float(plan.s[0]) - 20.0), min(street.road.length - 30.0, float(plan.s[-1]) + 30.0))


def populate(rng: np.random.Generator, world: StaticWorld, plan: EgoPlan, times_s: np.ndarray,
             scene_span_s: Tuple[float, float], ego_xy: np.ndarray, ego_yaw: np.ndarray) -> List[Actor]:
    """All objects of a scene of the default population on ``world``'s road, on the time grid ``times_s`` [s];
    ``scene_span_s`` is the (start, end) of the recorded data (overlaps are only checked there)."""
    population, street = _start(world, plan, times_s, scene_span_s, ego_xy, ego_yaw)
    _add_lead_vehicles(rng, street, plan, population)
    _add_work_zone(rng, street, _work_zone_span(street, plan), population)
    density = (street.near[1] - street.near[0]) / 100.0
    for _ in range(int(6 * density)):  # traffic in both directions
        population.try_add(_traffic(rng, street, ["car", "car", "car", "truck", "bus", "motorcycle", "truck_trailer"]))
    for _ in range(int(2 * density)):  # cyclists at the edge of the outer lanes
        population.try_add(_cyclist(rng, street))
    for _ in range(int(5 * density)):  # parked vehicles, a stopped bus, parked trailers, parked two-wheelers
        side = float(rng.choice([-1.0, 1.0]))
        s_m = rng.uniform(*street.near)
        name = str(rng.choice(["car", "car", "car", "truck", "trailer", "bus", "motorcycle", "bicycle"]))
        population.try_add(_parked(rng, street, name, side, s_m))
    for _ in range(int(8 * density)):  # pedestrians on the sidewalks
        population.try_add(_sidewalk_pedestrian(rng, street))
    for _ in range(int(1 * density) + 1):  # pedestrians crossing the road
        population.try_add(_crossing_pedestrian(rng, street))
    return population.actors


NUSCENES_OBJECTS_PER_100M = 22.4
"""Objects the ``nuscenes`` population places per 100 m of a scene's drive stretch (``drive_stretch``): a nuScenes
train keyframe holds 33.6 annotations on average (NUSCENES_TRAIN_ANNOTATIONS), and the annotation range
(writer.ANNOTATION_RANGE_M, 75 m) covers 150 m of road around the ego."""


def nuscenes_object_count(road: Road, plan: EgoPlan) -> int:
    """Objects the ``nuscenes`` population places in a scene: NUSCENES_OBJECTS_PER_100M along its drive stretch."""
    s_min, s_max = drive_stretch(road, plan)
    return int(round(NUSCENES_OBJECTS_PER_100M * (s_max - s_min) / 100.0))
PLACEMENT_TRIES = 20
"""Candidates drawn per object of a class quota before the ``nuscenes`` population gives up on it (overlaps)."""
PARKING_SLOT_M = 6.5
"""Spacing of the parking slots along each parking strip [m] (a 4.6 m car, its clearance and a gap)."""


def _fill(population: Population, count: int, candidate: Callable[[], List[Actor]]) -> None:
    """Adds up to ``count`` groups drawn from ``candidate``, giving up after PLACEMENT_TRIES draws a group."""
    added, tries = 0, 0
    while added < count and tries < PLACEMENT_TRIES * count:
        added += population.try_add(candidate())
        tries += 1


def class_quota(rng: np.random.Generator, total: int) -> Dict[str, int]:
    """Objects per detection class of one scene: ``total`` split in nuScenes' train-split shares
    (``NUSCENES_TRAIN_ANNOTATIONS``), each fraction rounded up with the probability of its remainder, so the
    shares hold on average over scenes."""
    counts = np.array(list(NUSCENES_TRAIN_ANNOTATIONS.values()), dtype=np.float64)
    expected = total * counts / counts.sum()
    whole = np.floor(expected)
    draws = rng.random(len(expected))
    return {name: int(w) + int(u < e - w)
            for name, w, e, u in zip(NUSCENES_TRAIN_ANNOTATIONS, whole, expected, draws)}


def populate_nuscenes_mix(rng: np.random.Generator, world: StaticWorld, plan: EgoPlan, times_s: np.ndarray,
                          scene_span_s: Tuple[float, float], ego_xy: np.ndarray,
                          ego_yaw: np.ndarray) -> List[Actor]:
    """All objects of a scene of the ``nuscenes`` population (arguments as ``populate``): ``nuscenes_object_count``
    objects in nuScenes' class shares (``class_quota``). The lead cars count as cars; the work zone holds the
    cones, barriers and construction vehicle (up to 3 tries, else none); 60 % of the other cars park, in rows along
    both curbs and in the bays of the world's car parks (slots drawn alike), the rest drive; trucks tow the
    trailers, the other trucks and the buses half drive, half park (stop); two-wheelers half ride, half stand on the
    sidewalk's edge; 85 % of the pedestrians use the sidewalks, the rest cross."""
    road = world.road
    quota = class_quota(rng, nuscenes_object_count(road, plan))
    population, street = _start(world, plan, times_s, scene_span_s, ego_xy, ego_yaw)
    _add_lead_vehicles(rng, street, plan, population)
    for _ in range(3):
        if _add_work_zone(rng, street, _work_zone_span(street, plan), population, quota):
            break

    def park(name: str) -> Callable[[], List[Actor]]:
        return lambda: _parked(rng, street, name, float(rng.choice([-1.0, 1.0])), float(rng.uniform(*street.near)))

    pairs = min(quota["trailer"], quota["truck"])
    _fill(population, pairs, lambda: _traffic(rng, street, "truck_trailer"))
    _fill(population, quota["trailer"] - pairs, park("trailer"))
    trucks = quota["truck"] - pairs
    _fill(population, trucks // 2, park("truck"))
    _fill(population, trucks - trucks // 2, lambda: _traffic(rng, street, "truck"))
    _fill(population, quota["bus"] // 2, park("bus"))
    _fill(population, quota["bus"] - quota["bus"] // 2, lambda: _traffic(rng, street, "bus"))

    def placed(name: str) -> int:
        return sum(actor.detection_name == name for actor in population.actors)

    _fill(population, quota["construction_vehicle"] - placed("construction_vehicle"), park("construction_vehicle"))
    cars = max(0, quota["car"] - placed("car"))  # the lead cars are cars
    slots = [partial(_parked, rng, street, "car", side, float(s)) for side in (-1.0, 1.0)
             for s in np.arange(street.near[0] + rng.uniform(0.0, PARKING_SLOT_M), street.near[1], PARKING_SLOT_M)]
    for car_park in world.car_parks:
        slots += [partial(_in_bay, rng, street, float(s), float(d), float(yaw), car_park.perpendicular)
                  for s, d, yaw in zip(*car_park.bays())]
    parked_cars = 0
    for index in rng.permutation(len(slots)):
        if parked_cars >= round(0.6 * cars):
            break
        parked_cars += population.try_add(slots[index]())
    _fill(population, cars - parked_cars, lambda: _traffic(rng, street, "car"))
    for name, ride in (("motorcycle", lambda: _traffic(rng, street, "motorcycle")),
                       ("bicycle", lambda: _cyclist(rng, street))):
        _fill(population, quota[name] // 2, park(name))
        _fill(population, quota[name] - quota[name] // 2, ride)
    crossing = int(round(0.15 * quota["pedestrian"]))
    _fill(population, crossing, lambda: _crossing_pedestrian(rng, street))
    _fill(population, quota["pedestrian"] - crossing, lambda: _sidewalk_pedestrian(rng, street))
    return population.actors


AISLE_OCCUPANCY = (0.5, 0.9)
"""Share of the bays along a car park's aisle that hold a car, drawn per scene (an assumption)."""
AISLE_TRAFFIC_PER_100M = 2.0
AISLE_TRAFFIC_SPEED_M_S = (2.0, 5.0)
"""Cars driving down the aisle per 100 m of the drive stretch, both ways, and their speed (an assumption)."""


def populate_car_park_aisle(rng: np.random.Generator, world: StaticWorld, plan: EgoPlan, times_s: np.ndarray,
                            scene_span_s: Tuple[float, float], ego_xy: np.ndarray,
                            ego_yaw: np.ndarray) -> List[Actor]:
    """All objects of a scene that drives down a car park's aisle (layout.build_car_park_aisle; arguments as
    ``populate``). The lead cars; in the bays along the drive stretch, the ``nuscenes`` quota's motorcycles
    (``class_quota``), then cars in AISLE_OCCUPANCY of the bays; AISLE_TRAFFIC_PER_100M cars driving the aisle;
    the quota's bicycles riding at the aisle's edge; the quota's pedestrians, 30 % crossing the aisle, the rest
    walking or standing just behind a car park's outermost row. No trucks, buses, trailers, construction vehicles,
    barriers or cones (an assumption: a car park holds none)."""
    road = world.road
    quota = class_quota(rng, nuscenes_object_count(road, plan))
    population, street = _start(world, plan, times_s, scene_span_s, ego_xy, ego_yaw)
    _add_lead_vehicles(rng, street, plan, population)
    bays = [(float(s), float(d), float(yaw), park.perpendicular) for park in world.car_parks
            for s, d, yaw in zip(*park.bays()) if street.near[0] <= s <= street.near[1]]
    occupancy = float(rng.uniform(*AISLE_OCCUPANCY))
    motorcycles = 0
    for index in rng.permutation(len(bays)):
        if motorcycles < quota["motorcycle"]:
            motorcycles += population.try_add(_in_bay(rng, street, *bays[index], name="motorcycle"))
        elif rng.random() < occupancy:
            population.try_add(_in_bay(rng, street, *bays[index]))
    density = (street.near[1] - street.near[0]) / 100.0

    def aisle_car() -> List[Actor]:
        lane, speed = int(rng.choice([0, -1])), float(rng.uniform(*AISLE_TRAFFIC_SPEED_M_S))
        return [_drive(rng, street, "car", lane, _lane_s(rng, street, lane, speed, float(rng.uniform(*street.near))))]

    def walkway_pedestrian() -> List[Actor]:
        park: CarPark = world.car_parks[int(rng.integers(len(world.car_parks)))]
        d = park.side * (park.row_d[-1] + 0.5 * BAY_DEPTH_M + float(rng.uniform(0.5, 2.5)))
        return _pedestrian_along(rng, street, d, float(rng.uniform(*street.near)))

    _fill(population, int(round(AISLE_TRAFFIC_PER_100M * density)), aisle_car)
    _fill(population, quota["bicycle"], lambda: _cyclist(rng, street))
    crossing = int(round(0.3 * quota["pedestrian"]))
    _fill(population, crossing, lambda: _crossing_pedestrian(rng, street))
    _fill(population, quota["pedestrian"] - crossing, walkway_pedestrian)
    return population.actors


POPULATIONS = {"default": populate, "nuscenes": populate_nuscenes_mix}
"""Who is where in a scene, by population name (``generate_world(population=...)``)."""

CONE_SPACING_M, ROW_BARRIER_SPACING_M = 3.0, 3.5
"""Spacing along the lane edge of a work zone's cones and of its barriers beyond the two across its ends [m]."""


def _add_work_zone(rng: np.random.Generator, street: _Street, span: Tuple[float, float], population: Population,
                   quota: Optional[Dict[str, int]] = None) -> bool:
    """A closed parking strip starting somewhere in ``span`` (arc lengths [m]): a construction vehicle, cones
    along the lane edge before and after it, barriers across both ends; True if it was placed.

    Without ``quota`` the strip is 18-26 m long with a cone every CONE_SPACING_M. With ``quota`` (the
    ``nuscenes`` population) it holds quota["construction_vehicle"] (at most 1) vehicles, quota["traffic_cone"]
    cones and quota["barrier"] barriers (up to 2 across the ends, the rest in a row along the lane edge after the
    cones), and is as long as they need."""
    road, times_s = street.road, street.times_s
    side = float(rng.choice([-1.0, 1.0]))
    length = float(rng.uniform(18.0, 26.0))
    with_vehicle = quota is None or quota["construction_vehicle"] > 0
    vehicle_size, vehicle_length = None, 0.0
    if quota is not None:
        row_barriers = max(0, quota["barrier"] - 2)
        if with_vehicle:  # the vehicle's stretch: its length and room for its and a cone's clearance
            vehicle_size = sample_size("construction_vehicle", rng)
            vehicle_length = float(vehicle_size[1]) + 2.5
        length = CONE_SPACING_M * quota["traffic_cone"] + ROW_BARRIER_SPACING_M * row_barriers + vehicle_length
    s0 = float(rng.uniform(span[0], max(span[0] + 1.0, span[1] - length)))
    edge_d = side * (road.lanes_per_direction * LANE_WIDTH_M + 0.3)
    parking_d = side * street.parking_d

    def place(name: str, s: float, d: float, behaviour: str, yaw_offset: float = 0.0,
              size: Optional[np.ndarray] = None) -> Actor:
        return _road_actor(name, road, times_s, np.full_like(times_s, s), np.full_like(times_s, d), behaviour,
                           rng, size, yaw_offset=yaw_offset)

    group = []
    if quota is None:
        vehicle_s = s0 + 0.5 * length
        vehicle = place("construction_vehicle", vehicle_s, side * (road.half_width - 1.25), "parked",
                        0.0 if side < 0 else np.pi)
        clear = 0.5 * float(vehicle.size_wlh[1]) + 1.0
        group = [vehicle]
        group += [place("traffic_cone", float(s), edge_d, "static") for s in np.arange(s0, s0 + length, CONE_SPACING_M)
                  if abs(s - vehicle_s) > clear]
        group += [place("barrier", float(s), parking_d, "static") for s in (s0 - 1.5, s0 + length + 1.5)]
        return population.try_add(group)
    if with_vehicle:
        group.append(place("construction_vehicle", s0 + 0.5 * vehicle_length, side * (road.half_width - 1.25),
                           "parked", 0.0 if side < 0 else np.pi, vehicle_size))
    s = s0 + vehicle_length
    for _ in range(quota["traffic_cone"]):
        group.append(place("traffic_cone", s, edge_d, "static"))
        s += CONE_SPACING_M
    for _ in range(row_barriers):  # lengthwise along the lane edge
        group.append(place("barrier", s + 0.5 * ROW_BARRIER_SPACING_M, edge_d + side * 0.1, "static", 0.5 * np.pi))
        s += ROW_BARRIER_SPACING_M
    group += [place("barrier", end_s, parking_d, "static")
              for end_s in (s0 - 1.5, s + 1.5)[:min(2, quota["barrier"])]]
    return population.try_add(group)
