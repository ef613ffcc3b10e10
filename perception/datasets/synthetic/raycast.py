"""The world at one instant as a single triangle soup in an open3d ``RaycastingScene``, and ray casting on it.

A scene's triangles are packed once (``WorldGeometry``: the static world, then every object's mesh); a
``Snapshot`` poses the objects at one timestamp and builds the ray-casting scene. Every triangle carries its
owner (-1: static world, else the object's index), colour, LiDAR reflectivity and material, so a ray's hit tells
what it hit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np
import open3d as o3d
import open3d.core as o3c

from perception.datasets.synthetic.actors import Actor
from perception.datasets.synthetic.meshes import Mesh
from perception.datasets.synthetic.layout import Material, StaticWorld, MATERIAL_REFLECTIVITY, prism_mesh

OBJECT_MATERIAL = -1
"""``material`` of triangles that belong to objects."""
NO_HIT_MATERIAL = -2
"""``material`` of rays that hit nothing."""
MISSED_TRIANGLE = np.uint32(o3d.t.geometry.RaycastingScene.INVALID_ID)
"""Triangle index open3d reports for a ray that hits nothing."""


CROWN_RESOLUTION = 6
"""open3d sphere resolution of a tree crown (120 triangles)."""


def _solid(mesh: o3d.geometry.TriangleMesh, colour: Sequence[float], material: int) -> Mesh:
    """A legacy open3d mesh in one colour and one static material's LiDAR reflectivity."""
    triangles = np.asarray(mesh.triangles, dtype=np.int64)
    return Mesh(np.asarray(mesh.vertices), triangles, np.tile(np.asarray(colour, np.float32), (len(triangles), 1)),
                np.full(len(triangles), MATERIAL_REFLECTIVITY[material], np.float32))


@dataclass
class StaticGeometry:
    """The scene's static triangles in the global frame: vertices (V, 3) float32 [m], triangles (T, 3) int64,
    and per triangle colour (T, 3), reflectivity (T,), material (T,) int8."""

    vertices: np.ndarray
    triangles: np.ndarray
    colours: np.ndarray
    reflectivity: np.ndarray
    material: np.ndarray

    @classmethod
    def build(cls, world: StaticWorld) -> "StaticGeometry":
        x0, y0, x1, y1 = world.ground_extent
        parts: List[Mesh] = []
        materials: List[np.ndarray] = []
        ground = Mesh(np.array([[x0, y0, 0.0], [x1, y0, 0.0], [x1, y1, 0.0], [x0, y1, 0.0]]),
                      np.array([[0, 1, 2], [0, 2, 3]]), np.full((2, 3), 0.3, np.float32),
                      np.full(2, MATERIAL_REFLECTIVITY[Material.GROUND], np.float32))
        parts.append(ground)
        materials.append(np.full(2, Material.GROUND, np.int8))
        for prism in world.prisms:
            vertices, triangles = prism_mesh(world.road, prism)
            parts.append(Mesh(vertices.astype(np.float64), triangles.astype(np.int64),
                              np.tile(np.asarray(prism.colour, np.float32), (len(triangles), 1)),
                              np.full(len(triangles), MATERIAL_REFLECTIVITY[prism.material], np.float32)))
            materials.append(np.full(len(triangles), prism.material, np.int8))
        for pole in world.poles:
            mesh = o3d.geometry.TriangleMesh.create_cylinder(radius=pole.radius, height=pole.height, resolution=8)
            mesh.translate((pole.xy[0], pole.xy[1], 0.5 * pole.height))
            parts.append(_solid(mesh, pole.colour, pole.material))
            materials.append(np.full(len(parts[-1].triangles), pole.material, np.int8))
        for crown in world.crowns:
            mesh = o3d.geometry.TriangleMesh.create_sphere(radius=1.0, resolution=CROWN_RESOLUTION)
            mesh.vertices = o3d.utility.Vector3dVector(
                np.asarray(mesh.vertices) * [crown.radius, crown.radius, crown.half_height] + crown.centre)
            parts.append(_solid(mesh, crown.colour, Material.FOLIAGE))
            materials.append(np.full(len(parts[-1].triangles), Material.FOLIAGE, np.int8))
        merged = Mesh.concatenate(parts)
        return cls(merged.vertices.astype(np.float32), merged.triangles, merged.colours, merged.reflectivity,
                   np.concatenate(materials))


@dataclass
class Hits:
    """Ray casting results for N rays: ``distance`` (N,) [m] along the unit direction (inf: no hit), ``hit``
    (N,) bool, ``normal`` (N, 3) float32 unit normals facing the ray's origin, ``owner`` (N,) int (-1 static or no
    hit, else object index), ``colour`` (N, 3), ``reflectivity`` (N,), ``material`` (N,) (OBJECT_MATERIAL for
    objects, NO_HIT_MATERIAL for misses)."""

    distance: np.ndarray
    hit: np.ndarray
    normal: np.ndarray
    owner: np.ndarray
    colour: np.ndarray
    reflectivity: np.ndarray
    material: np.ndarray


