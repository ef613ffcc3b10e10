"""Speed of the perception.ops kernels on the CPU, side by side with their baselines, in one run.

    .venv/bin/python benchmarks/bench_ops.py [--repeats 7] [--threads N] [--json out.json]

Inputs (generated here, seeded):
- a 10-sweep nuScenes-like LiDAR cloud of ~300k points [x, y, z, intensity, time_lag]: 32-beam rings on the
  ground, a wall ring, 12 cars, the sweeps offset by ego motion as after compensation, in scan order;
- BEVFusion's camera sizes: 6 cameras x 118 depth bins (1-60 m) x 32 x 88 feature pixels x 80 channels, frustum
  points from pinhole cameras on a ring around the ego, pooled on a 0.3 m grid over +/-54 m.

Each figure is the median of ``--repeats`` calls after two warm-up calls (Numba compiles and caches on the first):
wall time, and process CPU time summed over threads (steadier on a loaded machine; but Linux adds the CPU time of
threads other than the caller's only at scheduler ticks, so for parallel calls of a few ms it is coarse and can
even exceed threads x wall). What is compared (a kernel, its baselines and floors) is called in turn, call by
call, the first one rotating (perception.timing.round_robin), so that drift of the shared machine hits them all
alike. Numba and torch run ``--threads`` threads (default: Numba's default, one per core, and torch's), spconv's
CPU PointToVoxel one.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numba
import numpy as np
import torch

from perception import ops
from perception.cli import positive_int
from perception.timing import round_robin

LIDAR_RANGE = (-54.0, -54.0, -5.0, 54.0, 54.0, 3.0)
BEV_RANGE = (-54.0, -54.0, -10.0, 54.0, 54.0, 10.0)


def lidar_cloud(seed: int = 0, sweeps: int = 10, beams: int = 32, azimuths: int = 760) -> np.ndarray:
    """(~300k, 5) float32 [x, y, z, intensity, time_lag]: per sweep, 32 beams x 760 azimuths hitting the ground or
    a wall ring 30-60 m away (2 cm range noise), plus 500 points on the sides of each of 12 cars; the sensor is
    1.8 m up and moves 0.5 m forward per sweep (0.05 s), the sweeps expressed in the last one's frame."""
    rng = np.random.default_rng(seed)
    cars = np.column_stack([rng.uniform(-40, 40, 12), rng.uniform(-40, 40, 12), rng.uniform(-np.pi, np.pi, 12)])
    parts = []
    elevations = np.deg2rad(np.linspace(-30.0, 10.0, beams))
    for sweep in range(sweeps):
        origin = np.array([-0.5 * sweep, 0.0, 1.8])
        azimuth = np.linspace(-np.pi, np.pi, azimuths, endpoint=False) + rng.uniform(0, 2 * np.pi / azimuths)
        elevation, azimuth = np.meshgrid(elevations, azimuth, indexing="ij")
        direction = np.stack([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                              np.sin(elevation)], axis=-1).reshape(-1, 3)
        # range to the ground, else to a wall ring at 30-60 m, capped at 70 m
        ground = np.where(direction[:, 2] < -1e-3, origin[2] / -np.minimum(direction[:, 2], -1e-3), np.inf)
        wall = 30.0 + 30.0 * (0.5 + 0.5 * np.sin(3 * np.arctan2(direction[:, 1], direction[:, 0])))
        distance = np.minimum(np.minimum(ground, wall / np.maximum(np.hypot(direction[:, 0], direction[:, 1]),
                                                                   1e-3)), 70.0)
        hits = origin + direction * distance[:, None]
        hits += rng.normal(scale=0.02, size=hits.shape)
        # cars: points on the sides facing the sensor, 4 x 1.8 x 1.6 m
        car_points = []
        for x, y, yaw in cars:
            local = rng.uniform([-2.0, -0.9, 0.0], [2.0, 0.9, 1.6], size=(500, 3))
            face = rng.integers(0, 2, 500)
            local[face == 0, 0] = np.sign(local[face == 0, 0]) * 2.0
            local[face == 1, 1] = np.sign(local[face == 1, 1]) * 0.9
            c, s = np.cos(yaw), np.sin(yaw)
            car_points.append(np.column_stack([x + c * local[:, 0] - s * local[:, 1],
                                               y + s * local[:, 0] + c * local[:, 1], local[:, 2]]))
        xyz = np.concatenate([hits, *car_points]) - [0.0, 0.0, 1.8] + [0.5 * sweep, 0.0, 0.0]
        intensity = rng.integers(0, 256, len(xyz))
        parts.append(np.column_stack([xyz, intensity, np.full(len(xyz), 0.05 * sweep)]))
    cloud = np.concatenate(parts).astype(np.float32)
    return cloud


