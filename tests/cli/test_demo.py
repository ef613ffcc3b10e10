"""The main job (tools/demo.py) end to end on the tiny synthetic world: evaluation, replay and benchmark of the
shipped planning model, each output where the demo says."""
from __future__ import annotations

import json

import cv2
import pytest

from perception.cli.demo import main as demo_main
from perception.datasets.splits import split_sample_tokens
from perception.runtime.records import read_frame_records
from perception.timing import STAGES


def test_demo_evaluates_replays_and_benchmarks_the_shipped_model(synthetic_root, nusc_synthetic, tmp_path):
    seconds = demo_main(["--dataroot", str(synthetic_root), "--out", str(tmp_path), "--benchmark-iters", "2"])
    assert set(seconds) == {"world", "evaluation", "replay", "benchmark"}
    keyframes = len(split_sample_tokens(nusc_synthetic, "synth_val"))

    picture = cv2.imread(str(tmp_path / "lidar_on_cameras.jpg"))
    assert picture is not None and picture.std() > 0

    metrics = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    devkit = json.loads((tmp_path / "evaluation" / "metrics_summary.json").read_text())
    assert metrics["frames_evaluated"] == keyframes
    assert metrics["nd_score"] == devkit["nd_score"] and 0 <= metrics["nd_score"] <= 1
    assert {"learned", "learned_with_safety", "ego_mlp", "constant_velocity"} <= set(metrics["decisions"]["planners"])

    records = read_frame_records(str(tmp_path / "replay" / "frames.jsonl"))
    assert len(records) == keyframes and all(r["decision"] is not None and r["plan"] for r in records)
    assert (tmp_path / "replay" / "replay.mp4").stat().st_size > 0
    assert (tmp_path / "replay" / "replay.mcap").stat().st_size > 0

    benchmark = json.loads((tmp_path / "benchmark.json").read_text())
    # every stage, the planning head's too, but the ONNX backends' one graph of the fuser, decoder and head
    assert set(benchmark["backends"]["torch"]["stages_ms"]) == set(STAGES) - {"fuser_decoder_head"}
    assert [row["lidar_sweeps"] for row in benchmark["backends"]["torch"]["sweeps_curve"]] == [1, 5, 10]


def test_the_demo_never_removes_a_folder_it_did_not_generate(tmp_path, capsys):
    """(Given a --dataroot without the demo's tables, the demo generated its world beside it, removed the folder and
    put the world in its place.) A folder holding files but no world of --version is refused, untouched, before any
    generation."""
    own = tmp_path / "nuscenes"
    (own / "v1.0-mini").mkdir(parents=True)
    (own / "v1.0-mini" / "scene.json").write_text("[]")
    (own / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit):
        demo_main(["--dataroot", str(own), "--version", "v1.0-mini", "--out", str(tmp_path / "out")])
    assert f"{own}: holds files but no v1.0-mini world" in capsys.readouterr().err
    assert sorted(path.name for path in own.rglob("*")) == ["notes.txt", "scene.json", "v1.0-mini"]
    assert not (tmp_path / "nuscenes.partial").exists()
