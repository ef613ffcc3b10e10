"""Objects of the 10 nuScenes detection classes: nuScenes-typical sizes, composite meshes, and their motion.

A mesh lives in the object's box frame (x along the length, y along the width, z up, origin at the box
centre) and always fits strictly inside the annotated box, shrunk by ``BOX_MARGIN_M`` on every side, so every
ray hit on an object lies inside its annotation before sensor noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import open3d as o3d

BOX_MARGIN_M = 0.03
"""Gap between a mesh and the faces of its annotated box [m]."""

STOPPED_SPEED_M_S = 0.3
"""Below this speed an object counts as not moving (attributes vehicle.stopped / pedestrian.standing)."""


@dataclass(frozen=True)
class ClassSpec:
    """What the generator knows about a detection class: the nuScenes category it is annotated as, mean size
    (width, length, height) [m] and its spread, radar cross-section [dBsm] and LiDAR reflectivity of its body."""

    category: str
    mean_wlh: Tuple[float, float, float]
    std_wlh: Tuple[float, float, float]
    rcs_dbsm: float
    reflectivity: float


CLASS_SPECS: Dict[str, ClassSpec] = {
    "car": ClassSpec("vehicle.car", (1.95, 4.6, 1.7), (0.1, 0.3, 0.12), 8.0, 0.55),
    "truck": ClassSpec("vehicle.truck", (2.5, 7.0, 3.0), (0.1, 0.8, 0.25), 15.0, 0.5),
    "bus": ClassSpec("vehicle.bus.rigid", (2.9, 11.2, 3.4), (0.05, 0.6, 0.1), 18.0, 0.5),
    "trailer": ClassSpec("vehicle.trailer", (2.9, 10.5, 3.6), (0.05, 1.2, 0.15), 15.0, 0.45),
    "construction_vehicle": ClassSpec("vehicle.construction", (2.8, 6.4, 3.2), (0.15, 0.6, 0.25), 15.0, 0.5),
    "pedestrian": ClassSpec("human.pedestrian.adult", (0.67, 0.72, 1.75), (0.06, 0.08, 0.08), -5.0, 0.3),
    "motorcycle": ClassSpec("vehicle.motorcycle", (0.8, 2.1, 1.5), (0.06, 0.12, 0.08), 3.0, 0.5),
    "bicycle": ClassSpec("vehicle.bicycle", (0.62, 1.75, 1.7), (0.05, 0.08, 0.08), 0.0, 0.4),
    "barrier": ClassSpec("movable_object.barrier", (2.5, 0.5, 1.0), (0.15, 0.05, 0.05), 2.0, 0.6),
    "traffic_cone": ClassSpec("movable_object.trafficcone", (0.42, 0.42, 1.05), (0.03, 0.03, 0.05), -8.0, 0.8),
}
"""Keyed by detection class name. Bicycles and motorcycles with a rider: the box holds the rider (nuScenes)."""

CATEGORY_INDEX = {
    "human.pedestrian.adult": 2, "movable_object.barrier": 9, "movable_object.trafficcone": 12,
    "vehicle.bicycle": 14, "vehicle.bus.rigid": 16, "vehicle.car": 17, "vehicle.construction": 18,
    "vehicle.motorcycle": 21, "vehicle.trailer": 22, "vehicle.truck": 23,
}
"""nuScenes' own category indices (the lidarseg numbering)."""

TYRE, GLASS, DARK = (0.06, 0.06, 0.06), (0.12, 0.16, 0.2), (0.15, 0.15, 0.15)
VEHICLE_PAINTS = ((0.75, 0.1, 0.1), (0.1, 0.25, 0.7), (0.85, 0.85, 0.85), (0.15, 0.15, 0.17), (0.6, 0.6, 0.62),
                  (0.85, 0.7, 0.1), (0.2, 0.5, 0.3))
CLOTHES = ((0.2, 0.25, 0.5), (0.6, 0.15, 0.15), (0.15, 0.15, 0.15), (0.8, 0.7, 0.4), (0.3, 0.55, 0.3))
SKIN = (0.85, 0.65, 0.5)


@dataclass
class Mesh:
    """Triangles with per-triangle colour (RGB in [0, 1]) and LiDAR reflectivity (0-1)."""

    vertices: np.ndarray  # (V, 3) float64 [m]
    triangles: np.ndarray  # (T, 3) int64
    colours: np.ndarray  # (T, 3) float32
    reflectivity: np.ndarray  # (T,) float32

    @staticmethod
    def concatenate(meshes: List["Mesh"]) -> "Mesh":
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
        return Mesh(np.concatenate([m.vertices for m in meshes]),
                    np.concatenate([m.triangles + o for m, o in zip(meshes, offsets)]),
                    np.concatenate([m.colours for m in meshes]),
                    np.concatenate([m.reflectivity for m in meshes]))


