"""Boxes3D in the ego frame -> the nuScenes detection submission (global frame), and its format checks.

The submission is the JSON the nuScenes detection challenge takes and nuscenes-devkit's ``DetectionEval`` reads::

    {"meta": {"use_camera": bool, "use_lidar": bool, "use_radar": bool, "use_map": bool, "use_external": bool},
     "results": {sample_token: [{"sample_token", "translation" [x, y, z] m global, "size" [w, l, h] m,
                                  "rotation" [w, x, y, z] quaternion global, "velocity" [vx, vy] m/s global,
                                  "detection_name", "detection_score", "attribute_name"}, ...]}}

Every sample of the evaluated split needs an entry, an empty list where nothing was detected.
"""
from __future__ import annotations

import json
import math
import os
from typing import Dict, Iterable, List, Mapping, Sequence

import numpy as np
from nuscenes.eval.common.data_classes import EvalBoxes
from nuscenes.eval.detection.data_classes import DetectionBox
from nuscenes.eval.detection.utils import detection_name_to_rel_attributes

from perception.classes import ATTRIBUTES, DETECTION_CLASSES
from perception.geometry import Boxes3D, EgoPose, yaw_quaternion_wxyz
from perception.sensors import SENSOR_GROUPS

MAX_BOXES_PER_SAMPLE = 500
"""The devkit's limit (detection_cvpr_2019 ``max_boxes_per_sample``): a sample with more boxes is rejected."""

DEFAULT_ATTRIBUTES: Dict[str, str] = {
    "car": "vehicle.parked",
    "truck": "vehicle.parked",
    "bus": "vehicle.moving",
    "trailer": "vehicle.parked",
    "construction_vehicle": "vehicle.parked",
    "pedestrian": "pedestrian.moving",
    "motorcycle": "cycle.without_rider",
    "bicycle": "cycle.without_rider",
    "traffic_cone": "",
    "barrier": "",
}
"""Attribute written for a box that has none (attribute -1): per class, the most frequent of the devkit's
relevant attributes (``detection_name_to_rel_attributes``) in nuScenes trainval, as mmdetection3d's nuScenes
writer uses; '' for barrier and traffic_cone, which have no attributes."""

META_KEYS = ("use_camera", "use_lidar", "use_radar", "use_map", "use_external")


def submission_meta(sensors: Iterable[str], use_map: bool = False, use_external: bool = False) -> Dict[str, bool]:
    """The submission's ``meta`` from the sensor groups (SENSOR_GROUPS names) the detections were made with."""
    sensors = set(sensors)
    unknown = sensors - set(SENSOR_GROUPS)
    if unknown:
        raise ValueError(f"unknown sensor groups {sorted(unknown)}; expected a subset of {SENSOR_GROUPS}")
    return {
        "use_camera": "camera" in sensors,
        "use_lidar": "lidar" in sensors,
        "use_radar": "radar" in sensors,
        "use_map": bool(use_map),
        "use_external": bool(use_external),
    }


def boxes_to_submission(sample_token: str, boxes_ego: Boxes3D, ego_pose: EgoPose) -> List[dict]:
    """One sample's boxes in its ego frame -> submission box dicts in the global frame.

    ``ego_pose`` must be the pose the boxes' ego frame refers to (the keyframe's LiDAR timestamp, Frame.ego_pose).
    Raises ValueError naming the sample when a value is not finite, a size is not > 0 (and the first such box), a
    score is outside [0, 1], a label or attribute index is out of range, an attribute does not belong to its class,
    or there are more than MAX_BOXES_PER_SAMPLE boxes.
    """
    where = f"sample {sample_token}"
    if len(boxes_ego) > MAX_BOXES_PER_SAMPLE:
        raise ValueError(f"{where}: {len(boxes_ego)} boxes, the devkit accepts at most {MAX_BOXES_PER_SAMPLE} per "
                         "sample (lower the detector's top-k or raise its score threshold)")
    for name in ("centers", "sizes", "yaws", "velocities", "scores"):
        if not np.all(np.isfinite(getattr(boxes_ego, name))):
            raise ValueError(f"{where}: box {name} contain NaN or Inf")
    flat = np.flatnonzero(np.any(boxes_ego.sizes <= 0, axis=1))
    if len(flat):
        raise ValueError(f"{where}: box {flat[0]} has size {boxes_ego.sizes[flat[0]].tolist()} ({len(flat)} boxes "
                         f"with a size <= 0); width, length and height must be > 0 (the devkit's scale error "
                         f"asserts it)")
    if np.any((boxes_ego.scores < 0) | (boxes_ego.scores > 1)):
        raise ValueError(f"{where}: detection scores must lie in [0, 1], got {boxes_ego.scores.min()} .. "
                         f"{boxes_ego.scores.max()}")
    if np.any((boxes_ego.labels < 0) | (boxes_ego.labels >= len(DETECTION_CLASSES))):
        raise ValueError(f"{where}: labels must index DETECTION_CLASSES (0..{len(DETECTION_CLASSES) - 1}), "
                         f"got {sorted(set(boxes_ego.labels.tolist()))}")
    if np.any((boxes_ego.attributes < -1) | (boxes_ego.attributes >= len(ATTRIBUTES))):
        raise ValueError(f"{where}: attributes must index ATTRIBUTES or be -1, "
                         f"got {sorted(set(boxes_ego.attributes.tolist()))}")

    boxes = boxes_ego.transform(ego_pose.ego_to_global)
    results = []
    for i in range(len(boxes)):
        name = DETECTION_CLASSES[int(boxes.labels[i])]
        attribute = DEFAULT_ATTRIBUTES[name] if boxes.attributes[i] < 0 else ATTRIBUTES[int(boxes.attributes[i])]
        if attribute and attribute not in detection_name_to_rel_attributes(name):
            raise ValueError(f"{where}: box {i} is a {name} with attribute {attribute!r}; a {name} takes one of "
                             f"{detection_name_to_rel_attributes(name) or 'none'}")
        results.append({
            "sample_token": sample_token,
            "translation": boxes.centers[i].tolist(),
            "size": boxes.sizes[i].tolist(),
            "rotation": yaw_quaternion_wxyz(float(boxes.yaws[i])),
            "velocity": boxes.velocities[i].tolist(),
            "detection_name": name,
            "detection_score": float(boxes.scores[i]),
            "attribute_name": attribute,
        })
    return results


