"""The robustness benchmark on the tiny synthetic world: 2 corruptions x 1 severity with a detector that sees
objects only through LiDAR points; the json, RA and CE by hand from each cell's own metrics.json, resume, the md
and png."""
import json
import os
import re

import numpy as np
import pytest
import torch.distributed as dist

from perception.cli.robustness import run as run_cli
from perception.detector import OracleDetector
from perception.datasets.corruptions import CORRUPTIONS
from perception.eval.robustness import (
    CELL_FILE, CLEAN, Cell, cell_definition, check_baseline, check_summary, plan_cells, read_cell, robustness_summary,
    run_cells, write_robustness,
)
from perception.eval.runner import DataOptions, Shard
from tests.conftest import TINY_WORLD, tree_under_test_env

SPLIT = "synth_val"


class LidarOracle(OracleDetector):
    """The ground truth boxes that hold at least one LiDAR point of the frame (none without LiDAR); counts the
    frames it saw."""

    def __init__(self):
        self.frames_seen = 0

    def detect(self, frames, timer=None):
        self.frames_seen += len(frames)
        results = []
        for frame, boxes in zip(frames, super().detect(frames)):
            seen = np.zeros(len(boxes), dtype=bool)
            if frame.lidar is not None:
                seen = boxes.contains(frame.lidar.points).any(axis=1)
            results.append(boxes[seen])
        return results


def _read(path):
    with open(path) as handle:
        return json.load(handle)


def test_plan_cells():
    cells = plan_cells(["limited_fov", "lidar_missing"], [2, 3])
    assert cells == [Cell(CLEAN, 0), Cell("limited_fov", 2), Cell("limited_fov", 3), Cell("lidar_missing", 1)]
    with pytest.raises(ValueError, match="unknown corruptions"):
        plan_cells(["fog"], [1])
    with pytest.raises(ValueError):
        plan_cells(["limited_fov"], [4])
    # each cell once: a corruption named twice had run twice and counted twice in mRA
    with pytest.raises(ValueError, match="corruptions named more than once: lidar_fog$"):
        plan_cells(["limited_fov", "lidar_fog", "lidar_fog"], [3])
    with pytest.raises(ValueError, match="severities named more than once: 3$"):
        plan_cells(["limited_fov"], [3, 1, 3])