def _from_legacy(mesh: o3d.geometry.TriangleMesh, colour, reflectivity: float) -> Mesh:
    triangles = np.asarray(mesh.triangles, dtype=np.int64)
    return Mesh(np.asarray(mesh.vertices, dtype=np.float64), triangles,
                np.tile(np.asarray(colour, np.float32), (len(triangles), 1)),
                np.full(len(triangles), reflectivity, np.float32))


def box_part(centre, size, colour, reflectivity: float) -> Mesh:
    """An axis-aligned box of ``size`` (x, y, z) [m] centred at ``centre``."""
    mesh = o3d.geometry.TriangleMesh.create_box(*size)
    mesh.translate(np.asarray(centre, dtype=np.float64) - 0.5 * np.asarray(size, dtype=np.float64))
    return _from_legacy(mesh, colour, reflectivity)


def wheel_part(centre, radius: float, width: float) -> Mesh:
    """A tyre: a cylinder with its axis along y."""
    mesh = o3d.geometry.TriangleMesh.create_cylinder(radius=radius, height=width, resolution=8, split=1)
    mesh.rotate(o3d.geometry.get_rotation_matrix_from_xyz((np.pi / 2, 0.0, 0.0)), center=(0.0, 0.0, 0.0))
    mesh.translate(centre)
    return _from_legacy(mesh, TYRE, 0.08)


def sphere_part(centre, radius: float, colour, reflectivity: float) -> Mesh:
    mesh = o3d.geometry.TriangleMesh.create_sphere(radius=radius, resolution=4)
    mesh.translate(centre)
    return _from_legacy(mesh, colour, reflectivity)


def cone_part(base_centre, radius: float, height: float, colour, reflectivity: float) -> Mesh:
    mesh = o3d.geometry.TriangleMesh.create_cone(radius=radius, height=height, resolution=10, split=1)
    mesh.translate(base_centre)
    return _from_legacy(mesh, colour, reflectivity)


def _wheels(length: float, width: float, radius: float, axles_x) -> List[Mesh]:
    return [wheel_part((x, side * (0.5 * width - 0.15), radius), radius, 0.25) for x in axles_x for side in (-1, 1)]


def _car(l, w, h, paint, refl, rng) -> List[Mesh]:
    r = 0.33
    return _wheels(l, w, r, (0.32 * l, -0.32 * l)) + [
        box_part((0.0, 0.0, 0.25 + 0.22 * h), (l, w, 0.42 * h), paint, refl),
        box_part((-0.08 * l, 0.0, 0.25 + 0.62 * h), (0.5 * l, 0.88 * w, 0.38 * h), GLASS, 0.15),
        box_part((-0.08 * l, 0.0, 0.25 + 0.79 * h), (0.46 * l, 0.84 * w, 0.04 * h), paint, refl),
    ]


def _truck(l, w, h, paint, refl, rng) -> List[Mesh]:
    r = 0.5
    cab = 0.25 * l
    return _wheels(l, w, r, (0.36 * l, -0.2 * l, -0.38 * l)) + [
        box_part((0.5 * l - 0.5 * cab, 0.0, 0.6 + 0.3 * h), (cab, w, 0.6 * h), paint, refl),
        box_part((0.5 * l - 0.5 * cab + 0.05, 0.0, 0.6 + 0.5 * h), (cab, 0.9 * w, 0.2 * h), GLASS, 0.15),
        box_part((-0.5 * cab, 0.0, 0.5 + 0.5 * h), (l - cab - 0.3, w, h), (0.8, 0.8, 0.78), refl),
    ]


def _bus(l, w, h, paint, refl, rng) -> List[Mesh]:
    r = 0.5
    return _wheels(l, w, r, (0.33 * l, -0.3 * l)) + [
        box_part((0.0, 0.0, 0.3 + 0.25 * h), (l, w, 0.5 * h), paint, refl),
        box_part((0.0, 0.0, 0.3 + 0.6 * h), (0.98 * l, 0.97 * w, 0.22 * h), GLASS, 0.15),
        box_part((0.0, 0.0, 0.3 + 0.85 * h), (l, w, 0.3 * h), paint, refl),
    ]


def _trailer(l, w, h, paint, refl, rng) -> List[Mesh]:
    r = 0.5
    return _wheels(l, w, r, (-0.3 * l, -0.4 * l)) + [
        box_part((0.0, 0.0, 1.1 + 0.4 * h), (l, w, 0.8 * h), (0.85, 0.85, 0.82), refl),
        box_part((0.45 * l, 0.0, 0.6), (0.08 * l, 0.3, 0.8), DARK, 0.3),
    ]


