"""The scripts of benchmarks/ on stub work: their options refused before any work, gpu_check's report when a check or
the timings fail (CUDA availability faked: no GPU needed), bench_ops' contenders interleaved call by call,
bench_synthetic's extrapolation and logged_drive_vetoes' classification worked by hand."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numba
import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _no_work(*args, **kwargs):
    raise AssertionError("the work began")


@pytest.mark.parametrize("script, work, argv", [
    ("bench_ops", "lidar_cloud", ["--repeats", "0"]),  # median of no call, after the whole run
    ("bench_ops", "lidar_cloud", ["--threads", "0"]),  # silently the default thread count
    ("bench_loading", "measure", ["--repeats", "0"]),
    ("bench_synthetic", "generate_world", ["--tiny-repeats", "0"]),
    ("bench_synthetic", "generate_world", ["--samples-per-scene", "0"]),
    ("gpu_check", "lidar_cloud", ["--repeats", "0"]),
    ("bench_graphs", "resolve_config", ["--calls", "0"]),
    ("bench_graphs", "resolve_config", ["--frames", "0"]),
])
def test_counts_below_one_are_refused_before_any_work(script, work, argv, monkeypatch, capsys):
    module = load_script(script)
    monkeypatch.setattr(module, work, _no_work)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # gpu_check: as on a machine with a GPU
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *argv])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert exit_info.value.code == 2
    assert f"argument {argv[0]}: the value must be >= 1, got 0" in capsys.readouterr().err


GPU_CHECKS = ("check_voxelization", "check_scatter", "check_pillar_scatter", "check_bev_pool", "check_points_in_boxes",
              "check_circle_nms", "check_random_state_loaded_onto_the_gpu", "check_detector_on_the_gpu",
              "check_bfloat16_autocast_training_step")


def _stub_gpu_check(monkeypatch, timings):
    """gpu_check with CUDA faked, tiny inputs, every check passing but pillar_scatter's, and ``timings``."""
    gpu_check = load_script("gpu_check")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "a stub GPU")
    monkeypatch.setattr(gpu_check, "lidar_cloud", lambda: np.zeros((3, 5), np.float32))
    monkeypatch.setattr(gpu_check, "camera_frustum", lambda: np.zeros((1, 6, 1, 1, 1, 3), np.float32))
    monkeypatch.setattr(gpu_check, "adversarial_clouds", lambda rng, n: {})
    for name in GPU_CHECKS:
        monkeypatch.setattr(gpu_check, name, lambda *args: "as the reference")

    def parity_off():
        raise AssertionError("canvas: 3 mismatched")
    monkeypatch.setattr(gpu_check, "check_pillar_scatter", parity_off)
    monkeypatch.setattr(gpu_check, "timings", timings)
    return gpu_check


def test_gpu_check_reports_every_check_when_the_timings_fail(monkeypatch, tmp_path, capsys):
    """A CUDA error in a timed kernel lost the nine checks' results: the report was printed after the timings."""
    def cuda_error(cloud, frustum, repeats):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    gpu_check = _stub_gpu_check(monkeypatch, cuda_error)
    assert gpu_check.main(["--repeats", "3", "--out", str(tmp_path / "report.json")]) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert json.loads(capsys.readouterr().out) == report
    results = {result["name"]: result for result in report["checks"]}
    assert len(results) == 10 and report["repeats"] == 3 and report["timings_ms"] == {}
    assert [name for name, result in results.items() if not result["ok"]] == ["pillar_scatter with gradients",
                                                                               "timings"]
    assert "canvas: 3 mismatched" in results["pillar_scatter with gradients"]["detail"]
    assert "an illegal memory access" in results["timings"]["detail"]
    assert results["circle_nms"]["detail"] == "as the reference"


def test_gpu_check_reports_the_timings(monkeypatch, tmp_path, capsys):
    gpu_check = _stub_gpu_check(monkeypatch, lambda cloud, frustum, repeats: {"circle_nms_1000": 0.25})
    gpu_check.main([])
    report = json.loads(capsys.readouterr().out)
    assert report["timings_ms"] == {"circle_nms_1000": 0.25} and report["repeats"] == 20
    assert report["checks"][-1] == dict(report["checks"][-1], name="timings", ok=True)


