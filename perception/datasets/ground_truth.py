"""Ground truth of a keyframe in its ego frame (evaluation reads the devkit's own: load_gt, filter_eval_boxes).

Boxes come from the ``sample_annotation`` records exactly as nuscenes-devkit reads them (``NuScenes.get_box``:
global frame), moved into the ego frame of the keyframe's LiDAR timestamp; categories map to the 10 detection
classes with ``category_to_detection_name`` (others are dropped, as the devkit's ``load_gt`` does), velocities are
``NuScenes.box_velocity`` with vz set to 0, rotated into the ego frame (NaN, the devkit's 'unknown', becomes 0).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Tuple

import numpy as np
from nuscenes.nuscenes import NuScenes

from perception.classes import ATTRIBUTES, DETECTION_CLASSES, category_to_detection_name
from perception.geometry import Boxes3D, RigidTransform, yaw_from_matrix
from perception.geometry.transforms import QUATERNION_NORM_TOLERANCE, quaternion_to_matrix
from perception.geometry.values import is_number


@dataclass(frozen=True)
class GroundTruth:
    """A keyframe's annotations in its ego frame.

    ``boxes`` (K) with labels (DETECTION_CLASSES), attributes (ATTRIBUTES, -1 for none) and velocities;
    ``num_lidar_points`` / ``num_radar_points`` (K,) int64 the annotations' point counts; ``tokens`` the
    sample_annotation tokens.
    """

    boxes: Boxes3D
    num_lidar_points: np.ndarray
    num_radar_points: np.ndarray
    tokens: Tuple[str, ...]


def _boxes_in_ego(records: list, global_to_ego: RigidTransform, velocities_global: np.ndarray,
                  labels: np.ndarray, attributes: np.ndarray) -> Boxes3D:
    """Annotation records (global frame) -> Boxes3D in the ego frame. Yaw is taken from the full rotation
    moved into the ego frame (as the devkit's Box.rotate does), not from the global yaw."""
    if not records:
        return Boxes3D.empty()
    quaternions_wxyz = np.array([r["rotation"] for r in records], dtype=np.float64)
    translations = np.array([r["translation"] for r in records], dtype=np.float64)
    sizes = np.array([r["size"] for r in records], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        valid = (np.isfinite(translations).all(axis=1) & np.isfinite(sizes).all(axis=1) & (sizes > 0).all(axis=1)
                 & (np.abs(np.linalg.norm(quaternions_wxyz, axis=1) - 1.0) <= QUATERNION_NORM_TOLERANCE))
    if not valid.all():
        record = records[int(np.argmin(valid))]
        raise ValueError(f"sample_annotation {record.get('token')}: translation {record['translation']}, size "
                         f"{record['size']}, rotation {record['rotation']}: the translation and size must be finite, "
                         f"the size > 0 and the rotation a unit quaternion (within {QUATERNION_NORM_TOLERANCE})")
    rotations = global_to_ego.rotation @ quaternion_to_matrix(quaternions_wxyz, "sample_annotation")
    # The devkit scores (vx, vy) only: vz is dropped before the rotation (as mmdetection3d does), so that a
    # sloped road's vertical speed does not leak into the ego-frame (vx, vy) and back.
    # An unknown velocity is 0: NaN (the devkit's for an annotation without neighbours) or not finite (neighbours
    # stamped alike, which the scene walks refuse: perception.datasets.splits).
    horizontal = np.where(np.isfinite(velocities_global), velocities_global, 0.0) * np.array([1.0, 1.0, 0.0])
    velocities = global_to_ego.apply_rotation(horizontal)
    return Boxes3D(
        centers=global_to_ego.apply(translations),
        sizes=sizes,
        yaws=yaw_from_matrix(rotations),
        velocities=velocities[:, :2],
        labels=labels,
        attributes=attributes,
    )


def sample_ground_truth(nusc: NuScenes, sample_token: str, ego_to_global: RigidTransform) -> GroundTruth:
    """The sample's annotations of the 10 detection classes, in the ego frame given by ``ego_to_global``.

    Raises ValueError naming the annotation when it carries more than one attribute (the devkit's load_gt
    rejects those too) or one that is not in the attribute table or not a detection attribute, a translation, size
    or rotation that is not a list of 3, 3 or 4 numbers, or point counts that are not whole numbers.
    """
    attribute_names = {a["token"]: a["name"] for a in nusc.attribute}
    global_to_ego = ego_to_global.inverse()
    kept, labels, attributes, velocities = [], [], [], []
    for token in nusc.get("sample", sample_token)["anns"]:
        record = nusc.get("sample_annotation", token)
        name = category_to_detection_name(record["category_name"])
        if name is None:
            continue
        if len(record["attribute_tokens"]) > 1:
            raise ValueError(f"sample_annotation {token}: {len(record['attribute_tokens'])} attributes, "
                             "the detection task allows at most one")
        for field, length in (("translation", 3), ("size", 3), ("rotation", 4)):
            value = record.get(field)
            if (not isinstance(value, (list, tuple)) or len(value) != length
                    or not all(is_number(v) for v in value)):
                raise ValueError(f"sample_annotation {token}: {field} {value!r} is not a list of {length} numbers")
        for field in ("num_lidar_pts", "num_radar_pts"):
            if not is_number(record.get(field), numbers.Integral):
                raise ValueError(f"sample_annotation {token}: {field} {record.get(field)!r} is not a whole number")
        attribute = [attribute_names.get(t, t) for t in record["attribute_tokens"]]
        if attribute and attribute[0] not in ATTRIBUTES:
            raise ValueError(f"sample_annotation {token}: attribute {attribute[0]!r} is not one of the attribute "
                             f"table's detection attributes ({', '.join(ATTRIBUTES)})")
        kept.append(record)
        labels.append(DETECTION_CLASSES.index(name))
        attributes.append(ATTRIBUTES.index(attribute[0]) if attribute else -1)
        velocities.append(nusc.box_velocity(token))
    velocities = np.array(velocities, dtype=np.float64).reshape(-1, 3)
    boxes = _boxes_in_ego(kept, global_to_ego, velocities, np.array(labels, np.int64), np.array(attributes, np.int64))
    return GroundTruth(
        boxes=boxes,
        num_lidar_points=np.array([r["num_lidar_pts"] for r in kept], dtype=np.int64),
        num_radar_points=np.array([r["num_radar_pts"] for r in kept], dtype=np.int64),
        tokens=tuple(r["token"] for r in kept),
    )
