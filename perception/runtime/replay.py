"""Replay of a logged drive through the whole pipeline, as the car saw it.

Every sensor message of a scene (perception.runtime.messages), optionally with injected faults
(perception.runtime.faults), is pushed in timestamp order into the streaming state
(perception.runtime.streaming). A LiDAR keyframe (or, with ``every_sweep``, every LiDAR sweep) triggers a frame,
built once the stream has passed the trigger by ``sync_window_s`` (so that the keyframe's radar sweeps and images
captured just after the LiDAR are in): load the Frame from the buffers, detect, decide.

Pacing: as fast as possible, or in real time (``realtime``, ``speed`` x faster). In real time, messages are
delivered at their (scaled) capture time; while a frame is processed the next messages queue up, and the backlog
is delivered before the next frame starts, so that when frames pile up behind a slow pipeline only the newest is
processed and the others are recorded as skipped. Before a real-time clock starts, the detector runs once, untimed
and unrecorded, on the first trigger's frame (loading Numba's compiled kernels and torch's first allocations), as a
car starts its stack before it drives.

Latency (``latency_s`` in each record): in real time, the wall time from the trigger's (scaled) capture time to the
decision, the sync window and any queueing included; as fast as possible, the end_to_end processing time (load +
detector + decision). A frame is late when its latency exceeds ``deadline_s`` (default: the trigger period,
0.5 s for keyframes, 0.05 s for every sweep; divided by ``speed`` in real time).

Outputs in the output folder: ``frames.jsonl`` (one FRAME_RECORD line per trigger, flushed as it is written),
``frames/NNNNNN.png`` and ``replay.mp4`` (bird's-eye view beside the six cameras with the boxes projected),
``replay.mcap`` (perception.runtime.mcap_writer), ``summary.json``. With ``resume``, the triggers already in
frames.jsonl are not detected again: their records are kept and the pictures and the MCAP are redrawn from them.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Deque, Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from nuscenes.nuscenes import NuScenes
from tqdm import tqdm

from perception.classes import ATTRIBUTES, DETECTION_CLASSES
from perception.datasets.frame import SENSOR_GROUPS, Frame
from perception.datasets.ground_truth import sample_ground_truth
from perception.decision import EgoState, PlannerConfig, decide
from perception.detector import Detector, OracleDetector
from perception.geometry import Boxes3D
from perception.runtime.faults import FaultPlan, inject_faults
from perception.runtime.mcap_writer import McapRecorder
from perception.runtime.messages import SensorMessage, find_scene, scene_messages
from perception.runtime.streaming import DEFAULT_STALE_AFTER_S, FrameStatus, StreamingState
from perception.runtime.timing import StageTimer, latency_summary, summarize_records, timed_detect
from perception.sensors import LIDAR_CHANNEL
from perception.viz.bev import BevView, draw_bev
from perception.viz.video import camera_mosaic, side_by_side, write_video

FRAMES_FILE = "frames.jsonl"
SUMMARY_FILE = "summary.json"
VIDEO_FILE = "replay.mp4"
MCAP_FILE = "replay.mcap"
PICTURES_DIR = "frames"

FRAME_RECORD: Dict[str, tuple] = {
    "scene": (str,),
    "index": (int,),
    "lidar_token": (str,),
    "sample_token": (str, type(None)),
    "is_key_frame": (bool,),
    "timestamp_us": (int,),
    "status": (str,),
    "detections": (list,),
    "decision": (dict, type(None)),
    "ego_state": (dict, type(None)),
    "timings_ms": (dict,),
    "sensor_ages_s": (dict,),
    "missing": (list,),
    "stale": (list,),
    "corrupt_files": (list,),
    "num_lidar_points": (int,),
    "num_radar_points": (int,),
    "num_cameras": (int,),
    "latency_s": (float, type(None)),
    "deadline_s": (float,),
    "late": (bool,),
    "faults": (dict,),
}
"""The keys of one frames.jsonl line and their JSON types.

