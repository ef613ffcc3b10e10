"""The streaming state of a perception node: what it holds between sensor messages, and how it builds the model's
input (a Frame) from them.

- Buffers per channel, by time: the LiDAR sweeps (multi-sweep LiDAR), per radar its sweeps, per camera its
  images, each over what a frame reads plus how late after them a frame may be built (``backlog_s``).
- Ego poses of the LiDAR messages of the last EGO_FEATURE_HISTORY_S (what the learned planners' ego input reads:
  the past ego state and track, ``recent_poses``; where no earlier LiDAR message exists, the earliest of the
  other channels' buffered messages within OTHER_SENSORS_BEFORE_S, as the tables' past_ego_poses reads).
- A frame is built at a key message (its timestamp and ego pose): a LiDAR message, or, for a frame made when no
  LiDAR trigger came (perception.runtime.replay's watchdog), a message of any channel. It reads the newest LiDAR
  sweeps at or before its key and the radar sweeps and images captured up to ``sync_window_s`` after it; per
  camera the newest image whose file reads (a corrupt one leaves its buffer and the next older image is read in its
  stead, as many times over as it takes, while the image read is not stale).
- Faults, counted in ``FaultCounts`` and survived:
  dropped     a gap in a channel's sequence numbers after its first message (each missing number counts once;
              nothing tells of a loss before a channel's first message or after its last);
  duplicated  a message with the sequence number or timestamp of its channel's newest: discarded;
  out_of_order a message older than its channel's newest: too late for a streaming consumer, discarded (when it
              fills a gap counted as dropped, it counts here instead);
  corrupt     a file the readers reject (perception.datasets.io.CorruptFileError, which names it): the message
              leaves its buffer and the frame is built from the rest;
  stale       a channel whose newest message is older than ``stale_after_s`` at the frame's time: left out of
              the frame (listed in Frame.missing, as the loader lists an absent channel); counted per frame.

Frames are built by the loader itself (perception.datasets.loader.frame_from_table) from a one-keyframe
SampleTable that lists the buffered messages, so multi-sweep compensation, radar velocity handling, image checks
and ground-truth layout are the loader's, unchanged.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import AbstractSet, Deque, Dict, List, Optional, Sequence, Set, Tuple

from perception.datasets.ego_log import OTHER_SENSORS_BEFORE_S
from perception.datasets.frame import Frame
from perception.datasets.ground_truth import GroundTruth
from perception.datasets.loader import DEFAULT_SWEEP_MIN_DISTANCE_M, frame_from_table
from perception.datasets.io import CorruptFileError
from perception.datasets.metadata import CalibrationRow, KeyframeRow, RecordRow, SampleTable, pose_row
from perception.decision.learned import EGO_FEATURE_HISTORY_S
from perception.geometry import EgoPose
from perception.runtime.messages import SensorMessage
from perception.sensors import (ALL_CHANNELS, DEFAULT_LIDAR_SWEEPS, DEFAULT_RADAR_SWEEPS, KEYFRAME_PERIOD_S,
                                LIDAR_CHANNEL, NOMINAL_PERIOD_S, modality_of)

DEFAULT_STALE_AFTER_S = KEYFRAME_PERIOD_S
"""A channel whose newest message is older than this at a frame's time is stale (a keyframe interval, several of
every sensor's NOMINAL_PERIOD_S)."""

LIDAR_HISTORY_KEPT_S = 2 * EGO_FEATURE_HISTORY_S
"""How far back from the newest LiDAR message its poses are kept: recent_poses reads EGO_FEATURE_HISTORY_S before a
frame's key, which lies behind the newest message (the sync window, a backlog of skipped frames)."""

CAMERA_BUFFER_IMAGES = 2
"""Camera images each camera's buffer spans at the least: StreamingState keeps per modality what a frame reads and one
period more, or all that is not yet stale where that reaches further (at the default stale_after_s, 0.5 s, it does),
plus the sync window and the backlog. It does not bound a frame's fallback: a frame reads the newest image whose file
reads, however many newer files proved corrupt, unless that image is older than stale_after_s (the camera is then
stale: with the newest 1, 2, ..., 6 CAM_FRONT images of keyframe 6 (from 0) of datasets/synthetic-demo's synth-0001
deleted, its frame read an image 0.035, 0.118, ..., 0.451 s old; with 7, none)."""

