"""report.md and the ablation table from hand-made metrics."""
import json
import os

import numpy as np
import pytest

from perception.classes import DETECTION_CLASSES
from perception.eval.ablations import ABLATIONS, ablation_folder, evaluate_ablations, write_ablation_table
from perception.eval.decision_metrics import LoggedFuture, PlannedFrame, grade_planners
from perception.eval.detection import NoDetectionsError
from perception.eval.logged_drive import RULES_ON_DETECTIONS
from perception.eval.report import decision_report_markdown, plot_resampled, resampled_table, write_report
from perception.eval.runner import PREDICTIONS_FILE, PREDICTIONS_RUN_FILE, DataOptions
from perception.geometry import Boxes3D
from perception.maneuvers import Maneuver

ERRORS = {"mATE": 0.25, "mASE": 0.5, "mAOE": None, "mAVE": 1.0, "mAAE": 0.125}
B, S, K = Maneuver.BRAKE, Maneuver.STOP, Maneuver.KEEP_LANE


def _decisions(pairs) -> dict:
    """grade_planners over frames given as (logged maneuver, the rule planner's on the detections); the ego stands
    still, as logged, on an empty road."""
    still, valid = np.zeros((6, 2)), np.ones(6, dtype=bool)
    future = LoggedFuture("token", 0.5 * np.arange(1, 7), still, valid, (Boxes3D.empty(),) * 6, valid)
    return grade_planners([PlannedFrame(future, logged, {RULES_ON_DETECTIONS: (still, decided)})
                           for logged, decided in pairs])


def _metrics(mean_ap: float, nd_score: float, sensors=("lidar",), decisions=((B, B), (S, K))) -> dict:
    class_ap = {name: 0.0 for name in DETECTION_CLASSES}
    class_ap["car"] = mean_ap * len(DETECTION_CLASSES)  # the mean over the 10 classes is mean_ap
    num_gt = {name: 0 for name in DETECTION_CLASSES}
    num_gt["car"] = 7
    bins = [{"range_m": [0.0, 20.0], "num_gt": {**num_gt, "car": 3}, "class_ap": {**{n: None for n in num_gt},
                                                                                   "car": 0.75}, "mean_ap": 0.75},
            {"range_m": [20.0, 30.0], "num_gt": {**num_gt, "car": 0}, "class_ap": {n: None for n in num_gt},
             "mean_ap": None}]
    return {
        "mean_ap": mean_ap, "nd_score": nd_score, "class_ap": class_ap,
        "nd_score_by_class": {name: nd_score if name == "car" else 0.0 for name in DETECTION_CLASSES},
        "class_ap_by_threshold": {n: {"0.5": ap, "1.0": ap, "2.0": ap, "4.0": ap} for n, ap in class_ap.items()},
        "tp_errors": ERRORS,
        "class_tp_errors": {n: {"trans_err": 0.5, "scale_err": 0.25, "orient_err": None, "vel_err": 1.5,
                                "attr_err": 0.0} for n in DETECTION_CLASSES},
        "num_gt": num_gt, "distance_breakdown": bins, "frames_evaluated": 4, "seconds_per_frame": 0.5,
        "eval_config": "detection_cvpr_2019",
        "confident_boxes": {"score_threshold": 0.3, "predicted_per_frame": 3.0, "ground_truth_per_frame": 2.5},
        "run": {"dataroot": "/data", "version": "v1.0-mini", "split": "mini_val", "detector": "oracle",
                "sensors": list(sensors), "dropped": []},
        "decisions": _decisions(decisions),
    }