scene (name); index (the trigger's number in the scene, 0, 1, ...); lidar_token (the LiDAR sample_data that
triggered the frame: the resume key); sample_token (the keyframe's sample, null for a sweep); is_key_frame;
timestamp_us (the trigger's capture time); status ("processed" or "skipped": dropped in real time behind a newer
frame); detections (DETECTION_RECORD items, ego frame); decision (perception.decision.Decision.to_json(), null
when skipped); ego_state (speed_mps, yaw_rate_rps, acceleration_mps2 from the past LiDAR poses); timings_ms (stage
-> ms: load, detector and the model's own stages, decision, end_to_end); sensor_ages_s (channel -> age [s] of its
newest message at the trigger, null if never received); missing (Frame.missing: absent or stale channels and
groups); stale (channels left out for age); corrupt_files (files rejected while building this frame);
num_lidar_points / num_radar_points / num_cameras (what the frame held); latency_s (see the module docstring; null
when skipped); deadline_s; late; faults (FaultCounts so far in the stream)."""

DETECTION_RECORD = ("label", "score", "center", "size", "yaw", "velocity", "attribute")
"""The keys of one detection: label (a DETECTION_CLASSES name), score, center [x, y, z] m, size [width, length,
height] m, yaw rad, velocity [vx, vy] m/s (ego frame, perception.geometry conventions), attribute (an ATTRIBUTES
name or null)."""


def boxes_to_json(boxes: Boxes3D) -> List[Dict[str, Any]]:
    """Boxes3D -> DETECTION_RECORD dicts."""
    return [{
        "label": DETECTION_CLASSES[int(boxes.labels[i])],
        "score": float(boxes.scores[i]),
        "center": boxes.centers[i].tolist(),
        "size": boxes.sizes[i].tolist(),
        "yaw": float(boxes.yaws[i]),
        "velocity": boxes.velocities[i].tolist(),
        "attribute": ATTRIBUTES[int(boxes.attributes[i])] if boxes.attributes[i] >= 0 else None,
    } for i in range(len(boxes))]


def boxes_from_json(items: Sequence[Dict[str, Any]]) -> Boxes3D:
    """DETECTION_RECORD dicts -> Boxes3D (the inverse of boxes_to_json)."""
    if not items:
        return Boxes3D.empty()
    return Boxes3D(
        centers=[item["center"] for item in items], sizes=[item["size"] for item in items],
        yaws=[item["yaw"] for item in items], velocities=[item["velocity"] for item in items],
        labels=[DETECTION_CLASSES.index(item["label"]) for item in items],
        scores=[item["score"] for item in items],
        attributes=[-1 if item["attribute"] is None else ATTRIBUTES.index(item["attribute"]) for item in items],
    )


def validate_frame_record(record: Any, source: str = FRAMES_FILE) -> None:
    """Raises ValueError naming ``source`` and the problem when ``record`` is not a FRAME_RECORD."""
    if not isinstance(record, dict):
        raise ValueError(f"{source}: a frame record is a JSON object, got {type(record).__name__}")
    missing = [key for key in FRAME_RECORD if key not in record]
    if missing:
        raise ValueError(f"{source}: frame record lacks {missing}")
    for key, types in FRAME_RECORD.items():
        value = record[key]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise ValueError(f"{source}: frame record key {key!r} is {type(value).__name__}, expected "
                             f"{' or '.join(t.__name__ for t in types)}")
    if record["status"] not in ("processed", "skipped"):
        raise ValueError(f"{source}: frame record status {record['status']!r} is not 'processed' or 'skipped'")
    for detection in record["detections"]:
        if not isinstance(detection, dict) or set(detection) != set(DETECTION_RECORD):
            raise ValueError(f"{source}: a detection must have exactly the keys {DETECTION_RECORD}, got {detection}")


def read_frame_records(path: str) -> List[Dict[str, Any]]:
    """The records of a frames.jsonl. A last line cut short (a replay killed while writing it) is dropped; any
    other unreadable line raises ValueError naming the file and the line."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):  # the last line, without its newline: cut short
                break
            raise ValueError(f"{path}: line {number} is not JSON ({error})") from None
        validate_frame_record(record, f"{path}: line {number}")
        records.append(record)
    return records


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay (see the module docstring). ``lidar_sweeps`` / ``radar_sweeps`` / ``image_size`` (W, H):
    the model's input, as the loader's arguments. ``faults``: injected into the message stream, or None.
    ``device``: the model's device, where the stage timer runs (CUDA events on a GPU). ``display_min_score``:
    the pictures and the MCAP show the boxes scoring at least this (by default the planner's own min_score);
    frames.jsonl keeps every detection."""

    every_sweep: bool = False
    realtime: bool = False
    speed: float = 1.0
    stale_after_s: float = DEFAULT_STALE_AFTER_S
    sync_window_s: float = 0.05
    deadline_s: Optional[float] = None
    lidar_sweeps: int = 10
    radar_sweeps: int = 6
    image_size: Optional[Tuple[int, int]] = None
    faults: Optional[FaultPlan] = None
    video: bool = True
    mcap: bool = True
    device: str = "cpu"
    display_min_score: float = PlannerConfig().min_score

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"speed must be positive, got {self.speed}")
        if self.sync_window_s < 0:
            raise ValueError(f"sync_window_s must be >= 0, got {self.sync_window_s}")
        if self.deadline_s is not None and not self.deadline_s > 0:
            raise ValueError(f"deadline_s must be positive, got {self.deadline_s}")
        if not 0.0 <= self.display_min_score <= 1.0:
            raise ValueError(f"display_min_score must lie in [0, 1], got {self.display_min_score}")

    @property
    def trigger_period_s(self) -> float:
        """The nominal time between frames: a LiDAR sweep (0.05 s) or a keyframe (0.5 s)."""
        return 0.05 if self.every_sweep else 0.5

    @property
    def effective_deadline_s(self) -> float:
        return self.deadline_s if self.deadline_s is not None else self.trigger_period_s

    def is_trigger(self, message: SensorMessage) -> bool:
        """Whether ``message`` starts a frame: a LiDAR keyframe, or any LiDAR sweep with ``every_sweep``."""
        return message.channel == LIDAR_CHANNEL and (self.every_sweep or message.is_key_frame)

    def new_state(self, drop: frozenset) -> StreamingState:
        """An empty streaming state with these buffers, leaving out the sensor groups in ``drop``."""
        return StreamingState(self.lidar_sweeps, self.radar_sweeps, self.stale_after_s, self.image_size, drop)


@dataclass
class ReplaySummary:
    """What a replay did: frame counts, latency percentiles [s], per-stage timings [ms], faults, wall time."""

    scene: str
    frames: int = 0
    processed: int = 0
    resumed: int = 0
    skipped: int = 0
    late: int = 0
    messages: int = 0
    latency_s: Dict[str, float] = field(default_factory=dict)
    stages_ms: Dict[str, Dict[str, float]] = field(default_factory=dict)
    faults: Dict[str, int] = field(default_factory=dict)
    sensor_duration_s: float = 0.0
    wall_s: float = 0.0
    outputs: Dict[str, str] = field(default_factory=dict)

    @property
    def realtime_factor(self) -> float:
        """Seconds of drive replayed per wall second."""
        return self.sensor_duration_s / self.wall_s if self.wall_s > 0 else math.inf

    def to_json(self) -> Dict[str, Any]:
        payload = asdict(self)
        payload["realtime_factor"] = self.realtime_factor if math.isfinite(self.realtime_factor) else None
        return payload


BEHIND_TOLERANCE_S = 0.005
"""In real time, a message delivered this much after its due time came from a backlog (sleep overshoot is less)."""


class ReplayClock:
    """Maps capture timestamps to wall time: the first message is delivered now, later ones ``speed`` times
    faster than they were captured (real time when ``realtime``; otherwise nothing waits)."""

    def __init__(self, first_timestamp_us: int, realtime: bool, speed: float) -> None:
        self.first_timestamp_us = first_timestamp_us
        self.realtime = realtime
        self.speed = speed
        self.start_wall_s = time.perf_counter()

    def arrival_wall_s(self, timestamp_us: int) -> float:
        """The wall time (perf_counter) at which data captured at ``timestamp_us`` is delivered."""
        return self.start_wall_s + (timestamp_us - self.first_timestamp_us) * 1e-6 / self.speed

    def wait_until(self, timestamp_us: int) -> None:
        if self.realtime:
            delay = self.arrival_wall_s(timestamp_us) - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    def behind(self, timestamp_us: int) -> bool:
        """In real time: whether data captured at ``timestamp_us`` was due more than BEHIND_TOLERANCE_S ago (it
        waited in a backlog while a frame was processed). Never when not in real time."""
        return self.realtime and time.perf_counter() - self.arrival_wall_s(timestamp_us) > BEHIND_TOLERANCE_S


class _Outputs:
    """frames.jsonl (append, flushed per record), per-frame pictures, the MCAP file and the video."""

    def __init__(self, out_dir: str, options: ReplayOptions, done: Dict[str, Dict[str, Any]]) -> None:
        self.out_dir = out_dir
        self.options = options
        os.makedirs(out_dir, exist_ok=True)
        self.frames_path = os.path.join(out_dir, FRAMES_FILE)
        # Rewrite what survived (a line cut short by a kill is gone), then append.
        with open(self.frames_path + ".partial", "w", encoding="utf-8") as f:
            for record in done.values():
                f.write(json.dumps(record) + "\n")
        os.replace(self.frames_path + ".partial", self.frames_path)
        self._jsonl = open(self.frames_path, "a", encoding="utf-8")
        self.pictures: List[str] = []
        self.mcap = McapRecorder(os.path.join(out_dir, MCAP_FILE)) if options.mcap else None
        if options.video:
            os.makedirs(os.path.join(out_dir, PICTURES_DIR), exist_ok=True)

    def write_record(self, record: Dict[str, Any]) -> None:
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()

    def render(self, frame: Frame, record: Dict[str, Any], scene_start_us: int) -> None:
        """The frame's picture and MCAP messages, from the frame and its record."""
        boxes = boxes_from_json(record["detections"])
        boxes = boxes[boxes.scores >= self.options.display_min_score]
        decision = record["decision"]
        if self.mcap is not None:
            self.mcap.write_frame(frame, boxes, decision)
        if not self.options.video:
            return
        lines = [f"{record['scene']}  t={(record['timestamp_us'] - scene_start_us) * 1e-6:6.2f} s"
                 f"{'  keyframe' if record['is_key_frame'] else ''}  {len(boxes)} boxes"
             f" (score >= {self.options.display_min_score:.2f})"]
        if decision is not None:
            ttc = "inf" if decision["ttc_s"] is None else f"{decision['ttc_s']:.1f} s"
            lines.append(f"{decision['maneuver']}  target {decision['target_speed_mps']:.1f} m/s  TTC {ttc}")
            lines.append(decision["reason"][:70])
        if record["missing"]:
            lines.append("missing: " + ", ".join(sorted(record["missing"]))[:70])
        trajectory = None if decision is None else np.asarray(decision["trajectory"])
        bev = draw_bev(BevView(), frame.lidar.points if frame.lidar is not None else None,
                       frame.radar.points if frame.radar is not None else None, boxes, trajectory, lines)
        picture = side_by_side(bev, camera_mosaic(frame.cameras, boxes)) if frame.cameras else bev
        path = os.path.join(self.out_dir, PICTURES_DIR, f"{record['index']:06d}.png")
        if not cv2.imwrite(path, picture):
            raise ValueError(f"{path}: OpenCV could not write the picture")
        self.pictures.append(path)

    def close(self) -> Dict[str, str]:
        """Closes the files, writes the video; the output paths."""
        self._jsonl.close()
        outputs = {"frames": self.frames_path}
        if self.mcap is not None:
            self.mcap.close()
            outputs["mcap"] = self.mcap.path
        if self.pictures:
            outputs["video"] = write_video(self.pictures, os.path.join(self.out_dir, VIDEO_FILE),
                                           fps=1.0 / self.options.trigger_period_s)
            outputs["pictures"] = os.path.join(self.out_dir, PICTURES_DIR)
        return outputs


def _warm_up(detector: Detector, stream: Sequence[SensorMessage], options: ReplayOptions, drop: frozenset,
             scene_token: str) -> None:
    """One untimed detection on the first trigger's frame, built from a throwaway streaming state."""
    state = options.new_state(drop)
    first = next((m for m in stream if options.is_trigger(m)), None)
    if first is None:
        return
    for message in stream:
        if message.timestamp_us > first.timestamp_us + options.sync_window_s * 1e6:
            break
        state.push(message)
    frame, _ = state.build_frame(first, scene_token)
    detector.detect([frame])


def replay_scene(
    nusc: NuScenes, scene: str, detector: Detector, out_dir: str, options: ReplayOptions = ReplayOptions(),
    planner_config: PlannerConfig = PlannerConfig(), resume: bool = False, progress: bool = True,
    messages: Optional[Iterable[SensorMessage]] = None,
) -> ReplaySummary:
    """Replays ``scene`` (name or token) through ``detector`` and the planner into ``out_dir``.

    ``messages``: the stream to replay instead of the scene's own (scene_messages), e.g. one with faults already
    injected by the caller. Raises ValueError when the oracle is asked for every sweep (ground truth exists at
    keyframes only) or a frames.jsonl to resume from is malformed.
    """
    if options.every_sweep and isinstance(detector, OracleDetector):
        raise ValueError("the oracle needs ground truth, which exists at keyframes only: replay keyframes "
                         "(no every_sweep) or give a model")
    scene_record = find_scene(nusc, scene)
    stream: List[SensorMessage] = list(messages) if messages is not None else scene_messages(nusc, scene)
    if not stream:
        raise ValueError(f"scene {scene_record['name']}: no sensor messages")
    if options.faults is not None:
        stream = list(inject_faults(stream, options.faults))
    done = {r["lidar_token"]: r for r in read_frame_records(os.path.join(out_dir, FRAMES_FILE))} if resume else {}
    with_annotations = len(nusc.sample_annotation) > 0
    drop = frozenset(SENSOR_GROUPS) - frozenset(detector.sensors)
    state = options.new_state(drop)
    if options.realtime and not isinstance(detector, OracleDetector):  # the oracle has nothing to warm up
        _warm_up(detector, stream, options, drop, scene_record["token"])
    timer = StageTimer(options.device)
    summary = ReplaySummary(scene=scene_record["name"], messages=len(stream), resumed=len(done))
    outputs = _Outputs(out_dir, options, done)
    deadline_s = options.effective_deadline_s / (options.speed if options.realtime else 1.0)
    scene_start_us = min(m.timestamp_us for m in stream)
    clock = ReplayClock(stream[0].timestamp_us, options.realtime, options.speed)
    pending: Deque[SensorMessage] = deque()
    latencies: List[float] = []
    timings: List[Dict[str, float]] = []
    trigger_index = 0
    index_of: Dict[str, int] = {}

    def base_record(key: SensorMessage, status: FrameStatus, frame: Optional[Frame]) -> Dict[str, Any]:
        return {
            "scene": scene_record["name"], "index": index_of[key.sample_data_token],
            "lidar_token": key.sample_data_token, "sample_token": key.sample_token if key.is_key_frame else None,
            "is_key_frame": key.is_key_frame, "timestamp_us": key.timestamp_us,
            "sensor_ages_s": status.ages_s, "stale": list(status.stale), "corrupt_files": list(status.corrupt),
            "missing": sorted(frame.missing) if frame is not None else [],
            "num_lidar_points": len(frame.lidar.points) if frame is not None and frame.lidar is not None else 0,
            "num_radar_points": len(frame.radar.points) if frame is not None and frame.radar is not None else 0,
            "num_cameras": len(frame.cameras) if frame is not None else 0,
            "deadline_s": deadline_s, "faults": state.faults.as_dict(),
        }

    def process(key: SensorMessage) -> None:
        if key.sample_data_token in done:
            if options.video or options.mcap:
                frame, _ = state.build_frame(key, scene_record["token"])
                record = done[key.sample_data_token]
                if record["status"] == "processed":
                    outputs.render(frame, record, scene_start_us)
            return
        ground_truth = None
        if with_annotations and key.is_key_frame:
            ground_truth = sample_ground_truth(nusc, key.sample_token, key.ego_pose.ego_to_global)
        timer.reset()
        with timer.stage("end_to_end"):
            with timer.stage("load"):
                frame, status = state.build_frame(key, scene_record["token"], ground_truth)
            boxes = timed_detect(detector, frame, timer)
            with timer.stage("decision"):
                ego = EgoState.from_poses(state.recent_poses(key), -1)
                decision = decide(boxes, ego, planner_config)
        elapsed = timer.elapsed_ms()
        if options.realtime:
            latency = time.perf_counter() - clock.arrival_wall_s(key.timestamp_us)
        else:
            latency = elapsed["end_to_end"] / 1000.0
        record = base_record(key, status, frame)
        record.update(status="processed", detections=boxes_to_json(boxes), decision=decision.to_json(),
                      ego_state=asdict(ego), timings_ms=elapsed, latency_s=latency, late=latency > deadline_s)
        outputs.write_record(record)
        summary.processed += 1
        summary.late += int(record["late"])
        latencies.append(latency)
        timings.append(elapsed)
        outputs.render(frame, record, scene_start_us)

    def skip(key: SensorMessage) -> None:
        if key.sample_data_token in done:
            return
        record = base_record(key, state.status(key), None)
        record.update(status="skipped", detections=[], decision=None, ego_state=None, timings_ms={},
                      latency_s=None, late=False)
        outputs.write_record(record)
        summary.skipped += 1

    def process_ready(now_us: Optional[int]) -> None:
        """Processes the pending triggers whose sync window closed before ``now_us`` (all when None); in real
        time only the newest of them, skipping the rest."""
        window_us = options.sync_window_s * 1e6
        ready = [key for key in pending if now_us is None or key.timestamp_us + window_us < now_us]
        for _ in ready:
            pending.popleft()
        for position, key in enumerate(ready):
            if options.realtime and position < len(ready) - 1 and key.sample_data_token not in done:
                skip(key)
            else:
                process(key)

    wall_start = time.perf_counter()
    try:
        for message in tqdm(stream, desc=f"replay {scene_record['name']}", unit="msg", disable=not progress):
            clock.wait_until(message.timestamp_us)
            if not clock.behind(message.timestamp_us):  # a backlog is delivered before the next frame starts
                process_ready(message.timestamp_us)
            if state.push(message) and options.is_trigger(message):
                if message.sample_data_token not in index_of:
                    index_of[message.sample_data_token] = trigger_index
                    trigger_index += 1
                pending.append(message)
        process_ready(None)
    finally:
        summary.outputs = outputs.close()
    summary.wall_s = time.perf_counter() - wall_start
    summary.frames = trigger_index
    summary.faults = state.faults.as_dict()
    summary.sensor_duration_s = (max(m.timestamp_us for m in stream) - scene_start_us) * 1e-6
    if latencies:
        summary.latency_s = latency_summary(latencies, unit="s")
        summary.stages_ms = summarize_records(timings)
    with open(os.path.join(out_dir, SUMMARY_FILE), "w", encoding="utf-8") as f:
        json.dump({"options": _options_json(options), **summary.to_json()}, f, indent=2)
    summary.outputs["summary"] = os.path.join(out_dir, SUMMARY_FILE)
    return summary


def _options_json(options: ReplayOptions) -> Dict[str, Any]:
    payload = asdict(options)
    payload["faults"] = None if options.faults is None else asdict(options.faults)
    return payload