def make_submission(results: Mapping[str, List[dict]], meta: Mapping[str, bool]) -> dict:
    """The submission dict from per-sample box dicts (boxes_to_submission) and ``meta`` (submission_meta)."""
    return {"meta": dict(meta), "results": {token: list(boxes) for token, boxes in results.items()}}


def check_submission(submission: dict, sample_tokens: Sequence[str], source: str = "submission") -> EvalBoxes:
    """The devkit's format checks plus the ones it makes with bare asserts or not at all; returns the boxes.

    Checks: ``meta`` holds the five booleans; ``results`` has exactly the samples ``sample_tokens`` (the split
    evaluated), each box names its own sample; its translation, size, rotation and velocity are finite and its
    score lies in [0, 1] (the format's range; the devkit checks NaNs only, and an infinite value stopped the JSON
    writer midway through the file); its size is > 0 in each dimension (the devkit's scale_iou asserts it, naming
    no file) and its rotation a quaternion of norm > 0 (pyquaternion, which the devkit reads it with, leaves
    [0, 0, 0, 0] as it is: yaw 0); every box deserializes into the devkit's ``DetectionBox`` (which asserts
    sizes, class and attribute names, float scores); at most MAX_BOXES_PER_SAMPLE per sample.
    Raises ValueError naming ``source``, the problem and the sample tokens concerned (the first three of many).
    """
    if not isinstance(submission, dict) or "results" not in submission or "meta" not in submission:
        raise ValueError(f"{source}: a submission is a dict with 'meta' and 'results'")
    meta, results = submission["meta"], submission["results"]
    if not isinstance(results, dict):
        raise ValueError(f"{source}: 'results' must map sample tokens to lists of boxes")
    if not isinstance(meta, dict) or any(not isinstance(meta.get(key), bool) for key in META_KEYS):
        raise ValueError(f"{source}: 'meta' must hold booleans {', '.join(META_KEYS)}, got {meta}")
    expected = set(sample_tokens)
    missing, unexpected = sorted(expected - set(results)), sorted(set(results) - expected)
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"{len(missing)} of the {len(expected)} samples of the split missing (predict the whole "
                            f"split; an empty list where nothing was detected), e.g. {', '.join(missing[:3])}")
        if unexpected:
            problems.append(f"samples not in the split ({len(unexpected)}), e.g. {', '.join(unexpected[:3])}")
        raise ValueError(f"{source}: " + "; ".join(problems))
    boxes = EvalBoxes()
    for token in sorted(results):
        sample_boxes = results[token]
        if not isinstance(sample_boxes, list):
            raise ValueError(f"{source}: sample {token}: results must be a list of boxes")
        if len(sample_boxes) > MAX_BOXES_PER_SAMPLE:
            raise ValueError(f"{source}: sample {token}: {len(sample_boxes)} boxes, at most "
                             f"{MAX_BOXES_PER_SAMPLE} allowed")
        parsed = []
        for index, box in enumerate(sample_boxes):
            if not isinstance(box, dict) or box.get("sample_token") != token:
                raise ValueError(f"{source}: sample {token}: box {index} names sample "
                                 f"{box.get('sample_token') if isinstance(box, dict) else None!r}")
            try:
                parsed.append(DetectionBox.deserialize(box))
                for field in ("translation", "size", "rotation", "velocity"):
                    if not all(math.isfinite(v) for v in box[field]):
                        raise AssertionError(f"{field} must be finite numbers, got {box[field]}")
                if not all(value > 0 for value in box["size"]):
                    raise AssertionError(f"size must be > 0 in width, length and height, got {box['size']}")
                if not sum(value * value for value in box["rotation"]) > 0:
                    raise AssertionError(f"rotation must be a quaternion [w, x, y, z] of norm > 0, got "
                                         f"{box['rotation']}")
                if not 0.0 <= box["detection_score"] <= 1.0:
                    raise AssertionError(f"detection_score must lie in [0, 1], got {box['detection_score']}")
            except (AssertionError, KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{source}: sample {token}: box {index} breaks the submission format: "
                                 f"{type(error).__name__}: {error}") from error
        boxes.add_boxes(token, parsed)
    return boxes


def write_submission(path: str, submission: dict, sample_tokens: Sequence[str]) -> None:
    """Checks the submission against the split's ``sample_tokens`` (check_submission), then writes it as JSON."""
    check_submission(submission, sample_tokens, source=path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(submission, handle, allow_nan=False)
