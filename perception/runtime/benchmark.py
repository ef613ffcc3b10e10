"""Latency of the pipeline stage by stage, its throughput and memory, the kernels' backends side by side, and
latency against point count, for one detector or several side by side (e.g. the torch, ONNX Runtime float and
INT8 backends of one model).

One iteration = one frame through the replay's per-frame step (perception.runtime.step), each stage timed:
load (replay's: perception.runtime.step.streamed_frame, the frame built from a streaming state's buffers, its
table of the buffered messages, the files read and decoded, the sweeps in the keyframe's ego frame, the past poses
and the lane map in the ego frame), detector (and, inside it, the model's own stages), decision (EgoState from the
past LiDAR poses + the planner), end_to_end (all three). Before timing, each keyframe's streaming state is fed
with its scene's messages up to the end of the keyframe's sync window (what the sensor drivers deliver; replay's
options' defaults); the files are read each iteration, from the page cache once read. Iterations cycle over the
given keyframes; the first ``warmup`` are discarded (Numba compilation, allocator warm-up). Several
detectors are timed interleaved in one process: each iteration runs every detector on the same keyframe, the order
rotating by one per iteration, so that machine noise and cache state hit all alike.

Kernels: hard voxelization of the benchmarked frames' LiDAR and radar points with the model's own pillar settings
(every pillar encoder's Pillarization), on each available backend of perception.ops: "reference" (numpy),
"numba" (Numba CPU) and, with a CUDA device, "cuda" (Numba CUDA on torch CUDA tensors), the backends interleaved
call by call as the detectors are (perception.timing.round_robin).
"""
from __future__ import annotations

import os
import resource
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numba
import numpy as np
import torch
from nuscenes.nuscenes import NuScenes
from threadpoolctl import threadpool_info
from tqdm import tqdm

from perception.datasets.frame import Frame
from perception.datasets.ground_truth import sample_ground_truth
from perception.datasets.lane_map import log_lanes
from perception.detector import Detector, dropped_groups
from perception.ops import BACKENDS, hard_voxelize
from perception.plotting import pyplot
from perception.runtime.messages import scene_messages
from perception.runtime.replay import ReplayOptions
from perception.runtime.step import FrameStep, LoadedFrame, streamed_frame
from perception.runtime.streaming import StreamingState
from perception.sensors import DEFAULT_LIDAR_SWEEPS, DEFAULT_RADAR_SWEEPS, LIDAR_CHANNEL
from perception.timing import NESTED_STAGES, STAGES, StageTimer, latency_summary, round_robin, summarize_records

PIPELINE_STAGES = ("load", "detector", "decision", "end_to_end")
"""The stages every benchmark reports; the detector adds its own (perception.timing.STAGES)."""


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
    if not counts:
        raise ValueError(f"sweep counts: the range {text!r} is empty (write the smaller count first)")
    if min(counts) < 1:
        raise ValueError(f"sweep counts must be >= 1, got {text!r}")
    return counts


def thread_settings() -> Dict[str, Any]:
    """Threads the measurement ran with: torch intra-op, Numba, numpy's BLAS (the largest count among the BLAS
    libraries loaded), the CPUs this process may use."""
    blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return {"torch_threads": torch.get_num_threads(), "numba_threads": numba.get_num_threads(),
            "blas_threads": max(blas, default=None), "cpus_available": len(os.sched_getaffinity(0)),
            "cpu_count": os.cpu_count()}


