"""Rigid transforms, timestamped ego poses and sensor calibration (conventions: see perception.geometry)."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import numpy as np
from scipy.spatial.transform import Rotation

from perception.geometry.values import is_number, numeric_array, record_fields

QUATERNION_NORM_TOLERANCE = 1e-3
"""A calibration quaternion whose norm differs from 1 by more than this is rejected, not normalised."""


def _check_finite(values: np.ndarray, what: str, source: str) -> None:
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{source}: {what} contains NaN or Inf: {values.tolist()}")


def quaternion_to_matrix(quaternion_wxyz: Union[Sequence[float], np.ndarray], source: str = "quaternion"
                         ) -> np.ndarray:
    """(4,) nuScenes quaternion [w, x, y, z] -> (3, 3) rotation matrix; (N, 4) quaternions -> (N, 3, 3).

    Raises ValueError naming ``source`` (and the row of a batch) when a quaternion is not finite or not unit
    within ``QUATERNION_NORM_TOLERANCE``.
    """
    q = numeric_array(quaternion_wxyz, "rotation quaternion", source)
    if q.shape[-1:] != (4,) or q.ndim > 2:
        raise ValueError(f"{source}: a rotation quaternion needs 4 values [w, x, y, z], got shape {q.shape}")
    rows = q.reshape(-1, 4)
    w, x, y, z = rows.T
    norm = np.sqrt(w * w + x * x + y * y + z * z)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(rows).all(axis=1) | ~(np.abs(norm - 1.0) <= QUATERNION_NORM_TOLERANCE)
    if bad.any():
        row = int(np.argmax(bad))
        where = f" (row {row})" if q.ndim == 2 else ""
        _check_finite(rows[row], f"rotation quaternion{where}", source)
        raise ValueError(f"{source}: rotation quaternion{where} {rows[row].tolist()} is not unit (norm "
                         f"{norm[row]:.6f}, tolerance {QUATERNION_NORM_TOLERANCE})")
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    matrices = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                         2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                         2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1).reshape(-1, 3, 3)
    return matrices[0] if q.ndim == 1 else matrices


def yaw_from_matrix(rotation: np.ndarray) -> Union[float, np.ndarray]:
    """(3, 3) rotation -> yaw in radians: the angle of the rotated +x axis in the xy plane (devkit's quaternion_yaw);
    (N, 3, 3) rotations -> (N,) yaws."""
    yaw = np.arctan2(rotation[..., 1, 0], rotation[..., 0, 0])
    return float(yaw) if yaw.ndim == 0 else yaw


def rotation_about_z(angle_rad: float) -> np.ndarray:
    """(3, 3) counter-clockwise rotation about +z."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_quaternion_wxyz(yaw: float) -> List[float]:
    """The rotation by ``yaw`` [rad] about +z as a nuScenes quaternion [w, x, y, z]."""
    return [float(np.cos(0.5 * yaw)), 0.0, 0.0, float(np.sin(0.5 * yaw))]


@dataclass(frozen=True)
class RigidTransform:
    """A rigid transform ``T_dst_from_src`` as a (4, 4) float64 homogeneous matrix."""

    matrix: np.ndarray

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.shape != (4, 4):
            raise ValueError(f"a rigid transform is a 4x4 matrix, got shape {m.shape}")
        m = m.copy()
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)

    @classmethod
    def identity(cls) -> "RigidTransform":
        return cls(np.eye(4))

    @classmethod
    def from_rotation_translation(cls, rotation: np.ndarray, translation: Sequence[float]) -> "RigidTransform":
        """(3, 3) rotation and (3,) translation in metres."""
        m = np.eye(4)
        m[:3, :3] = rotation
        m[:3, 3] = translation
        return cls(m)

    @classmethod
    def from_nuscenes(
        cls, translation: Sequence[float], rotation_wxyz: Sequence[float], source: str = "transform"
    ) -> "RigidTransform":
        """From a nuScenes record's ``translation`` (3,) [m] and ``rotation`` (4,) [w, x, y, z]."""
        t = numeric_array(translation, "translation", source)
        if t.shape != (3,):
            raise ValueError(f"{source}: translation needs 3 values, got shape {t.shape}")
        _check_finite(t, "translation", source)
        return cls.from_rotation_translation(quaternion_to_matrix(rotation_wxyz, source), t)

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) rotation matrix."""
        return self.matrix[:3, :3]

    @property
    def translation(self) -> np.ndarray:
        """(3,) translation in metres."""
        return self.matrix[:3, 3]

    @property
    def rotation_wxyz(self) -> np.ndarray:
        """(4,) the rotation as a nuScenes quaternion [w, x, y, z] (the inverse of ``from_nuscenes``' rotation)."""
        return Rotation.from_matrix(self.rotation).as_quat()[[3, 0, 1, 2]]

    @property
    def yaw(self) -> float:
        return yaw_from_matrix(self.rotation)

    def __matmul__(self, other: "RigidTransform") -> "RigidTransform":
        return RigidTransform(self.matrix @ other.matrix)

    def inverse(self) -> "RigidTransform":
        r_t = self.rotation.T
        return RigidTransform.from_rotation_translation(r_t, -r_t @ self.translation)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) points in src [m] -> (N, 3) points in dst [m]."""
        points = np.asarray(points, dtype=np.float64)
        return points @ self.rotation.T + self.translation

    def apply_rotation(self, vectors: np.ndarray) -> np.ndarray:
        """(N, 3) free vectors (velocities, directions) in src -> dst: rotation only."""
        return np.asarray(vectors, dtype=np.float64) @ self.rotation.T


@dataclass(frozen=True)
class EgoPose:
    """The ego vehicle's pose at ``timestamp_us``: ``ego_to_global`` maps ego-frame points to the global frame."""

    timestamp_us: int
    ego_to_global: RigidTransform

    @classmethod
    def from_record(cls, record: dict) -> "EgoPose":
        """From a nuScenes ``ego_pose`` record."""
        source = f"ego_pose {record.get('token', '?')}"
        timestamp, translation, rotation = record_fields(record, ("timestamp", "translation", "rotation"), source)
        if not is_number(timestamp, numbers.Integral):
            raise ValueError(f"{source}: timestamp must be an integer [us], got {timestamp!r}")
        return cls(int(timestamp), RigidTransform.from_nuscenes(translation, rotation, source))


