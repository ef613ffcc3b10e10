"""Decision metrics: planners graded side by side on the same keyframes against the logged drive, never against
each other or against themselves. Pure functions of PlannedFrames; perception.eval.logged_drive reads them from the
nuScenes tables.

Per keyframe each planner gives a plan (T, 2) [x, y] at the step times of the logged future and, where it decides
one, a maneuver. The logged future (LoggedFuture) holds, at the plan's step times, the ego positions the car
actually drove and the ground-truth boxes, both in the ego frame of the frame's LiDAR keyframe; steps it could not
fill are masked, never padded.

Open-loop planning (``decisions.planners.<name>``): L2 to the logged ego positions and the collision rate of the
ego footprint with the ground-truth boxes (perception.decision.collision) at 1, 2, 3 s, in both conventions of the
literature: ``l2_uniad_m`` / ``collision_uniad`` the value at exactly t (UniAD), ``l2_stp3_m`` / ``collision_stp3``
the mean over the steps 0.5 s .. t (ST-P3 / VAD). A frame counts at horizon t only when the log covers every step
up to t (a short scene is counted in ``num_frames`` per horizon and skipped). The planner "logged" is the logged
drive itself: its collision rate is the floor a plan can be held to.

Beside them, where the constant-velocity planner is graded, ``l2_ratio_to_constant_velocity``: per convention and
horizon the planner's L2 over constant velocity's on the same frames, and the central interval of that ratio over
RATIO_DRAWS draws of the keyframes with replacement (perception.eval.resampling says what such an interval leaves
out; a draw without a frame at the horizon is left out).

Maneuvers (``decisions.maneuvers.<name>``), against the labels derived from the logged drive
(perception.datasets.maneuver_labels), over the labelled keyframes: ``accuracy``; ``lane_change_precision`` /
``lane_change_recall`` (a lane change counts as right only with the logged direction); ``critical_miss_rate``
(logged BRAKE / STOP that the planner did not brake for) and ``false_brake_rate`` (a planner's BRAKE / STOP where
the driver did neither). A rate with nothing to count is None.

Lane-change feasibility (``decisions.lane_change_feasibility.<name>``), for the planners that judge it, over the
keyframes where they do: against the logged drive, ``logged_side_feasible_rate``, of the keyframes labelled as a lane
change and still ahead (``logged_lane_changes``; with a lane map, a keyframe where the ego already drives in the
lane it changes to is left out and counted, ``lane_changes_under_way``: its feasibility is judged from that lane),
the share where the side the driver took was judged feasible (the log shows the gaps that were taken, never one that
was refused); against the rule planner's feasibility on the keyframe's ground-truth boxes (the lane exists and its
gap check passes; the planning head's training target; for the gap check on the detections, what the detection
errors change), per side: ``accuracy``, and ``false_feasible_rate``, the share judged feasible of the
``blocked_sides`` that the check on the ground truth blocks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from perception.datasets.maneuver_labels import same_times
from perception.decision import PlannerConfig
from perception.decision.collision import plan_collisions
from perception.eval.resampling import INTERVAL_LEVEL, keyframe_draws, percentile_interval
from perception.geometry import Boxes3D
from perception.maneuvers import Maneuver

HORIZONS_S = (1.0, 2.0, 3.0)
"""The horizons every planning metric is reported at."""
LOGGED = "logged"
CONSTANT_VELOCITY = "constant_velocity"
"""The planner each other planner's L2 is set against (``l2_ratio_to_constant_velocity``): the ego's current
velocity extrapolated."""
RATIO_DRAWS = 1000
"""Keyframe draws for an L2 ratio's interval."""


@dataclass(frozen=True, eq=False)
class LoggedFuture:
    """What happened after a keyframe, in its ego frame, at ``times_s`` (T,) [s] after it.

    ego_xy (T, 2) [x, y] m of the ego origin (NaN where ``ego_valid`` (T,) is False); boxes: T Boxes3D, the
    ground truth at each step time (empty where ``boxes_valid`` (T,) is False).
    """

    sample_token: str
    times_s: np.ndarray
    ego_xy: np.ndarray
    ego_valid: np.ndarray
    boxes: Tuple[Boxes3D, ...]
    boxes_valid: np.ndarray

    def __post_init__(self) -> None:
        steps = len(self.times_s)
        if (self.ego_xy.shape != (steps, 2) or self.ego_valid.shape != (steps,) or len(self.boxes) != steps
                or self.boxes_valid.shape != (steps,)):
            raise ValueError(f"LoggedFuture {self.sample_token}: ego_xy {self.ego_xy.shape}, ego_valid "
                             f"{self.ego_valid.shape}, {len(self.boxes)} box sets and boxes_valid "
                             f"{self.boxes_valid.shape} must all cover the {steps} step times")