def test_report_tables_and_plots(tmp_path):
    plot = tmp_path / "plots" / "summary.png"
    plot.parent.mkdir()
    plot.write_bytes(b"png")
    write_report(str(tmp_path / "report.md"), _metrics(0.08, 0.3), {"summary": str(plot)})
    text = (tmp_path / "report.md").read_text()
    assert "| 0.080 | 0.300 | 0.250 | 0.500 | n/a | 1.000 | 0.125 |" in text  # summary: AOE undefined -> n/a
    assert "| car | 7 | 0.800 | 0.800 | 0.800 | 0.800 | 0.800 | 0.500 | 0.250 | n/a | 1.500 | 0.000 | 0.300 |" in text
    assert "| class | GT | AP |" in text and "| ATE | ASE | AOE | AVE | AAE |" in text  # a class's own errors
    assert "| bus | 0 | no GT |" in text
    assert "| car | 0.750 (3) | n/a (0) |" in text and "| mean over classes present | 0.750 | n/a |" in text
    assert "| pedestrian | n/a" not in text  # no ground truth in any bin: no distance row
    assert "![summary](plots/summary.png)" in text
    assert "frames evaluated: 4" in text and "split `mini_val`" in text
    # the decision section (decision_report_markdown) between the distance table and the plots
    assert text.index("## By distance") < text.index("## Decisions") < text.index("## Plots")
    assert "2 keyframes, 2 with a maneuver label derived from the logged drive" in text
    assert "| rules_on_detections | 0.500 | n/a | n/a | 0.500 | n/a | 2 |" in text  # the STOP missed
    assert "| rules_on_detections | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 | 2 / 2 / 2 |" in text


def test_ablation_table_deltas(tmp_path):
    decisions = [((B, B), (S, S), (K, K), (K, K)), ((B, B), (S, S), (K, K), (K, B)), ((B, B), (S, K), (K, K)),
                 ((B, K), (S, K), (K, K), (K, K)), ((K, K),)]
    runs = [(name, drop, _metrics(ap, nds, sensors, frames))
            for (name, drop), ap, nds, sensors, frames in zip(ABLATIONS, [0.5, 0.375, 0.5, 0.125, 0.25],
                                                              [0.625, 0.5, 0.625, 0.25, 0.375],
                                                              [("lidar", "radar", "camera"), ("lidar", "radar"),
                                                               ("lidar", "camera"), ("radar", "camera"), ("lidar",)],
                                                              decisions)]
    rows = write_ablation_table(str(tmp_path), runs)
    assert [row["delta_mean_ap"] for row in rows] == [0.0, -0.125, 0.0, -0.375, -0.25]
    assert json.loads((tmp_path / "ablations.json").read_text()) == rows
    text = (tmp_path / "ablations.md").read_text()
    assert [row["maneuver_accuracy"] for row in rows] == [1.0, 0.75, 2 / 3, 0.5, 1.0]
    assert [row["critical_miss_rate"] for row in rows] == [0.0, 0.0, 0.5, 1.0, None]
    errors = "0.250 | 0.500 | n/a | 1.000 | 0.125"
    assert f"| no camera | lidar, radar | 0.375 | 0.500 | -0.125 | -0.125 | {errors} | 0.750 | 0.000 |" in text
    assert f"| no LiDAR | radar, camera | 0.125 | 0.250 | -0.375 | -0.375 | {errors} | 0.500 | 1.000 |" in text
    assert f"| LiDAR only | lidar | 0.250 | 0.375 | -0.250 | -0.250 | {errors} | 1.000 | n/a |" in text
    assert "| input | car |" in text  # AP per class: only the classes with ground truth
    assert [ablation_folder(name) for name, _ in ABLATIONS] == [
        "all_sensors", "no_camera", "no_radar", "no_lidar", "lidar_only"]
    with pytest.raises(ValueError, match="no ablation runs"):
        write_ablation_table(str(tmp_path), [])


def test_ablation_class_table_lists_only_the_classes_with_ground_truth(tmp_path):
    # _metrics: car has 7 ground-truth boxes, the other nine classes none: one class column, AP 10 x 0.5 = 5.0
    write_ablation_table(str(tmp_path), [("all sensors", (), _metrics(0.5, 0.625))])
    lines = (tmp_path / "ablations.md").read_text().splitlines()
    header = lines.index("## AP per class (classes with ground truth)") + 2
    assert lines[header:header + 3] == ["| input | car |", "| --- | --- |", "| all sensors | 5.000 |"]


