"""The nuScenes loader: keyframes as ``Frame`` objects in the ego frame of the keyframe's LiDAR timestamp.

Multi-sweep aggregation (each sweep moved with its own calibration and its own ego pose record):

- LiDAR: the keyframe sweep and up to ``lidar_sweeps - 1`` predecessors (sample_data ``prev`` links), each moved
  sensor -> ego(t_sweep) -> global -> ego(t_key); ``time_lag = (t_key - t_sweep) * 1e-6`` s. Points within
  ``sweep_min_distance_m`` of the sensor in x and y (the devkit's ``remove_close``: the ego vehicle's own
  returns) are removed from the past sweeps only, as mmdetection3d's LoadPointsFromMultiSweeps does; the
  keyframe sweep is kept whole, so a 1-sweep frame is the file's points, moved.
- Radar: the 5 radars, each its keyframe sweep and up to ``radar_sweeps - 1`` predecessors, parsed like
  ``RadarPointCloud.from_file`` with the devkit's default state filters (perception.datasets.io). Positions
  are moved like LiDAR points; the compensated velocities (vx_comp, vy_comp, 0) are rotated by the same chain
  into the keyframe's ego frame, and positions are advanced by ``v * time_lag`` to the keyframe time (CRN,
  BEVFusion-R). A radar sweep taken after the LiDAR keyframe has a negative time_lag.
- Cameras: the 6 keyframe images; ``camera_to_ego`` = camera -> ego(t_image) -> global -> ego(t_key).

What is absent is recorded, never invented: ``Frame.missing`` holds the channels without a sample_data record and
the sensor group ('lidar', 'radar', 'camera') when all its channels are absent or the group was dropped; a group
absent or dropped is None (cameras {}). Fewer sweeps than asked (the start of a scene, the real test fixture
which has no sweep files) show in ``num_sweeps``: LiDAR the sweeps read, radar the fewest sweeps read by any
radar present; a radar sweep without a return adds no point but counts as read. A file that is absent or malformed
raises an error naming it (perception.datasets.io; a LiDAR file of no bytes too).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import AbstractSet, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from nuscenes.nuscenes import NuScenes

from perception.datasets.frame import CameraView, Frame, LidarSweeps, RadarSweeps
from perception.datasets.io import (
    DEVKIT_RADAR_FILTERS, RADAR_PCD_FIELDS, CorruptFileError, check_radar_filters, decode_reduction, read_image,
    read_lidar_bin, read_radar_pcd,
)
from perception.datasets.metadata import DEFAULT_CACHE_DIR, SampleTable, build_sample_table, cached_sample_table
from perception.datasets.records import open_nuscenes
from perception.datasets.transforms import RandomTransform
from perception.geometry import RigidTransform, resize_image
from perception.sensors import (CAMERA_CHANNELS, DEFAULT_LIDAR_SWEEPS, DEFAULT_RADAR_SWEEPS, LIDAR_CHANNEL,
                                RADAR_CHANNELS, SENSOR_GROUPS)

DEFAULT_SWEEP_MIN_DISTANCE_M = 1.0
"""Past LiDAR sweeps lose the points with |x| and |y| below this in the sensor frame (the ego vehicle itself)."""

_RADAR_FIELD = {name: RADAR_PCD_FIELDS.index(name) for name in ("x", "y", "z", "rcs", "vx_comp", "vy_comp")}


def _check_drop(drop: Iterable[str]) -> frozenset:
    drop = frozenset(drop)
    unknown = sorted(drop - set(SENSOR_GROUPS))
    if unknown:
        raise ValueError(f"drop: unknown sensor groups {unknown}; choose from {SENSOR_GROUPS}")
    return drop


class _FrameAssembler:
    """Reads the files of one keyframe of a SampleTable and moves everything into the keyframe's ego frame."""

    def __init__(self, table: SampleTable, index: int, dataroot: str):
        self.table = table
        self.index = index
        self.dataroot = dataroot
        self.ego_pose = table.ego_pose(index)
        self.global_to_ego = self.ego_pose.ego_to_global.inverse()
        self._sensor_to_ego: Dict[int, RigidTransform] = {}  # calibration -> sensor -> ego, shared by its sweeps

    def path(self, record: int) -> str:
        return os.path.join(self.dataroot, self.table.paths[record].decode())

    def sensor_to_key_ego(self, record: int) -> RigidTransform:
        """sensor -> ego(t_record) -> global -> ego(t_key)."""
        calibration = int(self.table.record_calibrations[record])
        if calibration not in self._sensor_to_ego:
            self._sensor_to_ego[calibration] = self.table.record_calibration(record).sensor_to_ego
        return self.global_to_ego @ self.table.record_pose(record).ego_to_global @ self._sensor_to_ego[calibration]

    def time_lag_s(self, record: int) -> float:
        return (int(self.table.timestamps_us[self.index]) - int(self.table.record_timestamps_us[record])) * 1e-6

    def lidar(self, sweep_min_distance_m: float, max_sweeps: Optional[int] = None) -> Optional[LidarSweeps]:
        records = self.table.channel_records(self.index, LIDAR_CHANNEL)[:max_sweeps]
        if not records:
            return None
        sweeps = []
        for sweep, record in enumerate(records):
            points = read_lidar_bin(self.path(record))  # float32; the transform runs in float64
            if sweep > 0 and sweep_min_distance_m > 0:
                close = (np.abs(points[:, 0]) < sweep_min_distance_m) & (np.abs(points[:, 1]) < sweep_min_distance_m)
                points = points[~close]
            sweeps.append((record, points))
        out = np.empty((sum(len(points) for _, points in sweeps), 5), dtype=np.float32)  # [x, y, z, intensity, lag]
        start = 0
        for record, points in sweeps:
            rows = slice(start, start + len(points))
            out[rows, :3] = self.sensor_to_key_ego(record).apply(points[:, :3])
            out[rows, 3] = points[:, 3]
            out[rows, 4] = self.time_lag_s(record)
            start += len(points)
        return LidarSweeps(out, num_sweeps=len(records))

    def radar(self, radar_filters: Dict[str, Sequence[int]], max_sweeps: Optional[int] = None
              ) -> Tuple[Optional[RadarSweeps], List[str]]:
        """(radar sweeps or None, the radar channels without a record)."""
        parts, sweeps_per_radar, absent = [], [], []
        for channel in RADAR_CHANNELS:
            records = self.table.channel_records(self.index, channel)[:max_sweeps]
            if not records:
                absent.append(channel)
                continue
            sweeps_per_radar.append(len(records))
            for record in records:
                fields = read_radar_pcd(self.path(record), radar_filters)
                to_ego = self.sensor_to_key_ego(record)
                time_lag = self.time_lag_s(record)
                velocity = np.zeros((len(fields), 3))
                velocity[:, 0] = fields[:, _RADAR_FIELD["vx_comp"]]
                velocity[:, 1] = fields[:, _RADAR_FIELD["vy_comp"]]
                velocity = to_ego.apply_rotation(velocity)[:, :2]
                xyz = to_ego.apply(fields[:, [_RADAR_FIELD["x"], _RADAR_FIELD["y"], _RADAR_FIELD["z"]]])
                xyz[:, :2] += velocity * time_lag
                parts.append(np.concatenate([
                    xyz, fields[:, [_RADAR_FIELD["rcs"]]], velocity, np.full((len(fields), 1), time_lag)], axis=1))
        if not sweeps_per_radar:
            return None, absent
        return RadarSweeps(np.concatenate(parts).astype(np.float32), num_sweeps=min(sweeps_per_radar)), absent

    def cameras(self, image_size: Optional[Tuple[int, int]]) -> Tuple[Dict[str, CameraView], List[str]]:
        """(channel -> CameraView, the camera channels without a record). ``image_size`` (W, H) resizes."""
        views, absent = {}, []
        for channel in CAMERA_CHANNELS:
            records = self.table.channel_records(self.index, channel)
            if not records:
                absent.append(channel)
                continue
            record = records[0]
            path = self.path(record)
            try:
                intrinsics = self.table.record_calibration(record).intrinsics
            except ValueError as error:
                raise ValueError(f"{path}: its camera record: {error}") from None
            if intrinsics is None:
                raise ValueError(f"{path}: its camera's calibrated_sensor record has no camera_intrinsic")
            full_size = (intrinsics.width, intrinsics.height)
            reduction = decode_reduction(full_size, image_size) if image_size is not None else 1
            image = read_image(path, reduction)
            if (image.shape[1] * reduction, image.shape[0] * reduction) != full_size:
                raise CorruptFileError(path, f"image is {image.shape[1] * reduction}x{image.shape[0] * reduction}, "
                                             f"its sample_data record says {full_size[0]}x{full_size[1]}")
            if image_size is not None:
                image, intrinsics = resize_image(image, intrinsics, image_size)
            views[channel] = CameraView(channel, image, intrinsics, self.sensor_to_key_ego(record),
                                        int(self.table.record_timestamps_us[record]))
        return views, absent