DEFAULT_SYNC_WINDOW_S = NOMINAL_PERIOD_S["lidar"]
"""How long after its LiDAR key a frame waits for the radar sweeps and images captured just after it (the loader's
keyframes include them): one LiDAR sweep period."""

_REMEMBERED_GAPS = 1000
"""Missing sequence numbers remembered per channel (so that a late arrival is recognised as such)."""


@dataclass
class FaultCounts:
    """Faults seen so far (see the module docstring for what each one means)."""

    dropped: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    corrupt: int = 0
    stale: int = 0

    def as_dict(self) -> Dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class FrameStatus:
    """What the streaming state knew when it built one frame.

    ``ages_s``: channel -> age [s] of its newest message used, relative to the frame's timestamp (negative when
    it was captured after the LiDAR keyframe), None when the channel has none to use (none received yet, or only
    files found corrupt). ``stale``: channels left out for age; ``corrupt``: files found corrupt while building this
    frame.
    """

    ages_s: Dict[str, Optional[float]]
    stale: Tuple[str, ...]
    corrupt: Tuple[str, ...] = field(default_factory=tuple)


def table_from_messages(key: SensorMessage, sample_token: str, scene_token: str,
                        records: Dict[str, Sequence[SensorMessage]],
                        ground_truth: Optional[GroundTruth]) -> SampleTable:
    """A one-keyframe SampleTable for ``key`` (the frame's timestamp and ego pose) listing, per
    channel, ``records[channel]`` newest first, with absolute paths; ``ground_truth`` in that ego frame or None."""
    messages: List[SensorMessage] = []
    sweeps = []
    for channel in ALL_CHANNELS:
        chain = records.get(channel, ())
        sweeps.append(range(len(messages), len(messages) + len(chain)))
        messages.extend(chain)
    rows, calibrations = [], []
    for index, message in enumerate(messages):
        pose, calibration = message.ego_pose.ego_to_global, message.calibration
        camera = calibration.intrinsics
        rows.append(RecordRow(message.path, message.timestamp_us, pose_row(pose.translation, pose.rotation_wxyz),
                              index, (0, 0) if camera is None else (camera.width or 0, camera.height or 0)))
        sensor_to_ego = calibration.sensor_to_ego
        calibrations.append(CalibrationRow(message.channel,
                                           pose_row(sensor_to_ego.translation, sensor_to_ego.rotation_wxyz),
                                           None if camera is None else camera.matrix))
    key_pose = key.ego_pose.ego_to_global
    keyframe = KeyframeRow(sample_token, scene_token, key.timestamp_us,
                           pose_row(key_pose.translation, key_pose.rotation_wxyz), sweeps)
    return SampleTable.from_rows([keyframe], rows, calibrations, None if ground_truth is None else [ground_truth])


