"""The per-frame step that replay and benchmark both run: load -> detect -> decide, each stage timed.

Stages (perception.timing.STAGES): load (the caller's frame source: in replay and the benchmark streamed_frame, the
streaming state's buffers), detector (the whole detect call, the model's own stages inside it),
decision (the ego state from the past LiDAR poses, then the planner), end_to_end (all three).

Which planner decides: with a detector that plans (perception.models.planning_head.PlanningDetector with ``plans``
true) the learned plan through the safety layer (perception.decision.learned.learned_decision; its ego input,
perception.decision.learned.ego_features of the past poses, is computed in the decision stage before the detector
runs, the planning head's forward is timed inside the detector as its stage "planning_head"); with any other
detector the rule planner (perception.decision.decide) on the detections, its plan through the safety layer too
(perception.decision.safety.checked_rule_decision). A frame that holds none of the
detector's sensor groups (all missing or stale: nothing around the ego can be seen) is not detected: the decision
is the minimal-risk stop (perception.decision.minimal_risk_stop) naming what is missing, and the tracker keeps its
tracks for the next frame that sees.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Optional, Sequence

from perception.datasets.frame import Frame
from perception.datasets.lane_map import LaneCentres
from perception.decision import Decision, EgoState, Maneuver, PlannerConfig, minimal_risk_stop
from perception.decision.learned import check_plan_grid, ego_features, learned_decision
from perception.decision.safety import checked_rule_decision
from perception.decision.tracking import AgentTracker, TrackerConfig
from perception.detector import Detector, timed_detect
from perception.geometry import Boxes3D, EgoPose
from perception.models.planning_head import PlanningDetector
from perception.models.planning_types import PlanningOutputs
from perception.datasets.ground_truth import GroundTruth
from perception.runtime.messages import SensorMessage
from perception.runtime.streaming import FrameStatus, StreamingState
from perception.timing import StageTimer


@dataclass(frozen=True)
class LoadedFrame:
    """What a frame source hands the step: the ``frame``, the ego poses of its LiDAR sweeps up to the frame,
    oldest first (``past_poses``: what a causal ego-state estimate may use), from the streaming state the
    ``status`` it built the frame with (None for a frame read from a table), and the map's ``lanes`` in the
    frame's ego frame (None where the data has no lane map)."""

    frame: Frame
    past_poses: Sequence[EgoPose]
    status: Optional[FrameStatus] = None
    lanes: Optional[LaneCentres] = None


def streamed_frame(state: StreamingState, key: SensorMessage, scene_token: str, lanes: Optional[LaneCentres] = None,
                   ground_truth: Optional[GroundTruth] = None) -> LoadedFrame:
    """The load stage of a live frame at trigger ``key`` (replay's, the benchmark's): the frame the streaming
    ``state`` builds from its buffers, with its status, the past poses it holds, and the log's lane map ``lanes``
    (global frame) in the key's ego frame."""
    frame, status = state.build_frame(key, scene_token, ground_truth)
    frame_lanes = None if lanes is None else lanes.transformed(key.ego_pose.ego_to_global.inverse())
    return LoadedFrame(frame, state.recent_poses(key), status, frame_lanes)


@dataclass(frozen=True)
class StepResult:
    """One frame through the step: what was loaded, the ``detections`` (ego frame), the ``ego_state``, the
    ``decision``, ``timings_ms`` (stage -> ms: load, detector and the model's stages, decision, end_to_end), the
    planning head's proposal ``plan`` before the safety layer (a PlanningOutputs row) and ``plan_maneuver``, the
    maneuver its trajectory carries out (perception.decision.learned.plan_maneuver), both None when the rule
    planner decided."""

    loaded: LoadedFrame
    detections: Boxes3D
    ego_state: EgoState
    decision: Decision
    timings_ms: Dict[str, float]
    plan: Optional[PlanningOutputs] = None
    plan_maneuver: Optional[Maneuver] = None


class FrameStep:
    """Runs frames through ``detector`` and the planner (module docstring; ``planner_config``), timing each stage
    with a StageTimer on ``device`` (CUDA events on a GPU, perf_counter on the CPU). The planner sees the
    detections as an AgentTracker (perception.decision.tracking) returns them, with velocities and accelerations
    tracked over the frames this step has run, in the order it ran them."""

    def __init__(self, detector: Detector, planner_config: PlannerConfig = PlannerConfig(),
                 device: str = "cpu") -> None:
        self.detector = detector
        self.planner_config = planner_config
        self.timer = StageTimer(device)
        self.plans = isinstance(detector, PlanningDetector) and detector.plans
        if self.plans:
            check_plan_grid("the detector's planning head", detector.plan_grid, planner_config)
        self.tracker = AgentTracker(TrackerConfig(min_score=planner_config.min_score))

    def sees(self, missing: Iterable[str]) -> bool:
        """Whether a frame missing ``missing`` (Frame.missing, or a replay record's list of it: sensor groups and
        channels) holds one of the detector's sensor groups: else it is not detected (module docstring)."""
        return not frozenset(self.detector.sensors) <= frozenset(missing)

    def __call__(self, load: Callable[[], LoadedFrame]) -> StepResult:
        """One frame: ``load()`` timed as stage "load", then detection and decision (only the decision, the
        minimal-risk stop, when the frame holds none of the detector's sensors: module docstring)."""
        timer = self.timer
        timer.reset()
        plan = plan_maneuver = None
        with timer.stage("end_to_end"):
            with timer.stage("load"):
                loaded = load()
            blind = not self.sees(loaded.frame.missing)
            detections = Boxes3D.empty()
            if self.plans and not blind:
                with timer.stage("decision"):
                    features = ego_features(loaded.past_poses)[None]
                with timer.stage("detector"):
                    (detections,), (plan,) = self.detector.detect_and_plan([loaded.frame], features, timer)
            elif not blind:
                detections = timed_detect(self.detector, loaded.frame, timer)
            with timer.stage("decision"):
                ego_state = EgoState.from_poses(loaded.past_poses, -1)
                if blind:
                    unseen = ", ".join(sorted(self.detector.sensors))
                    decision = minimal_risk_stop(ego_state, self.planner_config,
                                                 f"no data from the detector's sensors ({unseen})", loaded.lanes)
                else:
                    agents = self.tracker.update(detections, loaded.frame.ego_pose)
                    if plan is None:
                        decision = checked_rule_decision(agents.boxes, ego_state, self.planner_config,
                                                         agents.accelerations_mps2, loaded.lanes)
                    else:
                        plan_maneuver, decision = learned_decision(plan, agents.boxes, ego_state, loaded.past_poses,
                                                                   self.planner_config, agents.accelerations_mps2,
                                                                   loaded.lanes)
        return StepResult(loaded, detections, ego_state, decision, timer.elapsed_ms(), plan, plan_maneuver)