def _construction(l, w, h, paint, refl, rng) -> List[Mesh]:
    yellow = (0.9, 0.7, 0.05)
    return _wheels(l, w, 0.6, (0.3 * l, -0.3 * l)) + [
        box_part((0.0, 0.0, 0.6 + 0.2 * h), (l, w, 0.4 * h), yellow, refl),
        box_part((-0.1 * l, 0.0, 0.6 + 0.6 * h), (0.3 * l, 0.8 * w, 0.4 * h), GLASS, 0.15),
        box_part((0.35 * l, 0.0, 0.8 + 0.55 * h), (0.3 * l, 0.2 * w, 0.15 * h), yellow, refl),
        box_part((0.45 * l, 0.0, 0.4 + 0.2 * h), (0.1 * l, 0.9 * w, 0.25 * h), DARK, 0.3),
    ]


def _person(l, w, h, clothes, refl, z0=0.0, seated=False) -> List[Mesh]:
    torso_h = 0.32 * h
    leg_h = 0.47 * h
    parts = []
    if not seated:
        parts += [box_part((0.0, side * 0.12 * w * 2, z0 + 0.5 * leg_h), (0.25 * l, 0.2 * w * 1.2, leg_h), DARK, 0.2)
                  for side in (-1, 1)]
    parts += [
        box_part((0.0, 0.0, z0 + leg_h + 0.5 * torso_h), (0.4 * l, 0.7 * w, torso_h), clothes, refl),
        sphere_part((0.0, 0.0, z0 + leg_h + torso_h + 0.11 * h), 0.1 * h, SKIN, 0.3),
    ]
    return parts


def _pedestrian(l, w, h, paint, refl, rng) -> List[Mesh]:
    return _person(l, w, h, CLOTHES[rng.integers(len(CLOTHES))], refl)


def _two_wheeler(l, w, h, paint, refl, rng, rider: bool, motor: bool) -> List[Mesh]:
    r = 0.33 if motor else 0.35
    parts = [wheel_part((side * (0.5 * l - r), 0.0, r), r, 0.08 if not motor else 0.14) for side in (-1, 1)]
    frame_h = 0.55 * (h if not rider else 0.65 * h)
    parts.append(box_part((0.0, 0.0, r + 0.25 * frame_h), (l - 2 * r, 0.3 * w if motor else 0.1, 0.5 * frame_h),
                          paint, refl))
    parts.append(box_part((0.5 * l - r, 0.0, r + 0.6 * frame_h), (0.08, w, 0.06), DARK, 0.3))  # handlebar
    if rider:
        rider_h = h - r
        parts += _person(0.6 * l, 0.8 * w, rider_h, CLOTHES[rng.integers(len(CLOTHES))], 0.3, z0=r, seated=True)
    return parts


def _barrier(l, w, h, paint, refl, rng) -> List[Mesh]:
    return [box_part((0.0, 0.0, 0.5 * h), (0.4 * l, w, 0.3 * h), (0.9, 0.9, 0.9), refl),
            box_part((0.0, 0.0, 0.82 * h), (0.3 * l, w, 0.3 * h), (0.85, 0.15, 0.1), refl),
            box_part((0.0, 0.0, 0.15 * h), (l, 0.6 * w, 0.3 * h), (0.7, 0.7, 0.7), refl)]


def _cone(l, w, h, paint, refl, rng) -> List[Mesh]:
    return [box_part((0.0, 0.0, 0.03), (l, w, 0.06), DARK, 0.2),
            cone_part((0.0, 0.0, 0.06), 0.42 * l, h - 0.06, (0.95, 0.45, 0.05), refl)]


MESH_BUILDERS: Dict[str, Callable] = {
    "car": _car, "truck": _truck, "bus": _bus, "trailer": _trailer, "construction_vehicle": _construction,
    "pedestrian": _pedestrian, "barrier": _barrier, "traffic_cone": _cone,
}


def build_mesh(detection_name: str, size_wlh: np.ndarray, rng: np.random.Generator,
               with_rider: Optional[bool] = None) -> Mesh:
    """A composite mesh of class ``detection_name`` fitted inside its box of ``size_wlh`` (width, length,
    height) [m] shrunk by BOX_MARGIN_M, in the box frame (origin at the box centre)."""
    width, length, height = (float(v) for v in size_wlh)
    paint = VEHICLE_PAINTS[rng.integers(len(VEHICLE_PAINTS))]
    reflectivity = CLASS_SPECS[detection_name].reflectivity
    if detection_name in ("bicycle", "motorcycle"):
        parts = _two_wheeler(length, width, height, paint, reflectivity, rng, bool(with_rider),
                             detection_name == "motorcycle")
    else:
        parts = MESH_BUILDERS[detection_name](length, width, height, paint, reflectivity, rng)
    mesh = Mesh.concatenate(parts)
    # fit the parts' bounding box to the shrunk annotation box, axis by axis
    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    target_half = 0.5 * np.array([length, width, height]) - BOX_MARGIN_M
    scale = 2.0 * target_half / np.maximum(hi - lo, 1e-6)
    mesh.vertices = (mesh.vertices - 0.5 * (lo + hi)) * scale
    return mesh


