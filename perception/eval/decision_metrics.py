"""Decision metrics: agreement with the decision on ground truth, critical misses, false brakes, and the plan's
open-loop L2 and collision rate against the logged future, in both conventions of the literature. Pure
functions of DecisionRecords; perception.eval.logged_drive reads them from the nuScenes tables.

Per frame the same planner (perception.decision.decide) runs twice: on the detector's boxes ("predicted") and
on the ground-truth boxes ("ground_truth"). The logged future (LoggedFuture) holds, at the plan's step times, the
ego positions the car actually drove and the ground-truth boxes, both in the ego frame of the frame's LiDAR
keyframe; steps it could not fill are masked. Horizons: a frame counts at horizon t only when every step up to t
is valid, in both conventions:

- UniAD: the value at exactly t (the step at t), averaged over frames;
- ST-P3 / VAD: the mean over the steps 0.5 s .. t of each frame, averaged over frames.

Collisions: the ego footprint along the plan overlaps a ground-truth box's footprint at the step
(perception.decision.collision). Rates: the critical-miss rate is over frames whose ground-truth decision is BRAKE
or STOP, the false-brake rate over the other frames; a rate with no frame to count is None.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from perception.decision import Decision, EgoState, Maneuver, PlannerConfig, decide
from perception.decision.collision import plan_collisions
from perception.geometry import Boxes3D

HORIZONS_S = (1.0, 2.0, 3.0)
"""The horizons every planning metric is reported at."""
UNIAD = "uniad_at_t"
STP3_VAD = "stp3_vad_mean_to_t"
CONVENTIONS = {
    UNIAD: "UniAD: the value at exactly t",
    STP3_VAD: "ST-P3 / VAD: the mean over the steps 0.5 s .. t",
}


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


@dataclass(frozen=True)
class DecisionRecord:
    """One frame: the decision on the detector's boxes, the decision on ground truth, the logged future."""

    predicted: Decision
    ground_truth: Decision
    future: LoggedFuture


def make_decision_record(predicted_boxes: Boxes3D, gt_boxes: Boxes3D, ego: EgoState, future: LoggedFuture,
                         config: PlannerConfig = PlannerConfig()) -> DecisionRecord:
    """Runs the planner on the detections and on the ground truth of one frame (both in its ego frame)."""
    return DecisionRecord(decide(predicted_boxes, ego, config), decide(gt_boxes, ego, config), future)


def _mean_or_none(values: Sequence[float]) -> Optional[float]:
    return float(np.mean(values)) if len(values) else None


def _by_horizon(per_frame: np.ndarray, valid: np.ndarray, times_s: np.ndarray) -> Dict[str, dict]:
    """(F, T) values and validity at step times (T,) -> both conventions and frame counts per horizon."""
    result = {UNIAD: {}, STP3_VAD: {}, "num_frames": {}}
    for horizon in HORIZONS_S:
        key = f"{horizon:g}s"
        steps = np.flatnonzero(np.isclose(times_s, horizon))
        if not len(steps):
            result[UNIAD][key] = result[STP3_VAD][key] = None
            result["num_frames"][key] = 0
            continue
        count = int(steps[0]) + 1
        eligible = valid[:, :count].all(axis=1)
        result[UNIAD][key] = _mean_or_none(per_frame[eligible, count - 1])
        result[STP3_VAD][key] = _mean_or_none(per_frame[eligible, :count].mean(axis=1))
        result["num_frames"][key] = int(eligible.sum())
    return result


def _planning_metrics(trajectories: List[np.ndarray], records: Sequence[DecisionRecord],
                      config: PlannerConfig) -> dict:
    times_s = records[0].future.times_s
    l2 = np.stack([np.linalg.norm(plan - record.future.ego_xy, axis=1)
                   for plan, record in zip(trajectories, records)])
    ego_valid = np.stack([record.future.ego_valid for record in records])
    collisions = np.stack([plan_collisions(plan, record.future.boxes, config)
                           for plan, record in zip(trajectories, records)])
    boxes_valid = np.stack([record.future.boxes_valid for record in records])
    return {
        "l2_m": _by_horizon(np.where(ego_valid, l2, 0.0), ego_valid, times_s),
        "collision_rate": _by_horizon(collisions.astype(np.float64), boxes_valid, times_s),
    }


def evaluate_decisions(records: Sequence[DecisionRecord], config: PlannerConfig = PlannerConfig()) -> dict:
    """The decision metrics of the module docstring as a JSON-serialisable dict.

    ``maneuver_agreement.confusion_matrix[i][j]`` counts frames whose ground-truth decision is labels[i] and whose
    predicted decision is labels[j]; ``planning.predicted`` scores the plans on the detections,
    ``planning.ground_truth`` the plans on ground truth (the planner's own floor). ``config`` gives the ego
    footprint. Raises ValueError when records disagree on the step times or a plan does not cover them.
    """
    if not records:
        raise ValueError("evaluate_decisions: no records")
    times_s = records[0].future.times_s
    for record in records:
        if not np.allclose(record.future.times_s, times_s):
            raise ValueError(f"sample {record.future.sample_token}: step times {record.future.times_s.tolist()} "
                             f"differ from {times_s.tolist()}")
        for name, decision in (("predicted", record.predicted), ("ground_truth", record.ground_truth)):
            if decision.trajectory.shape != (len(times_s), 2):
                raise ValueError(f"sample {record.future.sample_token}: {name} trajectory has shape "
                                 f"{decision.trajectory.shape}, the logged future {len(times_s)} steps")
    labels = list(Maneuver)
    index = {maneuver: i for i, maneuver in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for record in records:
        confusion[index[record.ground_truth.maneuver], index[record.predicted.maneuver]] += 1
    gt_brakes = np.array([record.ground_truth.maneuver.is_braking for record in records])
    predicted_brakes = np.array([record.predicted.maneuver.is_braking for record in records])
    return {
        "num_frames": len(records),
        "maneuver_agreement": {
            "labels": [maneuver.value for maneuver in labels],
            "confusion_matrix": confusion.tolist(),
            "accuracy": float(np.trace(confusion) / len(records)),
        },
        "critical_miss_rate": _mean_or_none(~predicted_brakes[gt_brakes]),
        "num_frames_gt_brake_or_stop": int(gt_brakes.sum()),
        "false_brake_rate": _mean_or_none(predicted_brakes[~gt_brakes]),
        "num_frames_gt_other": int((~gt_brakes).sum()),
        "conventions": dict(CONVENTIONS),
        "planning": {
            "predicted": _planning_metrics([r.predicted.trajectory for r in records], records, config),
            "ground_truth": _planning_metrics([r.ground_truth.trajectory for r in records], records, config),
        },
    }
