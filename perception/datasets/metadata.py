"""Sample metadata: for each keyframe, the files, timestamps, calibrations and ego poses of every sweep the loader
reads, plus its ground truth in the ego frame, gathered once from the nuScenes tables and cached as an ``.npz``.

The table is columnar (numpy arrays, no Python object per sample), so a DataLoader's forked workers share it
without copying, and the cache loads without the devkit: building the devkit's indexes for v1.0-trainval takes
tens of seconds and gigabytes. The cache file is keyed by dataroot, version, split and sweep counts, and is rebuilt
when any table file of the version (``<dataroot>/<version>/*.json``, splits.json included) changes size or mtime.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
import zlib
from dataclasses import dataclass, fields
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from nuscenes.nuscenes import NuScenes
from tqdm import tqdm

from perception.datasets.ego_log import keyframe_sample_data, sample_data_pose_record
from perception.datasets.ground_truth import GroundTruth, sample_ground_truth
from perception.datasets.splits import check_split_version, split_sample_tokens
from perception.geometry import Boxes3D, EgoPose, RigidTransform, SensorCalibration
from perception.geometry.transforms import quaternion_to_matrix
from perception.paths import DATA_ROOT
from perception.sensors import ALL_CHANNELS, CAMERA_CHANNELS, LIDAR_CHANNEL, RADAR_CHANNELS

DEFAULT_CACHE_DIR = DATA_ROOT / "cache" / "metadata"
"""Where NuScenesFrames caches sample metadata unless told otherwise (git-ignored with the rest of datasets/)."""

CACHE_FORMAT = 2
"""Bumped whenever the arrays' layout or meaning changes, so that old cache files are rebuilt."""

NO_RECORD = -1


def pose_row(translation: Sequence[float], rotation_wxyz: Sequence[float]) -> List[float]:
    """(7,) [tx, ty, tz, qw, qx, qy, qz]: how a SampleTable stores a pose or a calibration (a nuScenes record's
    translation and rotation, flattened; transform_from_row reads it back)."""
    return [*translation, *rotation_wxyz]


def transform_from_row(row: np.ndarray, source: str = "metadata") -> RigidTransform:
    """(7,) pose_row -> RigidTransform."""
    return RigidTransform.from_rotation_translation(quaternion_to_matrix(row[3:], source), row[:3])


GT_BOX_FIELDS = ("centers", "sizes", "yaws", "velocities", "labels", "attributes")
"""The Boxes3D fields a SampleTable keeps for ground truth, each as column ``gt_<field>`` (scores are all 1)."""
GT_COUNT_FIELDS = ("num_lidar_points", "num_radar_points")
"""The GroundTruth point counts a SampleTable keeps, each as column ``gt_<field>``."""


@dataclass(frozen=True)
class KeyframeRow:
    """One keyframe of a table in the making: tokens, the LiDAR keyframe's ``timestamp_us`` and ego ``pose``
    (pose_row), and ``sweeps``: per channel of ALL_CHANNELS, its record indices newest first (empty when absent)."""

    sample_token: str
    scene_token: str
    timestamp_us: int
    pose: Sequence[float]
    sweeps: Sequence[Sequence[int]]


@dataclass(frozen=True)
class RecordRow:
    """One sample_data record: ``path`` (relative to the dataroot, or absolute with dataroot ""), its
    ``timestamp_us``, the ego ``pose`` (pose_row) then, its ``calibration`` index, ``image_size`` (W, H), (0, 0)
    for a non-image."""

    path: str
    timestamp_us: int
    pose: Sequence[float]
    calibration: int
    image_size: Tuple[int, int]


@dataclass(frozen=True)
class CalibrationRow:
    """One calibrated sensor: ``channel``, ``sensor_to_ego`` (pose_row), camera ``intrinsics`` (3, 3) or None."""

    channel: str
    sensor_to_ego: Sequence[float]
    intrinsics: Optional[np.ndarray]


