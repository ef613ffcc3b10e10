"""Point-cloud kernels called back to back and after idling, with the one-thread rule for small inputs and without.

    .venv/bin/python benchmarks/bench_idle.py [--repeats 25] [--idle-ms 20]

perception.ops runs the Numba CPU kernels of its point-cloud ops on one thread below
``perception.ops._backend.PARALLEL_MIN_POINTS`` points. This script times ``hard_voxelize`` (0.8 m pillars, 20
points, 16,384 pillars: the model's LiDAR setting) and ``dynamic_voxelize`` on the first N points of the 5-sweep
cloud of bench_ops.py, back to back and after ``--idle-ms`` of sleep before each call (as in a real-time loop), with
that rule ("default") and with it switched off ("all threads"). Medians of ``--repeats`` calls after 3 warm-ups.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numba
import torch

from bench_ops import lidar_cloud
from perception import ops
from perception.ops import _backend

PILLAR_RANGE = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)


def median_ms(function: Callable[[], object], repeats: int, idle_s: float) -> float:
    for _ in range(3):
        function()
    times = []
    for _ in range(repeats):
        time.sleep(idle_s)
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--idle-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    torch.ones(256, 256) @ torch.ones(256, 256)  # torch's threads exist, as in the pipeline
    cloud = lidar_cloud(sweeps=5)
    threshold = _backend.PARALLEL_MIN_POINTS
    print(f"numba {numba.get_num_threads()} threads, torch {torch.get_num_threads()}; PARALLEL_MIN_POINTS {threshold}; "
          f"idle {args.idle_ms:g} ms; repeats {args.repeats}")
    print("| op | points | default hot ms | default after idle ms | all threads hot ms | all threads after idle ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for num_points in (2000, 20000, 150000):
        points = cloud[:num_points].copy()
        cases = {
            "hard_voxelize": lambda: ops.hard_voxelize(points, (0.8, 0.8, 8.0), PILLAR_RANGE, 20, 16384),
            "dynamic_voxelize": lambda: ops.dynamic_voxelize(points, (0.8, 0.8, 8.0), PILLAR_RANGE),
        }
        for name, run in cases.items():
            figures = []
            for rule in (threshold, 0):
                _backend.PARALLEL_MIN_POINTS = rule
                figures += [median_ms(run, args.repeats, 0.0), median_ms(run, args.repeats, args.idle_ms / 1000)]
            _backend.PARALLEL_MIN_POINTS = threshold
            print(f"| {name} | {num_points} | " + " | ".join(f"{value:.2f}" for value in figures) + " |")


if __name__ == "__main__":
    main()
