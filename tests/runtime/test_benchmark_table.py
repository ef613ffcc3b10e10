"""The benchmark's plain-text table on hand-made numbers, and the detectors' and the kernel backends' order
rotating between iterations (stub keyframes, steps and kernels that log their calls)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import perception.runtime.benchmark
from perception.runtime.benchmark import BenchmarkOptions, format_table, run_benchmark, time_kernels, time_pipeline
from tests.runtime.helpers import NoBoxes


def _stats(p50, p90, p99, count=3):
    return {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "count": count}


def test_stage_row_tail_ratio_is_p99_over_p50():
    result = {"backends": {"torch": {"stages_ms": {"detector": _stats(10.0, 15.0, 20.0)}, "throughput_fps": 50.0,
                                     "sweeps_curve": []}},
              "peak_rss_mib": 100.0, "lidar_points_mean": 0.0, "threads": 1, "kernels": {}}
    (row,) = [line for line in format_table(result).splitlines() if line.startswith("detector")]
    # p99 / p50 = 20 / 10 = 2.00 (p90 / p50 would be 1.50)
    assert row.split() == ["detector", "10.0", "15.0", "20.0", "2.00", "3"]


class _Keyframes:
    def __len__(self):
        return 2

    def load(self, index, drop):
        return index


class _LoadedKeyframes(_Keyframes):
    """Keyframes whose loads hold a frame (None) as StreamedKeyframes' LoadedFrame does."""

    def load(self, index, drop):
        return SimpleNamespace(frame=None)


class _LoggingStep:
    """A FrameStep stand-in that logs (its name, the keyframe it loaded) and times nothing."""

    def __init__(self, name, log):
        self.name, self.log = name, log
        self.detector = SimpleNamespace(sensors=frozenset())

    def __call__(self, load):
        self.log.append((self.name, load()))
        return SimpleNamespace(timings_ms={"detector": 1.0}, loaded=SimpleNamespace(frame=SimpleNamespace(lidar=None)))


def test_side_by_side_detectors_take_turns_running_first():
    log = []
    steps = {"a": _LoggingStep("a", log), "b": _LoggingStep("b", log)}
    records, points = time_pipeline(_Keyframes(), steps, iterations=3, warmup=0)
    # iteration i runs keyframe i mod 2, starting with step i mod 2: a, b | b, a | a, b
    assert log == [("a", 0), ("b", 0), ("b", 1), ("a", 1), ("a", 0), ("b", 0)]
    assert records == {"a": [{"detector": 1.0}] * 3, "b": [{"detector": 1.0}] * 3} and points == [0, 0, 0]


def test_kernel_backends_take_turns_call_by_call(monkeypatch):
    """Hard voxelization timed per backend: the backends interleaved, the first rotating (they ran in blocks, all
    of one backend's calls before the next's, so that a drift of the host landed on one side)."""
    calls = []
    monkeypatch.setattr(perception.runtime.benchmark, "hard_voxelize",
                        lambda points, backend, **settings: calls.append((backend, len(points))))
    grid = SimpleNamespace(pillar_size=(0.5, 0.5, 8.0), point_cloud_range=(-10, -10, -5, 10, 10, 3))
    monkeypatch.setattr(perception.runtime.benchmark, "_pillarizations", lambda detector: {
        "lidar": SimpleNamespace(grid=grid, max_points_per_pillar=4, max_pillars=100)})
    frames = [SimpleNamespace(lidar=SimpleNamespace(points=np.zeros((n, 5), np.float32))) for n in (10, 20)]
    result = time_kernels(frames, detector=None, iterations=3, device="cpu")
    # a warm-up round on cloud 0, then rounds 1..3 on cloud i mod 2, starting with backend i mod 2
    assert calls == [("reference", 10), ("numba", 10), ("numba", 20), ("reference", 20),
                     ("reference", 10), ("numba", 10), ("numba", 20), ("reference", 20)]
    entry = result["hard_voxelize_lidar"]
    assert entry["points_mean"] == 15.0 and entry["reference"]["count"] == entry["numba"]["count"] == 3


class _PointsStep(_LoggingStep):
    """A FrameStep stand-in whose frames hold ``counts[keyframe]`` LiDAR points (None: no LiDAR read)."""

    def __init__(self, name, log, counts):
        super().__init__(name, log)
        self.counts = counts

    def __call__(self, load):
        result = super().__call__(load)
        count = self.counts[self.log[-1][1]]
        result.loaded.frame.lidar = None if count is None else SimpleNamespace(points=np.zeros((count, 5)))
        return result


def test_an_iterations_lidar_points_are_the_most_any_detector_read():
    """A camera-only detector reads no LiDAR (0 points), a LiDAR one 100 and 300 points on keyframes 0 and 1: each
    iteration counts 100 or 300 (the fewest would be 0 throughout)."""
    log = []
    steps = {"camera": _PointsStep("camera", log, [None, None]), "lidar": _PointsStep("lidar", log, [100, 300])}
    _, points = time_pipeline(_Keyframes(), steps, iterations=3, warmup=1)
    assert points == [300, 100, 300]  # the timed iterations 1, 2, 3: keyframes 1, 0, 1


def test_side_by_side_ratios_and_throughput_by_hand(monkeypatch):
    """Hand-made timings of two detectors over three frames. torch: detector 10, 20, 30 ms, end to end 30, 40,
    50 ms (p50 20 and 40); int8: detector 4, 5, 6, end to end 20, 25, 30 (p50 5 and 25). p50 over the first
    detector's: int8 detector 5 / 20 = 0.25, end to end 25 / 40 = 0.625 (torch 1, 1); throughput: three frames in
    the end-to-end times' sum, 3 / 0.120 s = 25 and 3 / 0.075 s = 40 frames/s."""
    records = {"torch": [dict(detector=d, end_to_end=e) for d, e in ((10.0, 30.0), (20.0, 40.0), (30.0, 50.0))],
               "int8": [dict(detector=d, end_to_end=e) for d, e in ((4.0, 20.0), (5.0, 25.0), (6.0, 30.0))]}
    monkeypatch.setattr(perception.runtime.benchmark, "StreamedKeyframes", lambda *args: _LoadedKeyframes())
    monkeypatch.setattr(perception.runtime.benchmark, "time_pipeline",
                        lambda *args, **kwargs: (records, [0, 0, 0]))
    monkeypatch.setattr(perception.runtime.benchmark, "time_kernels", lambda *args: {})
    result = run_benchmark(None, ["token"], {"torch": NoBoxes(), "int8": NoBoxes()},
                           BenchmarkOptions(iters=3, warmup=0, sweep_counts=(1,)), progress=False)
    torch_entry, int8 = result["backends"]["torch"], result["backends"]["int8"]
    assert int8["p50_vs_first"] == pytest.approx(dict(detector=0.25, end_to_end=0.625))
    assert torch_entry["p50_vs_first"] == pytest.approx(dict(detector=1.0, end_to_end=1.0))
    assert (torch_entry["throughput_fps"], int8["throughput_fps"]) == pytest.approx((25.0, 40.0))