def camera_frustum(depth_bins: int = 118, feature_hw=(32, 88), image_hw=(256, 704)) -> np.ndarray:
    """(1, 6, D, H, W, 3) ego-frame points of BEVFusion's frustum: depths 1..60 m, pixel centres at stride 8."""
    height, width = image_hw
    stride = height // feature_hw[0]
    u = (np.arange(feature_hw[1]) + 0.5) * stride
    v = (np.arange(feature_hw[0]) + 0.5) * stride
    depth = np.linspace(1.0, 59.5, depth_bins)
    focal = (width / 2) / np.tan(np.deg2rad(35.0))
    d, vv, uu = np.meshgrid(depth, v, u, indexing="ij")
    camera = np.stack([(uu - width / 2) * d / focal, (vv - height / 2) * d / focal, d], axis=-1)  # x right, y down
    forward_left_up = np.stack([camera[..., 2], -camera[..., 0], -camera[..., 1]], axis=-1)
    frustums = []
    for yaw in np.deg2rad([0.0, 55.0, -55.0, 180.0, 110.0, -110.0]):
        c, s = np.cos(yaw), np.sin(yaw)
        rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        frustums.append(forward_left_up @ rotation.T + [1.5 * c, 1.5 * s, 1.6])
    return np.stack(frustums)[None].astype(np.float32)


@dataclass
class Timing:
    """Median wall and process-CPU (all threads) milliseconds of repeated calls."""

    wall_ms: float
    cpu_ms: float


def cpu_model() -> str:
    """The CPU's model name (the host differs between sessions and so do the baselines' times)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def timed(function: Callable[[], object], before: Optional[Callable[[], object]] = None,
          numba_threads: Optional[int] = None) -> Callable[[int], Tuple[float, float]]:
    """A round_robin contender: one call of ``function`` -> its (wall, process-CPU) ms. ``before``, untimed, runs
    before it; with ``numba_threads``, Numba runs that many threads for the call (set and given back untimed)."""
    def call(_round: int) -> Tuple[float, float]:
        threads = numba.get_num_threads()
        if numba_threads is not None:
            numba.set_num_threads(numba_threads)
        if before is not None:
            before()
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall_ms, cpu_ms = 1000.0 * (time.perf_counter() - start), 1000.0 * (time.process_time() - start_cpu)
        numba.set_num_threads(threads)
        return wall_ms, cpu_ms
    return call


def side_by_side(contenders: Dict[str, Callable[[int], Tuple[float, float]]], repeats: int) -> Dict[str, Timing]:
    """Medians of each contender (name -> ``timed``) over ``repeats`` rounds of round_robin, after two warm-up
    rounds (Numba compiles on the first)."""
    measured = round_robin(contenders, repeats, warmup=2)
    return {name: Timing(statistics.median(wall for wall, _ in times), statistics.median(cpu for _, cpu in times))
            for name, times in measured.items()}


def row(op: str, timing: Timing, detail: str = "") -> Dict:
    return dict(op=op, wall_ms=timing.wall_ms, cpu_ms=timing.cpu_ms, detail=detail)


EVICTION_BYTES = 64 << 20


@functools.lru_cache(maxsize=1)
def _eviction_buffer() -> np.ndarray:
    return np.empty(EVICTION_BYTES // 4, np.float32)


def evict_caches() -> None:
    """Write 64 MB (twice the largest last-level cache seen on these machines): what a call then reads or writes
    comes from memory, as in a voxelizer called back to back, whose own ~50 MB of arrays evict its input. The buffer
    is kept: allocating and freeing 64 MB per call slowed the next call's kernels by up to 60% here."""
    _eviction_buffer().fill(1.0)