class WorldGeometry:
    """A scene's triangles packed once: the static world first, then every object's mesh. Per triangle: owner
    (-1 static, else object index), colour, reflectivity, material. ``snapshot(t_s)`` only moves the objects'
    vertices to their poses at t_s (all tracks share one time grid)."""

    def __init__(self, static: StaticGeometry, actors: Sequence[Actor]) -> None:
        self.static_vertices = static.vertices
        counts = [len(a.mesh.vertices) for a in actors]
        offsets = len(static.vertices) + np.cumsum([0] + counts[:-1])
        self.local_vertices = np.concatenate([a.mesh.vertices for a in actors] + [np.zeros((0, 3))])
        self.vertex_actor = np.repeat(np.arange(len(actors)), counts)
        self.triangles = np.concatenate([static.triangles] + [a.mesh.triangles + o for a, o in zip(actors, offsets)])
        self.triangles_u32 = self.triangles.astype(np.uint32)
        self.owner = np.concatenate([np.full(len(static.triangles), -1, np.int32)]
                                    + [np.full(len(a.mesh.triangles), i, np.int32) for i, a in enumerate(actors)])
        self.colours = np.concatenate([static.colours] + [a.mesh.colours for a in actors])
        self.reflectivity = np.concatenate([static.reflectivity] + [a.mesh.reflectivity for a in actors])
        self.material = np.concatenate(
            [static.material] + [np.full(len(a.mesh.triangles), OBJECT_MATERIAL, np.int8) for a in actors])
        self.times_s = actors[0].track.times_s if actors else np.zeros(1)
        if any(len(a.track.times_s) != len(self.times_s) or np.any(a.track.times_s != self.times_s) for a in actors):
            raise ValueError("all object tracks of a scene must share one time grid")
        steps = len(self.times_s)
        self.track_xy = np.stack([a.track.xy for a in actors]) if actors else np.zeros((0, steps, 2))
        self.track_yaw = np.stack([a.track.yaw for a in actors]) if actors else np.zeros((0, steps))
        self.centre_z = np.array([0.5 * a.size_wlh[2] for a in actors])

    def poses(self, t_s: float) -> np.ndarray:
        """(A, 4) [x, y, z, yaw] box centres [m] and yaws [rad] of all objects at t_s (linear interpolation,
        clamped at the ends of the grid, as ``Track.pose``)."""
        times = self.times_s
        i = int(np.clip(np.searchsorted(times, t_s, side="right") - 1, 0, max(len(times) - 2, 0)))
        w = float(np.clip((t_s - times[i]) / (times[i + 1] - times[i]), 0.0, 1.0)) if len(times) > 1 else 0.0
        xy = (1.0 - w) * self.track_xy[:, i] + w * self.track_xy[:, min(i + 1, len(times) - 1)]
        yaw = (1.0 - w) * self.track_yaw[:, i] + w * self.track_yaw[:, min(i + 1, len(times) - 1)]
        return np.column_stack([xy, self.centre_z, yaw])

    def snapshot(self, t_s: float, num_threads: int = 0) -> "Snapshot":
        poses = self.poses(t_s)[self.vertex_actor]
        cos, sin = np.cos(poses[:, 3]), np.sin(poses[:, 3])
        local = self.local_vertices
        moved = np.column_stack([poses[:, 0] + cos * local[:, 0] - sin * local[:, 1],
                                 poses[:, 1] + sin * local[:, 0] + cos * local[:, 1],
                                 poses[:, 2] + local[:, 2]])
        return Snapshot(self, np.concatenate([self.static_vertices, moved.astype(np.float32)]), t_s, num_threads)


class Snapshot:
    """The world at scene time ``t_s`` [s]: ``vertices`` (V, 3) float32 of ``geometry``'s triangles, posed."""

    def __init__(self, geometry: WorldGeometry, vertices: np.ndarray, t_s: float, num_threads: int = 0) -> None:
        self.t_s = t_s
        self.num_threads = num_threads
        self.owner = geometry.owner
        self.colours = geometry.colours
        self.reflectivity = geometry.reflectivity
        self.material = geometry.material
        self.vertices = vertices
        self.triangles = geometry.triangles
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(o3c.Tensor(self.vertices), o3c.Tensor(geometry.triangles_u32))

    def triangle_normals(self) -> np.ndarray:
        """(T, 3) float32 unit normals of all triangles (orientation arbitrary)."""
        corners = self.vertices[self.triangles]
        normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        return (normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def _cast(self, origins: np.ndarray, directions: np.ndarray) -> dict:
        rays = np.empty((len(directions), 6), np.float32)
        rays[:, :3] = origins
        rays[:, 3:] = directions
        return self.scene.cast_rays(o3c.Tensor(rays), nthreads=self.num_threads)

    def cast_triangles(self, origins: np.ndarray, directions: np.ndarray):
        """Only distance (N,) float32 [m] (inf: no hit) and triangle index (N,) uint32 (MISSED_TRIANGLE: no
        hit) of rays from ``origins`` (N, 3) or (3,) along unit ``directions`` (N, 3)."""
        result = self._cast(origins, np.asarray(directions, dtype=np.float32))
        return result["t_hit"].numpy(), result["primitive_ids"].numpy()

    def owners(self, triangle: np.ndarray) -> np.ndarray:
        """Object index (-1: static world or no hit) of ``cast_triangles``' triangle indices, same shape."""
        hit = triangle != MISSED_TRIANGLE
        return np.where(hit, self.owner[np.where(hit, triangle, 0)], -1)

    def cast(self, origins: np.ndarray, directions: np.ndarray) -> Hits:
        """Casts rays from ``origins`` (N, 3) or (3,) along unit ``directions`` (N, 3), global frame [m]."""
        directions = np.asarray(directions, dtype=np.float32)
        result = self._cast(origins, directions)
        distance = result["t_hit"].numpy()
        hit = np.isfinite(distance)
        triangle = np.where(hit, result["primitive_ids"].numpy(), 0).astype(np.int64)
        normal = result["primitive_normals"].numpy()
        towards_origin = np.where(np.einsum("nd,nd->n", normal, directions) > 0, -1.0, 1.0).astype(np.float32)
        owner = np.where(hit, self.owner[triangle], -1)
        return Hits(distance.astype(np.float64), hit, normal * towards_origin[:, None], owner,
                    self.colours[triangle], self.reflectivity[triangle],
                    np.where(hit, self.material[triangle], NO_HIT_MATERIAL))
