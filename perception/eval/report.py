"""report.md: the metrics of one evaluation (metrics.json content) as Markdown tables, with the devkit's plots and
the decision metrics."""
from __future__ import annotations

import os
from typing import List, Mapping, Optional, Sequence

from nuscenes.eval.detection.constants import TP_METRICS

from perception.eval.decision_metrics import HORIZONS_S, RATIO_DRAWS
from perception.eval.detection import TP_ERROR_NAMES
from perception.eval.resampling import INTERVAL_LEVEL
from perception.plotting import pyplot

CLASS_TP_NAMES = {name: printed[1:] for name, printed in TP_ERROR_NAMES.items()}
"""A class's own TP errors, without the mean's m: ATE, ASE, AOE, AVE, AAE."""


def format_number(value: Optional[float], digits: int = 3) -> str:
    """A metric for a table cell; None (not defined) -> 'n/a'."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], right_from: Optional[int] = None) -> str:
    """A GitHub-flavoured Markdown table; the columns from index ``right_from`` on aligned right (numbers)."""
    rules = [" ---: " if right_from is not None and index >= right_from else " --- " for index in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rules) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _ratio_cell(entry: Mapping) -> str:
    """A ratio and its interval as '0.82x (0.61-1.10)'; n/a where undefined."""
    if entry["ratio"] is None:
        return "n/a"
    interval = "" if entry["interval"] is None else " ({:.2f}-{:.2f})".format(*entry["interval"])
    return f"{entry['ratio']:.2f}x{interval}"


def decision_report_markdown(decisions: dict) -> str:
    """Markdown tables of the decision metrics (perception.eval.decision_metrics.grade_planners' output): open-loop
    L2 and collisions per planner in both conventions, the maneuver grading and the lane-change feasibility per
    planner."""
    horizons = [f"{horizon:g}s" for horizon in HORIZONS_S]
    header = [f"{convention} {h}" for convention in ("UniAD", "ST-P3") for h in horizons]
    counted = f"frames at {' / '.join(horizons)}"
    lines = [
        "## Decisions", "",
        f"{decisions['num_frames']} keyframes, {decisions['num_frames_labelled']} with a maneuver label derived from "
        "the logged drive. Every planner is graded against the logged drive, on the same keyframes. "
        f"{decisions['conventions']['uniad']}; {decisions['conventions']['stp3']}. \"logged\" is the logged drive "
        "itself.", "",
        "### Open-loop planning: L2 to the logged ego positions (m)", ""]
    planners = decisions["planners"]

    def per_horizon(keys: Sequence[str], digits: int, counts: str) -> str:
        """One row per planner: its ``keys``' values at each horizon, and its frames counted per horizon."""
        return markdown_table(["planner", *header, counted], [
            [name, *(format_number(grades[key][h], digits) for key in keys for h in horizons),
             " / ".join(str(grades["num_frames"][counts][h]) for h in horizons)]
            for name, grades in planners.items()], right_from=1)

    lines.append(per_horizon(("l2_uniad_m", "l2_stp3_m"), 2, "l2"))
    ratios = {name: grades["l2_ratio_to_constant_velocity"] for name, grades in planners.items()
              if "l2_ratio_to_constant_velocity" in grades}
    if ratios:
        lines += ["", "### Open-loop planning: L2 over constant velocity's on the same frames", "",
                  f"The ratio, and in brackets the central {100 * INTERVAL_LEVEL:g} % of it over {RATIO_DRAWS} draws "
                  "of the keyframes with replacement (keyframes of one drive drawn as if independent: a lower bound "
                  "on the uncertainty).",
                  "", markdown_table(["planner", *header], [
                      [name, *(_ratio_cell(by_convention[convention][h]) for convention in ("uniad", "stp3")
                               for h in horizons)] for name, by_convention in ratios.items()], right_from=1)]
    lines += ["", "### Open-loop planning: collision rate with the ground-truth boxes", "",
              per_horizon(("collision_uniad", "collision_stp3"), 3, "collision")]
    grades_named = ("accuracy", "lane_change_precision", "lane_change_recall", "critical_miss_rate", "false_brake_rate")
    lines += ["", "### Maneuvers against the logged labels", "", markdown_table(
        ["planner", "accuracy", "lane-change precision", "lane-change recall", "critical-miss rate", "false-brake rate",
         "frames"], [[name, *(format_number(grades[key]) for key in grades_named), grades["num_frames"]]
                     for name, grades in decisions["maneuvers"].items()], right_from=1)]
    feasibility = decisions["lane_change_feasibility"]
    if feasibility:
        lines += ["", "### Lane-change feasibility", "",
                  "Against the logged drive: of the keyframes labelled as a lane change still ahead (with a lane "
                  "map, those where the ego already drives in the lane it changes to are counted apart), the share "
                  "where the side the driver took was judged feasible. Against the rule planner's feasibility on "
                  "the ground-truth boxes (the lane exists and its gap check passes), per side (left and right of "
                  "every keyframe): agreement, and the share judged feasible where that check is blocked.", "",
                  markdown_table(
                      ["planner", "logged lane changes", "under way", "taken side judged feasible", "sides",
                       "agreement", "blocked sides", "judged feasible where blocked"],
                      [[name, grades["logged_lane_changes"], grades["lane_changes_under_way"],
                        format_number(grades["logged_side_feasible_rate"]), grades["gap_check_on_truth"]["sides"],
                        format_number(grades["gap_check_on_truth"]["accuracy"]),
                        grades["gap_check_on_truth"]["blocked_sides"],
                        format_number(grades["gap_check_on_truth"]["false_feasible_rate"])]
                       for name, grades in feasibility.items()], right_from=1)]
    return "\n".join(lines) + "\n"


def summary_table(metrics: Mapping) -> str:
    """mAP, NDS and the five mean TP errors."""
    header = ["mAP", "NDS"] + [TP_ERROR_NAMES[name] for name in TP_METRICS]
    row = [format_number(metrics["mean_ap"]), format_number(metrics["nd_score"])]
    row += [format_number(metrics["tp_errors"][TP_ERROR_NAMES[name]]) for name in TP_METRICS]
    return markdown_table(header, [row])


def class_table(metrics: Mapping) -> str:
    """Per class: ground-truth count, AP (mean and per matching threshold), the TP errors and the class's part of
    NDS (detection.nd_score_by_class). A class without ground truth gets the devkit's AP 0 / errors 1, marked as
    such."""
    thresholds = list(next(iter(metrics["class_ap_by_threshold"].values())).keys())
    header = (["class", "GT", "AP"] + [f"AP@{th} m" for th in thresholds] + [CLASS_TP_NAMES[n] for n in TP_METRICS]
              + ["part of NDS"])
    rows = []
    for name, ap in metrics["class_ap"].items():
        num_gt = metrics["num_gt"][name]
        if num_gt == 0:
            rows.append([name, "0", "no GT"] + [""] * (len(header) - 3))
            continue
        errors = metrics["class_tp_errors"][name]
        rows.append([name, str(num_gt), format_number(ap)]
                    + [format_number(metrics["class_ap_by_threshold"][name][th]) for th in thresholds]
                    + [format_number(errors[metric]) for metric in TP_METRICS]
                    + [format_number(metrics["nd_score_by_class"][name])])
    return markdown_table(header, rows)


def distance_table(metrics: Mapping) -> str:
    """AP per class and ego-distance bin, with the ground-truth count in brackets; 'n/a' where a bin holds none."""
    bins = metrics["distance_breakdown"]
    header = ["class"] + [f"{low:g}-{high:g} m" for low, high in (b["range_m"] for b in bins)]
    rows = []
    for name in metrics["class_ap"]:
        if all(b["num_gt"][name] == 0 for b in bins):
            continue
        rows.append([name] + [f"{format_number(b['class_ap'][name])} ({b['num_gt'][name]})" for b in bins])
    rows.append(["mean over classes present"] + [format_number(b["mean_ap"]) for b in bins])
    return markdown_table(header, rows)


def run_lines(metrics: Mapping) -> List[str]:
    """What was evaluated: data, split, detector, sensors, frames, time per frame; confident boxes per frame."""
    run = metrics.get("run", {})
    confident = metrics["confident_boxes"]
    dropped = f" (dropped at the input: {', '.join(run['dropped'])})" if run.get("dropped") else ""
    lines = [f"- data: `{run.get('dataroot', '?')}` version `{run.get('version', '?')}`, "
             f"split `{run.get('split', '?')}`",
             f"- detector: {run.get('detector', '?')}",
             f"- sensors used: {', '.join(run.get('sensors', [])) or 'none'}{dropped}",
             f"- frames evaluated: {metrics['frames_evaluated']}, seconds per frame (loading + detection, per "
             f"process): {metrics['seconds_per_frame']:.3f}",
             f"- metric: nuscenes-devkit DetectionEval, config `{metrics['eval_config']}`",
             f"- boxes scoring >= {confident['score_threshold']:g} per frame: {confident['predicted_per_frame']:.1f}, "
             f"against {confident['ground_truth_per_frame']:.1f} annotated objects with points"]
    return lines


def unreadable_files_lines(metrics: Mapping) -> List[str]:
    """The files the readers rejected in a run with --skip-corrupt-files (metrics["run"]["unreadable_files"]), one
    line each; nothing when there were none."""
    unreadable = metrics.get("run", {}).get("unreadable_files", [])
    if not unreadable:
        return []
    lines = ["## Unreadable files", "",
             f"{len(unreadable)} frames could not be read and were evaluated with no detections:", ""]
    lines += [f"- `{item['path']}`: {item['problem']} (sample `{item['sample_token']}`)" for item in unreadable]
    return lines + [""]


def write_report(path: str, metrics: Mapping, plots: Mapping[str, str], title: str = "Detection report") -> None:
    """Writes report.md at ``path``: run description, summary, per-class and distance tables, the decision metrics
    (``metrics["decisions"]``, grade_planners' output) and the plots (``plots``: name -> PNG path, linked
    relative to the report)."""
    folder = os.path.dirname(os.path.abspath(path))
    parts = [f"# {title}", "", *run_lines(metrics), "", *unreadable_files_lines(metrics),
             "## Summary", "", summary_table(metrics), "",
             "## Per class", "", class_table(metrics), "",
             "## By distance from the ego vehicle", "",
             "AP with ground truth and predictions both restricted to the bin (devkit accumulate/calc_ap, mean over "
             "the matching thresholds); ground-truth count in brackets.", "", distance_table(metrics), "",
             decision_report_markdown(metrics["decisions"])]
    if plots:
        parts += ["## Plots (nuscenes-devkit)", ""]
        for name, plot_path in plots.items():
            parts += [f"### {name}", "", f"![{name}]({os.path.relpath(plot_path, folder)})", ""]
    with open(path, "w") as handle:
        handle.write("\n".join(parts))


def resampled_caption(split: str, version: str, num_keyframes: int, num_draws: int, seed: int) -> str:
    """What resampled_table's intervals are, for its caption."""
    return (f"NDS on {split} ({version}, {num_keyframes} keyframes) and on {num_draws} draws of as many keyframes "
            f"with replacement (seed {seed}); consecutive keyframes of a drive are drawn as if independent, so the "
            f"intervals are lower bounds on the uncertainty.")


def plot_resampled(rows: Sequence[Mapping], caption: str, level: float, path: str) -> None:
    """The rows of perception.eval.resampling.resampled_comparison as a picture at ``path``: each evaluation's NDS
    with the central ``level`` of its draws (left), each one's difference from the first with that difference's
    interval, zero dashed (right)."""
    plt = pyplot()
    names = [row["name"] for row in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 0.4 * len(rows) + 1.8), sharey=True)
    for axis, value, interval in ((left, "NDS", "NDS_interval"), (right, "difference", "difference_interval")):
        for index, row in enumerate(rows):
            if value in row:  # the interval as a bar (the NDS of all keyframes may lie outside it), the value a dot
                axis.plot(row[interval], [index, index], color="tab:blue", linewidth=2, solid_capstyle="butt")
                axis.plot(row[value], index, "o", color="tab:blue")
    right.axvline(0.0, color="black", linestyle="--")
    left.set_yticks(range(len(rows)), names)
    left.invert_yaxis()
    left.set_xlabel(f"NDS, central {100 * level:g} % of the draws")
    right.set_xlabel(f"NDS - {names[0]}, central {100 * level:g} %")
    figure.suptitle(caption, fontsize=8, wrap=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def resampled_table(rows: Sequence[Mapping], caption: str, level: float) -> str:
    """The caption, then a line per row of perception.eval.resampling.resampled_comparison; the first, the
    reference, has no difference columns."""
    def interval(values: Sequence[float]) -> str:
        return " to ".join(format_number(value) for value in values)

    lines = [[row["name"], format_number(row["NDS"]), interval(row["NDS_interval"])]
             + ([format_number(row["difference"]), interval(row["difference_interval"]),
                 format_number(row["share_not_below_first"], 2)] if "difference" in row else ["", "", ""])
             for row in rows]
    percent = f"{100 * level:g} %"
    header = ["evaluation", "NDS", f"NDS, central {percent} of draws", f"NDS - {rows[0]['name']}",
              f"difference, central {percent}", "share of draws not below it"]
    return f"{caption}\n\n{markdown_table(header, lines)}\n"