@dataclass(frozen=True, eq=False)
class PlannedFrame:
    """One keyframe: ``plans`` planner name -> (trajectory (T, 2) [m] at future.times_s, maneuver or None when
    the planner decides none), the logged future and the logged maneuver label (None: the log is too short);
    ``feasibility`` planner name -> whether it judges a lane change (left, right) feasible, for the planners that
    judge it; ``gap_check_on_truth`` (left, right): the rule planner's feasibility on the ground-truth boxes (the
    lane exists and its gap check passes);
    ``lane_change_under_way``: the keyframe is labelled a lane change and, by the lane map, the ego already drives
    in the lane it changes to."""

    future: LoggedFuture
    logged_maneuver: Optional[Maneuver]
    plans: Mapping[str, Tuple[np.ndarray, Optional[Maneuver]]]
    feasibility: Mapping[str, Tuple[bool, bool]] = field(default_factory=dict)
    gap_check_on_truth: Optional[Tuple[bool, bool]] = None
    lane_change_under_way: bool = False


def _mean(values: np.ndarray) -> Optional[float]:
    return float(np.mean(values)) if len(values) else None


def by_horizon(per_step: np.ndarray, valid: np.ndarray, times_s: np.ndarray
               ) -> Tuple[Dict[str, Optional[float]], Dict[str, Optional[float]], Dict[str, int]]:
    """(F, T) values and validity at the step times (T,) -> per horizon key ("1s" ..): the mean at exactly t, the
    mean of the per-frame means over the steps up to t, and the frames counted."""
    at_t, mean_to_t, counts = {}, {}, {}
    for horizon in HORIZONS_S:
        key = f"{horizon:g}s"
        steps = np.flatnonzero(np.isclose(times_s, horizon))
        if not len(steps):
            at_t[key] = mean_to_t[key] = None
            counts[key] = 0
            continue
        count = int(steps[0]) + 1
        eligible = valid[:, :count].all(axis=1)
        at_t[key] = _mean(per_step[eligible, count - 1])
        mean_to_t[key] = _mean(per_step[eligible, :count].mean(axis=1))
        counts[key] = int(eligible.sum())
    return at_t, mean_to_t, counts


def _ratio(value: Optional[float], reference: Optional[float]) -> Optional[float]:
    return None if value is None or reference is None or reference == 0.0 else value / reference


def l2_ratio(l2: np.ndarray, reference_l2: np.ndarray, valid: np.ndarray, times_s: np.ndarray, draws: np.ndarray,
             level: float = INTERVAL_LEVEL) -> dict:
    """(F, T) L2 of a planner and of the reference planner with their validity (F, T) -> {"uniad" | "stp3":
    {horizon key: {"ratio", "interval"}}}: the ratio of the planner's mean L2 to the reference's on the frames
    counted at that horizon (by_horizon), and the central ``level`` interval of the ratio over the rows of
    ``draws`` (R, F) (frame indices drawn with replacement; None where no draw counts a frame there)."""
    def ratios(rows: np.ndarray) -> Dict[str, Dict[str, Optional[float]]]:
        at_t, mean_to_t, _ = by_horizon(l2[rows], valid[rows], times_s)
        reference_at_t, reference_mean_to_t, _ = by_horizon(reference_l2[rows], valid[rows], times_s)
        return {"uniad": {key: _ratio(at_t[key], reference_at_t[key]) for key in at_t},
                "stp3": {key: _ratio(mean_to_t[key], reference_mean_to_t[key]) for key in mean_to_t}}

    whole = ratios(np.arange(len(l2)))
    drawn = [ratios(draw) for draw in draws]
    result = {}
    for convention, by_key in whole.items():
        result[convention] = {}
        for key, ratio in by_key.items():
            values = np.array([draw[convention][key] for draw in drawn if draw[convention][key] is not None])
            interval = list(percentile_interval(values, level)) if len(values) else None
            result[convention][key] = dict(ratio=ratio, interval=interval)
    return result


def grade_plans(frames: Sequence[PlannedFrame], config: PlannerConfig = PlannerConfig()) -> dict:
    """``decisions.planners``: per planner (plus "logged") the open-loop metrics of the module docstring.
    Raises ValueError naming the sample when frames disagree on the step times or a plan does not cover them."""
    if not frames:
        raise ValueError("grade_plans: no frames")
    times_s = frames[0].future.times_s
    names = list(frames[0].plans)
    for frame in frames:
        token = frame.future.sample_token
        if not same_times(frame.future.times_s, times_s):
            raise ValueError(f"sample {token}: step times {frame.future.times_s.tolist()} differ from "
                             f"{times_s.tolist()}")
        if list(frame.plans) != names:
            raise ValueError(f"sample {token}: planners {list(frame.plans)} differ from {names}")
        for name, (trajectory, _) in frame.plans.items():
            if np.shape(trajectory) != (len(times_s), 2):
                raise ValueError(f"sample {token}: the {name} plan has shape {np.shape(trajectory)}, the logged "
                                 f"future {len(times_s)} steps")
    ego_valid = np.stack([frame.future.ego_valid for frame in frames])
    boxes_valid = np.stack([frame.future.boxes_valid for frame in frames])
    logged = [np.where(frame.future.ego_valid[:, None], frame.future.ego_xy, 0.0) for frame in frames]
    result, l2_by_name = {}, {}
    for name in [*names, LOGGED]:
        plans = logged if name == LOGGED else [np.asarray(frame.plans[name][0], np.float64) for frame in frames]
        l2 = np.stack([np.linalg.norm(plan - np.nan_to_num(frame.future.ego_xy), axis=1)
                       for plan, frame in zip(plans, frames)])
        collisions = np.stack([plan_collisions(plan, frame.future.boxes, config)
                               for plan, frame in zip(plans, frames)]).astype(np.float64)
        # the logged path is only known where the log covers it: its collisions count on those steps only
        collision_valid = boxes_valid & ego_valid if name == LOGGED else boxes_valid
        l2_by_name[name] = l2
        l2_uniad, l2_stp3, l2_frames = by_horizon(l2, ego_valid, times_s)
        collision_uniad, collision_stp3, collision_frames = by_horizon(collisions, collision_valid, times_s)
        result[name] = dict(l2_uniad_m=l2_uniad, l2_stp3_m=l2_stp3, collision_uniad=collision_uniad,
                            collision_stp3=collision_stp3,
                            num_frames=dict(l2=l2_frames, collision=collision_frames))
    if CONSTANT_VELOCITY in names:
        draws = keyframe_draws(len(frames), RATIO_DRAWS)
        for name in names:
            result[name]["l2_ratio_to_constant_velocity"] = l2_ratio(
                l2_by_name[name], l2_by_name[CONSTANT_VELOCITY], ego_valid, times_s, draws)
    return result