def test_benchmark_two_corruptions_one_severity(synthetic_root, nusc_synthetic, tmp_path):
    data = DataOptions(str(synthetic_root), TINY_WORLD["version"], SPLIT, lidar_sweeps=1, radar_sweeps=1)
    run = {"model": "lidar oracle", "dataroot": str(synthetic_root), "version": TINY_WORLD["version"],
           "split": SPLIT, "seed": 0}
    corruptions, severities = ["limited_fov", "lidar_missing"], [3]
    cells = plan_cells(corruptions, severities)
    out = str(tmp_path / "robustness")
    detector = LidarOracle()
    # As process 1 of 2 (torchrun's share; a one-process gloo group stands in for the barriers): cells[1::2] only.
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'process_group'}", rank=0, world_size=1)
    try:
        assert run_cells(detector, run, lambda: nusc_synthetic, data, out, cells, 0, Shard(1, 2)) == {}
    finally:
        dist.destroy_process_group()
    frames_per_cell = len(nusc_synthetic.scene[1:]) * TINY_WORLD["samples_per_scene"]
    assert detector.frames_seen == frames_per_cell
    assert sorted(os.listdir(out)) == ["limited_fov_3"]
    # The main process alone: the cells left, then every cell's record.
    records = run_cells(detector, run, lambda: nusc_synthetic, data, out, cells, seed=0)
    frames = detector.frames_seen
    assert frames == 3 * frames_per_cell and set(records) == set(cells)

    # Each scored cell's NDS is the devkit's, from the cell's own metrics.json.
    clean = _read(os.path.join(out, "clean", "metrics.json"))
    fov = _read(os.path.join(out, "limited_fov_3", "metrics.json"))
    assert records[Cell(CLEAN, 0)]["nd_score"] == clean["nd_score"] > 0.5
    assert records[Cell("limited_fov", 3)]["nd_score"] == fov["nd_score"] < clean["nd_score"]
    # No LiDAR, no box: the devkit cannot score an empty set; the cell scores 0 and says so.
    missing = records[Cell("lidar_missing", 1)]
    assert (missing["nd_score"], missing["mean_ap"], missing["scored"]) == (0.0, 0.0, False)

    summary = robustness_summary(records, corruptions, severities)
    rows = {row["name"]: row for row in summary["corruptions"]}
    fov_ra = fov["nd_score"] / clean["nd_score"]
    assert rows["limited_fov"]["cells"][0]["ra"] == pytest.approx(fov_ra)
    assert rows["limited_fov"]["cells"][0]["level"] == 30.0
    assert rows["lidar_missing"]["cells"][0]["ra"] == 0.0 and rows["lidar_missing"]["cells"][0]["severity"] == 3
    assert summary["mra"] == pytest.approx((fov_ra + 0.0) / 2)
    assert summary["worst"]["name"] == "lidar_missing" and summary["baseline"] is None

    # CE against a baseline, by hand: (1 - NDS) / (1 - baseline NDS) per corruption, mCE their mean.
    baseline = {"model": "baseline", "corruptions": [
        {"name": "limited_fov", "cells": [{"severity": 3, "nd_score": 0.2}]},
        {"name": "lidar_missing", "cells": [{"severity": 3, "nd_score": 0.5}]}]}
    against = robustness_summary(records, corruptions, severities, baseline)
    expected = [(1 - fov["nd_score"]) / 0.8, 1.0 / 0.5]
    assert [row["ce"] for row in against["corruptions"]] == pytest.approx(expected)
    assert against["baseline"] == {"model": "baseline", "mce": pytest.approx(np.mean(expected))}

    write_robustness(out, against)
    assert _read(os.path.join(out, "robustness.json")) == json.loads(json.dumps(against))
    markdown = open(os.path.join(out, "robustness.md")).read()
    assert "| limited_fov | LiDAR |" in markdown and "lidar_missing (any severity)" in markdown
    assert "0.000*" in markdown and "![RA heatmap](robustness.png)" in markdown
    with open(os.path.join(out, "robustness.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"

    # Resume: finished cells are read back, not run again; a cell stopped before its cell.json (here removed) with
    # only its first frame's predictions kept resumes from them: its other frames alone run, the same record.
    again = run_cells(detector, run, lambda: pytest.fail("devkit tables loaded with nothing to run"), data, out,
                      cells, seed=0)
    assert again == records and detector.frames_seen == frames
    os.remove(os.path.join(out, "limited_fov_3", CELL_FILE))
    predicted = os.path.join(out, "limited_fov_3", "predictions.jsonl")
    with open(predicted) as handle:
        first = handle.readline()
    with open(predicted, "w") as handle:
        handle.write(first)
    again = run_cells(detector, run, lambda: nusc_synthetic, data, out, cells, seed=0)
    assert detector.frames_seen == frames + frames // 3 - 1
    assert again == records
    # The same, its frames predicted under another level of its corruption (since changed): run afresh, whole.
    os.remove(os.path.join(out, "limited_fov_3", CELL_FILE))
    run_file = os.path.join(out, "limited_fov_3", "predictions_run.json")
    identity = _read(run_file)
    identity["model"]["definition"] = {"level": 45.0, "revision": 1}
    with open(run_file, "w") as handle:
        json.dump(identity, handle)
    assert run_cells(detector, run, lambda: nusc_synthetic, data, out, cells, seed=0) == records
    assert detector.frames_seen == frames + 2 * (frames // 3) - 1
    # A cell written under another level of its corruption (since changed) is run again whole, not reused.
    path = os.path.join(out, "limited_fov_3", CELL_FILE)
    stale = dict(_read(path), definition={"level": 45.0, "revision": 1})
    with open(path, "w") as handle:
        json.dump(stale, handle)
    with open(run_file, "w") as handle:  # its frames' predictions under that level too
        json.dump(identity, handle)
    run_cells(detector, run, lambda: nusc_synthetic, data, out, cells, seed=0)
    assert detector.frames_seen == frames + 3 * (frames // 3) - 1
    assert _read(path)["definition"] == {"level": 30.0, "revision": 1}
    # Cells of another run are refused, not mixed in.
    with pytest.raises(ValueError, match="cell.json: the cell's figures are of a run with another seed;"):
        read_cell(out, Cell(CLEAN, 0), dict(run, seed=1))


def test_read_cell_reuses_only_the_same_definition(tmp_path):
    run = {"model": "m", "seed": 0}
    cell = Cell("lidar_fog", 2)
    assert cell_definition(cell) == {"level": [0.03, 0.008], "revision": 2}
    assert cell_definition(Cell(CLEAN, 0)) == {}
    os.makedirs(tmp_path / "lidar_fog_2")

    def read_written(**fields):
        with open(tmp_path / "lidar_fog_2" / CELL_FILE, "w") as handle:
            json.dump({"run": run, "corruption": "lidar_fog", "severity": 2, "nd_score": 0.5, **fields}, handle)
        return read_cell(str(tmp_path), cell, run)

    assert read_written(definition={"level": [0.03, 0.008], "revision": 2})["nd_score"] == 0.5
    assert read_written(definition={"level": [0.03, 0.008], "revision": 1}) is None  # the function changed
    assert read_written(definition={"level": 0.03, "revision": 2}) is None  # the level changed
    assert read_written() is None  # written before definitions were recorded


def test_a_baseline_of_other_data_or_other_levels_is_refused(tmp_path):
    """CE divides by the baseline's errors: a baseline is the same data at the same corruption levels."""
    run = {"model": "this", "dataroot": str(tmp_path), "version": "v1.0-synth", "split": SPLIT, "seed": 0}
    fov = CORRUPTIONS["limited_fov"]
    row = {"name": "limited_fov", "revision": fov.revision, "rr": 0.5 / 0.6,
           "cells": [{"severity": severity, "level": fov.levels[severity - 1], "nd_score": 0.5, "ra": 0.5 / 0.6}
                     for severity in (1, 3)]}
    baseline = {"model": "other", "run": dict(run, model="other"), "corruptions": [row], "clean": {"nd_score": 0.6},
                "mra": 0.5 / 0.6, "worst": {"name": "limited_fov", "severity": 1, "ra": 0.5 / 0.6}}
    check_baseline(baseline, "b.json", run, ["limited_fov"])  # another model on the same data: a baseline
    (tmp_path / "link").symlink_to(tmp_path)  # the same folder by another path
    check_baseline(dict(baseline, run=dict(run, dataroot=str(tmp_path / "link"))), "b.json", run, ["limited_fov"])
    for key, value in (("split", "synth_train"), ("seed", 1), ("dataroot", str(tmp_path / "other"))):
        with pytest.raises(ValueError, match=r"b\.json: a baseline of other data"):
            check_baseline(dict(baseline, run=dict(run, **{key: value})), "b.json", run, ["limited_fov"])
    stale = [dict(row, revision=fov.revision - 1), dict(row, cells=[dict(row["cells"][0], level=0.0)]),
             {key: value for key, value in row.items() if key != "revision"}]  # revisions not recorded
    for other in stale:
        with pytest.raises(ValueError, match=r"b\.json: its limited_fov ran at .*run the baseline again"):
            check_baseline(dict(baseline, corruptions=[other]), "b.json", run, ["limited_fov"])
        check_baseline(dict(baseline, corruptions=[other]), "b.json", run, ["lidar_missing"])  # a row not used
    shapes = ([], {"model": "m"}, dict(baseline, run=None), dict(baseline, corruptions=[{"name": "x"}]),
              {key: value for key, value in baseline.items() if key != "model"},
              dict(baseline, corruptions=[dict(row, cells=[0.5])]),
              dict(baseline, corruptions=[{key: value for key, value in row.items() if key != "rr"}]),
              dict(baseline, clean={}))
    for shape in shapes:
        with pytest.raises(ValueError, match=r"b\.json: not a robustness\.json"):
            check_baseline(shape, "b.json", run, ["limited_fov"])


def test_a_split_without_annotations_is_refused_before_any_cell_runs(synthetic_root, tmp_path):
    from nuscenes.nuscenes import NuScenes

    from tests.engine.test_finetune import validation_annotation_free_copy

    root = validation_annotation_free_copy(synthetic_root, tmp_path / "world")
    data = DataOptions(root, TINY_WORLD["version"], SPLIT, lidar_sweeps=1, radar_sweeps=1)
    run = {"model": "lidar oracle", "dataroot": root, "version": TINY_WORLD["version"], "split": SPLIT, "seed": 0}
    detector = LidarOracle()
    with pytest.raises(ValueError, match=f"split '{SPLIT}' of .* has no annotations"):
        run_cells(detector, run, lambda: NuScenes(TINY_WORLD["version"], root, verbose=False), data,
                  str(tmp_path / "out"), plan_cells(["limited_fov"], [3]), seed=0)
    assert detector.frames_seen == 0


def test_cli_refuses_bad_arguments(tmp_path):
    for argv in (["--corruptions", "no_such"], ["--severities", "0"], ["--corruptions", ""]):
        with pytest.raises(SystemExit):
            run_cli(["config.py", "model.pth", "--dataroot", str(tmp_path), *argv])


def test_cli_names_the_option_of_a_repeated_or_malformed_list(tmp_path, capsys):
    """Refused by the parser, before anything is read: a corruption named twice had been run twice (under torchrun
    on two ranks writing one folder) and counted twice in mRA; '--severities 1,x' printed int()'s message alone."""
    for option, value, message in (
            ("--corruptions", "limited_fov,lidar_fog,lidar_fog", "corruptions named more than once: lidar_fog"),
            ("--severities", "3,1,3", "severities named more than once: 3"),
            ("--severities", "1,x", "severities must be of 1, 2, 3, got '1,x'")):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(["config.py", "model.pth", "--dataroot", str(tmp_path), option, value])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1].endswith(f"error: argument {option}: {message}")


def test_cli_refuses_corruptions_of_sensors_the_model_does_not_read(synthetic_root, tmp_path, capsys):
    from perception.paths import REPO_ROOT

    with pytest.raises(SystemExit):
        run_cli([str(REPO_ROOT / "configs" / "lidar_only.py"), "model.pth", "--dataroot", str(synthetic_root),
                 "--version", TINY_WORLD["version"], "--corruptions", "camera_crash,ghost_targets",
                 "--out", str(tmp_path)])
    assert "the model reads lidar only: none of --corruptions changes its input" in capsys.readouterr().err


def test_cli_checks_the_baseline_before_loading_the_model(synthetic_root, tmp_path):
    from perception.paths import REPO_ROOT

    (tmp_path / "cell.json").write_text(json.dumps({"run": {}, "nd_score": 0.5}))  # a cell's record, not a summary
    with pytest.raises(ValueError, match=r"cell\.json: not a robustness\.json"):
        run_cli([str(REPO_ROOT / "configs" / "lidar_only.py"), str(tmp_path / "no_model.pth"), "--dataroot",
                 str(synthetic_root), "--version", TINY_WORLD["version"], "--corruptions", "limited_fov",
                 "--baseline", str(tmp_path / "cell.json"), "--out", str(tmp_path / "out")])
    with pytest.raises(ValueError, match=r"absent\.json: no such robustness\.json; run tools/robustness\.py with the "
                                         r"baseline model's config and checkpoint"):
        run_cli([str(REPO_ROOT / "configs" / "lidar_only.py"), str(tmp_path / "no_model.pth"), "--dataroot",
                 str(synthetic_root), "--version", TINY_WORLD["version"], "--corruptions", "limited_fov",
                 "--baseline", str(tmp_path / "absent.json"), "--out", str(tmp_path / "out")])


def test_other_weights_at_the_same_path_are_another_run(synthetic_root, tmp_path):
    """A resumed benchmark reads its finished cells back only for the same checkpoint, known by its content: a
    checkpoint trained again and written over the old file would have mixed two models' cells."""
    import shutil

    import torch

    from perception.paths import REPO_ROOT

    checkpoint = tmp_path / "model.pth"
    shutil.copy(REPO_ROOT / "checkpoints" / "lidar_only.pth", checkpoint)
    args = [str(REPO_ROOT / "configs" / "lidar_only.py"), str(checkpoint), "--dataroot", str(synthetic_root),
            "--version", TINY_WORLD["version"], "--split", SPLIT, "--corruptions", "limited_fov", "--severities", "3",
            "--out", str(tmp_path / "out")]
    run_cli(args)
    first_cell_written = (tmp_path / "out" / "clean" / "cell.json").stat().st_mtime_ns
    moved = tmp_path / "moved.pth"  # the same files under another path: the same run, its cells read back
    shutil.copy(checkpoint, moved)
    run_cli([args[0], str(moved), *args[2:]])
    assert (tmp_path / "out" / "clean" / "cell.json").stat().st_mtime_ns == first_cell_written
    trained_again = torch.load(checkpoint, weights_only=True)
    trained_again["state_dict"] = {name: tensor * 1.01 if tensor.is_floating_point() else tensor
                                   for name, tensor in trained_again["state_dict"].items()}
    torch.save(trained_again, checkpoint)
    with pytest.raises(ValueError, match="cell.json: the cell's figures are of a run with another checkpoint_sha256;"):
        run_cli(args)


def test_test_tool_evaluates_one_cell(synthetic_root, tmp_path):
    from perception.cli.test import run as run_test

    args = ["--oracle", "--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"], "--split", SPLIT,
            "--lidar-sweeps", "1", "--radar-sweeps", "1", "--no-plots", "--out", str(tmp_path / "one")]
    (metrics,) = run_test([*args, "--corrupt", "lidar_fog:2"])
    fog = CORRUPTIONS["lidar_fog"]
    assert metrics["run"]["transform"] == (f"corruption lidar_fog:2 (level {fog.levels[1]}, revision {fog.revision}, "
                                           f"seed 0)")
    with pytest.raises(SystemExit):
        run_test([*args, "--corrupt", "lidar_fog:9"])


def test_torchrun_two_processes_share_the_cells(synthetic_root, tmp_path):
    """tools/robustness.py under torchrun with 2 CPU processes: each cell is run once, by one process, and the
    result equals one process's run of the same cells."""
    import subprocess
    import sys

    from perception.paths import REPO_ROOT

    args = [str(REPO_ROOT / "configs" / "lidar_only.py"), str(REPO_ROOT / "checkpoints" / "lidar_only.pth"),
            "--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"], "--split", SPLIT,
            "--corruptions", "limited_fov,camera_crash,lidar_missing,ghost_targets", "--severities", "3"]
    one = run_cli([*args, "--out", str(tmp_path / "one")])
    # lidar_only reads no camera and no radar: their corruptions are named, not run
    assert one["not_read"] == [{"name": "camera_crash", "sensor": "camera"}, {"name": "ghost_targets",
                                                                             "sensor": "radar"}]
    assert "Not run, the model does not read their sensor: camera_crash (camera), ghost_targets (radar)." in (
        tmp_path / "one" / "robustness.md").read_text()
    env = tree_under_test_env(OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(REPO_ROOT / "tools" / "robustness.py"), *args, "--out", str(tmp_path / "two")]
    finished = subprocess.run(command, timeout=300, env=env, cwd=str(tmp_path), capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    two = _read(tmp_path / "two" / "robustness.json")
    cells = plan_cells(["limited_fov", "lidar_missing"], [3])
    # Process 0 ran cells[0::2], process 1 cells[1::2]: each cell's progress bar names the process that ran it.
    assert sorted(os.listdir(tmp_path / "two")) == sorted([cell.folder for cell in cells] +
                                                          ["robustness.json", "robustness.md", "robustness.png"])
    for rank in (0, 1):  # each process's bar ends at its own share's count: no cell run twice or by both
        share = len(cells[rank::2])
        assert re.search(rf"robustness \(process {rank}\): 100%\|[^|]*\| {share}/{share} ", finished.stderr), rank
    for key in ("clean", "corruptions", "mra", "worst"):
        assert two[key] == json.loads(json.dumps(one[key])), key


def test_resilience_and_corruption_error_by_hand_over_two_severities():
    """RA, RR, mRA, CE and mCE by their definitions (nuScenes-C after Hendrycks & Dietterich: CE = sum over the
    severities run of (1 - NDS) / the baseline's same sum; mCE the mean CE over the corruptions the baseline has).
    Severities 1 and 3, clean NDS 0.6:
    - limited_fov: NDS 0.54, 0.30 -> RA 0.9, 0.5, RR 0.7; baseline NDS 0.5 / 0.4 / 0.2 at severities 1 / 2 / 3, of
      which 1 and 3 count: CE = (0.46 + 0.70) / (0.5 + 0.8) = 1.16 / 1.3 = 0.892308;
    - lidar_missing (one cell, any severity): NDS 0 -> RA 0, 0, RR 0; baseline 0.1 at both: CE = 2 / 1.8 = 1.111111;
    - points_reducing: NDS 0.6, 0.45 -> RA 1.0, 0.75, RR 0.875; not in the baseline: no CE.
    mRA = (0.7 + 0 + 0.875) / 3 = 0.525; mCE = (0.892308 + 1.111111) / 2 = 1.001709; worst cell lidar_missing s1."""
    def record(nd_score):
        return {"run": {"model": "m"}, "nd_score": nd_score, "mean_ap": nd_score / 2, "scored": nd_score > 0}

    records = {Cell(CLEAN, 0): record(0.6), Cell("limited_fov", 1): record(0.54), Cell("limited_fov", 3): record(0.3),
               Cell("lidar_missing", 1): record(0.0), Cell("points_reducing", 1): record(0.6),
               Cell("points_reducing", 3): record(0.45)}
    baseline = {"model": "base", "corruptions": [
        {"name": "limited_fov", "cells": [{"severity": s, "nd_score": n} for s, n in ((1, 0.5), (2, 0.4), (3, 0.2))]},
        {"name": "lidar_missing", "cells": [{"severity": s, "nd_score": 0.1} for s in (1, 2, 3)]}]}
    corruptions = ["limited_fov", "lidar_missing", "points_reducing"]
    summary = robustness_summary(records, corruptions, [3, 1], baseline)
    rows = {row["name"]: row for row in summary["corruptions"]}
    assert summary["severities"] == [1, 3]
    assert [c["ra"] for c in rows["limited_fov"]["cells"]] == pytest.approx([0.9, 0.5])
    assert [rows[name]["rr"] for name in corruptions] == pytest.approx([0.7, 0.0, 0.875])
    assert summary["mra"] == pytest.approx(0.525)
    assert rows["limited_fov"]["ce"] == pytest.approx(1.16 / 1.3)
    assert rows["lidar_missing"]["ce"] == pytest.approx(2 / 1.8) and rows["points_reducing"]["ce"] is None
    assert summary["baseline"] == {"model": "base", "mce": pytest.approx((1.16 / 1.3 + 2 / 1.8) / 2)}
    assert (summary["worst"]["name"], summary["worst"]["severity"], summary["worst"]["ra"]) == ("lidar_missing", 1, 0.0)
    # A baseline that lacks a severity run gives no CE for that corruption (nothing to divide by on the same terms).
    first = baseline["corruptions"][0]
    partial = dict(baseline, corruptions=[dict(first, cells=first["cells"][:2])])
    assert robustness_summary(records, ["limited_fov"], [1, 3], partial)["corruptions"][0]["ce"] is None
    # A baseline without error (NDS 1 at every severity) leaves CE undefined: None, not a division by zero.
    perfect = dict(baseline, corruptions=[{"name": "limited_fov", "cells": [{"severity": s, "nd_score": 1.0}
                                                                            for s in (1, 3)]}])
    summary = robustness_summary(records, ["limited_fov"], [1, 3], perfect)
    assert summary["corruptions"][0]["ce"] is None and summary["baseline"]["mce"] is None
    # A clean NDS of 0 (a clean cell with no box) leaves every RA undefined: a ValueError, not a division by zero.
    with pytest.raises(ValueError, match="the clean NDS is 0"):
        robustness_summary({**records, Cell(CLEAN, 0): record(0.0)}, corruptions, [1, 3], baseline)


def test_the_corruption_errors_are_printed_in_percent(tmp_path):
    """robustness.md prints CE and mCE in % (nuScenes-C): limited_fov at NDS 0.54 / 0.30 against a baseline's 0.5 /
    0.2 has CE (0.46 + 0.70) / (0.5 + 0.8) = 0.892308, printed 89.2 in its row and, the only corruption, as the mCE."""
    run = {"model": "m", "version": "v", "split": "s", "dataroot": "d", "seed": 0}
    records = {Cell(CLEAN, 0): 0.6, Cell("limited_fov", 1): 0.54, Cell("limited_fov", 3): 0.3}
    records = {cell: {"run": run, "nd_score": nd, "mean_ap": nd / 2, "scored": True} for cell, nd in records.items()}
    baseline = {"model": "base", "corruptions": [
        {"name": "limited_fov", "cells": [{"severity": 1, "nd_score": 0.5}, {"severity": 3, "nd_score": 0.2}]}]}
    write_robustness(str(tmp_path), robustness_summary(records, ["limited_fov"], [1, 3], baseline))
    markdown = (tmp_path / "robustness.md").read_text()
    assert "| 0.900 | 0.500 | 0.700 | 89.2 |" in markdown  # RA s1, RA s3, RR, CE
    assert "mCE 89.2 % against base." in markdown


def test_the_heatmap_title_names_the_model_and_the_data(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from perception.eval.robustness import write_heatmap

    closed = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda figure: (closed.append(figure), close(figure)))
    run = {"model": "configs/fusion_tiny.py @ checkpoints/fusion_tiny.pth", "dataroot": "datasets/synthetic-demo",
           "version": "v1.0-synth", "split": "synth_val", "seed": 0}
    summary = {"model": run["model"], "run": run, "severities": [1], "clean": {"nd_score": 0.689}, "mra": 0.925,
               "corruptions": [{"name": "lidar_missing", "cells": [{"ra": 0.5}]}]}
    write_heatmap(str(tmp_path / "robustness.png"), summary)
    (title,) = [axes.get_title() for axes in closed[0].axes if axes.get_title()]
    for text in (run["model"], run["dataroot"], "v1.0-synth synth_val", "seed 0", "clean NDS 0.689", "mRA 0.925"):
        assert text in title


def test_check_summary_asks_for_what_the_readers_read():
    """check_summary accepts a robustness.json holding, as numbers, the clean NDS, mRA, the worst cell's severity and
    RA, and per corruption its name, RR and cells (severity, level, NDS, RA); mRA and the worst cell may be None (no
    corruption run). Anything else is named: a key missing (mRA, a row's name, a cell's level or RA, the worst
    cell's RA), a figure that is not a number, a run or cells of the wrong type."""
    cell = {"severity": 1, "level": 30.0, "nd_score": 0.5, "ra": 0.5 / 0.6}
    row = {"name": "limited_fov", "rr": 0.5 / 0.6, "cells": [cell]}
    summary = {"model": "m", "run": {"model": "m"}, "clean": {"nd_score": 0.6}, "corruptions": [row],
               "mra": 0.5 / 0.6, "worst": {"name": "limited_fov", "severity": 1, "ra": 0.5 / 0.6}}
    check_summary(summary, "s.json")
    check_summary(dict(summary, corruptions=[], mra=None, worst=None), "s.json")  # the clean cell alone
    without = {key: value for key, value in summary.items() if key != "mra"}
    bad = [without, dict(summary, mra="0.83"), dict(summary, run="m"), dict(summary, clean={"nd_score": "0.6"}),
           dict(summary, worst={"name": "limited_fov", "severity": 1}),
           dict(summary, corruptions=[{key: value for key, value in row.items() if key != "name"}]),
           dict(summary, corruptions=[dict(row, cells={})])]
    bad += [dict(summary, corruptions=[dict(row, cells=[{k: v for k, v in cell.items() if k != key}])])
            for key in ("level", "ra")]
    for shape in bad:
        with pytest.raises(ValueError, match=r"s\.json: not a robustness\.json"):
            check_summary(shape, "s.json")


def test_a_summary_of_the_clean_cell_alone_is_written_whole(tmp_path):
    """A summary with no corruption (mRA and the worst cell None, as robustness_summary makes it) is written, the
    undefined mRA said as n/a in the tables and the heatmap's title (its format crashed on None)."""
    record = {"run": {"model": "m", "version": "v", "split": "s", "dataroot": "d", "seed": 0}, "nd_score": 0.6,
              "mean_ap": 0.3, "scored": True}
    summary = robustness_summary({Cell(CLEAN, 0): record}, [], [1])
    assert summary["mra"] is None and summary["worst"] is None
    write_robustness(str(tmp_path), summary)
    assert "mRA n/a" in (tmp_path / "robustness.md").read_text()
    assert (tmp_path / "robustness.png").stat().st_size > 0
