"""Latency of the pipeline stage by stage, its throughput and memory, the kernels' backends side by side, and
latency against point count.

One iteration = one frame through the pipeline, each stage timed by a StageTimer (perception.runtime.timing):
load (the Frame from its files: the loader's frame_from_table on a prebuilt SampleTable, so no devkit table
look-ups are timed), detector (and, inside it, the model's own stages when its detect takes a ``timer``),
decision (EgoState from the past LiDAR poses + the planner), end_to_end (all three). Iterations cycle over the
given keyframes; the first ``warmup`` are discarded (Numba compilation, allocator warm-up).

Kernels: hard voxelization of the benchmarked frames' LiDAR and radar points with the model's own pillar settings
(every PillarFeatureNet in the detector), on each available backend of perception.ops: "reference" (numpy),
"numba" (Numba CPU) and, with a CUDA device, "cuda" (Numba CUDA on torch CUDA tensors).
"""
from __future__ import annotations

import os
import resource
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numba
import numpy as np
import torch
from nuscenes.nuscenes import NuScenes
from tqdm import tqdm

from perception.datasets.frame import SENSOR_GROUPS, Frame
from perception.datasets.loader import frame_from_table
from perception.datasets.metadata import SampleTable, build_sample_table
from perception.decision import EgoState, PlannerConfig, decide
from perception.detector import Detector
from perception.ops import hard_voxelize
from perception.runtime.timing import STAGES, StageTimer, latency_summary, summarize_records, timed_detect

PIPELINE_STAGES = ("load", "detector", "decision", "end_to_end")
"""The stages every benchmark reports; a detector that takes a timer adds its own (perception.runtime.timing.STAGES)."""

KERNEL_BACKENDS = ("reference", "numba", "cuda")


@dataclass(frozen=True)
class BenchmarkOptions:
    """``iters`` timed iterations after ``warmup`` untimed ones; ``sweep_counts``: the LiDAR sweep counts of the
    latency-against-points curve (each with ``curve_iters`` timed iterations after ``warmup``);
    ``kernel_iters``: timed calls per kernel backend; ``device``: where the model and the CUDA timer run."""

    iters: int = 20
    warmup: int = 3
    sweep_counts: Tuple[int, ...] = (1, 2, 4, 6, 8, 10)
    curve_iters: int = 5
    kernel_iters: int = 10
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("iters", "curve_iters", "kernel_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if not self.sweep_counts or min(self.sweep_counts) < 1:
            raise ValueError(f"sweep_counts must be positive sweep counts, got {self.sweep_counts}")


def parse_sweep_counts(text: str) -> Tuple[int, ...]:
    """'1..10' (inclusive range), '1,5,10' or '10' -> sweep counts."""
    try:
        if ".." in text:
            first, last = (int(v) for v in text.split(".."))
            counts = tuple(range(first, last + 1))
        else:
            counts = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"sweep counts must look like '1..10' or '1,5,10', got {text!r}") from None
    if not counts or min(counts) < 1:
        raise ValueError(f"sweep counts must be >= 1, got {text!r}")
    return counts


def thread_settings() -> Dict[str, Any]:
    """Threads the measurement ran with: torch intra-op, Numba, the CPUs this process may use."""
    return {"torch_threads": torch.get_num_threads(), "numba_threads": numba.get_num_threads(),
            "cpus_available": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count()}


def peak_rss_mib() -> float:
    """The process's peak resident set size so far [MiB] (getrusage ru_maxrss, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _past_poses(table: SampleTable, index: int) -> list:
    """Ego poses of the keyframe's LiDAR sweep records, oldest first: what a causal ego-state estimate may use."""
    records = [int(r) for r in table.sweeps[index, 0] if r >= 0]
    return [table.record_pose(r) for r in reversed(records)]


