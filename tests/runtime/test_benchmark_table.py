"""The benchmark's plain-text table on hand-made numbers, and the detectors' order rotating between iterations
(stub keyframes and steps that log their calls)."""
from __future__ import annotations

from types import SimpleNamespace

from perception.runtime.benchmark import format_table, time_pipeline


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