def bench_voxelization(cloud: np.ndarray, repeats: int, rows: List[Dict]) -> None:
    from spconv.pytorch.utils import PointToVoxel

    cloud_tensor = torch.from_numpy(cloud)
    settings = [("voxels 0.075 x 0.075 x 0.2 m", (0.075, 0.075, 0.2), 10, 120000),
                ("pillars 0.2 x 0.2 x 8 m", (0.2, 0.2, 8.0), 20, 30000)]
    for name, voxel_size, max_points, max_voxels in settings:
        generator = PointToVoxel(list(voxel_size), list(LIDAR_RANGE), cloud.shape[1], max_voxels, max_points)
        voxels, _, _ = ops.hard_voxelize(cloud, voxel_size, LIDAR_RANGE, max_points, max_voxels)
        assert np.array_equal(voxels, generator(cloud_tensor)[0].numpy()), "numba and spconv disagree"
        voxelize = functools.partial(ops.hard_voxelize, cloud, voxel_size, LIDAR_RANGE, max_points, max_voxels)
        times = side_by_side({
            "floor": timed(lambda: cloud.copy()),
            "output floor": timed(lambda: np.empty_like(voxels).fill(0)),
            "cold floor": timed(lambda: (cloud.copy(), np.empty_like(voxels).fill(0)), before=evict_caches),
            "spconv": timed(lambda: generator(cloud_tensor)),
            "numba": timed(voxelize),
            "numba evicted": timed(voxelize, before=evict_caches),
            "numba one thread": timed(voxelize, numba_threads=1),  # per core against spconv's one thread
            "reference": timed(functools.partial(voxelize, backend="reference")),
        }, repeats)
        floor, numba_cpu, spconv, one_thread = (times[k] for k in ("floor", "numba", "spconv", "numba one thread"))
        detail = f"M={len(voxels)} voxels, max_points={max_points}, max_voxels={max_voxels}"
        rows.append(row(f"{name}: memory floor: numpy copy of the cloud", floor, f"{cloud.nbytes / 1e6:.1f} MB"))
        rows.append(row(f"{name}: writing the output once (np.empty + fill)", times["output floor"],
                        f"{voxels.nbytes / 1e6:.1f} MB of voxels"))
        rows.append(row(f"{name}: copying the cloud and writing the output once, caches evicted first",
                        times["cold floor"], f"{EVICTION_BYTES >> 20} MB written before each call"))
        rows.append(row(f"hard_voxelize {name}: spconv PointToVoxel (CPU)", spconv, detail))
        rows.append(row(f"hard_voxelize {name}: numpy reference", times["reference"], detail))
        rows.append(row(f"hard_voxelize {name}: Numba CPU", numba_cpu,
                        f"{spconv.wall_ms / numba_cpu.wall_ms:.1f}x faster than spconv (CPU time "
                        f"{spconv.cpu_ms / numba_cpu.cpu_ms:.1f}x), {numba_cpu.wall_ms / floor.wall_ms:.1f}x the "
                        f"cloud-copy floor"))
        rows.append(row(f"hard_voxelize {name}: Numba CPU, caches evicted first", times["numba evicted"],
                        f"{times['numba evicted'].wall_ms / times['cold floor'].wall_ms:.1f}x the evicted-cache "
                        f"floor"))
        rows.append(row(f"hard_voxelize {name}: Numba CPU, 1 thread", one_thread,
                        f"{spconv.wall_ms / one_thread.wall_ms:.1f}x faster than spconv; all threads "
                        f"{one_thread.wall_ms / numba_cpu.wall_ms:.2f}x faster than one"))
        rows += numba_stages(cloud, name, voxel_size, max_points, max_voxels, repeats)