def time_pipeline(table: SampleTable, dataroot: str, detector: Detector, iterations: int, warmup: int,
                  timer: StageTimer, image_size: Optional[Tuple[int, int]] = None,
                  planner_config: PlannerConfig = PlannerConfig(), progress: bool = False,
                  description: str = "pipeline") -> Tuple[List[Dict[str, float]], List[int]]:
    """Runs ``warmup + iterations`` frames (cycling over the table's keyframes) through load -> detector ->
    decision; the timed iterations' StageTimer records and LiDAR point counts."""
    drop = frozenset(SENSOR_GROUPS) - frozenset(detector.sensors)
    records, points = [], []
    for step in tqdm(range(warmup + iterations), desc=description, unit="frame", disable=not progress):
        index = step % len(table)
        timer.reset()
        with timer.stage("end_to_end"):
            with timer.stage("load"):
                frame = frame_from_table(table, index, dataroot, image_size=image_size, drop=drop)
            boxes = timed_detect(detector, frame, timer)
            with timer.stage("decision"):
                decide(boxes, EgoState.from_poses(_past_poses(table, index), -1), planner_config)
        elapsed = timer.elapsed_ms()
        if step >= warmup:
            records.append(elapsed)
            points.append(0 if frame.lidar is None else len(frame.lidar.points))
    return records, points


def _pillar_nets(detector: Any) -> Dict[str, Any]:
    """sensor -> the detector's PillarFeatureNet for it (modules named encoders.<sensor>.*)."""
    from perception.models.encoders.pillars import PillarFeatureNet

    nets = {}
    if isinstance(detector, torch.nn.Module):
        for name, module in detector.named_modules():
            if isinstance(module, PillarFeatureNet) and name.startswith("encoders."):
                nets[name.split(".")[1]] = module
    return nets


def time_kernels(frames: Sequence[Frame], detector: Any, iterations: int, device: str) -> Dict[str, Any]:
    """Hard voxelization per backend on the frames' LiDAR / radar points with the detector's pillar settings:
    {'hard_voxelize_<sensor>': {'settings': ..., 'points_mean': ..., '<backend>': latency_summary}}."""
    backends = ["reference", "numba"] + (["cuda"] if device.startswith("cuda") and torch.cuda.is_available()
                                         else [])
    results: Dict[str, Any] = {}
    for sensor, net in _pillar_nets(detector).items():
        clouds = [getattr(frame, sensor).points for frame in frames if getattr(frame, sensor, None) is not None]
        if not clouds:
            continue
        settings = dict(voxel_size=list(net.grid.pillar_size), point_cloud_range=list(net.grid.point_cloud_range),
                        max_points=int(net.max_points_per_pillar), max_voxels=int(net.max_pillars))
        entry: Dict[str, Any] = {"settings": settings, "points_mean": float(np.mean([len(c) for c in clouds]))}
        for backend in backends:
            inputs = [torch.from_numpy(c).to(device) for c in clouds] if backend == "cuda" else clouds
            timer = StageTimer(device if backend == "cuda" else "cpu")
            hard_voxelize(inputs[0], backend=backend, **settings)  # compile / warm up
            samples = []
            for step in range(iterations):
                timer.reset()
                with timer.stage("kernel"):
                    hard_voxelize(inputs[step % len(inputs)], backend=backend, **settings)
                samples.append(timer.elapsed_ms()["kernel"])
            entry[backend] = latency_summary(samples)
        results[f"hard_voxelize_{sensor}"] = entry
    return results


