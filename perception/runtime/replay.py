"""Replay of a logged drive through the whole pipeline, as the car saw it.

Every sensor message of a scene (perception.runtime.messages), optionally with injected faults
(perception.runtime.faults), is pushed in timestamp order into the streaming state
(perception.runtime.streaming). A LiDAR keyframe (or, with ``every_sweep``, every LiDAR sweep) triggers a frame,
built once the stream has passed the trigger by ``sync_window_s`` (so that the keyframe's radar sweeps and images
captured just after the LiDAR are in): load the Frame from the buffers, detect, decide.

Watchdog: a decision is due every trigger period. When no LiDAR trigger has come WATCHDOG_AFTER_PERIODS periods
after the last one (a LiDAR outage, a dropped keyframe; before the first, after the stream's first message), the
first message past that time, of any channel, triggers a frame at its own timestamp and pose, and then the first
message a period after each such frame does, until a LiDAR trigger comes again. Such a frame reads what the
buffers hold (the LiDAR too while it is not stale; perception.runtime.step decides the minimal-risk stop when none
of the model's sensors has data); its decision's reason starts with what the watchdog saw. The oracle has no
watchdog: it reads ground truth, which exists at LiDAR keyframes only. Frames are made in timestamp order: a LiDAR
trigger delivered after a frame as late or later was made (a delayed sweep behind the watchdog's frame, or at
its very timestamp) makes none (``overtaken`` in the summary; its points stay in the buffer for the frames after
it).

Pacing: as fast as possible, or in real time (``realtime``, ``speed`` x faster). In real time, messages are
delivered at their (scaled) capture time; while a frame is processed the next messages queue up, and the backlog
is delivered before the next frame starts, so that when frames pile up behind a slow pipeline only the newest is
processed (from what it would have read on time: the buffers keep that much) and the others are recorded as
skipped. The log's time stands still while a frame's picture and MCAP messages are drawn (the car would not draw
them), so that they change no record. In real time a frame is made as its sync window closes (the log's time),
not when the next message comes. Before the replay starts (in either pacing), the step (the detector, the oracle
too, and the decision) runs once, untimed and unrecorded, on the first trigger's frame (loading Numba's compiled
kernels, the decision's too, and torch's first allocations), as a car starts its stack before it drives.

Latency (``latency_s`` in each record): in real time, the wall time from the trigger's (scaled) capture time to the
decision, the sync window and any queueing included; as fast as possible, the end_to_end processing time (load +
detector + decision: perception.runtime.step). A frame is late when its latency exceeds ``deadline_s`` (default:
the trigger period, 0.5 s for keyframes, 0.05 s for every sweep; divided by ``speed`` in real time).

Outputs in the output folder (perception.runtime.replay_outputs): ``frames.jsonl`` (one FRAME_RECORD line per
trigger, flushed as it is written: perception.runtime.records), ``frames/NNNNNN.png`` and ``replay.mp4``
(bird's-eye view beside the six cameras with the boxes projected), ``replay.mcap``
(perception.runtime.mcap_writer), ``summary.json``, and ``replay_run.json`` (RUN_FILE: what writes the records).
With ``resume``, the triggers already in frames.jsonl are not detected again: their records are kept and the
pictures and the MCAP are redrawn from them; a folder whose records another run wrote is refused.
"""
from __future__ import annotations

import math
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Deque, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from nuscenes.nuscenes import NuScenes
from tqdm import tqdm

from perception.datasets.frame import Frame
from perception.datasets.ground_truth import GroundTruth, sample_ground_truth
from perception.datasets.lane_map import LaneCentres, log_lanes
from perception.decision import PlannerConfig
from perception.detector import Detector, OracleDetector, dropped_groups
from perception.geometry import Boxes3D
from perception.jsonfile import as_read_back, check_same_run, write_json_atomic
from perception.runtime.faults import FaultPlan, inject_faults
from perception.runtime.messages import SensorMessage, find_scene, scene_messages
from perception.runtime.records import FRAMES_FILE, plan_to_json, read_frame_records
from perception.runtime.replay_outputs import ReplayOutputs
from perception.runtime.step import FrameStep, streamed_frame
from perception.runtime.streaming import DEFAULT_STALE_AFTER_S, DEFAULT_SYNC_WINDOW_S, FrameStatus, StreamingState
from perception.sensors import (DEFAULT_LIDAR_SWEEPS, DEFAULT_RADAR_SWEEPS, KEYFRAME_PERIOD_S, LIDAR_CHANNEL,
                                NOMINAL_PERIOD_S)