@dataclass(frozen=True)
class SampleTable:
    """Metadata of S keyframes and the R sample_data records (sweeps, images) they read.

    Per keyframe: ``sample_tokens`` / ``scene_tokens`` (S,) bytes, ``timestamps_us`` (S,) int64 (the LiDAR
    keyframe's), ``ego_poses`` (S, 7) [tx, ty, tz, qw, qx, qy, qz] ego -> global at that timestamp, ``sweeps``
    (S, len(ALL_CHANNELS), max_sweeps) int64 indices into the records, newest first (index 0 is the keyframe's own
    sample_data), -1 where the channel or the sweep is absent.
    Per record: ``paths`` (R,) bytes relative to the dataroot, ``record_timestamps_us`` (R,), ``record_poses``
    (R, 7) ego -> global at the record's timestamp, ``record_calibrations`` (R,) index into the calibrations,
    ``image_sizes`` (R, 2) [width, height] (0 for non-images).
    Per calibration: ``calibrations`` (C, 7) sensor -> ego, ``intrinsics`` (C, 3, 3) (NaN for non-cameras).
    Ground truth in the ego frame, rows ``gt_offsets[s]:gt_offsets[s + 1]`` for keyframe s: ``gt_centers`` (K, 3),
    ``gt_sizes`` (K, 3), ``gt_yaws`` (K,), ``gt_velocities`` (K, 2), ``gt_labels``, ``gt_attributes``,
    ``gt_num_lidar_points``, ``gt_num_radar_points`` (K,); ``has_annotations`` () bool, False for a split without
    annotations (v1.0-test).
    """

    sample_tokens: np.ndarray
    scene_tokens: np.ndarray
    timestamps_us: np.ndarray
    ego_poses: np.ndarray
    sweeps: np.ndarray
    paths: np.ndarray
    record_timestamps_us: np.ndarray
    record_poses: np.ndarray
    record_calibrations: np.ndarray
    image_sizes: np.ndarray
    calibrations: np.ndarray
    calibration_channels: np.ndarray
    intrinsics: np.ndarray
    gt_offsets: np.ndarray
    gt_centers: np.ndarray
    gt_sizes: np.ndarray
    gt_yaws: np.ndarray
    gt_velocities: np.ndarray
    gt_labels: np.ndarray
    gt_attributes: np.ndarray
    gt_num_lidar_points: np.ndarray
    gt_num_radar_points: np.ndarray
    has_annotations: np.ndarray

    def __len__(self) -> int:
        return len(self.sample_tokens)

    def save(self, path: str, signature: str, dataroot: str) -> None:
        """Writes the arrays, the tables' ``signature`` (tables_signature) and the dataroot they describe to an
        .npz, atomically; no pickles."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        partial = f"{path}.{os.getpid()}.partial.npz"
        np.savez(partial, cache_format=np.array(CACHE_FORMAT), tables_signature=np.array(signature),
                 dataroot=np.array(os.path.abspath(dataroot)), **{f.name: getattr(self, f.name) for f in fields(self)})
        os.replace(partial, path)

    @classmethod
    def load(cls, path: str, signature: str) -> Optional["SampleTable"]:
        """The table cached at ``path``; None when absent, unreadable (cut short, overwritten: said on stderr; the
        caller builds it again), written by another CACHE_FORMAT, or made from tables whose signature differs (they
        changed since)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if ("cache_format" not in data or int(data["cache_format"]) != CACHE_FORMAT
                        or str(data["tables_signature"]) != signature):
                    return None
                missing = [f.name for f in fields(cls) if f.name not in data]
                if not missing:
                    return cls(**{f.name: data[f.name] for f in fields(cls)})
                problem = f"it lacks arrays {missing}"
        except FileNotFoundError:
            return None
        except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as error:
            problem = f"{type(error).__name__}: {error}"
        print(f"{path}: unreadable metadata cache ({problem}); building it again", file=sys.stderr)
        return None

    def sample_token(self, index: int) -> str:
        return self.sample_tokens[index].decode()

    def record_calibration(self, record: int) -> SensorCalibration:
        """Calibration of one record: channel, sensor -> ego, and intrinsics with the record's image size."""
        calibration = int(self.record_calibrations[record])
        channel = self.calibration_channels[calibration].decode()
        sensor_to_ego = transform_from_row(self.calibrations[calibration], channel)
        intrinsics = None
        if not np.isnan(self.intrinsics[calibration, 0, 0]):
            from perception.geometry import CameraIntrinsics

            width, height = (int(v) for v in self.image_sizes[record])
            intrinsics = CameraIntrinsics.from_matrix(self.intrinsics[calibration], channel, width, height)
        return SensorCalibration(channel, sensor_to_ego, intrinsics)

    def record_pose(self, record: int) -> EgoPose:
        return EgoPose(int(self.record_timestamps_us[record]),
                       transform_from_row(self.record_poses[record], f"ego pose of {self.paths[record].decode()}"))

    def ego_pose(self, index: int) -> EgoPose:
        return EgoPose(int(self.timestamps_us[index]),
                       transform_from_row(self.ego_poses[index], f"ego pose of sample {self.sample_token(index)}"))

    def channel_records(self, index: int, channel: str) -> List[int]:
        """The record indices keyframe ``index`` reads for ``channel``, newest first (empty when absent)."""
        return [int(r) for r in self.sweeps[index, ALL_CHANNELS.index(channel)] if r != NO_RECORD]

    def ground_truth(self, index: int) -> Optional[Tuple[Boxes3D, np.ndarray, np.ndarray]]:
        """Keyframe ``index``'s ground truth: (boxes, num_lidar_points (K,), num_radar_points (K,)), None when
        the table has no annotations."""
        if not bool(self.has_annotations):
            return None
        rows = slice(int(self.gt_offsets[index]), int(self.gt_offsets[index + 1]))
        boxes = Boxes3D(**{name: getattr(self, f"gt_{name}")[rows] for name in GT_BOX_FIELDS})
        num_lidar_points, num_radar_points = (getattr(self, f"gt_{name}")[rows].copy() for name in GT_COUNT_FIELDS)
        return boxes, num_lidar_points, num_radar_points

    @classmethod
    def from_rows(cls, keyframes: Sequence[KeyframeRow], records: Sequence[RecordRow],
                  calibrations: Sequence[CalibrationRow],
                  ground_truths: Optional[Sequence[GroundTruth]]) -> "SampleTable":
        """The table of these keyframes, records and calibrations; ``ground_truths``: one per keyframe (in its
        ego frame), or None for a split without annotations."""
        width = max([1] + [len(chain) for keyframe in keyframes for chain in keyframe.sweeps])
        sweeps = np.full((len(keyframes), len(ALL_CHANNELS), width), NO_RECORD, dtype=np.int64)
        for row, keyframe in enumerate(keyframes):
            for channel, chain in enumerate(keyframe.sweeps):
                sweeps[row, channel, :len(chain)] = chain
        truths = list(ground_truths) if ground_truths is not None else []
        if ground_truths is not None and len(truths) != len(keyframes):
            raise ValueError(f"{len(truths)} ground truths for {len(keyframes)} keyframes")
        boxes = Boxes3D.concatenate([truth.boxes for truth in truths])
        boxes_per_keyframe = [len(t.boxes) for t in truths] if ground_truths is not None else [0] * len(keyframes)
        return cls(
            sample_tokens=np.array([k.sample_token for k in keyframes], dtype=bytes).reshape(-1),
            scene_tokens=np.array([k.scene_token for k in keyframes], dtype=bytes).reshape(-1),
            timestamps_us=np.array([k.timestamp_us for k in keyframes], np.int64).reshape(-1),
            ego_poses=np.array([k.pose for k in keyframes], np.float64).reshape(-1, 7),
            sweeps=sweeps,
            paths=np.array([r.path for r in records], dtype=bytes).reshape(-1),
            record_timestamps_us=np.array([r.timestamp_us for r in records], np.int64).reshape(-1),
            record_poses=np.array([r.pose for r in records], np.float64).reshape(-1, 7),
            record_calibrations=np.array([r.calibration for r in records], np.int64).reshape(-1),
            image_sizes=np.array([r.image_size for r in records], np.int64).reshape(-1, 2),
            calibrations=np.array([c.sensor_to_ego for c in calibrations], np.float64).reshape(-1, 7),
            calibration_channels=np.array([c.channel for c in calibrations], dtype=bytes).reshape(-1),
            intrinsics=np.array([np.full((3, 3), np.nan) if c.intrinsics is None else c.intrinsics
                                 for c in calibrations], np.float64).reshape(-1, 3, 3),
            gt_offsets=np.cumsum([0] + boxes_per_keyframe, dtype=np.int64),
            **{f"gt_{name}": getattr(boxes, name) for name in GT_BOX_FIELDS},
            **{f"gt_{name}": np.concatenate([np.zeros(0, np.int64)] + [getattr(t, name) for t in truths])
               .astype(np.int64) for name in GT_COUNT_FIELDS},
            has_annotations=np.array(ground_truths is not None),
        )