def interpolate_pose(before: EgoPose, after: EgoPose, timestamp_us: int) -> EgoPose:
    """Ego pose at ``timestamp_us``: translation linearly, rotation by slerp between two timestamped poses (the
    rotation from ``before`` to ``after``, scaled by the fraction of the time between them).

    Extrapolates linearly (and by the same angular rate) outside [before, after].
    """
    if after.timestamp_us == before.timestamp_us:
        if timestamp_us != before.timestamp_us:
            raise ValueError(f"cannot interpolate between two poses with the same timestamp {before.timestamp_us}")
        return before
    alpha = (timestamp_us - before.timestamp_us) / (after.timestamp_us - before.timestamp_us)
    translation = (1 - alpha) * before.ego_to_global.translation + alpha * after.ego_to_global.translation
    start = before.ego_to_global.rotation
    step = _rotation_vector(after.ego_to_global.rotation @ start.T)
    rotation = rotation_from_vector(alpha * step) @ start
    return EgoPose(int(timestamp_us), RigidTransform.from_rotation_translation(rotation, translation))


def _rotation_vector(rotation: np.ndarray) -> np.ndarray:
    """(3,) axis times angle [rad] of a (3, 3) rotation matrix: the closed form from its trace and antisymmetric
    part (10x cheaper than scipy's per call), scipy's within 8 degrees of a half turn, where the closed form loses
    precision."""
    cos_angle = (np.trace(rotation) - 1.0) / 2.0
    if cos_angle < -0.99:
        return Rotation.from_matrix(rotation).as_rotvec()
    twice_sin_axis = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0],
                               rotation[1, 0] - rotation[0, 1]])
    sin_angle = math.sqrt(twice_sin_axis.dot(twice_sin_axis)) / 2.0  # np.linalg.norm's arithmetic, without its overhead
    if sin_angle < 1e-12:
        return twice_sin_axis / 2.0
    return twice_sin_axis * (np.arctan2(sin_angle, cos_angle) / (2.0 * sin_angle))


def rotation_from_vector(rotation_vector: np.ndarray) -> np.ndarray:
    """The (3, 3) rotation about ``rotation_vector``'s axis by its norm [rad] (Rodrigues' formula)."""
    angle = math.sqrt(rotation_vector.dot(rotation_vector))  # np.linalg.norm's arithmetic, without its overhead
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = rotation_vector / angle
    cross = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * (cross @ cross)


@dataclass(frozen=True)
class SensorCalibration:
    """One sensor's calibration: its channel name, sensor -> ego transform, and camera intrinsics for cameras."""

    channel: str
    sensor_to_ego: RigidTransform
    intrinsics: Optional["CameraIntrinsics"] = None  # noqa: F821 (defined in perception.geometry.camera)

    @classmethod
    def from_record(cls, channel: str, record: dict, image_size: Optional[tuple] = None) -> "SensorCalibration":
        """From a nuScenes ``calibrated_sensor`` record; ``image_size`` is (width, height) for cameras."""
        from perception.geometry.camera import CameraIntrinsics

        sensor_to_ego = RigidTransform.from_nuscenes(*record_fields(record, ("translation", "rotation"), channel),
                                                     channel)
        intrinsics = None
        if record.get("camera_intrinsic"):
            width, height = image_size if image_size is not None else (None, None)
            intrinsics = CameraIntrinsics.from_matrix(record["camera_intrinsic"], channel, width, height)
        return cls(channel, sensor_to_ego, intrinsics)

    def sensor_to_global(self, pose: EgoPose) -> RigidTransform:
        """sensor -> ego -> global at the pose's timestamp."""
        return pose.ego_to_global @ self.sensor_to_ego

    def global_to_sensor(self, pose: EgoPose) -> RigidTransform:
        return self.sensor_to_global(pose).inverse()


def sensor_to_sensor(
    source: SensorCalibration, source_pose: EgoPose, target: SensorCalibration, target_pose: EgoPose
) -> RigidTransform:
    """The chain source sensor -> ego(t_source) -> global -> ego(t_target) -> target sensor."""
    return target.global_to_sensor(target_pose) @ source.sensor_to_global(source_pose)