def peak_rss_mib() -> float:
    """The process's peak resident set size so far [MiB] (getrusage ru_maxrss, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class StreamedKeyframes:
    """Keyframes (``sample_tokens``) built live as replay builds them (module docstring): ``load(index, drop)`` is
    the load stage of keyframe ``index`` for a detector that leaves out the sensor groups ``drop`` (one of
    ``drops``). Before any load (so before timing) each keyframe's streaming state is fed for each of ``drops``,
    and its ground truth (for the oracle) looked up, as replay does."""

    def __init__(self, nusc: NuScenes, sample_tokens: Sequence[str], lidar_sweeps: int, radar_sweeps: int,
                 image_size: Optional[Tuple[int, int]], drops: Iterable[frozenset]) -> None:
        options = ReplayOptions(lidar_sweeps=lidar_sweeps, radar_sweeps=radar_sweeps, image_size=image_size)
        self.scenes, self.keys, self.ground_truths, self.streams = [], [], [], {}
        annotated = len(nusc.sample_annotation) > 0
        for token in sample_tokens:
            scene = nusc.get("scene", nusc.get("sample", token)["scene_token"])
            if scene["token"] not in self.streams:
                self.streams[scene["token"]] = (scene_messages(nusc, scene["token"]),
                                                log_lanes(nusc, scene["log_token"]))
            lidar_token = nusc.get("sample", token)["data"][LIDAR_CHANNEL]
            key = next(m for m in self.streams[scene["token"]][0] if m.sample_data_token == lidar_token)
            self.keys.append(key)
            self.scenes.append(scene["token"])
            self.ground_truths.append(sample_ground_truth(nusc, token, key.ego_pose.ego_to_global) if annotated
                                      else None)
        self._states: Dict[Tuple[int, frozenset], StreamingState] = {
            (index, drop): options.new_state(drop).fed_up_to(self.streams[scene][0], key)
            for drop in set(drops) for index, (scene, key) in enumerate(zip(self.scenes, self.keys))}

    def __len__(self) -> int:
        return len(self.keys)

    def load(self, index: int, drop: frozenset) -> LoadedFrame:
        if (index, drop) not in self._states:
            raise KeyError(f"StreamedKeyframes: no state fed for keyframe {index} without {sorted(drop)}")
        scene = self.scenes[index]
        return streamed_frame(self._states[index, drop], self.keys[index], scene, self.streams[scene][1],
                              self.ground_truths[index])


def time_pipeline(keyframes: StreamedKeyframes, steps: Mapping[str, FrameStep], iterations: int, warmup: int,
                  progress: bool = False, description: str = "pipeline"
                  ) -> Tuple[Dict[str, List[Dict[str, float]]], List[int]]:
    """Runs ``warmup + iterations`` frames (cycling over the ``keyframes``) through every step of ``steps``
    (name -> FrameStep), round-robin (perception.timing.round_robin): iteration i runs them all on keyframe
    i mod len(keyframes), starting with step i mod len(steps). -> (name -> the timed iterations' stage timings,
    the timed iterations' LiDAR point counts: the most among the steps' frames, 0 where none reads the LiDAR)."""
    bar = tqdm(total=(warmup + iterations) * len(steps), desc=description, unit="step", disable=not progress)

    def run(step: FrameStep) -> Callable[[int], Tuple[Dict[str, float], int]]:
        drop = dropped_groups(step.detector)

        def call(iteration: int) -> Tuple[Dict[str, float], int]:
            result = step(lambda: keyframes.load(iteration % len(keyframes), drop))
            bar.update()
            lidar = result.loaded.frame.lidar
            return result.timings_ms, 0 if lidar is None else len(lidar.points)
        return call

    measured = round_robin({name: run(step) for name, step in steps.items()}, iterations, warmup)
    bar.close()
    records = {name: [timings for timings, _ in values] for name, values in measured.items()}
    points = [max(counts) for counts in zip(*([count for _, count in values] for values in measured.values()))]
    return records, points


def _pillarizations(detector: Any) -> Dict[str, Any]:
    """sensor -> the Pillarization (hard pillar settings) of the detector's encoder for it, for its pillar
    encoders (none for a detector without ``encoders``)."""
    from perception.models.encoders.pillars import Pillarization

    return {sensor: encoder.pillarization for sensor, encoder in getattr(detector, "encoders", {}).items()
            if isinstance(getattr(encoder, "pillarization", None), Pillarization)}


def time_kernels(frames: Sequence[Frame], detector: Any, iterations: int, device: str) -> Dict[str, Any]:
    """Hard voxelization per backend on the frames' LiDAR / radar points with the detector's pillar settings, the
    backends interleaved call by call (perception.timing.round_robin; one warm-up round: Numba compiles):
    {'hard_voxelize_<sensor>': {'settings': ..., 'points_mean': ..., '<backend>': latency_summary}}."""
    on_gpu = device.startswith("cuda") and torch.cuda.is_available()
    backends = [backend for backend in BACKENDS if backend != "cuda" or on_gpu]
    results: Dict[str, Any] = {}
    for sensor, pillars in _pillarizations(detector).items():
        clouds = [getattr(frame, sensor).points for frame in frames if getattr(frame, sensor, None) is not None]
        if not clouds:
            continue
        settings = dict(voxel_size=list(pillars.grid.pillar_size),
                        point_cloud_range=list(pillars.grid.point_cloud_range),
                        max_points=int(pillars.max_points_per_pillar), max_voxels=int(pillars.max_pillars))
        entry: Dict[str, Any] = {"settings": settings, "points_mean": float(np.mean([len(c) for c in clouds]))}
        calls = {backend: _timed_voxelization(clouds, backend, device, settings) for backend in backends}
        for backend, samples in round_robin(calls, iterations, warmup=1).items():
            entry[backend] = latency_summary(samples)
        results[f"hard_voxelize_{sensor}"] = entry
    return results


def _timed_voxelization(clouds: Sequence[np.ndarray], backend: str, device: str, settings: Mapping[str, Any]
                        ) -> Callable[[int], float]:
    """A round_robin contender: hard voxelization of cloud ``i mod len(clouds)`` on ``backend`` -> its ms (CUDA
    events for the cuda backend)."""
    inputs = [torch.from_numpy(c).to(device) for c in clouds] if backend == "cuda" else clouds
    timer = StageTimer(device if backend == "cuda" else "cpu")

    def call(index: int) -> float:
        timer.reset()
        with timer.stage("kernel"):
            hard_voxelize(inputs[index % len(inputs)], backend=backend, **settings)
        return timer.elapsed_ms()["kernel"]
    return call


def run_benchmark(nusc: NuScenes, sample_tokens: Sequence[str], detectors: Mapping[str, Detector],
                  options: BenchmarkOptions, lidar_sweeps: int = DEFAULT_LIDAR_SWEEPS,
                  radar_sweeps: int = DEFAULT_RADAR_SWEEPS,
                  image_size: Optional[Tuple[int, int]] = None, progress: bool = True,
                  describe: Optional[Callable[[], Dict[str, Any]]] = None) -> Dict[str, Any]:
    """The benchmark (module docstring) of ``detectors`` (name -> Detector, e.g. backend -> detector; the first is
    the reference of the ratios) on ``sample_tokens``; a JSON-able dict: per detector in ``backends``: stages_ms
    (latency_summary per stage), throughput_fps (timed frames per second of end_to_end time), sweeps_curve (per
    LiDAR sweep count: mean points and p50 of each stage) and p50_vs_first (detector and end_to_end p50 over the
    first detector's); shared: peak memory, threads, kernels (with the first detector's pillar settings)."""
    if not sample_tokens:
        raise ValueError("the benchmark needs at least one sample token")
    if not detectors:
        raise ValueError("the benchmark needs at least one detector")
    steps = {name: FrameStep(detector, device=options.device) for name, detector in detectors.items()}
    if options.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    drops = {dropped_groups(detector) for detector in detectors.values()}
    keyframes = StreamedKeyframes(nusc, sample_tokens, lidar_sweeps, radar_sweeps, image_size, drops)
    records, points = time_pipeline(keyframes, steps, options.iters, options.warmup, progress=progress,
                                    description=f"{lidar_sweeps} sweeps")
    curves: Dict[str, List[Dict[str, float]]] = {name: [] for name in steps}
    for count in options.sweep_counts:
        curve_keyframes = (keyframes if count == lidar_sweeps else
                           StreamedKeyframes(nusc, sample_tokens, count, radar_sweeps, image_size, drops))
        curve_records, curve_points = time_pipeline(curve_keyframes, steps, options.curve_iters, options.warmup,
                                                    progress=progress, description=f"{count} sweeps")
        for name, named_records in curve_records.items():
            stages = summarize_records(named_records)
            curves[name].append({"lidar_sweeps": count, "lidar_points_mean": float(np.mean(curve_points)),
                                 **{f"{stage}_p50_ms": stats["p50_ms"] for stage, stats in stages.items()}})
    backends = {}
    for name, named_records in records.items():
        end_to_end_s = sum(r["end_to_end"] for r in named_records) / 1000.0
        backends[name] = {"stages_ms": summarize_records(named_records),
                          "throughput_fps": len(named_records) / end_to_end_s if end_to_end_s > 0 else None,
                          "sweeps_curve": curves[name]}
    first = backends[next(iter(backends))]["stages_ms"]
    for entry in backends.values():
        entry["p50_vs_first"] = {stage: entry["stages_ms"][stage]["p50_ms"] / first[stage]["p50_ms"]
                                 for stage in ("detector", "end_to_end") if first[stage]["p50_ms"] > 0}
    first_detector = next(iter(detectors.values()))
    frames = [keyframes.load(i, dropped_groups(first_detector)).frame for i in range(len(keyframes))]
    result = {
        "frames": len(sample_tokens), "iters": options.iters, "warmup": options.warmup, "device": options.device,
        "timer": "cuda events" if next(iter(steps.values())).timer.uses_cuda_events else "perf_counter",
        "lidar_sweeps": lidar_sweeps, "radar_sweeps": radar_sweeps,
        "image_size": None if image_size is None else list(image_size),
        "lidar_points_mean": float(np.mean(points)),
        "backends": backends,
        "threads": thread_settings(),
        "kernels": time_kernels(frames, first_detector, options.kernel_iters, options.device),
        "peak_rss_mib": peak_rss_mib(),
        "options": asdict(options),
    }
    if options.device.startswith("cuda"):
        result["cuda_max_memory_allocated_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    if describe is not None:
        result.update(describe())
    return result


def _stage_row(name: str, stats: Dict[str, float]) -> str:
    ratio = stats["p99_ms"] / stats["p50_ms"] if stats["p50_ms"] > 0 else float("nan")
    return (f"{name:<16}{stats['p50_ms']:>10.1f}{stats['p90_ms']:>10.1f}{stats['p99_ms']:>10.1f}{ratio:>9.2f}"
            f"{stats['count']:>6}")


def format_table(result: Dict[str, Any]) -> str:
    """The benchmark as plain-text tables: stages per detector, the detectors side by side (detector and end to
    end), kernels, the sweeps curve per detector."""
    header = f"{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'p99/p50':>9}{'n':>6}"
    lines = []
    for backend, entry in result["backends"].items():
        stages = entry["stages_ms"]
        lines.append(f"[{backend}]")
        lines.append(f"{'stage':<16}{header}")
        for name in [s for s in STAGES if s in stages] + [s for s in stages if s not in STAGES]:
            lines.append(_stage_row(name, stages[name]))
        lines.append(f"throughput {entry['throughput_fps']:.1f} frames/s")
    if len(result["backends"]) > 1:
        width = max(18, 1 + max(len(backend) for backend in result["backends"]))  # 'backend@folder' labels
        lines.append("side by side")
        lines.append(f"{'backend':<{width}}{'stage':<16}{header}{'p50/first':>11}")
        for stage in ("detector", "end_to_end"):
            for backend, entry in result["backends"].items():
                lines.append(f"{backend:<{width}}" + _stage_row(stage, entry["stages_ms"][stage])
                             + f"{entry['p50_vs_first'].get(stage, float('nan')):>11.2f}")
    lines.append(f"peak RSS {result['peak_rss_mib']:.0f} MiB; {result['lidar_points_mean']:.0f} LiDAR points/frame; "
                 f"threads {result['threads']}")
    for kernel, entry in result["kernels"].items():
        timings = ", ".join(f"{backend} {entry[backend]['p50_ms']:.2f} ms" for backend in BACKENDS
                            if backend in entry)
        lines.append(f"{kernel} ({entry['points_mean']:.0f} points) p50: {timings}")
    for backend, entry in result["backends"].items():
        lines.append(f"[{backend}] latency against LiDAR sweeps")
        lines.append(f"{'sweeps':>6}{'points':>10}{'load ms':>10}{'detector ms':>13}{'end_to_end ms':>15}")
        for row in entry["sweeps_curve"]:
            lines.append(f"{row['lidar_sweeps']:>6}{row['lidar_points_mean']:>10.0f}"
                         f"{row['load_p50_ms']:>10.1f}{row['detector_p50_ms']:>13.1f}{row['end_to_end_p50_ms']:>15.1f}")
    return "\n".join(lines)


def stage_composition(stages_ms: Mapping[str, Mapping[str, float]]) -> List[Tuple[str, float]]:
    """One frame's mean end-to-end time [ms] as parts that add up to it (means add, medians do not): load, each of
    the model's stages but those nested in an encoder, the rest of the detect call ("detector, rest"), decision,
    and the rest of the step ("rest"). ``stages_ms``: one detector's stages_ms of run_benchmark."""
    def mean(name: str) -> float:
        return stages_ms[name]["mean_ms"] if name in stages_ms else 0.0

    model = [name for name in stages_ms if name not in PIPELINE_STAGES and name not in NESTED_STAGES]
    return ([("load", mean("load"))] + [(name, mean(name)) for name in model]
            + [("detector, rest", mean("detector") - sum(mean(name) for name in model)),
               ("decision", mean("decision")),
               ("rest", mean("end_to_end") - mean("load") - mean("detector") - mean("decision"))])