class _TableBuilder:
    """Gathers the rows of a SampleTable from the devkit, one keyframe at a time."""

    def __init__(self, nusc: NuScenes, max_sweeps: Dict[str, int]):
        self.nusc = nusc
        self.max_sweeps = max_sweeps
        self.keyframes: List[KeyframeRow] = []
        self.records: List[RecordRow] = []
        self.calibrations: List[CalibrationRow] = []
        self.ground_truths: List[GroundTruth] = []
        self.record_index: Dict[str, int] = {}
        self.calibration_index: Dict[str, int] = {}

    def _calibration(self, token: str) -> int:
        if token not in self.calibration_index:
            record = self.nusc.get("calibrated_sensor", token)
            channel = self.nusc.get("sensor", record["sensor_token"])["channel"]
            try:
                SensorCalibration.from_record(channel, record)  # validates
            except (ValueError, TypeError) as error:
                raise ValueError(f"calibrated_sensor {token}: {error}") from None
            intrinsics = np.asarray(record["camera_intrinsic"], np.float64) if record.get("camera_intrinsic") else None
            self.calibration_index[token] = len(self.calibrations)
            self.calibrations.append(CalibrationRow(channel, pose_row(record["translation"], record["rotation"]),
                                                    intrinsics))
        return self.calibration_index[token]

    def _record(self, sample_data: dict) -> int:
        token = sample_data["token"]
        if token not in self.record_index:
            pose = sample_data_pose_record(self.nusc, sample_data)
            EgoPose.from_record(pose)  # validates, raising with the pose's token
            self.record_index[token] = len(self.records)
            self.records.append(RecordRow(
                sample_data["filename"], sample_data["timestamp"], pose_row(pose["translation"], pose["rotation"]),
                self._calibration(sample_data["calibrated_sensor_token"]),
                (sample_data.get("width") or 0, sample_data.get("height") or 0)))
        return self.record_index[token]

    def _chain(self, first_token: str, count: int) -> List[int]:
        """Record indices of a sample_data and up to count - 1 predecessors (prev links), newest first. ValueError
        naming the record where a predecessor is of another sensor or not strictly earlier."""
        chain, token, later = [], first_token, None
        while token and len(chain) < count:
            sample_data = self.nusc.get("sample_data", token)
            index = self._record(sample_data)
            if later is not None:
                channel, later_channel = (self.calibrations[self.records[i].calibration].channel
                                          for i in (index, chain[-1]))
                if channel != later_channel or sample_data["timestamp"] >= later["timestamp"]:
                    raise ValueError(f"sample_data {later['token']} ({later['filename']}): its prev {token} is "
                                     f"{channel} at {sample_data['timestamp']} us, not an earlier {later_channel} "
                                     f"record (it is at {later['timestamp']} us)")
            chain.append(index)
            later, token = sample_data, sample_data["prev"]
        return chain

    def _keyframe_pose(self, sample: dict) -> tuple:
        """(timestamp, pose record) of the keyframe (ego_log.keyframe_sample_data: the LiDAR's, without LiDAR the
        sample_data nearest in time)."""
        sample_data = keyframe_sample_data(self.nusc, sample)
        return sample_data["timestamp"], sample_data_pose_record(self.nusc, sample_data)

    def add(self, sample_token: str, with_annotations: bool) -> None:
        sample = self.nusc.get("sample", sample_token)
        timestamp, pose = self._keyframe_pose(sample)
        sweeps = [self._chain(sample["data"][channel], self.max_sweeps.get(channel, 1))
                  if channel in sample["data"] else [] for channel in ALL_CHANNELS]
        self.keyframes.append(KeyframeRow(sample_token, sample["scene_token"], timestamp,
                                          pose_row(pose["translation"], pose["rotation"]), sweeps))
        if with_annotations:
            ego_to_global = EgoPose.from_record(pose).ego_to_global
            self.ground_truths.append(sample_ground_truth(self.nusc, sample_token, ego_to_global))