def numba_stages(cloud: np.ndarray, name: str, voxel_size, max_points: int, max_voxels: int, repeats: int) -> List:
    """The Numba CPU hard voxelization's three kernels, called in turn as hard_voxelize calls them (medians)."""
    from perception.ops._grid import Grid3D, point_keys_cpu
    from perception.ops._grouping import group_keys_cpu
    from perception.ops.voxelize import _gather_voxels_cpu

    grid, threads = Grid3D.from_range(voxel_size, LIDAR_RANGE), numba.get_num_threads()
    keys = point_keys_cpu(cloud, grid.low, grid.size, grid.counts, np.empty(len(cloud), grid.key_dtype), threads)
    grouping = group_keys_cpu(keys, max_voxels, threads)
    stages = [
        ("cell keys", lambda: point_keys_cpu(cloud, grid.low, grid.size, grid.counts,
                                             np.empty(len(cloud), grid.key_dtype), threads)),
        ("grouping (chunks, then merge)", lambda: group_keys_cpu(keys, max_voxels, threads)),
        ("copy into the padded output, coords", lambda: _gather_voxels_cpu(cloud, *grouping, max_points,
                                                                          grid.counts)),
    ]
    wall: Dict[str, List[float]] = {label: [] for label, _ in stages}
    cpu: Dict[str, List[float]] = {label: [] for label, _ in stages}
    for _ in range(2 + repeats):
        for label, stage in stages:
            start, start_cpu = time.perf_counter(), time.process_time()
            stage()
            wall[label].append(1000.0 * (time.perf_counter() - start))
            cpu[label].append(1000.0 * (time.process_time() - start_cpu))
    return [row(f"hard_voxelize {name}: Numba stage: {label}",
                Timing(statistics.median(wall[label][2:]), statistics.median(cpu[label][2:])), "stages in turn")
            for label, _ in stages]


def bev_pool_inputs(frustum: np.ndarray, channels: int = 80, seed: int = 0):
    """depth (1, 6, D, H, W), a softmax over D, and context (1, 6, H, W, channels) float32 for ``frustum``."""
    generator = torch.Generator().manual_seed(seed)
    depth = torch.randn(frustum.shape[:5], generator=generator).softmax(dim=2)
    return depth, torch.randn(frustum.shape[:2] + frustum.shape[3:5] + (channels,), generator=generator)


def bench_bev_pool(repeats: int, rows: List[Dict]) -> None:
    frustum = camera_frustum()
    geometry_timing = side_by_side({"geometry": timed(lambda: ops.BEVPoolGeometry.from_points(
        frustum, BEV_RANGE, (0.3, 0.3, 20.0)))}, repeats)["geometry"]
    geometry = ops.BEVPoolGeometry.from_points(frustum, BEV_RANGE, (0.3, 0.3, 20.0))
    depth, context = bev_pool_inputs(frustum)
    detail = (f"depth {tuple(depth.shape)}, context {tuple(context.shape)} (lifted "
              f"{depth.numel() * context.shape[-1] * 4 / 1e6:.0f} MB), {len(geometry.point_order)} points kept, "
              f"{geometry.num_intervals} cells")
    pooled = ops.bev_pool(depth, context, geometry)
    reference_pooled = ops.bev_pool(depth, context, geometry, backend="reference")
    error = float((pooled - reference_pooled).abs().max() / reference_pooled.abs().max())
    forward = side_by_side({backend: timed(functools.partial(ops.bev_pool, depth, context, geometry, backend=backend))
                            for backend in ("reference", "numba")}, repeats)
    rows.append(row("BEVPoolGeometry.from_points (Numba counting sort)", geometry_timing, detail))
    rows.append(row("bev_pool forward: lifted features formed, torch index_add reference", forward["reference"],
                    detail))
    rows.append(row("bev_pool forward: Numba CPU", forward["numba"],
                    f"{forward['reference'].wall_ms / forward['numba'].wall_ms:.1f}x faster; max |diff| / max |ref| "
                    f"= {error:.1e}"))
    depth_leaf, context_leaf = depth.clone().requires_grad_(), context.clone().requires_grad_()
    weights = torch.randn(pooled.shape, generator=torch.Generator().manual_seed(1))

    def forward_backward(backend: str) -> None:
        depth_leaf.grad = context_leaf.grad = None
        (ops.bev_pool(depth_leaf, context_leaf, geometry, backend=backend) * weights).sum().backward()

    both = side_by_side({backend: timed(functools.partial(forward_backward, backend))
                         for backend in ("reference", "numba")}, repeats)
    rows.append(row("bev_pool forward + backward: torch index_add reference", both["reference"]))
    rows.append(row("bev_pool forward + backward: Numba CPU", both["numba"],
                    f"{both['reference'].wall_ms / both['numba'].wall_ms:.1f}x faster"))


