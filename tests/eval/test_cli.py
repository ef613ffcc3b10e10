"""tools/test.py end to end on the tiny synthetic world: oracle, sensor drops, ablations, torchrun sharding, and
the decision metrics of each run."""
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from nuscenes.eval.common.loaders import load_prediction
from nuscenes.eval.detection.data_classes import DetectionBox

from perception.classes import DETECTION_CLASSES
from perception.cli.test import run
from perception.datasets.splits import split_sample_tokens
from perception.decision import PlannerConfig
from perception.detector import OracleDetector
from perception.eval.ablations import evaluate_ablations
from perception.eval.logged_drive import planned_frame_for_sample
from perception.eval.runner import DataOptions, decision_metrics, evaluate_split
from perception.geometry import Boxes3D
from perception.jsonfile import read_json_lines
from perception.models.ego_mlp import EgoMLP, save_ego_mlp
from perception.paths import REPO_ROOT
from tests.conftest import TINY_WORLD, tree_under_test_env

SPLIT = "synth_val"


def _data_args(root) -> list:
    return ["--dataroot", str(root), "--version", TINY_WORLD["version"], "--split", SPLIT,
            "--lidar-sweeps", "1", "--radar-sweeps", "1"]


def _read(path):
    with open(path) as handle:
        return json.load(handle)