def sample_size(detection_name: str, rng: np.random.Generator, with_rider: Optional[bool] = None) -> np.ndarray:
    """(3,) (width, length, height) [m] drawn around the class mean (a cycle without rider is lower)."""
    spec = CLASS_SPECS[detection_name]
    size = np.asarray(spec.mean_wlh) + np.asarray(spec.std_wlh) * np.clip(rng.standard_normal(3), -2, 2)
    if detection_name in ("bicycle", "motorcycle") and not with_rider:
        size[2] *= 0.65
    return np.round(size, 3)


@dataclass
class Track:
    """An object's motion sampled on a uniform time grid: ``times_s`` (K,) [s], ``xy`` (K, 2) [m] global,
    ``yaw`` (K,) [rad] (unwrapped). Poses between samples are interpolated linearly."""

    times_s: np.ndarray
    xy: np.ndarray
    yaw: np.ndarray

    @classmethod
    def from_positions(cls, times_s: np.ndarray, xy: np.ndarray, rest_yaw: float) -> "Track":
        """Yaw follows the direction of motion; where the object stands still it keeps its last heading
        (``rest_yaw`` until it first moves)."""
        velocity = np.gradient(xy, times_s, axis=0)
        speed = np.linalg.norm(velocity, axis=1)
        moving = speed > 0.05
        yaw = np.full(len(times_s), np.nan)
        yaw[moving] = np.arctan2(velocity[moving, 1], velocity[moving, 0])
        if moving.any():
            first = int(np.argmax(moving))
            yaw[:first] = yaw[first]
            for i in range(first + 1, len(yaw)):  # forward-fill stops
                if np.isnan(yaw[i]):
                    yaw[i] = yaw[i - 1]
        else:
            yaw[:] = rest_yaw
        return cls(times_s, xy, np.unwrap(yaw))

    def pose(self, t_s: float) -> Tuple[np.ndarray, float]:
        """Global xy (2,) [m] and yaw [rad] at time t_s."""
        x = np.interp(t_s, self.times_s, self.xy[:, 0])
        y = np.interp(t_s, self.times_s, self.xy[:, 1])
        return np.array([x, y]), float(np.interp(t_s, self.times_s, self.yaw))

    def velocity(self, t_s: float, half_step_s: float = 0.01) -> np.ndarray:
        """Global (vx, vy) [m/s] at t_s by a centred difference."""
        after, _ = self.pose(t_s + half_step_s)
        before, _ = self.pose(t_s - half_step_s)
        return (after - before) / (2.0 * half_step_s)


@dataclass
class Actor:
    """One object of the world: its class, box size, mesh and motion.

    ``behaviour``: 'driving' (may stop: vehicle.stopped), 'parked', 'walking', 'standing' or 'static'.
    """

    detection_name: str
    size_wlh: np.ndarray
    mesh: Mesh
    track: Track
    behaviour: str
    with_rider: Optional[bool] = None

    @property
    def category(self) -> str:
        return CLASS_SPECS[self.detection_name].category

    def box_centre(self, t_s: float) -> Tuple[np.ndarray, float]:
        """Global box centre (3,) [m] and yaw [rad] at t_s (the box stands on the ground z = 0)."""
        xy, yaw = self.track.pose(t_s)
        return np.array([xy[0], xy[1], 0.5 * self.size_wlh[2]]), yaw

    def attribute(self, t_s: float) -> Optional[str]:
        """The nuScenes attribute at t_s, None for barriers and cones."""
        name = self.detection_name
        moving = float(np.linalg.norm(self.track.velocity(t_s))) > STOPPED_SPEED_M_S
        if name in ("barrier", "traffic_cone"):
            return None
        if name == "pedestrian":
            return "pedestrian.moving" if moving else "pedestrian.standing"
        if name in ("bicycle", "motorcycle"):
            return "cycle.with_rider" if self.with_rider else "cycle.without_rider"
        if moving:
            return "vehicle.moving"
        return "vehicle.parked" if self.behaviour == "parked" else "vehicle.stopped"