def plot_benchmark(result: Mapping[str, Any], path: str) -> None:
    """A PNG of run_benchmark's ``result``: per detector, its frame's mean time stacked by stage
    (stage_composition) with the end-to-end p50 / p90 / p99 marked; below, the p50s of the detector and of the
    whole frame against the LiDAR sweep count."""
    plt = pyplot()

    backends = result["backends"]
    labels = list(backends)
    figure, (stacked, curve) = plt.subplots(2, 1, figsize=(12, 4.5 + 0.6 * len(labels)), layout="constrained",
                                            gridspec_kw={"height_ratios": [1 + 0.6 * len(labels), 3]})
    palette = plt.get_cmap("tab20")
    colours: Dict[str, Any] = {}
    for row, label in enumerate(labels):
        entry = backends[label]
        left = 0.0
        for stage, ms in stage_composition(entry["stages_ms"]):
            colour = colours.setdefault(stage, palette(len(colours) % 20))
            stacked.barh(row, ms, left=left, color=colour, edgecolor="white", height=0.6,
                         label=stage if row == 0 else None)
            if ms >= 4.0:
                stacked.text(left + ms / 2, row, f"{ms:.0f}", ha="center", va="center", fontsize=7)
            left += ms
        end_to_end = entry["stages_ms"]["end_to_end"]
        for percentile, marker in (("p50", "v"), ("p90", "D"), ("p99", "*")):
            stacked.plot(end_to_end[f"{percentile}_ms"], row - 0.4, marker=marker, color="black", markersize=6,
                         linestyle="none", label=f"end to end {percentile}" if row == 0 else None)
        sweeps = [point["lidar_sweeps"] for point in entry["sweeps_curve"]]
        for stage, style, marker in (("detector", "-", "o"), ("end_to_end", "--", "s")):
            curve.plot(sweeps, [point[f"{stage}_p50_ms"] for point in entry["sweeps_curve"]], style, marker=marker,
                       color=plt.get_cmap("tab10")(row % 10), label=f"{label}: {stage}")
    stacked.set_yticks(range(len(labels)), labels)
    stacked.invert_yaxis()  # the first detector, the ratios' reference, on top
    stacked.set_xlabel("ms per frame (bars: mean per stage; markers: end-to-end percentiles)")
    stacked.set_title(f"{result['lidar_sweeps']} LiDAR sweeps ({result['lidar_points_mean']:.0f} points), "
                      f"{result['iters']} frames cycling {result['frames']} keyframes, {result['device']}")
    stacked.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=1 if len(labels) > 2 else 2)
    curve.set_xlabel("LiDAR sweeps")
    curve.set_ylabel("p50 ms")
    curve.set_title("latency against the sweep count")
    curve.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