def sweep_counts(lidar_sweeps: int, radar_sweeps: int) -> Dict[str, int]:
    """Sweeps read per channel (keyframe included): LiDAR, each radar, one image per camera."""
    if lidar_sweeps < 1 or radar_sweeps < 1:
        raise ValueError(f"sweep counts include the keyframe and must be >= 1, got lidar_sweeps={lidar_sweeps}, "
                         f"radar_sweeps={radar_sweeps}")
    return {LIDAR_CHANNEL: lidar_sweeps, **{c: radar_sweeps for c in RADAR_CHANNELS},
            **{c: 1 for c in CAMERA_CHANNELS}}


def build_sample_table(nusc: NuScenes, sample_tokens: Sequence[str], lidar_sweeps: int, radar_sweeps: int,
                       progress: bool = False) -> SampleTable:
    """Metadata of the given keyframes (in that order), read through the devkit.

    Ground truth is included when the version has annotations (``nusc.sample_annotation`` not empty).
    """
    builder = _TableBuilder(nusc, sweep_counts(lidar_sweeps, radar_sweeps))
    with_annotations = len(nusc.sample_annotation) > 0
    for token in tqdm(sample_tokens, desc="sample metadata", disable=not progress, unit="sample"):
        builder.add(token, with_annotations)
    return SampleTable.from_rows(builder.keyframes, builder.records, builder.calibrations,
                                 builder.ground_truths if with_annotations else None)