from perception.timing import latency_summary, summarize_records


WATCHDOG_AFTER_PERIODS = 1.5
"""Trigger periods after a LiDAR trigger at which the watchdog makes a frame when no other LiDAR trigger came: late
enough for a trigger's jitter (scene-0916's keyframes come 0.40-0.50 s apart), within one more period."""


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
    sync_window_s: float = DEFAULT_SYNC_WINDOW_S
    deadline_s: Optional[float] = None
    lidar_sweeps: int = DEFAULT_LIDAR_SWEEPS
    radar_sweeps: int = DEFAULT_RADAR_SWEEPS
    image_size: Optional[Tuple[int, int]] = None
    faults: Optional[FaultPlan] = None
    video: bool = True
    mcap: bool = True
    device: str = "cpu"
    display_min_score: float = PlannerConfig().min_score

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"speed must be positive, got {self.speed}")
        if not (math.isfinite(self.sync_window_s) and self.sync_window_s >= 0):
            raise ValueError(f"sync_window_s must be finite and >= 0, got {self.sync_window_s}")
        if self.deadline_s is not None and not self.deadline_s > 0:
            raise ValueError(f"deadline_s must be positive, got {self.deadline_s}")
        if not 0.0 <= self.display_min_score <= 1.0:
            raise ValueError(f"display_min_score must lie in [0, 1], got {self.display_min_score}")

    @property
    def trigger_period_s(self) -> float:
        """The nominal time between frames: a LiDAR sweep or a keyframe."""
        return NOMINAL_PERIOD_S["lidar"] if self.every_sweep else KEYFRAME_PERIOD_S

    @property
    def watchdog_after_s(self) -> float:
        """How long after a LiDAR trigger (or the stream's first message) the watchdog makes a frame when no other
        LiDAR trigger came (module docstring)."""
        return WATCHDOG_AFTER_PERIODS * self.trigger_period_s

    @property
    def effective_deadline_s(self) -> float:
        return self.deadline_s if self.deadline_s is not None else self.trigger_period_s

    def is_trigger(self, message: SensorMessage) -> bool:
        """Whether ``message`` starts a frame: a LiDAR keyframe, or any LiDAR sweep with ``every_sweep``."""
        return message.channel == LIDAR_CHANNEL and (self.every_sweep or message.is_key_frame)

    def new_state(self, drop: frozenset) -> StreamingState:
        """An empty streaming state with these buffers, leaving out the sensor groups in ``drop``; its backlog:
        the newest ready trigger waits at most until the next one's window closes, the watchdog's time after it."""
        return StreamingState(self.lidar_sweeps, self.radar_sweeps, self.stale_after_s, self.image_size, drop,
                              sync_window_s=self.sync_window_s, backlog_s=self.watchdog_after_s)


@dataclass
class ReplaySummary:
    """What a replay did: frame counts (``frames`` every trigger, ``watchdog`` those the watchdog made,
    ``overtaken`` the LiDAR triggers that came after a later frame and made none), latency
    percentiles [s], per-stage timings [ms], faults, wall time. After a resume, ``resumed`` counts the triggers an
    earlier run recorded, processed or skipped (their records are kept, their faults counted again);
    ``processed``, ``skipped``, ``late``, latency, timings and wall time are this run's."""

    scene: str
    frames: int = 0
    processed: int = 0
    resumed: int = 0
    watchdog: int = 0
    overtaken: int = 0
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

    def pause(self, seconds: float) -> None:
        """The log's time stands still for ``seconds`` of wall time (the replay drawing its outputs, which the car
        would not: the records do not depend on them)."""
        self.start_wall_s += seconds

    def behind(self, timestamp_us: int) -> bool:
        """In real time: whether data captured at ``timestamp_us`` was due more than BEHIND_TOLERANCE_S ago (it
        waited in a backlog while a frame was processed). Never when not in real time."""
        return self.realtime and time.perf_counter() - self.arrival_wall_s(timestamp_us) > BEHIND_TOLERANCE_S