def bench_other_ops(cloud: np.ndarray, repeats: int, rows: List[Dict]) -> None:
    rng = np.random.default_rng(1)
    boxes = np.column_stack([rng.uniform(-40, 40, (60, 2)), rng.uniform(-1, 1, 60), rng.uniform(1.5, 3, 60),
                             rng.uniform(3, 6, 60), rng.uniform(1.5, 2, 60), rng.uniform(-np.pi, np.pi, 60)])
    centers, scores = rng.uniform(-54, 54, (1000, 2)), rng.uniform(0, 1, 1000)
    cells = ops.dynamic_voxelize(cloud, (0.2, 0.2, 8.0), LIDAR_RANGE)
    cases = [
        ("dynamic_voxelize 0.2 m pillars", functools.partial(ops.dynamic_voxelize, cloud, (0.2, 0.2, 8.0),
                                                             LIDAR_RANGE), f"{len(cloud)} points"),
        ("scatter_points mean", functools.partial(ops.scatter_points, cloud, cells, "mean"), "5 channels"),
        ("scatter_points max", functools.partial(ops.scatter_points, cloud, cells, "max"), "5 channels"),
        ("points_in_boxes", functools.partial(ops.points_in_boxes, cloud, boxes), "60 boxes"),
        ("circle_nms", functools.partial(ops.circle_nms, centers, scores, 2.0, max_keep=500), "1000 detections"),
    ]
    for name, run, detail in cases:
        times = side_by_side({backend: timed(functools.partial(run, backend=backend))
                              for backend in ("reference", "numba")}, repeats)
        rows.append(row(f"{name}: reference", times["reference"], detail))
        rows.append(row(f"{name}: Numba CPU", times["numba"],
                        f"{times['reference'].wall_ms / times['numba'].wall_ms:.1f}x faster"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=7)
    parser.add_argument("--threads", type=positive_int,
                        help="Numba and torch threads (default: Numba's default, all cores)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.threads is not None:
        numba.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    cloud = lidar_cloud()
    load_before = os.getloadavg()[0]
    rows: List[Dict] = []
    bench_voxelization(cloud, args.repeats, rows)
    bench_bev_pool(args.repeats, rows)
    bench_other_ops(cloud, args.repeats, rows)
    header = (f"{cpu_model()}; cloud: {len(cloud)} points x {cloud.shape[1]}; threads: numba {numba.get_num_threads()} "
              f"({numba.threading_layer()}), torch {torch.get_num_threads()}, spconv 1; cpu count {os.cpu_count()}; "
              f"repeats {args.repeats}; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(header)
    print("| op | wall ms | CPU ms | notes |\n| --- | ---: | ---: | --- |")
    for entry in rows:
        print(f"| {entry['op']} | {entry['wall_ms']:.2f} | {entry['cpu_ms']:.2f} | {entry['detail']} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(dict(header=header, rows=rows), handle, indent=1)


if __name__ == "__main__":
    main()
