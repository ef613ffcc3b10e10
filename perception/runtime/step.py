"""The per-frame step that replay and benchmark both run: load -> detect -> decide, each stage timed.

Stages (perception.timing.STAGES): load (the caller's frame source: the streaming state's buffers in replay, a
prebuilt SampleTable in the benchmark), detector (the whole detect call, the model's own stages inside it),
decision (the ego state from the past LiDAR poses, then the planner), end_to_end (all three).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

from perception.datasets.frame import Frame
from perception.decision import Decision, EgoState, PlannerConfig, decide
from perception.detector import Detector, timed_detect
from perception.geometry import Boxes3D, EgoPose
from perception.runtime.streaming import FrameStatus
from perception.timing import StageTimer


@dataclass(frozen=True)
class LoadedFrame:
    """What a frame source hands the step: the ``frame``, the ego poses of its LiDAR sweeps up to the frame,
    oldest first (``past_poses``: what a causal ego-state estimate may use), and, from the streaming state, the
    ``status`` it built the frame with (None for a frame read from a table)."""

    frame: Frame
    past_poses: Sequence[EgoPose]
    status: Optional[FrameStatus] = None


@dataclass(frozen=True)
class StepResult:
    """One frame through the step: what was loaded, the ``detections`` (ego frame), the ``ego_state`` and the
    planner's ``decision``, and ``timings_ms`` (stage -> ms: load, detector and the model's stages, decision,
    end_to_end)."""

    loaded: LoadedFrame
    detections: Boxes3D
    ego_state: EgoState
    decision: Decision
    timings_ms: Dict[str, float]


class FrameStep:
    """Runs frames through ``detector`` and the planner (``planner_config``), timing each stage with a StageTimer
    on ``device`` (CUDA events on a GPU, perf_counter on the CPU)."""

    def __init__(self, detector: Detector, planner_config: PlannerConfig = PlannerConfig(),
                 device: str = "cpu") -> None:
        self.detector = detector
        self.planner_config = planner_config
        self.timer = StageTimer(device)

    def __call__(self, load: Callable[[], LoadedFrame]) -> StepResult:
        """One frame: ``load()`` timed as stage "load", then detection and decision."""
        timer = self.timer
        timer.reset()
        with timer.stage("end_to_end"):
            with timer.stage("load"):
                loaded = load()
            detections = timed_detect(self.detector, loaded.frame, timer)
            with timer.stage("decision"):
                ego_state = EgoState.from_poses(loaded.past_poses, -1)
                decision = decide(detections, ego_state, self.planner_config)
        return StepResult(loaded, detections, ego_state, decision, timer.elapsed_ms())