def test_report_columns_follow_their_headers(tmp_path):
    """AP per threshold in the order of its header, distinct values; bins headed by their edges; a class without
    ground truth as a whole row; the run's lines: time per frame to the millisecond, the dropped sensors, the
    confident boxes against the objects, the unreadable files with their samples."""
    metrics = _metrics(0.08, 0.3)
    metrics["class_ap_by_threshold"]["car"] = {"0.5": 0.5, "1.0": 0.75, "2.0": 0.875, "4.0": 1.0}
    metrics["seconds_per_frame"] = 0.125
    metrics["run"]["dropped"] = ["camera", "radar"]
    metrics["run"]["unreadable_files"] = [{"sample_token": "t7", "path": "/d/x.bin", "problem": "cut short"}]
    write_report(str(tmp_path / "report.md"), metrics, {})
    text = (tmp_path / "report.md").read_text()
    assert "| class | GT | AP | AP@0.5 m | AP@1.0 m | AP@2.0 m | AP@4.0 m | ATE | ASE | AOE | AVE | AAE |" in text
    assert "| car | 7 | 0.800 | 0.500 | 0.750 | 0.875 | 1.000 | 0.500 |" in text
    assert "\n| bus | 0 | no GT |  |  |  |  |  |  |  |  |  |  |\n" in text  # 13 cells, as the header
    assert text.count("\n| bus |") == 1  # that row alone: no AP 0 / errors 1 row of the devkit's beside it
    assert "| class | 0-20 m | 20-30 m |" in text
    assert "- frames evaluated: 4, seconds per frame (loading + detection, per process): 0.125\n" in text
    assert "- sensors used: lidar (dropped at the input: camera, radar)" in text
    assert "- boxes scoring >= 0.3 per frame: 3.0, against 2.5 annotated objects with points" in text
    assert "## Unreadable files\n\n1 frames could not be read and were evaluated with no detections:\n\n" in text
    assert "- `/d/x.bin`: cut short (sample `t7`)" in text


def test_a_resume_of_the_ablations_finds_every_earlier_run_and_a_fresh_one_only_removes_its_own(tmp_path,
                                                                                                monkeypatch):
    """Each ablation's evaluation (a stand-in that records what it finds, then scores nothing) starts, on a resume,
    beside its earlier predictions; on a fresh run without them, and without the earlier table. A folder whose
    reference holds no predictions_run.json is no ablations' folder: its ablations.md stays."""
    import perception.eval.ablations

    found = []

    def recording(detector, name, nusc, data, out_dir, drop=(), resume=False, **options):
        found.append((os.path.basename(out_dir), resume, os.path.isfile(os.path.join(out_dir, PREDICTIONS_FILE))))
        raise NoDetectionsError(f"{out_dir}: not scored")

    monkeypatch.setattr(perception.eval.ablations, "evaluate_split", recording)
    data = DataOptions("/data", "v1.0-mini", "mini_val")
    ours, other = tmp_path / "ours", tmp_path / "other"
    for name, _ in ABLATIONS:
        (ours / ablation_folder(name)).mkdir(parents=True)
        (ours / ablation_folder(name) / PREDICTIONS_RUN_FILE).write_text("{}")
        (ours / ablation_folder(name) / PREDICTIONS_FILE).write_text("")
    other.mkdir()
    for folder in (ours, other):
        (folder / "ablations.md").write_text("an earlier table")
    folders = [ablation_folder(name) for name, _ in ABLATIONS]
    evaluate_ablations(None, "d", None, data, str(ours), resume=True)
    assert found == [(folder, True, True) for folder in folders] and (ours / "ablations.md").exists()
    found.clear()
    evaluate_ablations(None, "d", None, data, str(ours))
    assert found == [(folder, False, False) for folder in folders] and not (ours / "ablations.md").exists()
    evaluate_ablations(None, "d", None, data, str(other))
    assert (other / "ablations.md").read_text() == "an earlier table"