def frame_from_table(
    table: SampleTable, index: int, dataroot: str, cameras: bool = True, image_size: Optional[Tuple[int, int]] = None,
    drop: AbstractSet[str] = frozenset(), radar_filters: Dict[str, Sequence[int]] = DEVKIT_RADAR_FILTERS,
    sweep_min_distance_m: float = DEFAULT_SWEEP_MIN_DISTANCE_M,
    max_sweeps: Tuple[Optional[int], Optional[int]] = (None, None),
) -> Frame:
    """Keyframe ``index`` of a SampleTable as a Frame (see the module docstring for what is read and how).
    ``max_sweeps``: (LiDAR, radar per radar) read at most this many of the table's sweeps, the newest; None: all."""
    drop = _check_drop(drop) | (frozenset() if cameras else frozenset({"camera"}))
    assembler = _FrameAssembler(table, index, dataroot)
    missing = set(drop)
    lidar = None
    if "lidar" not in drop:
        lidar = assembler.lidar(sweep_min_distance_m, max_sweeps[0])
        if lidar is None:
            missing |= {"lidar", LIDAR_CHANNEL}
    radar = None
    if "radar" not in drop:
        radar, absent = assembler.radar(radar_filters, max_sweeps[1])
        missing |= set(absent) | ({"radar"} if radar is None else set())
    views: Dict[str, CameraView] = {}
    if "camera" not in drop:
        views, absent = assembler.cameras(image_size)
        missing |= set(absent) | ({"camera"} if not views else set())
    boxes, num_lidar, num_radar = table.ground_truth(index) or (None, None, None)
    return Frame(
        sample_token=table.sample_token(index),
        scene_token=table.scene_tokens[index].decode(),
        timestamp_us=int(table.timestamps_us[index]),
        ego_pose=assembler.ego_pose,
        lidar=lidar,
        radar=radar,
        cameras=views,
        gt_boxes=boxes,
        gt_num_lidar_points=num_lidar,
        gt_num_radar_points=num_radar,
        missing=frozenset(missing),
    )