def grade_maneuvers(frames: Sequence[PlannedFrame]) -> dict:
    """``decisions.maneuvers``: per planner that decides maneuvers, the grading of the module docstring over the
    labelled frames (``num_frames``; the confusion matrix rows are the logged labels, columns the planner's)."""
    labelled = [frame for frame in frames if frame.logged_maneuver is not None]
    names = [name for name in (frames[0].plans if frames else {})
             if all(frame.plans[name][1] is not None for frame in labelled)] if labelled else []
    labels = list(Maneuver)
    result = {}
    for name in names:
        logged = [frame.logged_maneuver for frame in labelled]
        decided = [frame.plans[name][1] for frame in labelled]
        pairs = list(zip(logged, decided))
        confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
        for truth, guess in pairs:
            confusion[labels.index(truth), labels.index(guess)] += 1
        result[name] = dict(
            accuracy=_mean(np.array([truth is guess for truth, guess in pairs])),
            lane_change_precision=_mean(np.array([truth is guess for truth, guess in pairs if guess.is_lane_change])),
            lane_change_recall=_mean(np.array([truth is guess for truth, guess in pairs if truth.is_lane_change])),
            critical_miss_rate=_mean(np.array([not guess.is_braking for truth, guess in pairs if truth.is_braking])),
            false_brake_rate=_mean(np.array([guess.is_braking for truth, guess in pairs if not truth.is_braking])),
            num_frames=len(pairs),
            labels=[maneuver.value for maneuver in labels],
            confusion_matrix=confusion.tolist(),
        )
    return result


def grade_lane_change_feasibility(frames: Sequence[PlannedFrame]) -> dict:
    """``decisions.lane_change_feasibility``: per planner that judges feasibility, the grading of the module
    docstring over the frames where it does (``num_frames``)."""
    names = list(dict.fromkeys(name for frame in frames for name in frame.feasibility))
    result = {}
    for name in names:
        judged = [frame for frame in frames if name in frame.feasibility]
        changes = [frame for frame in judged
                   if frame.logged_maneuver is not None and frame.logged_maneuver.is_lane_change]
        taken = [frame.feasibility[name][0 if frame.logged_maneuver is Maneuver.CHANGE_LANE_LEFT else 1]
                 for frame in changes if not frame.lane_change_under_way]
        checked = [frame for frame in judged if frame.gap_check_on_truth is not None]
        sides = np.array([frame.feasibility[name] for frame in checked], dtype=bool).reshape(-1)
        truth = np.array([frame.gap_check_on_truth for frame in checked], dtype=bool).reshape(-1)
        result[name] = dict(
            num_frames=len(judged),
            logged_lane_changes=len(taken),
            lane_changes_under_way=len(changes) - len(taken),
            logged_side_feasible_rate=_mean(np.array(taken, dtype=bool)),
            gap_check_on_truth=dict(sides=len(truth), accuracy=_mean(sides == truth),
                                    blocked_sides=int((~truth).sum()), false_feasible_rate=_mean(sides[~truth])),
        )
    return result


def grade_planners(frames: Sequence[PlannedFrame], config: PlannerConfig = PlannerConfig()) -> dict:
    """metrics.json's ``decisions``: planners, maneuvers, lane-change feasibility, and the frame counts (all,
    labelled)."""
    return dict(planners=grade_plans(frames, config), maneuvers=grade_maneuvers(frames),
                lane_change_feasibility=grade_lane_change_feasibility(frames), num_frames=len(frames),
                num_frames_labelled=sum(frame.logged_maneuver is not None for frame in frames),
                conventions={"uniad": "UniAD: the value at exactly t",
                             "stp3": f"ST-P3 / VAD: the mean over the steps {config.step_times_s[0]:g} s .. t"})