def tables_signature(dataroot: str, version: str) -> str:
    """Hash of the name, size and mtime of every table file in ``<dataroot>/<version>/``."""
    table_root = os.path.join(dataroot, version)
    if not os.path.isdir(table_root):
        raise FileNotFoundError(f"{table_root}: nuScenes tables not found (dataroot {dataroot!r}, version {version!r})")
    entries = []
    for name in sorted(os.listdir(table_root)):
        if name.endswith(".json"):
            status = os.stat(os.path.join(table_root, name))
            entries.append([name, status.st_size, status.st_mtime_ns])
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def cache_path(cache_dir: str, dataroot: str, version: str, split: str, lidar_sweeps: int,
               radar_sweeps: int) -> str:
    """The cache file for this dataroot, version, split and sweep counts."""
    key = json.dumps([os.path.abspath(dataroot), version, split, lidar_sweeps, radar_sweeps])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(str(cache_dir), f"{version}_{split}_{digest}.npz")


def cached_sample_table(get_nusc: Callable[[], NuScenes], dataroot: str, version: str, split: str,
                        lidar_sweeps: int, radar_sweeps: int, cache_dir: Optional[str],
                        progress: bool = True) -> SampleTable:
    """The split's SampleTable (keyframes in split_sample_tokens order) from the cache when valid, else built
    through ``get_nusc()`` and cached. ``cache_dir=None``: always build, write nothing. An official split of
    another version is refused first (check_split_version), even where an earlier run cached it."""
    check_split_version(split, version)
    signature = tables_signature(dataroot, version)
    path = None
    if cache_dir is not None:
        path = cache_path(cache_dir, dataroot, version, split, lidar_sweeps, radar_sweeps)
        table = SampleTable.load(path, signature)
        if table is not None:
            return table
    nusc = get_nusc()
    table = build_sample_table(nusc, split_sample_tokens(nusc, split), lidar_sweeps, radar_sweeps, progress)
    if path is not None:
        table.save(path, signature, dataroot)
        prune_stale_caches(cache_dir)
    return table


def prune_stale_caches(cache_dir: str) -> List[str]:
    """Deletes the cache files of ``cache_dir`` whose dataroot no longer exists (test worlds in temporary
    folders) or that an older CACHE_FORMAT wrote; returns their paths."""
    removed = []
    for name in sorted(os.listdir(cache_dir)):
        path = os.path.join(cache_dir, name)
        if not name.endswith(".npz") or ".partial" in name:
            continue
        try:
            with np.load(path, allow_pickle=False) as data:
                stale = ("cache_format" not in data or int(data["cache_format"]) != CACHE_FORMAT
                         or not os.path.isdir(str(data["dataroot"])))
            if stale:
                os.remove(path)
                removed.append(path)
        except (OSError, ValueError):  # removed or being replaced by another process meanwhile
            continue
    return removed