def load_frame(
    nusc: NuScenes, sample_token: str, lidar_sweeps: int = DEFAULT_LIDAR_SWEEPS,
    radar_sweeps: int = DEFAULT_RADAR_SWEEPS, cameras: bool = True,
    image_size: Optional[Tuple[int, int]] = None, drop: Iterable[str] = (),
    radar_filters: Dict[str, Sequence[int]] = DEVKIT_RADAR_FILTERS,
    sweep_min_distance_m: float = DEFAULT_SWEEP_MIN_DISTANCE_M,
) -> Frame:
    """One keyframe straight from the devkit's tables: the Frame NuScenesFrames gives with the same arguments,
    without its cache, transform, random sweep counts and skipping of corrupt files."""
    check_radar_filters(radar_filters, "radar_filters")
    table = build_sample_table(nusc, [sample_token], lidar_sweeps, radar_sweeps)
    return frame_from_table(table, 0, nusc.dataroot, cameras, image_size, frozenset(drop), radar_filters,
                            sweep_min_distance_m)


class RandomSweepCounts(RandomTransform):
    """Draws per keyframe how many sweeps to read: (LiDAR in 1..lidar_sweeps, radar in 1..radar_sweeps), uniform
    and independent, so that a model trained on multi-sweep data also sees keyframe-only inputs (real nuScenes
    without sweep files). Seeded and restarted per DataLoader worker like the transforms (RandomTransform)."""

    def __init__(self, lidar_sweeps: int, radar_sweeps: int, seed: int = 0):
        if lidar_sweeps < 1 or radar_sweeps < 1:
            raise ValueError(f"RandomSweepCounts: sweeps must be >= 1, got lidar {lidar_sweeps}, radar {radar_sweeps}")
        super().__init__(seed)
        self.lidar_sweeps = int(lidar_sweeps)
        self.radar_sweeps = int(radar_sweeps)

    def __call__(self) -> Tuple[int, int]:
        return int(self.rng.integers(1, self.lidar_sweeps + 1)), int(self.rng.integers(1, self.radar_sweeps + 1))