def test_the_collision_table_counts_the_frames_graded_for_collisions():
    """The ego's log covers 2 s of the 3 s, the boxes all 3 s: L2 counts the frame at 1 s and 2 s only, collisions
    of a planner (its path known at every step) at all three horizons."""
    times, still = 0.5 * np.arange(1, 7), np.zeros((6, 2))
    logged_two_seconds = np.arange(6) < 4
    future = LoggedFuture("token", times, still, logged_two_seconds, (Boxes3D.empty(),) * 6, np.ones(6, dtype=bool))
    text = decision_report_markdown(grade_planners([PlannedFrame(future, K, {RULES_ON_DETECTIONS: (still, K)})]))
    l2, collisions = text.split("### Open-loop planning: collision rate")
    assert f"| {RULES_ON_DETECTIONS} | 0.00 | 0.00 | n/a | 0.00 | 0.00 | n/a | 1 / 1 / 0 |" in l2
    assert f"| {RULES_ON_DETECTIONS} | 0.000 | 0.000 | 0.000 | 0.000 | 0.000 | 0.000 | 1 / 1 / 1 |" in collisions


RESAMPLED = [dict(name="full", NDS=0.5, NDS_interval=[0.4, 0.6]),
             dict(name="head", NDS=0.45, NDS_interval=[0.375, 0.5], difference=-0.05,
                  difference_interval=[-0.125, 0.025], share_not_below_first=0.25)]
"""Two rows of perception.eval.resampling.resampled_comparison, made by hand: the reference, then one against it."""


def test_the_resampled_table_by_hand():
    assert resampled_table(RESAMPLED, "Caption.", 0.9) == (
        "Caption.\n\n| evaluation | NDS | NDS, central 90 % of draws | NDS - full | difference, central 90 % "
        "| share of draws not below it |\n| --- | --- | --- | --- | --- | --- |\n"
        "| full | 0.500 | 0.400 to 0.600 |  |  |  |\n"
        "| head | 0.450 | 0.375 to 0.500 | -0.050 | -0.125 to 0.025 | 0.25 |\n")


def test_the_resampled_plot_draws_each_interval_as_a_bar_and_each_value_as_a_dot(tmp_path, monkeypatch):
    """Left: each row's NDS interval from its low to its high end at its row, its NDS a dot; right: the second
    row's difference the same way, and zero, dashed; the rows named top down."""
    import perception.eval.report
    from perception.plotting import pyplot

    plt, drawn = pyplot(), []
    kept_open = type("KeptOpen", (), {"__getattr__": lambda self, name: getattr(plt, name),
                                      "close": lambda self, figure: drawn.append(figure)})()
    monkeypatch.setattr(perception.eval.report, "pyplot", lambda: kept_open)
    plot_resampled(RESAMPLED, "Caption.", 0.9, str(tmp_path / "resampled.png"))
    (figure,) = drawn
    left, right = figure.axes

    def lines(axis):
        return [tuple(np.asarray(data, dtype=float).tolist() for data in line.get_data()) for line in axis.lines]

    assert lines(left) == [([0.4, 0.6], [0, 0]), ([0.5], [0]), ([0.375, 0.5], [1, 1]), ([0.45], [1])]
    assert lines(right) == [([-0.125, 0.025], [1, 1]), ([-0.05], [1]), ([0.0, 0.0], [0, 1])]
    assert [label.get_text() for label in left.get_yticklabels()] == ["full", "head"] and left.yaxis_inverted()
    assert right.get_xlabel() == "NDS - full, central 90 %" and (tmp_path / "resampled.png").stat().st_size > 0
    plt.close(figure)