def _warm_up(detector: Detector, stream: Sequence[SensorMessage], options: ReplayOptions, drop: frozenset,
             scene_token: str, planner_config: PlannerConfig, lanes: Optional[LaneCentres],
             ground_truth_at: Callable[[SensorMessage], Optional[GroundTruth]], watchdog: bool) -> None:
    """One untimed step, detection and decision (a throwaway FrameStep, the scene's lane map), on the first
    trigger's frame (with a ``watchdog``, the watchdog's first where no LiDAR trigger comes; without one, e.g. the
    oracle's, none: the replay makes no frame; the oracle's with its ground truth, ``ground_truth_at``), built from
    a throwaway streaming state: the detector's and the decision's compiled kernels load."""
    state = options.new_state(drop)
    first = next((m for m in stream if options.is_trigger(m)), None)
    if first is None and watchdog:
        watchdog_us = stream[0].timestamp_us + options.watchdog_after_s * 1e6
        first = next((m for m in stream if m.timestamp_us > watchdog_us), None)
    if first is None:
        return
    loaded = streamed_frame(state.fed_up_to(stream, first), first, scene_token, lanes, ground_truth_at(first))
    FrameStep(detector, planner_config, options.device)(lambda: loaded)


class SceneReplay:
    """One replay of a scene (module docstring) into ``out_dir``, built ready to drive: the message stream read
    (``messages`` instead of the scene's own, e.g. one with faults already injected), the records to resume
    from read, a model's step warmed up, the outputs open and the clock started. ``run`` replays.

    Raises ValueError when the oracle is asked for every sweep (ground truth exists at keyframes only), the
    scene has no messages, or a frames.jsonl to resume from is malformed or was written by another run
    (check_same_run).
    The folder is written only once the step is warmed up: RUN_FILE after frames.jsonl holds just the records
    kept, so a run refused or killed before never leaves one run's records under another's identity.
    """

    def __init__(self, nusc: NuScenes, scene: str, detector: Detector, out_dir: str,
                 options: ReplayOptions = ReplayOptions(), planner_config: PlannerConfig = PlannerConfig(),
                 resume: bool = False, messages: Optional[Iterable[SensorMessage]] = None,
                 run: Optional[Mapping[str, Any]] = None) -> None:
        if options.every_sweep and isinstance(detector, OracleDetector):
            raise ValueError("the oracle needs ground truth, which exists at keyframes only: replay keyframes "
                             "(no every_sweep) or give a model")
        self.nusc = nusc
        self.scene = find_scene(nusc, scene)
        self.lanes = log_lanes(nusc, self.scene["log_token"])  # the scene's lane map (global), None without one
        stream = list(messages) if messages is not None else scene_messages(nusc, scene)
        if not stream:
            raise ValueError(f"scene {self.scene['name']}: no sensor messages")
        self.stream = list(inject_faults(stream, options.faults)) if options.faults is not None else stream
        if not self.stream:
            raise ValueError(f"scene {self.scene['name']}: the injected faults ({options.faults}) left no message")
        self.options = options
        self.done = ({r["key_token"]: r for r in read_frame_records(os.path.join(out_dir, FRAMES_FILE))}
                     if resume else {})
        identity = run_identity(self.scene, options, run)
        if self.done:  # what differs from the run that wrote them first (its faults, say), then a stream's tokens
            check_same_run(os.path.join(out_dir, RUN_FILE), identity, f"the frames in {out_dir}",
                           "replay into another folder, or without --resume")
        unknown = set(self.done) - {m.sample_data_token for m in self.stream}
        if unknown:
            raise ValueError(f"{os.path.join(out_dir, FRAMES_FILE)}: {len(unknown)} frames of another stream (key "
                             f"tokens not in scene {self.scene['name']}'s messages, e.g. {sorted(unknown)[0]}); replay "
                             f"into another folder, or without --resume")
        self.with_annotations = len(nusc.sample_annotation) > 0
        drop = dropped_groups(detector)
        self.state = options.new_state(drop)
        self.watchdog = not isinstance(detector, OracleDetector)
        _warm_up(detector, self.stream, options, drop, self.scene["token"], planner_config, self.lanes,
                 self._ground_truth, self.watchdog)
        self.step = FrameStep(detector, planner_config, options.device)
        self.summary = ReplaySummary(scene=self.scene["name"], messages=len(self.stream), resumed=len(self.done))
        self.outputs = ReplayOutputs(out_dir, self.done.values(), options.video, options.mcap,
                                     options.display_min_score, options.trigger_period_s)
        write_json_atomic(os.path.join(out_dir, RUN_FILE), identity, indent=2)
        self.deadline_s = options.effective_deadline_s / (options.speed if options.realtime else 1.0)
        self.scene_start_us = min(m.timestamp_us for m in self.stream)
        self.clock = ReplayClock(self.stream[0].timestamp_us, options.realtime, options.speed)
        self.pending: Deque[SensorMessage] = deque()
        self.trigger_index: Dict[str, int] = {}
        self.watchdog_gaps_s: Dict[str, float] = {}  # watchdog key token -> s since the last LiDAR trigger
        self.last_trigger_us = self.stream[0].timestamp_us
        self.newest_frame_us = -math.inf  # the newest trigger's time: frames are made in timestamp order
        self.watchdog_due_us = self.last_trigger_us + options.watchdog_after_s * 1e6
        self.latencies: List[float] = []
        self.timings_ms: List[Dict[str, float]] = []

    def run(self, progress: bool = True) -> ReplaySummary:
        """Delivers the stream, processing each trigger once its sync window has passed; closes the outputs
        and writes summary.json."""
        wall_start = time.perf_counter()
        try:
            for message in tqdm(self.stream, desc=f"replay {self.scene['name']}", unit="msg",
                                disable=not progress):
                self._process_at_window_close(message.timestamp_us)
                self.clock.wait_until(message.timestamp_us)
                if not self.clock.behind(message.timestamp_us):  # a backlog is delivered before the next frame
                    self._process_ready(message.timestamp_us)
                if self.state.push(message) and self._triggers(message):
                    self.trigger_index.setdefault(message.sample_data_token, len(self.trigger_index))
                    self.pending.append(message)
            self._process_at_window_close(None)
            self._process_ready(None)
        finally:
            self.summary.outputs = self.outputs.close()
        summary = self.summary
        summary.wall_s = time.perf_counter() - wall_start
        summary.frames = len(self.trigger_index)
        summary.watchdog = len(self.watchdog_gaps_s)
        summary.faults = self.state.faults.as_dict()
        summary.sensor_duration_s = (max(m.timestamp_us for m in self.stream) - self.scene_start_us) * 1e-6
        if self.latencies:
            summary.latency_s = latency_summary(self.latencies, unit="s")
            summary.stages_ms = summarize_records(self.timings_ms)
        summary.outputs["summary"] = self.outputs.write_summary({"options": _options_json(self.options),
                                                                 **summary.to_json()})
        return summary

    def _triggers(self, message: SensorMessage) -> bool:
        """Whether accepted ``message`` triggers a frame: a LiDAR trigger, or the watchdog's (module docstring),
        which is then recorded; moves the watchdog's due time on. None at or before the newest frame's time
        (module docstring: no two frames at one time)."""
        if message.timestamp_us <= self.newest_frame_us:
            self.summary.overtaken += int(self.options.is_trigger(message))
            return False
        if self.options.is_trigger(message):
            self.last_trigger_us = message.timestamp_us
            self.watchdog_due_us = message.timestamp_us + self.options.watchdog_after_s * 1e6
        elif self.watchdog and message.timestamp_us > self.watchdog_due_us:
            self.watchdog_gaps_s[message.sample_data_token] = (message.timestamp_us - self.last_trigger_us) * 1e-6
            self.watchdog_due_us = message.timestamp_us + self.options.trigger_period_s * 1e6
        else:
            return False
        self.newest_frame_us = message.timestamp_us
        return True

    def _process_at_window_close(self, next_us: Optional[int]) -> None:
        """In real time, the pending triggers whose sync window closes before the next message (at ``next_us``;
        None: the stream has ended), each processed as its window closes, not when that message comes (on
        keyframe-only data half a second later); the records are the same, built before that message is pushed. A
        backlog (the clock behind a window's close) is left to the message loop, which delivers it first."""
        if not self.options.realtime:
            return
        window_us = self.options.sync_window_s * 1e6
        while self.pending and (next_us is None or self.pending[0].timestamp_us + window_us < next_us):
            close_us = self.pending[0].timestamp_us + window_us
            if self.clock.behind(close_us):
                return
            self.clock.wait_until(close_us)
            self._process_ready(close_us + 1)

    def _process_ready(self, now_us: Optional[float]) -> None:
        """Processes the pending triggers whose sync window closed before ``now_us`` (all when None); in real
        time only the newest of them, skipping the rest."""
        window_us = self.options.sync_window_s * 1e6
        ready = []  # pending is in timestamp order (_triggers)
        while self.pending and (now_us is None or self.pending[0].timestamp_us + window_us < now_us):
            ready.append(self.pending.popleft())
        for position, key in enumerate(ready):
            if key.sample_data_token in self.done:
                self._redraw(key)
            elif self.options.realtime and position < len(ready) - 1:
                self._skip(key)
            else:
                self._process(key)

    def _ground_truth(self, key: SensorMessage) -> Optional[GroundTruth]:
        """A LiDAR keyframe's ground truth where the tables hold annotations (looked up outside the timed step)."""
        if self.with_annotations and key.is_lidar_keyframe:
            return sample_ground_truth(self.nusc, key.sample_token, key.ego_pose.ego_to_global)
        return None

    def _process(self, key: SensorMessage) -> None:
        ground_truth = self._ground_truth(key)
        step = self.step(lambda: streamed_frame(self.state, key, self.scene["token"], self.lanes, ground_truth))
        if self.options.realtime:
            latency = time.perf_counter() - self.clock.arrival_wall_s(key.timestamp_us)
        else:
            latency = step.timings_ms["end_to_end"] / 1000.0
        record = self._record(key, step.loaded.status, step.loaded.frame)
        decision = step.decision
        gap_s = self.watchdog_gaps_s.get(key.sample_data_token)
        if gap_s is not None:
            trigger = "sweep" if self.options.every_sweep else "keyframe"
            decision = replace(decision, reason=f"watchdog: no LiDAR {trigger} for {gap_s:.2f} s, frame at "
                                                f"{key.channel}; {decision.reason}")
        record.update(status="processed", detections=step.detections.to_json(),
                      decision=decision.to_json(), ego_state=asdict(step.ego_state),
                      plan=None if step.plan is None else plan_to_json(step.plan, step.plan_maneuver),
                      timings_ms=step.timings_ms, latency_s=latency, late=latency > self.deadline_s)
        self.outputs.write_record(record)
        self.summary.processed += 1
        self.summary.late += int(record["late"])
        self.latencies.append(latency)
        self.timings_ms.append(step.timings_ms)
        self._render(step.loaded.frame, record)

    def _skip(self, key: SensorMessage) -> None:
        record = self._record(key, self.state.status(key), None)
        record.update(status="skipped", detections=[], decision=None, plan=None, ego_state=None, timings_ms={},
                      latency_s=None, late=False)
        self.outputs.write_record(record)
        self.summary.skipped += 1

    def _redraw(self, key: SensorMessage) -> None:
        """A trigger done in an earlier run: a processed one's frame built again as the first run built it (which
        counts its faults and leaves its corrupt files out of the buffers), its detections fed to the step's
        tracker as the first run fed them (the later frames' tracked motion reads them; none where the step saw
        nothing, as there), and its picture and MCAP messages again, from its record."""
        record = self.done[key.sample_data_token]
        if record["status"] == "processed":
            frame, _ = self.state.build_frame(key, self.scene["token"])
            if self.step.sees(record["missing"]):
                self.step.tracker.update(Boxes3D.from_json(record["detections"]), frame.ego_pose)
            self._render(frame, record)

    def _render(self, frame: Frame, record: Dict[str, Any]) -> None:
        """The frame's picture and MCAP messages, the clock paused meanwhile (ReplayClock.pause)."""
        start_s = time.perf_counter()
        self.outputs.render(frame, record, self.scene_start_us)
        self.clock.pause(time.perf_counter() - start_s)

    def _record(self, key: SensorMessage, status: FrameStatus, frame: Optional[Frame]) -> Dict[str, Any]:
        """The FRAME_RECORD keys that skipped (no ``frame``) and processed triggers share."""
        return {
            "scene": self.scene["name"], "index": self.trigger_index[key.sample_data_token],
            "key_token": key.sample_data_token, "key_channel": key.channel,
            "trigger": "watchdog" if key.sample_data_token in self.watchdog_gaps_s else "lidar",
            "sample_token": key.sample_token if key.is_lidar_keyframe else None,
            "is_key_frame": key.is_lidar_keyframe, "timestamp_us": key.timestamp_us,
            "sensor_ages_s": status.ages_s, "stale": list(status.stale), "corrupt_files": list(status.corrupt),
            "missing": sorted(frame.missing) if frame is not None else [],
            "num_lidar_points": len(frame.lidar.points) if frame is not None and frame.lidar is not None else 0,
            "num_radar_points": len(frame.radar.points) if frame is not None and frame.radar is not None else 0,
            "num_cameras": len(frame.cameras) if frame is not None else 0,
            "deadline_s": self.deadline_s, "faults": self.state.faults.as_dict(),
        }