@dataclass(frozen=True)
class UnreadableFrame:
    """Stands for a keyframe whose file a reader rejected (NuScenesFrames with ``skip_corrupt_files``): its sample
    token and the CorruptFileError's ``path`` and ``problem``. It crosses a DataLoader worker as a value, so that
    the main process can raise ``error()`` where the frame may not be skipped: an exception raised in a worker comes
    back as its type called with one message, which CorruptFileError (path, problem) cannot be, so torch raises a
    RuntimeError with the worker's traceback instead."""

    sample_token: str
    path: str
    problem: str

    def error(self) -> CorruptFileError:
        """The reader's error again (the file's path and the problem), to raise where the frames are consumed."""
        return CorruptFileError(self.path, self.problem)


class NuScenesFrames(torch.utils.data.Dataset):
    """The keyframes of a split as Frames (index -> Frame), in split_sample_tokens order.

    ``drop``: sensor groups (SENSOR_GROUPS) blanked at the input; ``cameras=False`` drops 'camera';
    ``image_size`` (W, H) resizes every image (intrinsics updated); ``transform``: Frame -> Frame (e.g.
    perception.datasets.transforms.Compose), applied last. Sample metadata is cached under ``cache_dir`` as an
    .npz (perception.datasets.metadata; ``cache_dir=None`` disables it); with a valid cache the devkit tables
    are loaded only when ``.nusc`` is used. ``nusc``: an already loaded devkit instance of this dataroot and
    version, reused instead of loading one. ``skip_corrupt_files``: a keyframe with a file the readers reject
    (CorruptFileError, an absent file included) comes back as an UnreadableFrame instead of raising (caught here,
    so it crosses a DataLoader worker as a value). ``random_sweeps_seed``: None (default) reads every sweep the
    table holds; an int reads a random number of the newest ones per keyframe (RandomSweepCounts with this seed;
    ``num_sweeps`` records what was read): a training option.
    """

    def __init__(
        self, dataroot: str, version: str, split: str, lidar_sweeps: int = DEFAULT_LIDAR_SWEEPS,
        radar_sweeps: int = DEFAULT_RADAR_SWEEPS,
        cameras: bool = True, image_size: Optional[Tuple[int, int]] = None, drop: Iterable[str] = (),
        transform: Optional[Callable[[Frame], Frame]] = None, nusc: Optional[NuScenes] = None,
        cache_dir: Optional[str] = DEFAULT_CACHE_DIR, radar_filters: Dict[str, Sequence[int]] = DEVKIT_RADAR_FILTERS,
        sweep_min_distance_m: float = DEFAULT_SWEEP_MIN_DISTANCE_M, progress: bool = True,
        skip_corrupt_files: bool = False, random_sweeps_seed: Optional[int] = None,
    ):
        if nusc is not None and (os.path.abspath(nusc.dataroot) != os.path.abspath(dataroot)
                                 or nusc.version != version):
            raise ValueError(f"nusc is {nusc.version} at {nusc.dataroot}, the dataset asks for {version} at {dataroot}")
        self.dataroot = str(dataroot)
        self.version = version
        self.split = split
        self.cameras = cameras
        self.image_size = image_size
        self.drop = _check_drop(drop)
        self.transform = transform
        check_radar_filters(radar_filters, "radar_filters")
        self.radar_filters = radar_filters
        self.sweep_min_distance_m = sweep_min_distance_m
        self.skip_corrupt_files = skip_corrupt_files
        self.sweep_counts = (None if random_sweeps_seed is None
                             else RandomSweepCounts(lidar_sweeps, radar_sweeps, random_sweeps_seed))
        self._nusc = nusc
        self.table = cached_sample_table(lambda: self.nusc, self.dataroot, version, split, lidar_sweeps,
                                         radar_sweeps, cache_dir, progress)
        self.sample_tokens: List[str] = [token.decode() for token in self.table.sample_tokens]

    @property
    def nusc(self) -> NuScenes:
        """The devkit instance (loaded on first use)."""
        if self._nusc is None:
            self._nusc = open_nuscenes(self.dataroot, self.version)
        return self._nusc

    def __getstate__(self) -> dict:
        # Workers get the columnar table, not the devkit's tables (they reload them only if they use .nusc).
        state = dict(self.__dict__)
        state["_nusc"] = None
        return state

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> Union[Frame, UnreadableFrame]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} frames")
        max_sweeps = (None, None) if self.sweep_counts is None else self.sweep_counts()
        try:
            frame = frame_from_table(self.table, index % len(self), self.dataroot, self.cameras, self.image_size,
                                     self.drop, self.radar_filters, self.sweep_min_distance_m, max_sweeps)
        except CorruptFileError as error:
            if not self.skip_corrupt_files:
                raise
            return UnreadableFrame(self.sample_tokens[index], error.path, error.problem)
        return self.transform(frame) if self.transform is not None else frame