def test_bench_ops_calls_the_reference_and_numba_in_turn(monkeypatch):
    """Each kernel against its reference: two warm-up rounds and ``repeats`` timed ones, the two called in turn,
    the first rotating (all the reference's calls ran before all of Numba's)."""
    bench_ops = load_script("bench_ops")
    calls = []

    def kernel(name):
        return lambda *args, backend="numba", **kwargs: calls.append((name, backend))
    monkeypatch.setattr(bench_ops, "ops", SimpleNamespace(**{name: kernel(name) for name in (
        "dynamic_voxelize", "scatter_points", "points_in_boxes", "circle_nms")}))
    rows = []
    bench_ops.bench_other_ops(np.zeros((4, 5), np.float32), repeats=2, rows=rows)
    assert [backend for name, backend in calls if name == "circle_nms"] == [
        "reference", "numba", "numba", "reference", "reference", "numba", "numba", "reference"]
    assert [row["op"] for row in rows[-2:]] == ["circle_nms: reference", "circle_nms: Numba CPU"]


def test_bench_ops_runs_a_contender_on_its_own_thread_count_and_gives_it_back():
    bench_ops = load_script("bench_ops")
    threads, seen = numba.get_num_threads(), []
    wall_ms, cpu_ms = bench_ops.timed(lambda: seen.append(numba.get_num_threads()), numba_threads=1)(0)
    assert seen == [1] and numba.get_num_threads() == threads and wall_ms >= 0 and cpu_ms >= 0


def test_bench_synthetic_extrapolates_by_keyframes(monkeypatch, tmp_path):
    """One scene of 10 keyframes at 320x180 taking 12 CPU s: the target's 10 scenes x 40 keyframes on 2 worker
    processes take 10 x 12 x 40 / 10 / 2 = 240 s at that image size (it said 10 x 12 / 2 = 60 s)."""
    bench_synthetic = load_script("bench_synthetic")
    frame = [(0.1, 0.1)]
    monkeypatch.setattr(bench_synthetic, "generate_world", lambda *args, **kwargs: None)
    monkeypatch.setattr(bench_synthetic, "time_scene", lambda *args: {
        "setup": (1.0, 1.0), "per_frame": {"lidar": frame, "radar": frame, "camera": frame}, "total": (13.0, 12.0)})
    out = tmp_path / "synthetic.json"
    monkeypatch.setattr(sys, "argv", ["bench_synthetic.py", "--samples-per-scene", "10", "--image-size", "320x180",
                                      "--tiny-repeats", "1", "--json", str(out)])
    bench_synthetic.main()
    report = json.loads(out.read_text())
    assert report["target_estimate_s"] == pytest.approx(240.0)
    assert "10 scenes x 40 keyframes, cameras 320x180" in report["target_estimate"]


VETOES = {
    "KEEP_LANE: refused CHANGE_LANE_LEFT, blocked by car #2 8.0 m behind in the left lane at 14.0 m/s; on the ego's "
    "current path at the plan's speeds, proposed plan kept; no agent in the path":
        "1: lane change cuts in front of a follower",
    "KEEP_LANE: refused CHANGE_LANE_LEFT, no left lane on the lane map; on the ego's current path at the plan's "
    "speeds, proposed plan kept; closest in the path: car #1 at 8.0 m/s, 20.0 m ahead, TTC 10.0 s":
        "1: lane change towards a side with no lane on the lane map",
    "BRAKE: refused the KEEP_LANE plan's move into the right lane, no right lane on the lane map; on the ego's "
    "current path at the plan's speeds, slowed the proposed KEEP_LANE plan along its path, braking at 2.0 m/s^2: "
    "car #1 at 0.0 m/s, 6.0 m ahead collides with the plan at 1.5 s":
        "1: lane change towards a side with no lane on the lane map",
    "BRAKE: slowed the proposed KEEP_LANE plan along its path, braking at 2.0 m/s^2: car #3 at 5.0 m/s, 9.0 m ahead "
    "collides with the plan at 1.5 s": "2: collision",
    "STOP: vetoed the proposed KEEP_LANE plan: car #3 at 2.0 m/s, 4.0 m ahead leaves 2.1 m of the 5.0 m braking "
    "margin at 1.0 s; braking at 8.0 m/s^2; even so truck #4 at 9.0 m/s, 3.0 m behind collides with the plan at "
    "2.0 s": "3: braking margin",
}


def test_logged_drive_vetoes_are_classified_by_the_safety_layer_s_words():
    """(A refusal for want of a lane counted as check 1's follower; a braking-margin veto whose fallback still met
    a collision counted as check 2.)"""
    vetoes = load_script("logged_drive_vetoes")
    assert {reason: vetoes.veto_check(reason) for reason in VETOES} == VETOES
    with pytest.raises(ValueError, match="none of the safety layer's words"):
        vetoes.veto_check("STOP: no data from the detector's sensors (lidar)")
