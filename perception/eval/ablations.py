"""Sensor-failure ablations: the standard set of inputs blanked at the loader, their evaluation, and the robustness
table."""
from __future__ import annotations

import json
import os
from typing import Any, Callable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from nuscenes.eval.detection.constants import TP_METRICS
from nuscenes.nuscenes import NuScenes

from perception.detector import Detector
from perception.eval.detection import TP_ERROR_NAMES, NoDetectionsError
from perception.eval.logged_drive import RULES_ON_DETECTIONS
from perception.eval.report import format_number, markdown_table
from perception.eval.runner import PREDICTIONS_RUN_FILE, DataOptions, Shard, evaluate_split, remove_earlier_run

ABLATIONS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("all sensors", ()),
    ("no camera", ("camera",)),
    ("no radar", ("radar",)),
    ("no LiDAR", ("lidar",)),
    ("LiDAR only", ("camera", "radar")),
)
"""(name, sensor groups dropped at the input) of the standard robustness runs; the first is the reference."""
ABLATIONS_JSON = "ablations.json"
ABLATIONS_MARKDOWN = "ablations.md"
"""The robustness table's files in the ablations' output folder (write_ablation_table)."""


def ablation_folder(name: str) -> str:
    """The sub-folder of one ablation's outputs: 'no LiDAR' -> 'no_lidar'."""
    return name.lower().replace(" ", "_")


def remove_earlier_ablations(out_dir: str) -> None:
    """Before a fresh run of the ablations into ``out_dir``: every ablation folder's earlier run
    (remove_earlier_run) and, where the reference's folder holds PREDICTIONS_RUN_FILE (a folder of ablations that
    tools/test.py wrote; another folder's files are left alone), the earlier table (ABLATIONS_JSON,
    ABLATIONS_MARKDOWN), so that a fresh run killed or failed leaves none of them beside its own."""
    if os.path.isfile(os.path.join(out_dir, ablation_folder(ABLATIONS[0][0]), PREDICTIONS_RUN_FILE)):
        for name in (ABLATIONS_JSON, ABLATIONS_MARKDOWN):
            if os.path.isfile(os.path.join(out_dir, name)):
                os.remove(os.path.join(out_dir, name))
    for name, _ in ABLATIONS:
        remove_earlier_run(os.path.join(out_dir, ablation_folder(name)))


def ablation_rows(runs: Sequence[Tuple[str, Sequence[str], Mapping]]) -> List[dict]:
    """(name, dropped sensor groups, metrics.json content) per run -> one JSON row each, with the change of mAP
    and NDS against the first run (the reference), and the rule planner's maneuver accuracy and critical-miss rate on
    the detections against the logged drive (None when no keyframe has a label)."""
    if not runs:
        raise ValueError("no ablation runs to tabulate")
    reference = runs[0][2]
    rows = []
    for name, dropped, metrics in runs:
        on_detections = metrics["decisions"]["maneuvers"].get(RULES_ON_DETECTIONS, {})
        rows.append({
            "name": name,
            "dropped": list(dropped),
            "sensors": metrics.get("run", {}).get("sensors", []),
            "mean_ap": metrics["mean_ap"],
            "nd_score": metrics["nd_score"],
            "delta_mean_ap": metrics["mean_ap"] - reference["mean_ap"],
            "delta_nd_score": metrics["nd_score"] - reference["nd_score"],
            "tp_errors": dict(metrics["tp_errors"]),
            "class_ap": dict(metrics["class_ap"]),
            "maneuver_accuracy": on_detections.get("accuracy"),
            "critical_miss_rate": on_detections.get("critical_miss_rate"),
        })
    return rows


