"""``Boxes3D``: a batch of upright 3D boxes (conventions: see perception.geometry)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from nuscenes.utils.data_classes import Box
from pyquaternion import Quaternion

from perception.classes import ATTRIBUTES, DETECTION_CLASSES
from perception.geometry.transforms import RigidTransform, yaw_from_matrix

# Unit-box corner signs in the devkit's Box.corners() order: x (length), y (width), z (height).
_CORNER_SIGNS = np.array(
    [
        [1, 1, 1, 1, -1, -1, -1, -1],
        [1, -1, -1, 1, 1, -1, -1, 1],
        [1, 1, -1, -1, 1, 1, -1, -1],
    ],
    dtype=np.float64,
).T  # (8, 3)
_BEV_CORNERS = [0, 1, 5, 4]  # front-left, front-right, rear-right, rear-left (top face, seen from above)


def _column(values, n: int, width: Optional[int], dtype, default) -> np.ndarray:
    if values is None:
        shape = (n,) if width is None else (n, width)
        return np.full(shape, default, dtype=dtype)
    return np.asarray(values, dtype=dtype)


def _rows(name: str, values: np.ndarray, width: int) -> np.ndarray:
    """(N, width), or one row (width,), or nothing (0,) -> (N, width); another shape is an error naming it."""
    if values.ndim > 2 or (values.ndim == 2 and values.shape[1] != width) or (
            values.ndim < 2 and values.size not in (0, width)):
        raise ValueError(f"Boxes3D: {name} has shape {values.shape}, expected (N, {width})")
    return values.reshape(-1, width)


DETECTION_RECORD = ("label", "score", "center", "size", "yaw", "velocity", "attribute")
"""The keys of one box as JSON (Boxes3D.to_json): label (a DETECTION_CLASSES name), score, center [x, y, z] m, size
[width, length, height] m, yaw rad, velocity [vx, vy] m/s (in the boxes' frame, perception.geometry's
conventions), attribute (an ATTRIBUTES name or null). Read back by Boxes3D.from_json to the same values."""


@dataclass(frozen=True)
class Boxes3D:
    """N upright boxes in one frame.

    centers (N, 3) [x, y, z] m, box centre; sizes (N, 3) [width, length, height] m; yaws (N,) rad about +z;
    velocities (N, 2) [vx, vy] m/s; labels (N,) int index into DETECTION_CLASSES; scores (N,) in [0, 1];
    attributes (N,) int index into perception.classes.ATTRIBUTES, -1 for none.
    """

    centers: np.ndarray
    sizes: np.ndarray
    yaws: np.ndarray
    velocities: np.ndarray = field(default=None)
    labels: np.ndarray = field(default=None)
    scores: np.ndarray = field(default=None)
    attributes: np.ndarray = field(default=None)

    def __post_init__(self) -> None:
        centers = _rows("centers", np.asarray(self.centers, dtype=np.float64), 3)
        n = len(centers)
        columns = {
            "centers": centers,
            "sizes": _rows("sizes", np.asarray(self.sizes, dtype=np.float64), 3),
            "yaws": np.asarray(self.yaws, dtype=np.float64).reshape(-1),
            "velocities": _rows("velocities", _column(self.velocities, n, 2, np.float64, 0.0), 2),
            "labels": _column(self.labels, n, None, np.int64, 0).reshape(-1),
            "scores": _column(self.scores, n, None, np.float64, 1.0).reshape(-1),
            "attributes": _column(self.attributes, n, None, np.int64, -1).reshape(-1),
        }
        for name, value in columns.items():
            if len(value) != n:
                raise ValueError(f"Boxes3D: {name} has {len(value)} rows, centers has {n}")
            object.__setattr__(self, name, value)

    @classmethod
    def empty(cls) -> "Boxes3D":
        return cls(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))

    @classmethod
    def concatenate(cls, parts: Sequence["Boxes3D"]) -> "Boxes3D":
        if not parts:
            return cls.empty()
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in _FIELDS})

    def __len__(self) -> int:
        return len(self.centers)

    def __getitem__(self, index) -> "Boxes3D":
        """Rows selected by an integer array, a slice or a boolean mask."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        return Boxes3D(**{name: getattr(self, name)[index] for name in _FIELDS})

    def corners(self) -> np.ndarray:
        """(N, 8, 3) corners in the devkit's Box.corners() order (first four: the front face, x = +length/2)."""
        half = self.sizes[:, [1, 0, 2]] / 2.0  # (N, 3) [length, width, height] / 2
        local = _CORNER_SIGNS[None] * half[:, None, :]  # (N, 8, 3)
        cos, sin = np.cos(self.yaws), np.sin(self.yaws)
        x = cos[:, None] * local[..., 0] - sin[:, None] * local[..., 1]
        y = sin[:, None] * local[..., 0] + cos[:, None] * local[..., 1]
        return np.stack([x, y, local[..., 2]], axis=-1) + self.centers[:, None, :]

    def bev_corners(self) -> np.ndarray:
        """(N, 4, 2) footprint corners [x, y]: front-left, front-right, rear-right, rear-left (counter-clockwise
        order reversed, i.e. clockwise seen from above)."""
        return self.corners()[:, _BEV_CORNERS, :2]

    def contains(self, points: np.ndarray, time_lags_s: Optional[np.ndarray] = None) -> np.ndarray:
        """(N_boxes, N_points) bool: box k holds point i of ``points`` (N_points, C>=3) [x, y, z, ...] m, in the
        boxes' frame. Inside means |x| <= length / 2, |y| <= width / 2, |z| <= height / 2 in the box frame, faces
        included (as nuscenes-devkit's ``points_in_box``); float64; non-finite points lie in no box. With
        ``time_lags_s`` (N_points,) [s], point i is tested against each box where it was time_lags_s[i] earlier
        (its centre moved back by its velocity times the lag; a velocity not finite counts as standing): a moving
        object's points of earlier sweeps."""
        xyz = np.asarray(points)[:, :3].astype(np.float64)
        dx = xyz[None, :, 0] - self.centers[:, None, 0]
        dy = xyz[None, :, 1] - self.centers[:, None, 1]
        if time_lags_s is not None:
            lags = np.asarray(time_lags_s, dtype=np.float64)[None, :]
            velocities = np.nan_to_num(self.velocities, nan=0.0, posinf=0.0, neginf=0.0)
            dx = dx + velocities[:, None, 0] * lags
            dy = dy + velocities[:, None, 1] * lags
        cos, sin = np.cos(self.yaws)[:, None], np.sin(self.yaws)[:, None]
        with np.errstate(invalid="ignore"):
            along_length = dx * cos + dy * sin
            along_width = dy * cos - dx * sin
            return ((np.abs(along_length) <= self.sizes[:, None, 1] / 2)
                    & (np.abs(along_width) <= self.sizes[:, None, 0] / 2)
                    & (np.abs(xyz[None, :, 2] - self.centers[:, None, 2]) <= self.sizes[:, None, 2] / 2))

    def transform(self, transform: RigidTransform) -> "Boxes3D":
        """Boxes in the frame ``transform`` maps to. Yaw follows the rotated heading; velocities are rotated
        (not translated). Assumes the rotation keeps boxes nearly upright (roll and pitch are dropped). The yaw is
        libm's atan2 box by box: on one host numpy's vectorised arctan2 gave the same boxes yaws differing in the last
        bit from call to call, and a resumed evaluation's submission with them (not seen on another host)."""
        heading = np.stack([np.cos(self.yaws), np.sin(self.yaws), np.zeros(len(self))], axis=1)
        heading = transform.apply_rotation(heading)
        velocity3 = np.concatenate([self.velocities, np.zeros((len(self), 1))], axis=1)
        return replace(
            self,
            centers=transform.apply(self.centers),
            yaws=np.array([math.atan2(y, x) for x, y in heading[:, :2].tolist()], dtype=np.float64),
            velocities=transform.apply_rotation(velocity3)[:, :2],
        )

    def to_devkit(self) -> List[Box]:
        """Devkit ``Box`` objects (names from DETECTION_CLASSES, velocity with vz = 0)."""
        return [
            Box(
                center=self.centers[i].tolist(),
                size=self.sizes[i].tolist(),
                orientation=Quaternion(axis=[0.0, 0.0, 1.0], radians=float(self.yaws[i])),
                label=int(self.labels[i]),
                score=float(self.scores[i]),
                velocity=(float(self.velocities[i, 0]), float(self.velocities[i, 1]), 0.0),
                name=DETECTION_CLASSES[int(self.labels[i])],
            )
            for i in range(len(self))
        ]

    def to_json(self) -> List[Dict[str, Any]]:
        """DETECTION_RECORD dicts, one a box."""
        return [{
            "label": DETECTION_CLASSES[int(self.labels[i])],
            "score": float(self.scores[i]),
            "center": self.centers[i].tolist(),
            "size": self.sizes[i].tolist(),
            "yaw": float(self.yaws[i]),
            "velocity": self.velocities[i].tolist(),
            "attribute": ATTRIBUTES[int(self.attributes[i])] if self.attributes[i] >= 0 else None,
        } for i in range(len(self))]

    @classmethod
    def from_json(cls, items: Sequence[Dict[str, Any]]) -> "Boxes3D":
        """DETECTION_RECORD dicts -> Boxes3D (the inverse of to_json)."""
        if not items:
            return cls.empty()
        return cls(
            centers=[item["center"] for item in items], sizes=[item["size"] for item in items],
            yaws=[item["yaw"] for item in items], velocities=[item["velocity"] for item in items],
            labels=[DETECTION_CLASSES.index(item["label"]) for item in items],
            scores=[item["score"] for item in items],
            attributes=[-1 if item["attribute"] is None else ATTRIBUTES.index(item["attribute"]) for item in items],
        )

    @classmethod
    def from_devkit(cls, boxes: Sequence[Box], labels: Optional[Sequence[int]] = None) -> "Boxes3D":
        """From devkit ``Box`` objects. ``labels`` default to each box's ``name`` looked up in DETECTION_CLASSES.
        NaN velocities (the devkit's 'unknown') become 0; scores NaN become 1."""
        if not boxes:
            return cls.empty()
        if labels is None:
            labels = [DETECTION_CLASSES.index(b.name) for b in boxes]
        velocities = np.array([np.asarray(b.velocity, dtype=np.float64)[:2] for b in boxes])
        scores = np.array([b.score for b in boxes], dtype=np.float64)
        return cls(
            centers=np.array([b.center for b in boxes]),
            sizes=np.array([b.wlh for b in boxes]),
            yaws=np.array([yaw_from_matrix(b.orientation.rotation_matrix) for b in boxes]),
            velocities=np.nan_to_num(velocities, nan=0.0),
            labels=np.asarray(labels, dtype=np.int64),
            scores=np.where(np.isnan(scores), 1.0, scores),
        )