def replay_scene(
    nusc: NuScenes, scene: str, detector: Detector, out_dir: str, options: ReplayOptions = ReplayOptions(),
    planner_config: PlannerConfig = PlannerConfig(), resume: bool = False, progress: bool = True,
    messages: Optional[Iterable[SensorMessage]] = None, run: Optional[Mapping[str, Any]] = None,
) -> ReplaySummary:
    """Replays ``scene`` (name or token) through ``detector`` and the planner into ``out_dir`` (SceneReplay);
    ``run``: what names the model (e.g. its config and checkpoint), recorded in RUN_FILE."""
    return SceneReplay(nusc, scene, detector, out_dir, options, planner_config, resume, messages, run).run(progress)


RUN_FILE = "replay_run.json"
"""Beside frames.jsonl: the scene, the caller's ``run`` and the options that shape the records, so that a resume
never mixes the records of two runs."""

OUTPUT_ONLY_OPTIONS = ("video", "mcap", "display_min_score", "device")
"""ReplayOptions that change what is drawn or where the model runs, not the records: a resume may change them."""


def run_identity(scene: Mapping[str, Any], options: ReplayOptions, run: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """What RUN_FILE holds for a replay of ``scene`` (its record: name and token; worlds of other seeds share the
    names) with ``options`` by ``run``."""
    shaping = {key: value for key, value in _options_json(options).items() if key not in OUTPUT_ONLY_OPTIONS}
    return as_read_back({"scene": scene["name"], "scene_token": scene["token"], "run": dict(run or {}),
                         "options": shaping})


def _options_json(options: ReplayOptions) -> Dict[str, Any]:
    payload = asdict(options)
    payload["faults"] = None if options.faults is None else asdict(options.faults)
    return payload
