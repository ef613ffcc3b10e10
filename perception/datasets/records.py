"""The nuScenes tables opened (with errors naming a broken table) and typed views of their records: calibration and
ego pose of a sample_data (via nuscenes-devkit)."""
from __future__ import annotations

import json
import os
from typing import Tuple

import numpy as np
from nuscenes.nuscenes import NuScenes

from perception.datasets.ego_log import sample_data_pose_record
from perception.geometry import EgoPose, Projection, SensorCalibration, project_points
from perception.geometry.camera import DEFAULT_MIN_DEPTH_M
from perception.geometry.transforms import sensor_to_sensor
from perception.jsonfile import read_json


TABLE_NAMES = ("category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose", "log",
               "scene", "sample", "sample_data", "sample_annotation", "map")
"""The tables of a nuScenes version folder (``<name>.json``, each a list of records), as nuscenes-devkit reads them."""

REFERENCES = {
    "scene": {"log_token": "log", "first_sample_token": "sample", "last_sample_token": "sample"},
    "sample": {"scene_token": "scene", "prev": "sample", "next": "sample"},
    "sample_data": {"sample_token": "sample", "ego_pose_token": "ego_pose", "calibrated_sensor_token":
                    "calibrated_sensor", "prev": "sample_data", "next": "sample_data"},
    "sample_annotation": {"sample_token": "sample", "instance_token": "instance", "attribute_tokens": "attribute",
                          "prev": "sample_annotation", "next": "sample_annotation"},
    "instance": {"category_token": "category"},
    "calibrated_sensor": {"sensor_token": "sensor"},
}
"""The tokens a record refers to other tables by, as this package and the devkit follow them: table -> {field:
table referred to} ("" for no prev / next; attribute_tokens a list)."""

SPLITS_FILE = "splits.json"
"""The custom splits beside a version's tables: {split name: [scene names]} (perception.datasets.splits)."""


def open_nuscenes(dataroot: str, version: str, verbose: bool = False) -> NuScenes:
    """nuscenes-devkit's NuScenes of the tables at ``dataroot``/``version``; a FileNotFoundError when that folder is
    missing, a ValueError naming the table when one is not valid JSON or not a list of records (the devkit's own
    errors name none, or are bare assertions)."""
    folder = os.path.join(dataroot, version)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no nuScenes tables (give --dataroot / --version, or generate the "
                                f"synthetic world with tools/make_synthetic.py)")
    try:
        nusc = NuScenes(version=version, dataroot=dataroot, verbose=verbose)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, KeyError) as error:
        for name in TABLE_NAMES:
            path = os.path.join(folder, f"{name}.json")
            table = read_json(path) if os.path.isfile(path) else []
            if not isinstance(table, list) or not all(isinstance(record, dict) for record in table):
                raise ValueError(f"{path}: not a table (a JSON list of records)") from None
        if isinstance(error, KeyError):  # the devkit's index follows some references as it opens the tables
            raise ValueError(f"{folder}: a record refers to {error}, which no table holds (or lacks that field); "
                             f"nuscenes-devkit could not index the tables") from None
        raise
    check_references(nusc, folder)
    return nusc


def check_references(nusc: NuScenes, folder: str) -> None:
    """ValueError naming the table file, the record and the field when a record lacks a REFERENCES field or refers
    to a token its table does not hold (the devkit raised a bare KeyError wherever it followed one)."""
    for table, fields in REFERENCES.items():
        for record in getattr(nusc, table):
            for field, target in fields.items():
                if field not in record:
                    raise ValueError(f"{os.path.join(folder, table)}.json: record {record.get('token')} has no "
                                     f"{field}")
                value = record[field]
                for token in (value if isinstance(value, list) else [value]):
                    if token and token not in nusc._token2ind[target]:
                        raise ValueError(f"{os.path.join(folder, table)}.json: record {record.get('token')}'s "
                                         f"{field} {token} is in no record of {target}.json")


def sample_data_calibration(nusc: NuScenes, sample_data_token: str) -> Tuple[SensorCalibration, EgoPose]:
    """The sensor calibration and the ego pose at the timestamp of one sample_data record.

    Raises ValueError naming the channel and the problem when the calibration is invalid, and naming the record
    when its pose is missing or stamped at another time (ego_log.sample_data_pose_record).
    """
    record = nusc.get("sample_data", sample_data_token)
    calibrated = nusc.get("calibrated_sensor", record["calibrated_sensor_token"])
    channel = nusc.get("sensor", calibrated["sensor_token"])["channel"]
    image_size = (record["width"], record["height"]) if record.get("width") else None
    calibration = SensorCalibration.from_record(channel, calibrated, image_size)
    pose = EgoPose.from_record(sample_data_pose_record(nusc, record))
    return calibration, pose


def sample_data_path(nusc: NuScenes, sample_data_token: str) -> str:
    """Absolute path of a sample_data record's file."""
    return os.path.join(nusc.dataroot, nusc.get("sample_data", sample_data_token)["filename"])


def project_point_sensor_to_camera(
    nusc: NuScenes, point_sensor_token: str, camera_token: str, points_sensor: np.ndarray,
    min_depth: float = DEFAULT_MIN_DEPTH_M, border_px: float = 1.0,
) -> Projection:
    """Projects (N, 3) points given in a point sensor's frame [m] into a camera's image.

    The chain: point sensor -> ego(t_points) -> global -> ego(t_image) -> camera; ``border_px=1`` and
    ``min_depth=1`` reproduce the devkit's map_pointcloud_to_image.
    """
    source, source_pose = sample_data_calibration(nusc, point_sensor_token)
    camera, camera_pose = sample_data_calibration(nusc, camera_token)
    points_camera = sensor_to_sensor(source, source_pose, camera, camera_pose).apply(points_sensor)
    return project_points(points_camera, camera.intrinsics, min_depth=min_depth, border_px=border_px)
