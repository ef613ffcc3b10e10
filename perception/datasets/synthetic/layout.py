"""The static world of one scene: a multi-lane road (straight and curved pieces) in Frenet coordinates, the
sidewalks, buildings, walls and lamp posts along it, the ground, and the colours of their surfaces; in the
``nuscenes`` population also unannotated roadside structure (``add_roadside_structure``: street trees, sign posts,
bollards, hedges) and car parks beside the street (``add_car_parks``).

Frenet coordinates: ``s`` [m] arc length along the road's centre line, ``d`` [m] signed lateral offset (left
of the direction of travel positive). Traffic drives on the right: lanes of the +s direction have d < 0.
All geometry stands on the flat ground plane z = 0 of the global frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import List, Tuple

import numpy as np

from perception.datasets.lane_map import LaneCentres
from perception.geometry import frenet_coordinates, path_points

LANE_WIDTH_M = 3.5
PARKING_WIDTH_M = 2.5
SIDEWALK_WIDTH_M = 3.5
CURB_HEIGHT_M = 0.15
CENTRE_LINE_STEP_M = 0.5
"""Spacing of the sampled centre line (Road.to_frenet says how near its round trip with Road.to_global comes)."""
LANE_MAP_STEP_M = 2.0
"""Spacing of the lane centre lines written as the scene's lane map (a 2 m chord of the sharpest lane, on a 90 m
radius road less 7 m, lies within 6 mm of its arc)."""


class Material:
    """Surface kinds of static geometry (object surfaces are coloured per object)."""

    GROUND = 0
    SIDEWALK = 1
    BUILDING = 2
    WALL = 3
    POLE = 4
    TRUNK = 5
    FOLIAGE = 6
    SIGN = 7
    PAVEMENT = 8


MATERIAL_REFLECTIVITY = {Material.GROUND: 0.25, Material.SIDEWALK: 0.35, Material.BUILDING: 0.45,
                         Material.WALL: 0.4, Material.POLE: 0.6, Material.TRUNK: 0.3, Material.FOLIAGE: 0.5,
                         Material.SIGN: 0.9, Material.PAVEMENT: 0.25}
"""LiDAR reflectivity (0-1) of each static material; lane paint: ``lidar.PAINT_REFLECTIVITY``. Foliage is bright
in the near infrared, sign faces are retro-reflective sheeting like lane paint. Pavement (a car park's asphalt,
flush with the ground: drawn in its own colour, where the ground is textured from the road) reflects as the
ground does."""
POLE_GREY = (0.4, 0.4, 0.4)


@dataclass
class Road:
    """A road's sampled centre line (every CENTRE_LINE_STEP_M) and its cross-section.

    ``centre`` (N, 2) [m] global xy, ``heading`` (N,) [rad], ``arc_length`` (N,) [m] from 0.
    """

    centre: np.ndarray
    heading: np.ndarray
    arc_length: np.ndarray
    lanes_per_direction: int
    parking_width_m: float = PARKING_WIDTH_M
    """Width of the parking strip along each curb [m]; 0 along a car park's aisle, where bays line the lanes."""
    sidewalk_width_m: float = SIDEWALK_WIDTH_M
    """Width of the sidewalk beyond each curb [m]; 0 along a car park's aisle."""

    @classmethod
    def from_pieces(cls, start_xy: Tuple[float, float], start_heading: float,
                    pieces: List[Tuple[float, float]], lanes_per_direction: int,
                    parking_width_m: float = PARKING_WIDTH_M, sidewalk_width_m: float = SIDEWALK_WIDTH_M) -> "Road":
        """A centre line from ``pieces`` = [(length [m], curvature [1/m]), ...] (0 curvature: straight)."""
        curvature = np.concatenate([np.full(int(round(length / CENTRE_LINE_STEP_M)), k) for length, k in pieces])
        heading = start_heading + np.concatenate([[0.0], np.cumsum(curvature * CENTRE_LINE_STEP_M)])
        mid_heading = 0.5 * (heading[1:] + heading[:-1])
        steps = CENTRE_LINE_STEP_M * np.stack([np.cos(mid_heading), np.sin(mid_heading)], axis=1)
        centre = np.asarray(start_xy, dtype=np.float64) + np.concatenate([np.zeros((1, 2)), np.cumsum(steps, 0)])
        arc_length = CENTRE_LINE_STEP_M * np.arange(len(centre))
        return cls(centre, heading, arc_length, lanes_per_direction, parking_width_m, sidewalk_width_m)

    @property
    def length(self) -> float:
        return float(self.arc_length[-1])

    @property
    def half_width(self) -> float:
        """|d| of the road's edge (curb), parking strips included [m]."""
        return self.lanes_per_direction * LANE_WIDTH_M + self.parking_width_m

    @property
    def outer_half_width(self) -> float:
        """|d| of the sidewalks' outer edge [m] (the curb where there is no sidewalk)."""
        return self.half_width + self.sidewalk_width_m

    def lane_centre(self, lane: int) -> float:
        """d [m] of a lane's centre: lanes 0..n-1 drive towards +s (0 next to the centre line), -1..-n towards -s."""
        if lane >= 0:
            return -(lane + 0.5) * LANE_WIDTH_M
        return (-lane - 0.5) * LANE_WIDTH_M

    def lane_centres(self) -> LaneCentres:
        """The lane map: every lane's centre line every ~LANE_MAP_STEP_M, in its driving direction (the lanes of
        +s first, from the centre line out, then those of -s)."""
        s = np.linspace(0.0, self.length, int(np.ceil(self.length / LANE_MAP_STEP_M)) + 1)
        lines = []
        for lane in [*range(self.lanes_per_direction), *range(-1, -self.lanes_per_direction - 1, -1)]:
            xy, _ = self.to_global(s, np.full(len(s), self.lane_centre(lane)))
            lines.append(xy if lane >= 0 else xy[::-1])
        return LaneCentres(tuple(lines), LANE_WIDTH_M)

    def to_global(self, s: np.ndarray, d: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Frenet (s, d) arrays [m] -> global xy (..., 2) [m] and the road's heading [rad] at s. The centre line's
        point at s is geometry.path_points' on the sampled polyline, which goes on straight past either end along
        that end's heading (unmapped: traffic drives on off the map); d is taken along the normal of the heading
        interpolated between samples, so that a point at constant d moves smoothly (along path_points' heading,
        which turns at every sample, a point 5.25 m off a 90 m radius would jump 2.9 cm there)."""
        s, d = np.broadcast_arrays(np.asarray(s, dtype=np.float64), np.asarray(d, dtype=np.float64))
        centre, _ = path_points(self.centre, s.reshape(-1), self.heading[-1], self.heading[0])
        heading = np.interp(s, self.arc_length, self.heading)
        normal = np.stack([-np.sin(heading), np.cos(heading)], axis=-1)
        return centre.reshape(*s.shape, 2) + d[..., None] * normal, heading

    def along_offset_line(self, s: np.ndarray, d: float, distance_m: float) -> np.ndarray:
        """Arc length (K,) [m] of the points ``distance_m`` [m] further towards +s than arc lengths ``s`` (K,) [m],
        measured along the line at the constant offset ``d`` [m] (a lane's centre line): where the road turns by
        d(heading), that line is d * d(heading) shorter than the centre line, so its length from the road's start is
        s - d * (heading(s) - heading(0)); past either end it goes on straight."""
        s = np.asarray(s, dtype=np.float64)
        line = self.arc_length - d * (self.heading - self.heading[0])
        target = s - d * (np.interp(s, self.arc_length, self.heading) - self.heading[0]) + distance_m
        on_road = np.interp(target, line, self.arc_length)
        return np.where(target > line[-1], self.length + target - line[-1],
                        np.where(target < line[0], self.arc_length[0] + target - line[0], on_road))

    def to_frenet(self, xy: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Global xy (N, 2) [m] -> Frenet s, d (N,) [m]: the arc length of the point's nearest point on the sampled
        centre line (extended straight past either end) and its signed distance from it (geometry.
        frenet_coordinates). A point to_global put at (s, d) comes back within |d| x half the turn between two
        samples in s (to_global's normal turns between samples, the polyline's at them: at most 0.0028 rad on the
        sharpest road, 90 m radius, so 3 cm at |d| = 10.5 m) and under a millimetre in d."""
        along, across, _ = frenet_coordinates(self.centre, xy, self.heading[-1], self.heading[0])
        return along, across


@dataclass
class Prism:
    """A block bounded in Frenet coordinates: s in [s0, s1], d in [d0, d1], z in [z0, z1] [m] (follows curves)."""

    s0: float
    s1: float
    d0: float
    d1: float
    z0: float
    z1: float
    material: int
    colour: Tuple[float, float, float]


@dataclass
class Pole:
    """A vertical cylinder: base at global xy [m], radius and height [m]."""

    xy: Tuple[float, float]
    radius: float
    height: float
    material: int = Material.POLE
    colour: Tuple[float, float, float] = POLE_GREY


@dataclass
class Crown:
    """A tree crown: an ellipsoid centred at global ``centre`` (x, y, z) [m] with horizontal and vertical radii
    [m]."""

    centre: Tuple[float, float, float]
    radius: float
    half_height: float
    colour: Tuple[float, float, float]


@dataclass
class StaticWorld:
    """Everything that does not move in a scene."""

    road: Road
    prisms: List[Prism]
    poles: List[Pole]
    ground_extent: Tuple[float, float, float, float]
    """(x_min, y_min, x_max, y_max) [m] of the ground plane."""
    crowns: List[Crown] = field(default_factory=list)
    car_parks: List["CarPark"] = field(default_factory=list)


SECTION_TURN_RAD = 0.03
"""Prisms get a cross-section wherever the road has turned this much since the last one (chords then stay within
a few centimetres of the curve); straight stretches need none in between."""


def section_positions(road: Road, s0: float, s1: float) -> np.ndarray:
    """Arc lengths [m] of a prism's cross-sections over [s0, s1]: both ends and every SECTION_TURN_RAD of turn."""
    heading = np.interp(np.arange(s0, s1, CENTRE_LINE_STEP_M), road.arc_length, road.heading)
    kept = [s0]
    last_heading = heading[0] if len(heading) else 0.0
    for i, h in enumerate(heading):
        if abs(h - last_heading) >= SECTION_TURN_RAD:
            kept.append(s0 + i * CENTRE_LINE_STEP_M)
            last_heading = h
    if s1 - kept[-1] > 1e-6:
        kept.append(s1)
    return np.asarray(kept)


def prism_mesh(road: Road, prism: Prism) -> Tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float32 and triangles (T, 3) int32 of a Frenet prism's 4 long faces and 2 end caps
    (no bottom: it stands on the ground)."""
    s = section_positions(road, prism.s0, prism.s1)
    count = len(s)
    corners_d = np.array([prism.d0, prism.d1, prism.d1, prism.d0])
    corners_z = np.array([prism.z0, prism.z0, prism.z1, prism.z1])
    xy, _ = road.to_global(np.repeat(s, 4), np.tile(corners_d, count))
    vertices = np.concatenate([xy, np.tile(corners_z, count)[:, None]], axis=1).reshape(count, 4, 3)
    triangles = []
    # side faces between consecutive sections: outline edges (0-1 bottom, 1-2 side, 2-3 top, 3-0 side)
    for a, b in ((1, 2), (2, 3), (3, 0), (0, 1)):
        for i in range(count - 1):
            p, q, r, t = 4 * i + a, 4 * i + b, 4 * (i + 1) + b, 4 * (i + 1) + a
            triangles += [(p, q, r), (p, r, t)]
    last = 4 * (count - 1)
    triangles += [(0, 1, 2), (0, 2, 3), (last, last + 2, last + 1), (last, last + 3, last + 2)]
    return vertices.reshape(-1, 3).astype(np.float32), np.asarray(triangles, dtype=np.int32)


LAMP_POST_SPACING_M = 30.0


def _start_keeping(at_origin: Road, margin_m: float) -> np.ndarray:
    """Where to start the road ``at_origin`` (started at global (0, 0)) so that its outer edges keep at least
    ``margin_m`` from the global x and y axes [m] (2,)."""
    return margin_m + at_origin.outer_half_width - at_origin.centre.min(axis=0)


def build_static_world(rng: np.random.Generator, road_length_m: float, margin_m: float) -> StaticWorld:
    """A random road (straight, curve, straight) of about ``road_length_m`` whose outer edges keep ``margin_m``
    from the global x and y axes (x, y > 0; _start_keeping), with its sidewalks, buildings, walls and lamp posts."""
    lanes = int(rng.choice([2, 2, 3]))
    straight = rng.uniform(0.25, 0.45) * road_length_m
    radius = rng.uniform(90.0, 250.0)
    arc = min(rng.uniform(0.25, 0.4) * road_length_m, radius * np.deg2rad(70))
    curvature = float(rng.choice([-1.0, 1.0])) / radius
    pieces = [(straight, 0.0), (arc, curvature), (road_length_m - straight - arc, 0.0)]
    heading = float(rng.uniform(-np.pi, np.pi))
    start = _start_keeping(Road.from_pieces((0.0, 0.0), heading, pieces, lanes), margin_m)
    road = Road.from_pieces((float(start[0]), float(start[1])), heading, pieces, lanes)

    prisms: List[Prism] = []
    poles: List[Pole] = []
    curb, outer = road.half_width, road.outer_half_width
    for side in (-1.0, 1.0):
        d_in, d_out = sorted((side * curb, side * outer))
        prisms.append(Prism(0.0, road.length, d_in, d_out, -0.05, CURB_HEIGHT_M, Material.SIDEWALK, (0.62, 0.61, 0.58)))
        prisms += _frontage(rng, road, side, outer)
        poles += _lamp_posts(rng, road, side, curb + 0.5)
    return StaticWorld(road, prisms, poles, _ground_extent(road))


def _frontage(rng: np.random.Generator, road: Road, side: float, outer: float) -> List[Prism]:
    """Buildings (80 %) and walls one after another along ``side`` of the road, from |d| = ``outer`` [m] out."""
    prisms = []
    s = float(rng.uniform(0.0, 10.0))
    while s < road.length - 6.0:
        length = min(float(rng.uniform(10.0, 30.0)), road.length - s)
        setback = float(rng.uniform(1.0, 5.0))
        if rng.random() < 0.8:
            depth, height = float(rng.uniform(8.0, 18.0)), float(rng.uniform(4.0, 22.0))
            d_a, d_b = sorted((side * (outer + setback), side * (outer + setback + depth)))
            colour = tuple(float(c) for c in rng.uniform([0.45, 0.35, 0.3], [0.85, 0.8, 0.75]))
            prisms.append(Prism(s, s + length, d_a, d_b, 0.0, height, Material.BUILDING, colour))
        else:
            d_a, d_b = sorted((side * (outer + 0.3), side * (outer + 0.6)))
            prisms.append(Prism(s, s + length, d_a, d_b, 0.0, float(rng.uniform(1.5, 3.0)), Material.WALL,
                                (0.55, 0.5, 0.45)))
        s += length + float(rng.uniform(0.0, 8.0))
    return prisms


def _lamp_posts(rng: np.random.Generator, road: Road, side: float, offset_m: float) -> List[Pole]:
    """Lamp posts every LAMP_POST_SPACING_M along ``side`` at |d| = ``offset_m`` [m]."""
    poles = []
    for s_pole in np.arange(float(rng.uniform(5, 25)), road.length - 1.0, LAMP_POST_SPACING_M):
        xy, _ = road.to_global(s_pole, side * offset_m)
        poles.append(Pole((float(xy[0]), float(xy[1])), 0.12, 6.0))
    return poles


def _ground_extent(road: Road, margin_m: float = 300.0) -> Tuple[float, float, float, float]:
    lo = road.centre.min(axis=0) - margin_m
    hi = road.centre.max(axis=0) + margin_m
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


ROADSIDE_STRUCTURE = {"default": False, "nuscenes": True}
"""By population (scene.build_scene): does the street get car parks (``add_car_parks``) and unannotated roadside
structure (``add_roadside_structure``)?"""
TREE_SPACING_M = (7.6, 12.2)
"""Street trees 25-40 ft apart, species-specific (City of Los Angeles, Bureau of Street Services, "Tree Spacing
Guidelines"), and at least 20 ft (6.1 m) from a street light (same source): TREE_CLEARANCE_M."""
TREE_CLEARANCE_M = 6.1
TREE_CROWN_CLEARANCE_M = (4.27, 4.88)
"""Height of a street tree's lowest branches over the roadway (lanes and parking strip) [m], drawn per tree: pruned
to 14 ft (4.27 m) over the street and 8 ft over the sidewalk (City of Wadsworth, Ohio, Codified Ordinances, trimming
of trees, Ord. 06-084; codelibrary.amlegal.com/codes/wadsworth), 14 ft also in Germantown, Ohio (Codified Ordinances
903.01(b)), up to 16 ft (4.88 m) in Vermillion, South Dakota (Code of Ordinances 90.79). Every crown, an ellipsoid
about its trunk, reaches over the curb (its radius, TREE_CROWN_RADIUS_M, is more than the trunk's 0.75 m from it),
and is set so high that its underside at the curb line is at this height; over the sidewalk it hangs at most
r - sqrt(r^2 - 0.75^2) = 0.15 m lower (radius r = 2 m, half height r), far above the 8 ft (2.4 m) there. The
tallest box the classes draw (a trailer, 3.6 + 2 x 0.15 = 3.9 m) passes under every crown."""
TREE_CROWN_RADIUS_M = (2.0, 4.0)
"""A tree lawn of 3.5-6 ft carries a branch spread of 25-30 ft, so crowns of 4-8 m span, trunks 0.2-0.5 m thick
(TREE_TRUNK_RADIUS_M; J. T. Whaley, "General Considerations for Planting Street Trees")."""
TREE_TRUNK_RADIUS_M = (0.1, 0.25)
TREE_LINED_SHARE = 0.6
"""Share of street sides with trees (an assumption)."""
SIGN_POST_OFFSET_M, SIGN_BOTTOM_M, SIGN_POST_RADIUS_M = 0.6, 2.1, 0.03
"""A sign's edge at least 2 ft from the curb face and its bottom at least 7 ft up where people walk or park
(FHWA, Manual on Uniform Traffic Control Devices, 2009 edition, Section 2A.18-19); a 2-inch (60 mm) pipe post."""
SIGN_SPACING_M = (20.0, 60.0)
"""Gap between sign posts along one side (an assumption)."""
SIGN_COLOURS = ((0.9, 0.9, 0.88), (0.75, 0.12, 0.1), (0.1, 0.25, 0.65), (0.1, 0.45, 0.2), (0.9, 0.75, 0.1))
BOLLARD_OFFSET_M, BOLLARD_SPACING_M, BOLLARD_HEIGHT_M, BOLLARD_RADIUS_M = 0.45, 1.2, (0.75, 1.0), (0.057, 0.084)
"""At least 450 mm from the kerb face, 1.2 m apart to keep vehicles out, about 1 m high (Surrey County Council,
Healthy Streets design guide, 9.6 "Technical design specification for bollards"), 0.75-0.90 m high and at least
10 cm thick in pedestrian areas, 114-168 mm steel tube."""
BOLLARD_ROW_SPACING_M, BOLLARD_ROW_LENGTH = (40.0, 120.0), (3, 8)
"""Gap between rows of bollards along one side and bollards per row (an assumption)."""
HEDGE_DEPTH_M, HEDGE_HEIGHT_M, HEDGE_LENGTH_M = 0.8, (0.8, 1.6), (5.0, 20.0)
"""Hedges in front gardens just behind the sidewalk, where no wall and no building stands (an assumption)."""
HEDGE_SHARE = 0.5
FOLIAGE_GREENS = ((0.2, 0.35, 0.15), (0.25, 0.42, 0.18), (0.16, 0.3, 0.14))
BARK = (0.3, 0.24, 0.18)
STRUCTURE_GAP_M = 1.0
"""Least clearance along the curb between two pieces of roadside structure [m]."""


def add_roadside_structure(rng: np.random.Generator, world: StaticWorld) -> StaticWorld:
    """``world`` with unannotated roadside structure on both sides: street trees (trunk and crown) and sign posts
    in the furnishing zone next to the curb, rows of bollards at the kerb, and hedges just behind the sidewalk
    where the frontage is open (no wall, building or car park); sizes and spacings are the constants above.
    Nothing is annotated: it is static world for every sensor."""
    road = world.road
    curb, outer = road.half_width, road.outer_half_width
    prisms, poles, crowns = list(world.prisms), list(world.poles), list(world.crowns)
    for side in (-1.0, 1.0):
        taken: List[Tuple[float, float]] = []  # occupied (s0, s1) along this curb
        for pole in world.poles:
            s_pole, d_pole = road.to_frenet(np.asarray(pole.xy))
            if d_pole[0] * side > 0:
                taken.append((float(s_pole[0]) - pole.radius, float(s_pole[0]) + pole.radius))
        lamp_s = [0.5 * (a + b) for a, b in taken]

        def free(s0: float, s1: float) -> bool:
            return 0.0 < s0 and s1 < road.length and all(s1 + STRUCTURE_GAP_M < a or s0 - STRUCTURE_GAP_M > b
                                                          for a, b in taken)

        def post(s: float, offset: float, radius: float, height: float, material: int,
                 colour: Tuple[float, float, float]) -> None:
            xy, _ = road.to_global(s, side * (curb + offset))
            poles.append(Pole((float(xy[0]), float(xy[1])), radius, height, material, colour))
            taken.append((s - radius, s + radius))

        if rng.random() < TREE_LINED_SHARE:
            s = float(rng.uniform(0.0, TREE_SPACING_M[1]))
            while s < road.length:
                trunk = float(rng.uniform(*TREE_TRUNK_RADIUS_M))
                clearance = float(rng.uniform(*TREE_CROWN_CLEARANCE_M))
                offset = max(0.75, trunk + 0.3)
                # no crown reaches over a driving lane
                crown = min(float(rng.uniform(*TREE_CROWN_RADIUS_M)), offset + PARKING_WIDTH_M)
                half_height = float(rng.uniform(0.6, 1.0)) * crown
                # the ellipsoid's underside, offset [m] from its axis (the curb line), at the clearance
                centre_z = clearance + half_height * float(np.sqrt(1.0 - (offset / crown) ** 2))
                if free(s - trunk, s + trunk) and all(abs(s - lamp) >= TREE_CLEARANCE_M for lamp in lamp_s):
                    post(s, offset, trunk, centre_z, Material.TRUNK, BARK)
                    xy, _ = road.to_global(s, side * (curb + offset))
                    colour = FOLIAGE_GREENS[int(rng.integers(len(FOLIAGE_GREENS)))]
                    crowns.append(Crown((float(xy[0]), float(xy[1]), centre_z), crown, half_height, colour))
                s += float(rng.uniform(*TREE_SPACING_M))
        s = float(rng.uniform(0.0, SIGN_SPACING_M[1]))
        while s < road.length:
            if free(s - 0.3, s + 0.3):
                width, height = float(rng.choice([0.45, 0.6, 0.75])), float(rng.choice([0.45, 0.6, 0.75, 0.9]))
                offset = SIGN_POST_OFFSET_M + 0.5 * width
                post(s, offset, SIGN_POST_RADIUS_M, SIGN_BOTTOM_M + height, Material.POLE, POLE_GREY)
                d0, d1 = sorted((side * (curb + offset - 0.5 * width), side * (curb + offset + 0.5 * width)))
                colour = SIGN_COLOURS[int(rng.integers(len(SIGN_COLOURS)))]
                # the plate stands across the road direction, just behind the post, facing the traffic of its side
                s_plate = s - side * (SIGN_POST_RADIUS_M + 0.02)
                prisms.append(Prism(s_plate - 0.01, s_plate + 0.01, d0, d1, SIGN_BOTTOM_M, SIGN_BOTTOM_M + height,
                                    Material.SIGN, colour))
            s += float(rng.uniform(*SIGN_SPACING_M))
        s = float(rng.uniform(0.0, BOLLARD_ROW_SPACING_M[1]))
        while s < road.length:
            count = int(rng.integers(BOLLARD_ROW_LENGTH[0], BOLLARD_ROW_LENGTH[1] + 1))
            radius, height = float(rng.uniform(*BOLLARD_RADIUS_M)), float(rng.uniform(*BOLLARD_HEIGHT_M))
            row = s + BOLLARD_SPACING_M * np.arange(count)
            if free(row[0] - radius, row[-1] + radius):
                for s_bollard in row:
                    post(float(s_bollard), BOLLARD_OFFSET_M, radius, height, Material.POLE, POLE_GREY)
            s = float(row[-1]) + float(rng.uniform(*BOLLARD_ROW_SPACING_M))
        prisms += _hedges(rng, world, side, outer)
    return replace(world, prisms=prisms, poles=poles, crowns=crowns)


def _hedges(rng: np.random.Generator, world: StaticWorld, side: float, outer: float) -> List[Prism]:
    """Hedges on ``side`` in the first HEDGE_DEPTH_M behind the sidewalk (|d| from ``outer`` [m]) wherever no wall
    and no building stands there."""
    d0, d1 = sorted((side * (outer + 0.1), side * (outer + 0.1 + HEDGE_DEPTH_M)))
    blocked = [(p.s0, p.s1) for p in world.prisms if p.material in (Material.WALL, Material.BUILDING)
               and min(abs(p.d0), abs(p.d1)) < outer + 0.2 + HEDGE_DEPTH_M and p.d0 * side > 0]
    blocked += [(park.s0, park.s1) for park in world.car_parks if park.side == side]
    hedges = []
    s = float(rng.uniform(0.0, HEDGE_LENGTH_M[1]))
    while s < world.road.length:
        length = min(float(rng.uniform(*HEDGE_LENGTH_M)), world.road.length - s)
        if rng.random() < HEDGE_SHARE and all(s + length < a or s > b for a, b in blocked):
            hedges.append(Prism(s, s + length, d0, d1, 0.0, float(rng.uniform(*HEDGE_HEIGHT_M)), Material.FOLIAGE,
                                FOLIAGE_GREENS[int(rng.integers(len(FOLIAGE_GREENS)))]))
        s += length + float(rng.uniform(2.0, 10.0))
    return hedges


CAR_PARK_SHARE = 0.5
"""Share of street sides with a car park beside the ego's drive (an assumption)."""
CAR_PARK_LENGTH_M = (25.0, 60.0)
"""Length of a car park along the street (an assumption)."""
BAY_WIDTH_M, BAY_DEPTH_M, AISLE_WIDTH_M = 2.8, 5.0, 6.0
"""Parking bays and the aisle between two rows [m]. US standards: perpendicular stalls 9 x 18.5 ft (2.7 x 5.6 m;
US Army SDDC, Traffic Engineering Branch, "Stall Layout"), two-way aisles 20-24 ft (6.1-7.3 m; Snohomish County
Code 14.235.270, Table 11). 2.8 m wide so that a 2 m wide car passes the population's overlap check (footprints
grow by 0.4 m on every side); 5.0 m deep, shallower than the US stall (an assumption: it moves the rows' distance
from the street, not the cars)."""
BAY_ANGLES_RAD = (0.5 * np.pi, 0.5 * np.pi, np.pi / 3.0, 0.25 * np.pi)
"""Angle of a car park's bays to the curb, drawn per car park: perpendicular twice as often as 60 or 45 degrees
(an assumption)."""
CAR_PARK_SETBACK_M = 1.0
"""Gap between the sidewalk and a car park's first row of bays [m]."""


@dataclass(frozen=True)
class CarPark:
    """Rows of parking bays beyond the sidewalk on ``side`` (+1 left, -1 right) over arc lengths [s0, s1] [m], at
    ``bay_angle_rad`` to the curb (pi / 2: perpendicular); the bays' centres of each row lie at |d| = ``row_d``
    [m]."""

    side: float
    s0: float
    s1: float
    bay_angle_rad: float
    row_d: Tuple[float, ...]

    @property
    def perpendicular(self) -> bool:
        """Do its bays stand at right angles to the curb (a car may back in)?"""
        return self.bay_angle_rad == 0.5 * np.pi

    def bays(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every bay's centre s, d (N,) [m] and the yaw of its axis relative to the road's heading (N,) [rad],
        pointing away from the street: a car parked nose in faces that way. Angled bays lean with the traffic of
        their side of the road (+s on the right, -s on the left)."""
        spacing = BAY_WIDTH_M / np.sin(self.bay_angle_rad)
        s = np.arange(self.s0 + 0.5 * spacing, self.s1 - 0.5 * spacing + 1e-9, spacing)
        yaw = -self.bay_angle_rad if self.side < 0 else np.pi - self.bay_angle_rad
        return (np.tile(s, len(self.row_d)), self.side * np.repeat(self.row_d, len(s)),
                np.full(len(s) * len(self.row_d), yaw))


def add_car_parks(rng: np.random.Generator, world: StaticWorld, stretch: Tuple[float, float]) -> StaticWorld:
    """``world`` with a car park on each side of the street with probability CAR_PARK_SHARE, somewhere along
    ``stretch`` (s_min, s_max) [m]: one or two rows of bays (an aisle between two), on open ground where the
    buildings and walls of its stretch are taken away. The cars in it are the population's (traffic.py)."""
    road = world.road
    near_row = road.outer_half_width + CAR_PARK_SETBACK_M + 0.5 * BAY_DEPTH_M
    prisms, car_parks = list(world.prisms), []
    for side in (-1.0, 1.0):
        if rng.random() >= CAR_PARK_SHARE:
            continue
        length = float(rng.uniform(*CAR_PARK_LENGTH_M))
        s0 = float(rng.uniform(stretch[0], max(stretch[0], stretch[1] - length)))
        rows = int(rng.integers(1, 3))
        row_d = tuple(near_row + i * (BAY_DEPTH_M + AISLE_WIDTH_M) for i in range(rows))
        car_parks.append(CarPark(side, s0, s0 + length, float(rng.choice(BAY_ANGLES_RAD)), row_d))
        prisms = [p for p in prisms if not (p.material in (Material.BUILDING, Material.WALL) and p.d0 * side > 0
                                            and p.s0 < s0 + length and p.s1 > s0)]
    return replace(world, prisms=prisms, car_parks=car_parks)


AISLE_DRIVE_EVERY = {"default": 0, "nuscenes": 3}
"""By population (scene.build_scene): every how many scenes one drives down a car park's aisle
(``build_car_park_aisle``; scene index % n == n - 1; 0: none). An assumption: nuScenes drives mostly streets, and
the real scene at hand (scene-0916) drives down an aisle."""
PLANTING_STRIP_M = 3.0
"""A planting strip between two rows of bays back to back [m] (an assumption: scene-0916's real_finetune keyframes
show the cars of such rows about 8 m apart)."""
AISLE_ROWS_GAPS_M = (0.0, BAY_DEPTH_M + PLANTING_STRIP_M, 2 * BAY_DEPTH_M + PLANTING_STRIP_M + AISLE_WIDTH_M)
"""The rows of bays a car park beside an aisle can have, as the distance of each row's inner bay edge from the
aisle's edge [m]: a row along the aisle, a planting strip, a row back to back with it, a second aisle, a third
row. Each side of an aisle takes the first 1, 2 or 3 (``add_aisle_car_parks``)."""
WALKWAY_M = 3.0
"""A walkway behind the outermost row of an aisle's car parks, before the buildings [m] (an assumption)."""
CAR_PARK_SURFACE = (0.33, 0.33, 0.34)
"""Colour of a car park's asphalt (a little lighter than the road's, ``shading.ASPHALT``)."""


def drives_down_aisle(population: str, index: int) -> bool:
    """Does scene ``index`` of ``population`` drive down a car park's aisle (AISLE_DRIVE_EVERY)?"""
    every = AISLE_DRIVE_EVERY[population]
    return every > 0 and index % every == every - 1


def build_car_park_aisle(rng: np.random.Generator, road_length_m: float, margin_m: float) -> StaticWorld:
    """A straight two-way aisle of about ``road_length_m`` through a car park, its edges ``margin_m`` from the global
    axes (_start_keeping): one LANE_WIDTH_M lane a direction, no parking strip, no sidewalk; on each side asphalt level
    with the aisle as far as the rows of AISLE_ROWS_GAPS_M reach, a WALKWAY_M walkway, lamp posts, then buildings
    and walls. The bays come with ``add_aisle_car_parks``."""
    heading = float(rng.uniform(-np.pi, np.pi))
    pieces = [(road_length_m, 0.0)]
    start = _start_keeping(Road.from_pieces((0.0, 0.0), heading, pieces, 1, parking_width_m=0.0,
                                            sidewalk_width_m=0.0), margin_m)
    road = Road.from_pieces((float(start[0]), float(start[1])), heading, pieces, 1, parking_width_m=0.0,
                            sidewalk_width_m=0.0)
    far_edge = road.half_width + AISLE_ROWS_GAPS_M[-1] + BAY_DEPTH_M + WALKWAY_M
    prisms: List[Prism] = []
    poles: List[Pole] = []
    for side in (-1.0, 1.0):
        d_in, d_out = sorted((side * road.half_width, side * far_edge))
        prisms.append(Prism(0.0, road.length, d_in, d_out, 0.0, 0.02, Material.PAVEMENT, CAR_PARK_SURFACE))
        poles += _lamp_posts(rng, road, side, far_edge - 0.5)
        prisms += _frontage(rng, road, side, far_edge)
    return StaticWorld(road, prisms, poles, _ground_extent(road))


def add_aisle_car_parks(rng: np.random.Generator, world: StaticWorld, drive: Tuple[float, float]) -> StaticWorld:
    """``world`` (``build_car_park_aisle``'s) with a car park on each side of the aisle: the first 1-3 rows of
    AISLE_ROWS_GAPS_M (drawn per side), CAR_PARK_LENGTH_M long, its middle drawn within ``drive`` (the ego's
    first and last arc length [m]), bays perpendicular or angled as in ``add_car_parks``."""
    road = world.road
    car_parks = []
    for side in (-1.0, 1.0):
        rows = int(rng.integers(1, len(AISLE_ROWS_GAPS_M) + 1))
        length = float(rng.uniform(*CAR_PARK_LENGTH_M))
        s0 = float(np.clip(rng.uniform(*drive) - 0.5 * length, 0.0, road.length - length))
        row_d = tuple(road.half_width + gap + 0.5 * BAY_DEPTH_M for gap in AISLE_ROWS_GAPS_M[:rows])
        car_parks.append(CarPark(side, s0, s0 + length, float(rng.choice(BAY_ANGLES_RAD)), row_d))
    return replace(world, car_parks=car_parks)