class StreamingState:
    """Sensor buffers fed one message at a time (``push``), read by ``build_frame``.

    ``lidar_sweeps`` / ``radar_sweeps``: sweeps aggregated per frame (the keyframe's included), as the loader's
    arguments of the same names. ``stale_after_s``: see DEFAULT_STALE_AFTER_S. ``image_size`` (W, H), ``drop``,
    ``sweep_min_distance_m``: passed to the loader's frame_from_table. Sweeps span at most NOMINAL_PERIOD_S
    times (sweeps - 1/2) back from their channel's newest: every sweep the loader would take when none is missing,
    while a sensor that dropped messages or stalled, or a data set without sweeps between keyframes (the real test
    fixture), drags in nothing older. ``sync_window_s``: a frame reads the radar sweeps and images captured up to
    this long after its LiDAR key (what arrives while it waits), nothing later. ``backlog_s``: how far behind the
    newest message, beyond the sync window, a frame's key may still be built (a real-time replay catching up
    builds the newest key whose window has closed, up to a trigger period old): each buffer keeps its channel's
    messages of that span and of what a frame reads, so that a frame built late reads what it would have read on
    time.
    """

    def __init__(self, lidar_sweeps: int = DEFAULT_LIDAR_SWEEPS, radar_sweeps: int = DEFAULT_RADAR_SWEEPS,
                 stale_after_s: float = DEFAULT_STALE_AFTER_S,
                 image_size: Optional[Tuple[int, int]] = None, drop: AbstractSet[str] = frozenset(),
                 sweep_min_distance_m: float = DEFAULT_SWEEP_MIN_DISTANCE_M,
                 sync_window_s: float = DEFAULT_SYNC_WINDOW_S, backlog_s: float = KEYFRAME_PERIOD_S) -> None:
        if lidar_sweeps < 1 or radar_sweeps < 1:
            raise ValueError(f"sweep counts include the keyframe and must be >= 1, got lidar_sweeps={lidar_sweeps}, "
                             f"radar_sweeps={radar_sweeps}")
        if not stale_after_s > 0:
            raise ValueError(f"stale_after_s must be positive, got {stale_after_s}")
        for name, value in (("sync_window_s", sync_window_s), ("backlog_s", backlog_s)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        self.lidar_sweeps = lidar_sweeps
        self.radar_sweeps = radar_sweeps
        self.stale_after_s = stale_after_s
        self.image_size = image_size
        self.drop = frozenset(drop)
        self.sweep_min_distance_m = sweep_min_distance_m
        self.faults = FaultCounts()
        self._sync_window_us = sync_window_s * 1e6
        reads = {"lidar": lidar_sweeps, "radar": radar_sweeps, "camera": CAMERA_BUFFER_IMAGES}
        self._max_span_us = {modality: (reads[modality] - 0.5) * NOMINAL_PERIOD_S[modality] * 1e6
                             for modality in ("lidar", "radar")}
        # what a frame reads, one period more (timestamps jitter), or anything not yet stale where that reaches
        # further (a watchdog's frame reads the newest LiDAR while it is not stale), and how late a frame may be built
        self._kept_us = {modality: (max((count + 1) * NOMINAL_PERIOD_S[modality], stale_after_s) + sync_window_s
                                    + backlog_s) * 1e6 for modality, count in reads.items()}
        self._buffers: Dict[str, Deque[SensorMessage]] = {channel: deque() for channel in ALL_CHANNELS}
        self._newest: Dict[str, SensorMessage] = {}
        self._duplicated_ahead: Dict[str, Set[int]] = {channel: set() for channel in ALL_CHANNELS}
        self._lidar_history: Deque[SensorMessage] = deque()
        self._gaps: Dict[str, Deque[int]] = {channel: deque(maxlen=_REMEMBERED_GAPS) for channel in ALL_CHANNELS}

    def push(self, message: SensorMessage) -> bool:
        """Takes one message; False when it was discarded (duplicated or out of order, counted)."""
        channel = message.channel
        newest = self._newest.get(channel)
        if newest is not None:
            if message.sequence == newest.sequence or message.timestamp_us == newest.timestamp_us:
                self.faults.duplicated += 1
                if message.sequence > newest.sequence:  # a later record stamped alike: its number is no gap
                    self._duplicated_ahead[channel].add(message.sequence)
                return False
            if message.sequence < newest.sequence or message.timestamp_us < newest.timestamp_us:
                if message.sequence in self._gaps[channel]:
                    self._gaps[channel].remove(message.sequence)
                    self.faults.dropped -= 1
                self.faults.out_of_order += 1
                return False
            ahead = self._duplicated_ahead[channel]
            missing = [s for s in range(newest.sequence + 1, message.sequence) if s not in ahead]
            self._duplicated_ahead[channel] = {s for s in ahead if s > message.sequence}
            self.faults.dropped += len(missing)
            self._gaps[channel].extend(missing)
        self._newest[channel] = message
        buffer = self._buffers[channel]
        buffer.append(message)
        while message.timestamp_us - buffer[0].timestamp_us > self._kept_us[modality_of(channel)]:
            buffer.popleft()
        if channel == LIDAR_CHANNEL:
            history = self._lidar_history
            history.append(message)
            while message.timestamp_us - history[0].timestamp_us > LIDAR_HISTORY_KEPT_S * 1e6:
                history.popleft()
        return True

    def fed_up_to(self, stream: Sequence[SensorMessage], key: SensorMessage) -> "StreamingState":
        """Pushes ``stream``'s messages (timestamp order) up to the end of ``key``'s sync window: what a frame at
        ``key`` waits for, delivered on time. Returns self."""
        for message in stream:
            if message.timestamp_us > key.timestamp_us + self._sync_window_us:
                break
            self.push(message)
        return self

    def newest(self, channel: str) -> Optional[SensorMessage]:
        """The newest accepted message of ``channel`` still buffered (None before the first one)."""
        buffer = self._buffers[channel]
        return buffer[-1] if buffer else None

    def recent_poses(self, key: SensorMessage) -> List[EgoPose]:
        """Ego poses of the LiDAR messages of the last EGO_FEATURE_HISTORY_S up to ``key``, oldest first (strictly
        increasing timestamps: no duplicate or out-of-order message is kept), and the pose of ``key`` itself last
        when it is not a LiDAR message: what a causal ego-state estimate may use. Where no LiDAR pose precedes
        ``key``'s, the earliest pose of the other channels' buffered messages stamped within
        OTHER_SENSORS_BEFORE_S before it comes first (perception.datasets.ego_log.past_ego_poses' rule)."""
        start_us = key.timestamp_us - int(round(EGO_FEATURE_HISTORY_S * 1e6))
        poses = [m.ego_pose for m in self._lidar_history if start_us <= m.timestamp_us < key.timestamp_us]
        poses.append(key.ego_pose)
        if len(poses) == 1:
            start_us = key.timestamp_us - OTHER_SENSORS_BEFORE_S * 1e6
            earlier = [m for channel, buffer in self._buffers.items() if channel != LIDAR_CHANNEL for m in buffer
                       if start_us <= m.timestamp_us < key.timestamp_us]
            if earlier:
                poses.insert(0, min(earlier, key=lambda m: m.timestamp_us).ego_pose)
        return poses

    def status(self, key: SensorMessage) -> FrameStatus:
        """The channels' ages and staleness at key message ``key``, without building a frame."""
        return self._records(key)[1]

    def _records(self, key: SensorMessage) -> Tuple[Dict[str, List[SensorMessage]], FrameStatus]:
        """The messages a frame at ``key`` reads per channel (newest first: LiDAR at or before ``key``, the others
        up to the sync window after it) and the channels' status."""
        records: Dict[str, List[SensorMessage]] = {}
        ages: Dict[str, Optional[float]] = {}
        stale = []
        window_end_us = key.timestamp_us + self._sync_window_us
        for channel, buffer in self._buffers.items():
            modality = modality_of(channel)
            last_us = key.timestamp_us if channel == LIDAR_CHANNEL else window_end_us
            chain = [m for m in reversed(buffer) if m.timestamp_us <= last_us]
            if chain and modality != "camera":
                chain = chain[:self.lidar_sweeps if modality == "lidar" else self.radar_sweeps]
                chain = [m for m in chain if chain[0].timestamp_us - m.timestamp_us <= self._max_span_us[modality]]
            if not chain:
                ages[channel] = None
                continue
            ages[channel] = (key.timestamp_us - chain[0].timestamp_us) * 1e-6
            if ages[channel] > self.stale_after_s:
                stale.append(channel)
                continue
            records[channel] = chain[:1] if modality == "camera" else chain
        return records, FrameStatus(ages, tuple(stale))

    def build_frame(self, key: SensorMessage, scene_token: str,
                    ground_truth: Optional[GroundTruth] = None) -> Tuple[Frame, FrameStatus]:
        """The Frame at key message ``key`` (its timestamp and ego pose) from the buffers, and its status.

        LiDAR: the newest ``lidar_sweeps`` sweeps at or before ``key``; radar and cameras: what has arrived (a
        radar sweep or an image captured shortly after ``key`` included, as in the loader's keyframes). Stale
        channels are left out. ``Frame.sample_token`` is the keyframe's sample token when ``key`` is a LiDAR
        keyframe, else ``key``'s sample_data token. A corrupt file is counted, leaves its buffer, and the frame is
        built without it.
        """
        sample_token = key.sample_token if key.is_lidar_keyframe else key.sample_data_token
        corrupt: List[str] = []
        while True:
            records, status = self._records(key)
            table = table_from_messages(key, sample_token, scene_token, records, ground_truth)
            try:
                frame = frame_from_table(table, 0, "", drop=self.drop, image_size=self.image_size,
                                         sweep_min_distance_m=self.sweep_min_distance_m)
            except CorruptFileError as error:
                if not self._discard(error.path, records):
                    raise
                corrupt.append(error.path)
                continue
            self.faults.stale += len(status.stale)
            self.faults.corrupt += len(corrupt)
            return frame, FrameStatus(status.ages_s, status.stale, tuple(corrupt))

    def _discard(self, path: str, records: Dict[str, List[SensorMessage]]) -> bool:
        """Removes the messages of file ``path`` from the buffers; False when no message in ``records`` has it."""
        if not any(m.path == path for chain in records.values() for m in chain):
            return False
        for buffer in self._buffers.values():
            kept = [m for m in buffer if m.path != path]
            if len(kept) != len(buffer):
                buffer.clear()
                buffer.extend(kept)
        return True
