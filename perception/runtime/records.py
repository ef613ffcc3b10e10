"""The records a replay writes, one JSON line per trigger in frames.jsonl: their schema (FRAME_RECORD, its
detections perception.geometry.boxes.DETECTION_RECORD items, PLAN_RECORD), the conversion of plans to JSON, and the
validating reader (a frames.jsonl is read back to resume a replay and by whoever grades it)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np
import torch

from perception.decision import Maneuver
from perception.decision.learned import trajectory_and_maneuver
from perception.geometry.boxes import DETECTION_RECORD
from perception.jsonfile import finite_or_null, read_json_lines
from perception.models.planning_types import PlanningOutputs

FRAMES_FILE = "frames.jsonl"

FRAME_RECORD: Dict[str, tuple] = {
    "scene": (str,),
    "index": (int,),
    "key_token": (str,),
    "key_channel": (str,),
    "trigger": (str,),
    "sample_token": (str, type(None)),
    "is_key_frame": (bool,),
    "timestamp_us": (int,),
    "status": (str,),
    "detections": (list,),
    "decision": (dict, type(None)),
    "plan": (dict, type(None)),
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

scene (name); index (the trigger's number in the scene, 0, 1, ...); key_token (the sample_data the frame is built
at, its timestamp and pose: the resume key) and key_channel (its channel); trigger ("lidar": a LiDAR keyframe or
sweep, "watchdog": made when no LiDAR trigger came, perception.runtime.replay); sample_token (the keyframe's
sample when the key is a keyframe's LiDAR sweep, else null); is_key_frame (the same); timestamp_us (the key's
capture time); status ("processed" or "skipped": dropped in real time behind a newer
frame); detections (DETECTION_RECORD items, ego frame); decision (perception.decision.Decision.to_json(), null
when skipped: with a planning model the learned plan after the safety layer, ``vetoed`` and ``reason`` its
rationale); plan (PLAN_RECORD: the planning head's proposal before the safety layer, null when the rule planner
decided or the frame was skipped); ego_state (speed_mps, yaw_rate_rps, acceleration_mps2 from the past LiDAR
poses); timings_ms (stage -> ms: load, detector and the model's own stages, decision, end_to_end);
sensor_ages_s (channel -> age [s] of its newest message at the trigger, null when it has none to use: none
received yet, or only corrupt files); missing (Frame.missing: absent or stale channels and groups); stale
(channels left out for age); corrupt_files (files rejected while building this frame); num_lidar_points /
num_radar_points / num_cameras (what the frame held); latency_s (see perception.runtime.replay; null when skipped);
deadline_s; late; faults (FaultCounts so far in the stream)."""

TRIGGERS = ("lidar", "watchdog")
"""What made a frame (FRAME_RECORD's trigger)."""

PLAN_RECORD = ("maneuver", "plan_maneuver", "trajectory", "lane_change_feasible")
"""The keys of a proposal: maneuver (the head's most likely Maneuver value), plan_maneuver (the Maneuver value its
trajectory carries out, perception.decision.learned.plan_maneuver: the one the safety layer checks and the decision
names the plan by; the head's most likely where the trajectory is not finite), trajectory (T x [x, y] m, ego frame),
lane_change_feasible ([left, right] probabilities); a value that is not finite is null."""


def plan_to_json(plan: PlanningOutputs, plan_maneuver: Maneuver) -> Dict[str, Any]:
    """One frame's PlanningOutputs row and its trajectory's ``plan_maneuver`` -> a PLAN_RECORD dict (a value that
    is not finite, a network's NaN, written as null: JSON has no NaN)."""
    trajectory, maneuver = trajectory_and_maneuver(plan)
    return {"maneuver": maneuver.value, "plan_maneuver": Maneuver(plan_maneuver).value,
            "trajectory": finite_or_null(trajectory.tolist()),
            "lane_change_feasible": finite_or_null(torch.sigmoid(plan.lane_change_logits).tolist())}


def changed_proposal(record: Dict[str, Any]) -> Optional[np.ndarray]:
    """(T, 2) the planning head's proposed trajectory of a FRAME_RECORD where the safety layer changed it (its
    decision ``vetoed``) and every value is a number; else None (no proposal, kept as proposed, or not finite)."""
    decision, plan = record.get("decision"), record.get("plan")
    if decision is None or plan is None or not decision["vetoed"]:
        return None
    if any(value is None for point in plan["trajectory"] for value in point):
        return None
    return np.asarray(plan["trajectory"], dtype=np.float64)


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
    if record["trigger"] not in TRIGGERS:
        raise ValueError(f"{source}: frame record trigger {record['trigger']!r} is not one of {TRIGGERS}")
    for detection in record["detections"]:
        if not isinstance(detection, dict) or set(detection) != set(DETECTION_RECORD):
            raise ValueError(f"{source}: a detection must have exactly the keys {DETECTION_RECORD}, got {detection}")
    if record["plan"] is not None and set(record["plan"]) != set(PLAN_RECORD):
        raise ValueError(f"{source}: a plan must have exactly the keys {PLAN_RECORD}, got {sorted(record['plan'])}")


def read_frame_records(path: str) -> List[Dict[str, Any]]:
    """The records of a frames.jsonl (perception.jsonfile.read_json_lines: a last line cut short by a kill is
    dropped), each validated; ValueError naming the file and the line otherwise."""
    return read_json_lines(path, validate_frame_record)