def test_oracle_end_to_end(synthetic_root, nusc_synthetic, tmp_path):
    out = tmp_path / "oracle"
    (metrics,) = run(["--oracle", *_data_args(synthetic_root), "--out", str(out)])
    tokens = split_sample_tokens(nusc_synthetic, SPLIT)
    boxes, meta = load_prediction(str(out / "results_nusc.json"), 500, DetectionBox)
    assert sorted(boxes.sample_tokens) == sorted(tokens)
    assert meta == {"use_camera": True, "use_lidar": True, "use_radar": True, "use_map": False,
                    "use_external": False}
    assert _read(out / "metrics.json") == metrics
    assert metrics["frames_evaluated"] == len(tokens) and metrics["seconds_per_frame"] > 0
    present = [name for name in DETECTION_CLASSES if metrics["num_gt"][name] > 0]
    assert len(present) >= 5, metrics["num_gt"]
    for name in present:
        assert metrics["class_ap"][name] == pytest.approx(1.0), name
        errors = metrics["class_tp_errors"][name]
        assert all(value is None or value < 1e-9 for value in errors.values()), (name, errors)
    # The devkit averages over all 10 classes; a class without ground truth scores AP 0.
    assert metrics["mean_ap"] == pytest.approx(len(present) / len(DETECTION_CLASSES))
    assert all(row["mean_ap"] == pytest.approx(1.0) for row in metrics["distance_breakdown"]
               if row["mean_ap"] is not None)
    report = (out / "report.md").read_text()
    assert "## By distance from the ego vehicle" in report and "| car |" in report
    images = [line.split("](")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    assert "plots/summary.png" in images and "plots/car_pr.png" in images
    assert all((out / image).is_file() for image in images)
    # The oracle's boxes through the planner plan as on the ground truth; every planner is graded against the log
    decisions = metrics["decisions"]
    assert decisions["num_frames"] == len(tokens)
    assert decisions["planners"]["rules_on_detections"] == decisions["planners"]["rules_on_ground_truth"]
    assert set(decisions["planners"]) == {"constant_velocity", "rules_on_detections", "rules_on_ground_truth",
                                          "logged"}
    assert decisions["num_frames_labelled"] == 0  # 1.5 s scenes: no keyframe has the 3 s a label needs
    assert "## Decisions" in report and "| rules_on_detections |" in report
    # a run without plots into the same folder leaves none of the earlier run's beside its metrics, and no empty
    # plot folder (the devkit makes one anyway)
    run(["--oracle", "--no-plots", *_data_args(synthetic_root), "--out", str(out)])
    assert not (out / "plots").exists()


class _RecordingOracle(OracleDetector):
    """The oracle, remembering what each frame carried."""

    def __init__(self):
        self.seen = []

    def detect(self, frames, timer=None):
        self.seen += [(frame.missing, frame.lidar, frame.radar, frame.cameras) for frame in frames]
        return super().detect(frames, timer)


class _UnsureOracle(OracleDetector):
    """The ground truth with a score below the planner's PlannerConfig.min_score: the devkit scores the boxes, the
    planner ignores them."""

    def detect(self, frames, timer=None):
        score = PlannerConfig().min_score / 2
        return [replace(boxes, scores=np.full(len(boxes), score)) for boxes in super().detect(frames, timer)]


def test_decisions_use_the_detections(synthetic_root, nusc_synthetic, tmp_path):
    """Boxes the planner ignores (scored below its min_score) plan as an empty road does, not as ground truth."""
    data = DataOptions(str(synthetic_root), TINY_WORLD["version"], SPLIT, lidar_sweeps=1, radar_sweeps=1)
    metrics = evaluate_split(_UnsureOracle(), "unsure oracle", nusc_synthetic, data, str(tmp_path),
                             render_curves=False)
    tokens = split_sample_tokens(nusc_synthetic, SPLIT)
    empty_road = decision_metrics(nusc_synthetic, {token: Boxes3D.empty() for token in tokens}, tokens)
    planners = metrics["decisions"]["planners"]
    assert planners["rules_on_detections"] == empty_road["planners"]["rules_on_detections"]
    assert planners["rules_on_detections"] != planners["rules_on_ground_truth"]


def test_drop_blanks_the_sensor_at_the_input(synthetic_root, nusc_synthetic, tmp_path):
    detector = _RecordingOracle()
    data = DataOptions(str(synthetic_root), TINY_WORLD["version"], SPLIT, lidar_sweeps=1, radar_sweeps=1)
    metrics = evaluate_split(detector, "oracle", nusc_synthetic, data, str(tmp_path), drop=("lidar", "camera"),
                             render_curves=False)
    assert len(detector.seen) == metrics["frames_evaluated"] > 0
    for missing, lidar, radar, cameras in detector.seen:
        assert {"lidar", "camera"} <= missing and lidar is None and cameras == {} and radar is not None
    assert metrics["run"]["sensors"] == ["radar"] and metrics["run"]["dropped"] == ["lidar", "camera"]
    meta = _read(tmp_path / "results_nusc.json")["meta"]
    assert (meta["use_lidar"], meta["use_radar"], meta["use_camera"]) == (False, True, False)


def _oracle_ablations(root, nusc, out, skip_corrupt_files=False, **options) -> tuple:
    """evaluate_ablations of the oracle on SPLIT of the world at ``root`` into ``out``, without plots (tools/test.py
    refuses the oracle with --ablations: its rows would claim drops it ignores)."""
    data = DataOptions(str(root), TINY_WORLD["version"], SPLIT, lidar_sweeps=1, radar_sweeps=1,
                       skip_corrupt_files=skip_corrupt_files)
    return evaluate_ablations(OracleDetector(), "oracle", nusc, data, str(out), render_curves=False, **options)


def test_ablations_write_one_table(synthetic_root, nusc_synthetic, tmp_path):
    ended = []
    runs, table = _oracle_ablations(synthetic_root, nusc_synthetic, tmp_path, on_run=ended.append)
    assert ended == runs and table == f"sensor-failure table: {tmp_path / 'ablations.md'}"
    metrics = [ablation.metrics for ablation in runs]
    assert [ablation.out_dir for ablation in runs] == [str(tmp_path / name) for name in
                                                       ("all_sensors", "no_camera", "no_radar", "no_lidar",
                                                        "lidar_only")]
    rows = _read(tmp_path / "ablations.json")
    assert [row["name"] for row in rows] == ["all sensors", "no camera", "no radar", "no LiDAR", "LiDAR only"]
    assert [row["sensors"] for row in rows] == [["lidar", "radar", "camera"], ["lidar", "radar"],
                                                ["lidar", "camera"], ["radar", "camera"], ["lidar"]]
    # The oracle reads no sensor: every row scores the same, which checks that each run evaluates in full.
    assert [row["mean_ap"] for row in rows] == [m["mean_ap"] for m in metrics] == [rows[0]["mean_ap"]] * 5
    assert all(row["delta_mean_ap"] == 0.0 for row in rows)
    assert [(row["maneuver_accuracy"], row["critical_miss_rate"]) for row in rows] == [(None, None)] * 5  # no label
    assert not _read(tmp_path / "no_lidar" / "results_nusc.json")["meta"]["use_lidar"]
    assert "| no LiDAR | radar, camera |" in (tmp_path / "ablations.md").read_text()


def test_the_ablations_of_a_model_report_each_run_as_it_ends(synthetic_root, tmp_path, capsys):
    """tools/test.py --ablations with the shipped LiDAR-only model: a drop of the sensors it does not read changes
    nothing, a drop of LiDAR leaves it blind (mAP 0); each run's summary is printed, then the table's path."""
    metrics = run([str(REPO_ROOT / "configs" / "lidar_only.py"), str(REPO_ROOT / "checkpoints" / "lidar_only.pth"),
                   "--ablations", "--no-plots", *_data_args(synthetic_root), "--out", str(tmp_path)])
    rows = _read(tmp_path / "ablations.json")
    assert [row["name"] for row in rows] == ["all sensors", "no camera", "no radar", "no LiDAR", "LiDAR only"]
    assert [row["sensors"] for row in rows] == [["lidar"], ["lidar"], ["lidar"], [], ["lidar"]]
    assert [m["mean_ap"] for m in metrics] == [row["mean_ap"] for row in rows]
    assert rows[0]["mean_ap"] > 0 and rows[3]["mean_ap"] == 0.0
    assert [row["mean_ap"] for row in rows[1:3] + rows[4:]] == [rows[0]["mean_ap"]] * 3
    printed = [line for line in capsys.readouterr().out.splitlines() if "report.md" in line or "table" in line]
    assert printed == [f"{name}: {tmp_path / folder / 'report.md'}" for name, folder in (
        ("all sensors", "all_sensors"), ("no camera", "no_camera"), ("no radar", "no_radar"), ("no LiDAR", "no_lidar"),
        ("LiDAR only", "lidar_only"))] + [f"sensor-failure table: {tmp_path / 'ablations.md'}"]


def test_no_sensor_failure_table_without_its_reference(synthetic_root, nusc_synthetic, tmp_path, monkeypatch):
    """Where "all sensors" is not scored, the next row became the reference of every delta, silently."""
    import perception.eval.ablations
    from perception.eval.detection import NoDetectionsError

    def only_without_camera(detector, name, nusc, data, out_dir, drop=(), **kwargs):
        if tuple(drop) != ("camera",):
            raise NoDetectionsError(f"{out_dir}: not scored")
        return evaluate_split(detector, name, nusc, data, out_dir, drop=drop, **kwargs)

    monkeypatch.setattr(perception.eval.ablations, "evaluate_split", only_without_camera)
    runs, table = _oracle_ablations(synthetic_root, nusc_synthetic, tmp_path)
    assert table == "no sensor-failure table: its reference, 'all sensors', was not scored"
    assert [ablation.not_scored for ablation in runs] == [f"{tmp_path / 'all_sensors'}: not scored", None,
                                                          f"{tmp_path / 'no_radar'}: not scored",
                                                          f"{tmp_path / 'no_lidar'}: not scored",
                                                          f"{tmp_path / 'lidar_only'}: not scored"]
    assert runs[1].metrics is not None
    assert not (tmp_path / "ablations.md").exists() and not (tmp_path / "ablations.json").exists()


def test_an_evaluation_is_not_written_over_another_folder_s_files(synthetic_root, tmp_path):
    """(tools/test.py wrote its submission, metrics.json, report.md and plots into any --out, over files of those
    names.)"""
    args = ["--oracle", "--no-plots", *_data_args(synthetic_root)]
    # the ablations of a model (the oracle's are refused), refused before the model is read
    ablations = [str(REPO_ROOT / "configs" / "lidar_only.py"), str(tmp_path / "never_read.pth"), "--ablations",
                 "--no-plots", *_data_args(synthetic_root)]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("mine")
    for argv in (args, ablations):
        with pytest.raises(ValueError, match=f"--out {mine}: holds files but no "):
            run([*argv, "--out", str(mine)])
    assert os.listdir(mine) == ["report.md"] and (mine / "report.md").read_text() == "mine"
    own = tmp_path / "own"
    for again in ([], [], ["--resume"]):  # an evaluation's own folder is evaluated into again, or resumed
        run([*args, "--out", str(own), *again])
    assert (own / "metrics.json").is_file()
    with pytest.raises(ValueError, match="holds files but no all_sensors/predictions_run.json"):
        run([*ablations, "--out", str(own)])  # one evaluation's folder is not the ablations' folder


def test_torchrun_two_processes_match_one(synthetic_root, tmp_path):
    args = ["--oracle", "--no-plots", *_data_args(synthetic_root)]
    run([*args, "--out", str(tmp_path / "one")])
    env = tree_under_test_env(OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(REPO_ROOT / "tools" / "test.py"), *args, "--out", str(tmp_path / "two")]
    subprocess.run(command, check=True, timeout=300, env=env, cwd=str(tmp_path), capture_output=True)
    one, two = _read(tmp_path / "one" / "metrics.json"), _read(tmp_path / "two" / "metrics.json")
    frames = one["frames_evaluated"]
    assert two["run"]["frames_per_process"] == [(frames + 1) // 2, frames // 2]
    assert _read(tmp_path / "two" / "results_nusc.json") == _read(tmp_path / "one" / "results_nusc.json")
    assert two["mean_ap"] == one["mean_ap"] and two["nd_score"] == one["nd_score"]
    assert two["decisions"] == one["decisions"]  # every frame's ego-frame boxes gathered from both processes
    # Killed after each process recorded its first frame: resumed, each detects the rest of its share.
    for rank in (0, 1):
        path = tmp_path / "two" / f"predictions.{rank}.jsonl"
        path.write_text(path.read_text().split("\n")[0] + "\n")
    subprocess.run([*command, "--resume"], check=True, timeout=300, env=env, cwd=str(tmp_path), capture_output=True)
    again = _read(tmp_path / "two" / "metrics.json")
    assert again["run"]["frames_per_process"] == two["run"]["frames_per_process"]
    assert _read(tmp_path / "two" / "results_nusc.json") == _read(tmp_path / "one" / "results_nusc.json")
    assert again["decisions"] == one["decisions"]


def test_a_killed_evaluation_resumes_to_the_uninterrupted_one(synthetic_root, tmp_path, monkeypatch):
    """Killed while detecting its third frame (its last record cut short), a planning model's evaluation resumed
    detects only the frames not recorded and writes the submission and metrics of an uninterrupted run (the
    frames' times aside); a resume with other inputs is refused before any frame."""
    from perception.models import BEVFusionDetector

    config = tmp_path / "planning.py"
    config.write_text(f"_base_ = [{str(REPO_ROOT / 'configs' / 'fusion_tiny_planning.py')!r}]\n")
    args = [str(config), str(REPO_ROOT / "checkpoints" / "fusion_tiny_planning.pth"), "--no-plots",
            *_data_args(synthetic_root), "--ego-mlp", str(REPO_ROOT / "checkpoints" / "ego_mlp.pth")]
    (whole,) = run([*args, "--out", str(tmp_path / "whole")])
    detected, original = [], BEVFusionDetector.detect_and_plan

    def killed_at_the_third(self, frames, ego_features):
        if len(detected) == 2:
            raise KeyboardInterrupt
        detected.extend(frame.sample_token for frame in frames)
        return original(self, frames, ego_features)

    out = tmp_path / "killed"
    monkeypatch.setattr(BEVFusionDetector, "detect_and_plan", killed_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        run([*args, "--out", str(out)])
    with open(out / "predictions.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"sample_token": "')  # the next record, cut short by the kill
    with pytest.raises(ValueError, match="predictions_run.json: the frames recorded there are of a run with another "
                                         "data.lidar_sweeps;"):
        run([*args, "--lidar-sweeps", "2", "--out", str(out), "--resume"])
    kept = config.read_text()
    config.write_text(kept + "model = dict(head=dict(score_threshold=0.4))\n")  # edited at the same path
    with pytest.raises(ValueError, match=r"are of a run with another model\.config_sha256;"):
        run([*args, "--out", str(out), "--resume"])
    config.write_text(kept)
    first_two, detected[:] = list(detected), []
    monkeypatch.setattr(BEVFusionDetector, "detect_and_plan",
                        lambda self, frames, ego: detected.extend(f.sample_token for f in frames) or original(
                            self, frames, ego))
    (resumed,) = run([*args, "--out", str(out), "--resume"])
    frames = whole["frames_evaluated"]
    assert len(detected) == frames - 2 and not set(detected) & set(first_two)
    assert (out / "results_nusc.json").read_bytes() == (tmp_path / "whole" / "results_nusc.json").read_bytes()
    for metrics in (whole, resumed):
        metrics.pop("seconds_per_frame")
    assert resumed == json.loads(json.dumps(whole).replace(str(tmp_path / "whole"), str(out)))
    assert resumed["decisions"]["planners"]["learned"] == whole["decisions"]["planners"]["learned"]


def test_a_resume_detects_a_batch_stopped_midway_whole_again(synthetic_root, tmp_path, monkeypatch):
    """Batches of two, the run stopped after the first frame of the second batch: the resume detects that batch's
    two frames together, as the uninterrupted run did, and ends with its submission."""
    args = ["--oracle", "--no-plots", *_data_args(synthetic_root), "--batch-size", "2", "--out", str(tmp_path)]
    run(args)
    submission = (tmp_path / "results_nusc.json").read_bytes()
    path = tmp_path / "predictions.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) == 4
    path.write_text("".join(lines[:3]))
    batches, original = [], OracleDetector.detect
    monkeypatch.setattr(OracleDetector, "detect", lambda self, frames: batches.append(len(frames)) or original(
        self, frames))
    (metrics,) = run([*args, "--resume"])
    assert batches == [2] and (tmp_path / "results_nusc.json").read_bytes() == submission
    # the time per frame: the frames' recorded seconds (those read back and those detected now) over the frames
    seconds = [record["seconds"] for record in read_json_lines(str(path))]
    assert len(seconds) == metrics["frames_evaluated"] == 4
    assert metrics["seconds_per_frame"] == pytest.approx(sum(seconds) / 4, rel=1e-12)


@pytest.mark.parametrize("argv, message", [
    (["--dataroot", "/nonexistent"], "CONFIG and CHECKPOINT are required"),
    (["--oracle", "--ablations", "--drop", "lidar"], "leave out --drop"),
    (["--oracle", "--ablations"], "--oracle keeps the ground truth that the annotations count LiDAR or radar points "
                                  "in, whatever sensor is dropped: its rows would claim a drop it ignores; leave out "
                                  "--ablations"),
    (["--oracle", "--drop", "lidar"], "whatever sensor is dropped: its rows would claim a drop it ignores; leave out "
                                      "--drop"),
    (["--oracle", "--dataroot", "/nonexistent", "--version", "v9"], "no nuScenes tables at /nonexistent/v9"),
    (["--oracle", "--lidar-sweeps", "0"], "a number of sweeps must be >= 1 (the keyframe's own), got 0"),
    (["--oracle", "--radar-sweeps", "two"], "a number of sweeps must be an integer, got 'two'"),
])
def test_bad_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_config_and_checkpoint_load_the_model(synthetic_root, tmp_path):
    """CONFIG CHECKPOINT go through perception.models.load_detector; an untrained LiDAR-only model still writes a
    valid submission whose meta says LiDAR only."""
    torch = pytest.importorskip("torch")
    from perception.models import build_detector

    config = str(REPO_ROOT / "configs" / "lidar_only.py")
    checkpoint = str(tmp_path / "untrained.pth")
    torch.save({"state_dict": build_detector(config).state_dict(), "meta": {}}, checkpoint)
    out = tmp_path / "evaluation"
    (metrics,) = run([config, checkpoint, "--no-plots", *_data_args(synthetic_root), "--out", str(out)])
    assert metrics["run"]["detector"] == f"{config} @ {checkpoint}" and metrics["run"]["sensors"] == ["lidar"]
    boxes, meta = load_prediction(str(out / "results_nusc.json"), 500, DetectionBox)
    assert (meta["use_lidar"], meta["use_radar"], meta["use_camera"]) == (True, False, False)
    assert len(boxes.sample_tokens) == metrics["frames_evaluated"]
    assert all(0.0 <= box.detection_score <= 1.0 for box in boxes.all)


class _NothingDetector:
    """Detects nothing (a model whose only sensor is blanked, say)."""

    sensors = frozenset({"lidar"})

    def detect(self, frames, timer=None):
        from perception.geometry import Boxes3D

        return [Boxes3D.empty() for _ in frames]


def test_a_split_without_detections_fails_clearly(synthetic_root, nusc_synthetic, tmp_path):
    from perception.eval.detection import NoDetectionsError

    data = DataOptions(str(synthetic_root), TINY_WORLD["version"], SPLIT, 1, 1)
    with pytest.raises(NoDetectionsError, match=r"results_nusc\.json: no predicted box"):
        evaluate_split(_NothingDetector(), "nothing", nusc_synthetic, data, str(tmp_path), render_curves=False)
    assert _read(tmp_path / "results_nusc.json")["results"]  # the (empty) submission itself was written


class _CarAhead(_NothingDetector):
    """A car 10 m ahead in every frame."""

    def detect(self, frames, timer=None):
        return [Boxes3D(centers=[[10.0, 0.0, 1.0]], sizes=[[1.9, 4.5, 1.6]], yaws=[0.0], scores=[0.9], labels=[0])
                for _ in frames]


def test_a_split_without_ground_truth_is_named_as_such_not_as_one_without_detections(synthetic_root, tmp_path):
    """The devkit fails alike on empty predictions and on empty ground truth; a detector with a box in every
    keyframe, on a copy of the world whose synth_val annotations are gone, is told there is nothing to score."""
    from nuscenes.nuscenes import NuScenes

    from tests.engine.test_finetune import validation_annotation_free_copy

    root = validation_annotation_free_copy(synthetic_root, tmp_path / "world")
    nusc = NuScenes(TINY_WORLD["version"], root, verbose=False)
    data = DataOptions(root, TINY_WORLD["version"], SPLIT, 1, 1)
    with pytest.raises(ValueError, match=f"split '{SPLIT}' of {root} holds no annotated object .* nothing to score"):
        evaluate_split(_CarAhead(), "a car ahead", nusc, data, str(tmp_path / "out"), render_curves=False)


def test_skip_corrupt_files(synthetic_root, nusc_synthetic, tmp_path, capsys):
    """A truncated LiDAR file stops the run with one line naming it, read in the main process or in a DataLoader
    worker (whose CorruptFileError torch gave back as a RuntimeError with a 54-line traceback); --skip-corrupt-files
    evaluates its frame with no detections (in a worker here) and lists the file in report.md."""
    from perception.cli.test import main

    root = tmp_path / "world"
    shutil.copytree(synthetic_root, root)
    token = split_sample_tokens(nusc_synthetic, SPLIT)[1]
    lidar = nusc_synthetic.get("sample_data", nusc_synthetic.get("sample", token)["data"]["LIDAR_TOP"])
    path = root / lidar["filename"]
    size = path.stat().st_size - 7
    path.write_bytes(path.read_bytes()[:size])  # not a whole number of 20-byte records any more
    args = ["--oracle", "--no-plots", *_data_args(root)]
    for workers in ("0", "1"):
        with pytest.raises(SystemExit) as stop:
            main([*args, "--out", str(tmp_path / "stopped"), "--workers", workers])
        last_line = capsys.readouterr().err.splitlines()[-1]  # after the progress bars
        assert stop.value.code == 1, workers
        assert last_line.startswith(f"error: {path}: {size} bytes is not a multiple of 20"), (workers, last_line)
        assert not (tmp_path / "stopped" / "metrics.json").exists()

    out = tmp_path / "skipped"
    (metrics,) = run([*args, "--out", str(out), "--skip-corrupt-files", "--workers", "1"])
    assert metrics["frames_evaluated"] == len(split_sample_tokens(nusc_synthetic, SPLIT))
    (unreadable,) = metrics["run"]["unreadable_files"]
    assert unreadable["path"] == str(path) and unreadable["sample_token"] == token
    results = _read(out / "results_nusc.json")["results"]
    assert results[token] == [] and all(results[other] for other in results if other != token)
    # The oracle scores AP 1 on every class present when it sees every frame (test_oracle_end_to_end); the
    # skipped frame's ground truth is missed.
    assert nusc_synthetic.get("sample", token)["anns"]
    present = [name for name in DETECTION_CLASSES if metrics["num_gt"][name] > 0]
    assert 0 < metrics["mean_ap"] < len(present) / len(DETECTION_CLASSES)
    assert f"- `{path}`: " in (out / "report.md").read_text()


def _world_with_a_cut_lidar_file(synthetic_root, nusc_synthetic, folder):
    """A copy of the tiny world (files linked) whose second synth_val keyframe's LiDAR file is cut short."""
    root = folder / "world"
    shutil.copytree(synthetic_root, root, copy_function=os.symlink)
    sample = nusc_synthetic.get("sample", split_sample_tokens(nusc_synthetic, SPLIT)[1])
    lidar = root / nusc_synthetic.get("sample_data", sample["data"]["LIDAR_TOP"])["filename"]
    content = lidar.read_bytes()
    lidar.unlink()
    lidar.write_bytes(content[:-7])
    return root


EVALUATION_FILES = {"results_nusc.json", "metrics.json", "report.md", "plots", "metrics_summary.json",
                    "metrics_details.json", "predictions.jsonl", "predictions_run.json"}
"""What README says a run writes into --out (the devkit's plots under plots/)."""


def test_a_fresh_run_that_fails_leaves_nothing_of_the_earlier_run(synthetic_root, nusc_synthetic, tmp_path):
    """A fresh run (not --resume) that stopped left the earlier run's metrics.json, report.md, submission, devkit
    files and plots beside its own predictions; now they are removed before it predicts (another program's folder
    is refused: test_an_evaluation_is_not_written_over_another_folder_s_files)."""
    from perception.datasets.io import CorruptFileError

    root = _world_with_a_cut_lidar_file(synthetic_root, nusc_synthetic, tmp_path)
    out = tmp_path / "out"
    run(["--oracle", *_data_args(root), "--out", str(out), "--skip-corrupt-files"])
    assert set(os.listdir(out)) == EVALUATION_FILES and os.listdir(out / "plots")
    with pytest.raises(CorruptFileError):  # stops at the second keyframe, the first one's predictions written
        run(["--oracle", "--no-plots", *_data_args(root), "--out", str(out)])
    assert set(os.listdir(out)) == {"predictions.jsonl", "predictions_run.json"}
    assert len(read_json_lines(str(out / "predictions.jsonl"))) == 1


def test_a_fresh_run_of_the_ablations_that_fails_leaves_nothing_of_the_earlier_one(synthetic_root, nusc_synthetic,
                                                                                   tmp_path):
    """(The earlier table and the later ablations' results stayed beside the fresh run's first predictions.)"""
    from nuscenes.nuscenes import NuScenes

    from perception.datasets.io import CorruptFileError

    root = _world_with_a_cut_lidar_file(synthetic_root, nusc_synthetic, tmp_path)
    out = tmp_path / "out"
    nusc = NuScenes(TINY_WORLD["version"], str(root), verbose=False)
    _oracle_ablations(root, nusc, out, skip_corrupt_files=True)
    folders = ["all_sensors", "no_camera", "no_radar", "no_lidar", "lidar_only"]
    assert set(os.listdir(out)) == {"ablations.md", "ablations.json", *folders}
    with pytest.raises(CorruptFileError):  # in the first run, all sensors
        _oracle_ablations(root, nusc, out)
    assert set(os.listdir(out)) == set(folders)
    assert set(os.listdir(out / "all_sensors")) == {"predictions.jsonl", "predictions_run.json"}
    assert all(os.listdir(out / folder) == [] for folder in folders[1:])


def test_a_lane_map_that_cannot_be_read_is_named_before_the_detection_pass(synthetic_root, tmp_path):
    """(It was read by the decision metrics, after every frame had been detected.)"""
    root = tmp_path / "world"
    shutil.copytree(synthetic_root, root, copy_function=os.symlink)
    lanes = root / TINY_WORLD["version"] / "lane_centres.json"
    lanes.unlink()
    lanes.write_text('{"not": "a lane map"')
    with pytest.raises(ValueError, match="lane_centres.json"):
        run(["--oracle", "--no-plots", *_data_args(root), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "results_nusc.json").exists()


@pytest.mark.parametrize("grid", [(6, 0.25), (4, 0.5)])
def test_an_ego_mlp_of_other_waypoints_than_the_decisions_is_named_before_the_detection_pass(
        synthetic_root, nusc_synthetic, tmp_path, grid):
    """(A plan of 0.25 s steps was graded as one of 0.5 s steps, at half its speed; one of 4 steps failed inside
    the label rules, after every frame had been detected.)"""
    path = save_ego_mlp(EgoMLP(*grid), tmp_path / "ego.pth", {})
    with pytest.raises(ValueError, match=rf"the ego MLP plans {grid[0]} waypoints {grid[1]:g} s apart; the decisions "
                                         r"plan 6 waypoints 0.5 s apart"):
        run(["--oracle", "--no-plots", *_data_args(synthetic_root), "--ego-mlp", str(path),
             "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "results_nusc.json").exists()
    token = split_sample_tokens(nusc_synthetic, SPLIT)[0]
    with pytest.raises(ValueError, match="the ego MLP plans"):  # the grading itself, called on its own
        planned_frame_for_sample(nusc_synthetic, token, Boxes3D.empty(), ego_mlp=EgoMLP(*grid))


def test_a_learned_plan_that_is_not_finite_is_named_with_its_sample(nusc_synthetic):
    """(The safety layer's refusal did not name the keyframe; replay decides on such a frame, see test_learned.)"""
    import torch

    from perception.maneuvers import Maneuver
    from perception.models.planning_types import PlanningOutputs

    token = split_sample_tokens(nusc_synthetic, SPLIT)[0]
    broken = PlanningOutputs(torch.full((6, 2), float("nan")), torch.zeros(len(Maneuver)), torch.zeros(2))
    with pytest.raises(ValueError, match=f"sample {token}: the learned plan has 12 values not finite"):
        planned_frame_for_sample(nusc_synthetic, token, Boxes3D.empty(), learned_plan=broken, with_learned=True)