_FIELDS = ("centers", "sizes", "yaws", "velocities", "labels", "scores", "attributes")


def footprints_overlap(polygon: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(4, 2) convex footprint, or (M, 4, 2) one per pair, and (M, 4, 2) convex footprints (corners in order, e.g.
    Boxes3D.bev_corners) -> (M,) bool: the interiors overlap (separating-axis test over every edge normal; touching
    edges do not count)."""
    others = np.asarray(others, dtype=np.float64).reshape(-1, 4, 2)
    polygon = np.broadcast_to(np.asarray(polygon, dtype=np.float64), others.shape)
    separated = np.zeros(len(others), dtype=bool)
    for shape in (polygon, others):
        edges = np.roll(shape, -1, axis=1) - shape  # (M, 4, 2)
        normals = np.stack([-edges[..., 1], edges[..., 0]], axis=-1)  # (M, 4, 2)
        # (M, 4 corners, 4 axes): each corner on each axis (a product sum per pair; einsum's is 10x slower here)
        projected_a = polygon[:, :, None, 0] * normals[:, None, :, 0] + polygon[:, :, None, 1] * normals[:, None, :, 1]
        projected_b = others[:, :, None, 0] * normals[:, None, :, 0] + others[:, :, None, 1] * normals[:, None, :, 1]
        gap = np.maximum(projected_a.min(1) - projected_b.max(1), projected_b.min(1) - projected_a.max(1))
        separated |= np.any(gap >= 0, axis=1)
    return ~separated