def write_ablation_table(out_dir: str, runs: Sequence[Tuple[str, Sequence[str], Mapping]]) -> List[dict]:
    """Writes ``out_dir/ablations.json`` (ablation_rows) and ``out_dir/ablations.md`` (the robustness table:
    mAP, NDS, their change against the reference, the five TP errors, the maneuver accuracy and critical-miss
    rate, AP per class present); returns the rows."""
    rows = ablation_rows(runs)
    with open(os.path.join(out_dir, ABLATIONS_JSON), "w") as handle:
        json.dump(rows, handle, indent=2)
    error_names = [TP_ERROR_NAMES[name] for name in TP_METRICS]
    header = (["input", "sensors used", "mAP", "NDS", "delta mAP", "delta NDS"] + error_names
              + ["maneuver accuracy", "critical-miss rate"])
    table = [[row["name"], ", ".join(row["sensors"]) or "none", format_number(row["mean_ap"]),
              format_number(row["nd_score"]), f"{row['delta_mean_ap']:+.3f}", f"{row['delta_nd_score']:+.3f}"]
             + [format_number(row["tp_errors"][name]) for name in error_names]
             + [format_number(row["maneuver_accuracy"]), format_number(row["critical_miss_rate"])] for row in rows]
    present = [name for name, count in runs[0][2]["num_gt"].items() if count]
    class_table = [[row["name"]] + [format_number(row["class_ap"][name]) for name in present] for row in rows]
    text = "\n".join([
        "# Sensor-failure robustness", "",
        "Each row blanks the listed sensor groups at the loader (the frame records them as missing) and evaluates "
        "with nuscenes-devkit's DetectionEval; deltas are against the first row. Maneuver accuracy: the share of "
        "labelled keyframes where the rule planner on the detections decides what the logged drive did; "
        "critical-miss rate: the share of logged BRAKE / STOP keyframes it does not brake for (n/a: no such "
        "keyframe); each run's report.md has every planner's metrics.", "",
        markdown_table(header, table), "", "## AP per class (classes with ground truth)", "",
        markdown_table(["input"] + present, class_table), "",
    ])
    with open(os.path.join(out_dir, ABLATIONS_MARKDOWN), "w") as handle:
        handle.write(text)
    return rows


class AblationRun(NamedTuple):
    """One ablation of evaluate_ablations: its name, the sensor groups dropped, its output folder and its
    metrics.json content (None on the other processes, on a version without annotations, and when it had no box to
    score: ``not_scored`` then holds why)."""

    name: str
    dropped: Tuple[str, ...]
    out_dir: str
    metrics: Optional[dict]
    not_scored: Optional[str] = None


def evaluate_ablations(detector: Detector, detector_name: str, nusc: Optional[NuScenes], data: DataOptions,
                       out_dir: str, shard: Shard = Shard(), resume: bool = False,
                       on_run: Callable[[AblationRun], None] = lambda run: None, **options: Any
                       ) -> Tuple[List[AblationRun], str]:
    """Every ABLATIONS run of ``detector`` into its ablation_folder under ``out_dir`` (evaluate_split with the run's
    sensor groups dropped; ``resume`` and ``options`` go to it), a fresh one first removing the earlier runs
    (remove_earlier_ablations, on the main process); ``on_run`` is called with each run as it ends. A run with no
    box to score (NoDetectionsError) is left out of the table, which is written (write_ablation_table) when the
    reference, the first run, was scored. Returns the runs and a line on the table: where it went, why none was
    written, or '' where no run was scored (the other processes)."""
    if not resume and shard.is_main:
        remove_earlier_ablations(out_dir)
    runs = []
    for name, dropped in ABLATIONS:
        folder = os.path.join(out_dir, ablation_folder(name))
        try:
            metrics = evaluate_split(detector, detector_name, nusc, data, folder, drop=dropped, shard=shard,
                                     resume=resume, **options)
            runs.append(AblationRun(name, dropped, folder, metrics))
        except NoDetectionsError as error:
            runs.append(AblationRun(name, dropped, folder, None, str(error)))
        on_run(runs[-1])
    scored = [(run.name, run.dropped, run.metrics) for run in runs if run.metrics is not None]
    if not scored:
        return runs, ""
    if runs[0].metrics is None:
        return runs, f"no sensor-failure table: its reference, {ABLATIONS[0][0]!r}, was not scored"
    write_ablation_table(out_dir, scored)
    return runs, f"sensor-failure table: {os.path.join(out_dir, ABLATIONS_MARKDOWN)}"
