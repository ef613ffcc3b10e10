"""Composite triangle meshes of the 10 detection classes (the world's only open3d primitives).

A mesh lives in the object's box frame (x along the length, y along the width, z up, origin at the box
centre) and always fits strictly inside the annotated box, shrunk by ``BOX_MARGIN_M`` on every side, so every
ray hit on an object lies inside its annotation before sensor noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np
import open3d as o3d

from perception.datasets.synthetic.class_specs import CLASS_SPECS

BOX_MARGIN_M = 0.03
"""Gap between a mesh and the faces of its annotated box [m]."""

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


def _wheels(width: float, radius: float, axles_x) -> List[Mesh]:
    """A tyre of ``radius``, 0.25 m wide, at each end of each axle (x in ``axles_x``), its centre 0.15 m inside the
    sides of a body ``width`` wide."""
    return [wheel_part((x, side * (0.5 * width - 0.15), radius), radius, 0.25) for x in axles_x for side in (-1, 1)]


def _car(l, w, h, paint, refl, rng) -> List[Mesh]:
    r = 0.33
    return _wheels(w, r, (0.32 * l, -0.32 * l)) + [
        box_part((0.0, 0.0, 0.25 + 0.22 * h), (l, w, 0.42 * h), paint, refl),
        box_part((-0.08 * l, 0.0, 0.25 + 0.62 * h), (0.5 * l, 0.88 * w, 0.38 * h), GLASS, 0.15),
        box_part((-0.08 * l, 0.0, 0.25 + 0.79 * h), (0.46 * l, 0.84 * w, 0.04 * h), paint, refl),
    ]


def _truck(l, w, h, paint, refl, rng) -> List[Mesh]:
    r = 0.5
    cab = 0.25 * l
    return _wheels(w, r, (0.36 * l, -0.2 * l, -0.38 * l)) + [
        box_part((0.5 * l - 0.5 * cab, 0.0, 0.6 + 0.3 * h), (cab, w, 0.6 * h), paint, refl),
        box_part((0.5 * l - 0.5 * cab + 0.05, 0.0, 0.6 + 0.5 * h), (cab, 0.9 * w, 0.2 * h), GLASS, 0.15),
        box_part((-0.5 * cab, 0.0, 0.5 + 0.5 * h), (l - cab - 0.3, w, h), (0.8, 0.8, 0.78), refl),
    ]


def _bus(l, w, h, paint, refl, rng) -> List[Mesh]:
    r = 0.5
    return _wheels(w, r, (0.33 * l, -0.3 * l)) + [
        box_part((0.0, 0.0, 0.3 + 0.25 * h), (l, w, 0.5 * h), paint, refl),
        box_part((0.0, 0.0, 0.3 + 0.6 * h), (0.98 * l, 0.97 * w, 0.22 * h), GLASS, 0.15),
        box_part((0.0, 0.0, 0.3 + 0.85 * h), (l, w, 0.3 * h), paint, refl),
    ]


def _trailer(l, w, h, paint, refl, rng) -> List[Mesh]:
    r = 0.5
    return _wheels(w, r, (-0.3 * l, -0.4 * l)) + [
        box_part((0.0, 0.0, 1.1 + 0.4 * h), (l, w, 0.8 * h), (0.85, 0.85, 0.82), refl),
        box_part((0.45 * l, 0.0, 0.6), (0.08 * l, 0.3, 0.8), DARK, 0.3),
    ]


def _construction(l, w, h, paint, refl, rng) -> List[Mesh]:
    yellow = (0.9, 0.7, 0.05)
    return _wheels(w, 0.6, (0.3 * l, -0.3 * l)) + [
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