def run_benchmark(nusc: NuScenes, sample_tokens: Sequence[str], detector: Detector, options: BenchmarkOptions,
                  lidar_sweeps: int = 10, radar_sweeps: int = 6, image_size: Optional[Tuple[int, int]] = None,
                  progress: bool = True, describe: Optional[Callable[[], Dict[str, Any]]] = None) -> Dict[str, Any]:
    """The benchmark (module docstring) on ``sample_tokens``; a JSON-able dict: stages_ms (latency_summary per
    stage), throughput_fps (timed frames per second of end_to_end time), peak memory, threads, kernels,
    sweeps_curve (per LiDAR sweep count: mean points and p50 of each stage)."""
    if not sample_tokens:
        raise ValueError("the benchmark needs at least one sample token")
    timer = StageTimer(options.device)
    if options.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    table = build_sample_table(nusc, sample_tokens, lidar_sweeps, radar_sweeps)
    records, points = time_pipeline(table, nusc.dataroot, detector, options.iters, options.warmup, timer,
                                    image_size, progress=progress, description=f"{lidar_sweeps} sweeps")
    end_to_end_s = sum(r["end_to_end"] for r in records) / 1000.0
    drop = frozenset(SENSOR_GROUPS) - frozenset(detector.sensors)
    frames = [frame_from_table(table, i, nusc.dataroot, image_size=image_size, drop=drop) for i in range(len(table))]
    curve = []
    for count in options.sweep_counts:
        curve_table = table if count == lidar_sweeps else build_sample_table(nusc, sample_tokens, count,
                                                                               radar_sweeps)
        curve_records, curve_points = time_pipeline(curve_table, nusc.dataroot, detector, options.curve_iters,
                                                    options.warmup, timer, image_size, progress=progress,
                                                    description=f"{count} sweeps")
        stages = summarize_records(curve_records)
        curve.append({"lidar_sweeps": count, "lidar_points_mean": float(np.mean(curve_points)),
                      **{f"{name}_p50_ms": stats["p50_ms"] for name, stats in stages.items()}})
    result = {
        "frames": len(sample_tokens), "iters": options.iters, "warmup": options.warmup, "device": options.device,
        "timer": "cuda events" if timer.uses_cuda_events else "perf_counter",
        "lidar_sweeps": lidar_sweeps, "radar_sweeps": radar_sweeps,
        "image_size": None if image_size is None else list(image_size),
        "lidar_points_mean": float(np.mean(points)),
        "stages_ms": summarize_records(records),
        "throughput_fps": len(records) / end_to_end_s if end_to_end_s > 0 else None,
        "threads": thread_settings(),
        "kernels": time_kernels(frames, detector, options.kernel_iters, options.device),
        "sweeps_curve": curve,
        "peak_rss_mib": peak_rss_mib(),
        "options": asdict(options),
    }
    if options.device.startswith("cuda"):
        result["cuda_max_memory_allocated_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    if describe is not None:
        result.update(describe())
    return result


def format_table(result: Dict[str, Any]) -> str:
    """The benchmark as plain-text tables: stages, kernels, the sweeps curve."""
    lines = [f"{'stage':<16}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'n':>6}"]
    stages = result["stages_ms"]
    for name in [s for s in STAGES if s in stages] + [s for s in stages if s not in STAGES]:
        stats = stages[name]
        lines.append(f"{name:<16}{stats['p50_ms']:>10.1f}{stats['p90_ms']:>10.1f}{stats['p99_ms']:>10.1f}"
                     f"{stats['count']:>6}")
    fps = result["throughput_fps"]
    lines.append(f"throughput {fps:.1f} frames/s; peak RSS {result['peak_rss_mib']:.0f} MiB; "
                 f"{result['lidar_points_mean']:.0f} LiDAR points/frame; threads {result['threads']}")
    for kernel, entry in result["kernels"].items():
        timings = ", ".join(f"{backend} {entry[backend]['p50_ms']:.2f} ms" for backend in KERNEL_BACKENDS
                            if backend in entry)
        lines.append(f"{kernel} ({entry['points_mean']:.0f} points) p50: {timings}")
    lines.append(f"{'sweeps':>6}{'points':>10}{'load ms':>10}{'detector ms':>13}{'end_to_end ms':>15}")
    for row in result["sweeps_curve"]:
        lines.append(f"{row['lidar_sweeps']:>6}{row['lidar_points_mean']:>10.0f}{row['load_p50_ms']:>10.1f}"
                     f"{row['detector_p50_ms']:>13.1f}{row['end_to_end_p50_ms']:>15.1f}")
    return "\n".join(lines)
