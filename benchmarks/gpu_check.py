"""GPU check of every perception.ops CUDA kernel: parity with its reference, then CUDA-event timings; a training
checkpoint's random state loaded onto the GPU (as mmengine's resume loads it) given back; the whole detector on the
GPU against the CPU; a training step under bfloat16 autocast (--amp) against float32; prints JSON.

Run on a machine with an NVIDIA GPU, numba (with its CUDA target) and torch with CUDA, from the repository root:

    PYTHONPATH=. python3 benchmarks/gpu_check.py [--repeats 20] [--out gpu_check.json]

Parity: hard / dynamic voxelization on the adversarial clouds of tests/ops/inputs.py and on the benchmark cloud
(exact); scatter mean / max, pillar scatter and BEV pooling with gradients (float64 exact-ish, float32 within
tolerance: atomics and summation order differ); points in boxes and circle NMS (exact). Timings: median of
``--repeats`` calls measured with CUDA events on torch's current stream, after two warm-up rounds (JIT
compilation), on the inputs of benchmarks/bench_ops.py, every kernel called in turn, call by call
(perception.timing.round_robin). Each check, and the timings, runs on when another fails: the report names the
failure (its traceback) beside the others' results. Exit status 1 when a check or the timings fail.
"""
from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ops import BEV_RANGE, LIDAR_RANGE, bev_pool_inputs, camera_frustum, lidar_cloud  # noqa: E402
from perception import ops  # noqa: E402
from perception.cli import positive_int  # noqa: E402
from perception.timing import round_robin  # noqa: E402
from tests.ops.inputs import POINT_RANGE, VOXEL_SIZE, adversarial_clouds  # noqa: E402

DEVICE = torch.device("cuda")
VOXEL_SETTINGS = {"voxels_0.075": ((0.075, 0.075, 0.2), 10, 120000), "pillars_0.2": ((0.2, 0.2, 8.0), 20, 30000)}


def cuda_ms(contenders: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, float]:
    """Median milliseconds of each function (name -> function) between two CUDA events (synchronised), the
    functions called in turn (round_robin), after two warm-up rounds."""
    def timed(function: Callable[[], object]) -> Callable[[int], float]:
        def call(_round: int) -> float:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            function()
            stop.record()
            stop.synchronize()
            return start.elapsed_time(stop)
        return call

    torch.cuda.synchronize()
    measured = round_robin({name: timed(function) for name, function in contenders.items()}, repeats, warmup=2)
    return {name: statistics.median(times) for name, times in measured.items()}


class Checks:
    def __init__(self) -> None:
        self.results: List[Dict] = []

    def run(self, name: str, check: Callable[[], str]) -> None:
        started = time.perf_counter()
        try:
            detail, ok = check(), True
        except Exception:  # a failed check is reported, and the others still run
            detail, ok = traceback.format_exc(limit=4), False
        self.results.append(dict(name=name, ok=ok, detail=detail, seconds=round(time.perf_counter() - started, 2)))
        print(f"{'ok  ' if ok else 'FAIL'} {name}", file=sys.stderr, flush=True)


def equal(got, want, what: str) -> None:
    got = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    want = want.detach().cpu().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    if got.shape != want.shape or not np.array_equal(got, want):
        mismatched = "shape" if got.shape != want.shape else int((got != want).sum())
        raise AssertionError(f"{what}: {got.shape} vs {want.shape}, mismatched {mismatched}")


def close(got: torch.Tensor, want: torch.Tensor, what: str, rtol: float, atol: float) -> float:
    error = float((got.detach().cpu().double() - want.detach().cpu().double()).abs().max()) if got.numel() else 0.0
    torch.testing.assert_close(got.detach().cpu(), want.detach().cpu(), rtol=rtol, atol=atol, msg=what)
    return error


def check_voxelization(clouds: Dict[str, np.ndarray]) -> str:
    compared = 0
    for name, points in clouds.items():
        settings = [(VOXEL_SIZE, POINT_RANGE, 4, 1000), (VOXEL_SIZE, POINT_RANGE, 2, 9)] if len(points) < 10000 \
            else [(size, LIDAR_RANGE, p, m) for size, p, m in VOXEL_SETTINGS.values()]
        for voxel_size, point_range, max_points, max_voxels in settings:
            want = ops.hard_voxelize(points, voxel_size, point_range, max_points, max_voxels, backend="reference")
            got = ops.hard_voxelize(torch.from_numpy(points).to(DEVICE), voxel_size, point_range, max_points,
                                    max_voxels)
            assert got[0].is_cuda
            for g, w, what in zip(got, want, ("voxels", "coords", "num_points")):
                equal(g, w, f"{name} {voxel_size} {what}")
            via_numpy = ops.hard_voxelize(points, voxel_size, point_range, max_points, max_voxels, backend="cuda")
            equal(via_numpy[0], want[0], f"{name} numpy input")
            cells = ops.dynamic_voxelize(torch.from_numpy(points).to(DEVICE), voxel_size, point_range)
            equal(cells, ops.dynamic_voxelize(points, voxel_size, point_range, backend="reference"), f"{name} cells")
            compared += 1
    return f"{compared} (cloud, setting) pairs identical to the reference"


def check_scatter(clouds: Dict[str, np.ndarray]) -> str:
    errors = []
    for name, points in clouds.items():
        cells = ops.dynamic_voxelize(points, VOXEL_SIZE if len(points) < 10000 else (0.2, 0.2, 8.0),
                                     POINT_RANGE if len(points) < 10000 else LIDAR_RANGE, backend="reference")
        features = np.nan_to_num(points, nan=0.0, posinf=9.0, neginf=-9.0).astype(np.float64)
        features[::3] = features[:1]  # ties for max
        for reduce in ("mean", "max"):
            results = {}
            for backend, device in (("reference", "cpu"), ("cuda", DEVICE)):
                leaf = torch.from_numpy(features).to(device).requires_grad_()
                voxel_features, voxel_coords = ops.scatter_points(leaf, torch.from_numpy(cells).to(device), reduce,
                                                                  backend=backend)
                weights = torch.arange(voxel_features.numel(), dtype=torch.float64, device=device)
                (voxel_features * weights.reshape(voxel_features.shape)).sum().backward()
                results[backend] = (voxel_features, voxel_coords, leaf.grad)
            equal(results["cuda"][1], results["reference"][1], f"{name} {reduce} coords")
            errors.append(close(results["cuda"][0], results["reference"][0], f"{name} {reduce}", 1e-9, 1e-9))
            errors.append(close(results["cuda"][2], results["reference"][2], f"{name} {reduce} grad", 1e-9, 1e-9))
    return f"max abs error {max(errors):.1e} (float64)"


def check_pillar_scatter() -> str:
    generator = torch.Generator().manual_seed(0)
    ny, nx, batch = 200, 176, 2
    flat = torch.randperm(batch * ny * nx, generator=generator)[:30000]
    coords = torch.stack([flat // (ny * nx), torch.zeros_like(flat), flat // nx % ny, flat % nx], 1).int()
    features = torch.randn(30000, 64, generator=generator, dtype=torch.float64)
    results = {}
    for backend, device in (("reference", "cpu"), ("cuda", DEVICE)):
        leaf = features.to(device).requires_grad_()
        canvas = ops.pillar_scatter(leaf, coords.to(device), batch, (ny, nx), backend=backend)
        (canvas * torch.linspace(-1, 1, canvas.numel(), dtype=torch.float64, device=device).view(canvas.shape)
         ).sum().backward()
        results[backend] = (canvas, leaf.grad)
    close(results["cuda"][0], results["reference"][0], "canvas", 0, 0)
    close(results["cuda"][1], results["reference"][1], "grad", 0, 0)
    return "30000 pillars x 64 channels, forward and gradient identical"


def check_bev_pool(frustum: np.ndarray) -> str:
    geometry_cpu = ops.BEVPoolGeometry.from_points(frustum, BEV_RANGE, (0.3, 0.3, 20.0), backend="reference")
    geometry_gpu = ops.BEVPoolGeometry.from_points(torch.from_numpy(frustum).to(DEVICE), BEV_RANGE, (0.3, 0.3, 20.0))
    for name in ("point_order", "interval_starts", "interval_ends", "interval_cells"):
        equal(getattr(geometry_gpu, name), getattr(geometry_cpu, name), f"geometry {name}")
    depth, context = bev_pool_inputs(frustum)
    weights = torch.randn((1, 80) + geometry_cpu.grid_shape, generator=torch.Generator().manual_seed(1))
    results = {}
    for backend, device, geometry in (("numba", "cpu", geometry_cpu), ("cuda", DEVICE, geometry_gpu)):
        depth_leaf, context_leaf = depth.to(device).requires_grad_(), context.to(device).requires_grad_()
        pooled = ops.bev_pool(depth_leaf, context_leaf, geometry, backend=backend)
        (pooled * weights.to(device)).sum().backward()
        results[backend] = (pooled, depth_leaf.grad, context_leaf.grad)
    error = close(results["cuda"][0], results["numba"][0], "pooled", 1e-4, 1e-3)
    close(results["cuda"][1], results["numba"][1], "depth grad", 1e-4, 1e-3)
    close(results["cuda"][2], results["numba"][2], "context grad", 1e-4, 1e-3)
    return (f"BEVFusion sizes, float32: max abs forward difference to Numba CPU {error:.1e}; gradients within "
            "1e-3 + 1e-4 x |Numba's|")


def check_points_in_boxes(cloud: np.ndarray) -> str:
    rng = np.random.default_rng(1)
    boxes = np.column_stack([rng.uniform(-40, 40, (60, 2)), rng.uniform(-1, 1, 60), rng.uniform(1.5, 3, 60),
                             rng.uniform(3, 6, 60), rng.uniform(1.5, 2, 60), rng.uniform(-np.pi, np.pi, 60)])
    boxes[0] = [0.0, 0.0, 0.0, 2.0, 4.0, 1.0, 0.0]
    points = cloud[:, :3].copy()
    points[:4] = [[2.0, 1.0, 0.5], [-2.0, -1.0, -0.5], [np.nan, 0, 0], [np.inf, 0, 0]]  # on faces, non-finite
    got = ops.points_in_boxes(torch.from_numpy(points).to(DEVICE), boxes)
    want = ops.points_in_boxes(points, boxes, backend="reference")
    mismatched = int((got.cpu().numpy() != want).sum())
    mask = ops.points_in_boxes_mask(torch.from_numpy(points[:20000]).to(DEVICE), boxes)
    mask_mismatched = int((mask.cpu().numpy() != ops.points_in_boxes_mask(points[:20000], boxes,
                                                                           backend="reference")).sum())
    if mismatched or mask_mismatched:  # only an FMA-contracted rounding on a rotated face could explain one
        raise AssertionError(f"{mismatched} first-box and {mask_mismatched} mask entries differ")
    return f"{len(points)} points x 60 boxes identical ({int((want >= 0).sum())} inside a box)"


def check_circle_nms() -> str:
    rng = np.random.default_rng(3)
    for n in (0, 1, 63, 64, 65, 1000, 5000):
        centers = rng.uniform(-54, 54, (n, 2))
        centers[: n // 10] = centers[:1]
        scores = np.round(rng.uniform(0, 1, n), 2)
        for max_keep in (None, 83):
            got = ops.circle_nms(torch.from_numpy(centers).to(DEVICE), torch.from_numpy(scores).to(DEVICE), 2.0,
                                 max_keep)
            equal(got, ops.circle_nms(centers, scores, 2.0, max_keep, backend="reference"), f"n={n} {max_keep}")
    return "7 sizes x 2 max_keep identical"


def check_random_state_loaded_onto_the_gpu() -> str:
    import tempfile
    import types

    from perception.engine import RESUME_SCHEME, load_own_resume_file
    from perception.engine.hooks import RandomStateHook

    runner = types.SimpleNamespace(model=types.SimpleNamespace())
    checkpoint = {}
    RandomStateHook().before_save_checkpoint(runner, checkpoint)
    expected = torch.rand(3)
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "iter_1.pth")
        torch.save(checkpoint, path)
        # as mmengine's Runner.resume loads the run's own file: onto get_device()
        on_gpu = load_own_resume_file(RESUME_SCHEME + path, map_location=DEVICE)
    hook = RandomStateHook()
    hook.after_load_checkpoint(runner, on_gpu)
    hook.before_train_iter(runner, 0)
    equal(torch.rand(3), expected, "the draws after the resume")
    return f"state loaded onto {on_gpu['random_state']['torch'].device}, given back"


def check_detector_on_the_gpu() -> str:
    """The tiny test model (LiDAR, radar, cameras) on the GPU, its kernels on their CUDA backends: the head's
    outputs as on the CPU (float32: the kernels' summation order and cuDNN differ)."""
    import copy

    from tests.models.helpers import make_frame, tiny_model

    torch.manual_seed(0)
    cpu_model = tiny_model().eval()
    gpu_model = copy.deepcopy(cpu_model).to(DEVICE)
    frames = [make_frame(0), make_frame(1, cameras=False)]
    with torch.no_grad():
        on_cpu = cpu_model(cpu_model.batch_from_frames(frames), mode="tensor")
        on_gpu = gpu_model(gpu_model.batch_from_frames(frames), mode="tensor")
    worst = 0.0
    for name, value in on_cpu.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            worst = max(worst, close(on_gpu[name].cpu(), value, name, rtol=1e-3, atol=1e-3))
    return f"head outputs within {worst:.1e} of the CPU's"


def check_bfloat16_autocast_training_step() -> str:
    """--amp's path: the tiny model's losses under CUDA bfloat16 autocast within 2 % of float32's, finite grads."""
    from tests.models.helpers import make_frame, tiny_model

    torch.manual_seed(0)
    model = tiny_model().to(DEVICE).train()
    batch = model.batch_from_frames([make_frame(0), make_frame(1)])
    reference = model(batch, mode="loss")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        losses = model(batch, mode="loss")
    worst = max(abs(float(losses[name]) / float(value) - 1) for name, value in reference.items())
    if worst > 0.02:
        raise AssertionError(f"autocast losses {worst:.1%} off float32's")
    sum(losses.values()).backward()
    if not all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None):
        raise AssertionError("a gradient is not finite")
    return f"losses within {worst:.2%} of float32's, gradients finite"


def timings(cloud: np.ndarray, frustum: np.ndarray, repeats: int) -> Dict[str, float]:
    contenders: Dict[str, Callable[[], object]] = {}
    points = torch.from_numpy(cloud).to(DEVICE)
    contenders["memory_floor_copy_cloud"] = lambda: points.clone()
    for name, (voxel_size, max_points, max_voxels) in VOXEL_SETTINGS.items():
        contenders[f"hard_voxelize_{name}"] = functools.partial(ops.hard_voxelize, points, voxel_size, LIDAR_RANGE,
                                                                max_points, max_voxels)
    contenders["dynamic_voxelize_pillars_0.2"] = lambda: ops.dynamic_voxelize(points, (0.2, 0.2, 8.0), LIDAR_RANGE)
    cells = ops.dynamic_voxelize(points, (0.2, 0.2, 8.0), LIDAR_RANGE)
    for reduce in ("mean", "max"):
        contenders[f"scatter_points_{reduce}"] = functools.partial(ops.scatter_points, points, cells, reduce)
    voxels, coords, num_points = ops.hard_voxelize(points, (0.2, 0.2, 8.0), LIDAR_RANGE, 20, 30000)
    pillar_features = torch.randn(len(coords), 64, device=DEVICE)
    contenders["pillar_scatter_30k_x64"] = lambda: ops.pillar_scatter(pillar_features, coords, 1, (540, 540))
    frustum_gpu = torch.from_numpy(frustum).to(DEVICE)
    contenders["bev_pool_geometry"] = lambda: ops.BEVPoolGeometry.from_points(frustum_gpu, BEV_RANGE,
                                                                              (0.3, 0.3, 20.0))
    geometry = ops.BEVPoolGeometry.from_points(frustum_gpu, BEV_RANGE, (0.3, 0.3, 20.0))
    depth, context = (tensor.to(DEVICE) for tensor in bev_pool_inputs(frustum))
    contenders["bev_pool_forward_cuda"] = lambda: ops.bev_pool(depth, context, geometry)
    contenders["bev_pool_forward_torch_index_add_reference"] = lambda: ops.bev_pool(depth, context, geometry,
                                                                                    backend="reference")
    depth_leaf, context_leaf = depth.clone().requires_grad_(), context.clone().requires_grad_()
    contenders["bev_pool_forward_backward_cuda"] = lambda: ops.bev_pool(depth_leaf, context_leaf,
                                                                        geometry).sum().backward()
    contenders["bev_pool_forward_backward_torch_index_add_reference"] = lambda: ops.bev_pool(
        depth_leaf, context_leaf, geometry, backend="reference").sum().backward()
    rng = np.random.default_rng(1)
    boxes = np.column_stack([rng.uniform(-40, 40, (60, 2)), rng.uniform(-1, 1, 60), rng.uniform(1.5, 3, 60),
                             rng.uniform(3, 6, 60), rng.uniform(1.5, 2, 60), rng.uniform(-np.pi, np.pi, 60)])
    contenders["points_in_boxes_60"] = lambda: ops.points_in_boxes(points, boxes)
    centers = torch.from_numpy(rng.uniform(-54, 54, (1000, 2))).to(DEVICE)
    scores = torch.rand(1000, device=DEVICE, dtype=torch.float64)
    contenders["circle_nms_1000"] = lambda: ops.circle_nms(centers, scores, 2.0, max_keep=500)
    return {name: round(ms, 4) for name, ms in cuda_ms(contenders, repeats).items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=20)
    parser.add_argument("--out", help="also write the JSON report to this file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(json.dumps(dict(error="no CUDA device visible to torch")))
        return 1
    cloud, frustum = lidar_cloud(), camera_frustum()
    clouds = dict(adversarial_clouds(np.random.default_rng(0), n=2000), benchmark_cloud=cloud)
    checks = Checks()
    checks.run("hard_voxelize + dynamic_voxelize", lambda: check_voxelization(clouds))
    checks.run("scatter_points mean / max with gradients", lambda: check_scatter(clouds))
    checks.run("pillar_scatter with gradients", check_pillar_scatter)
    checks.run("bev_pool geometry, forward, backward", lambda: check_bev_pool(frustum))
    checks.run("points_in_boxes", lambda: check_points_in_boxes(cloud))
    checks.run("circle_nms", check_circle_nms)
    checks.run("training resume: random state loaded onto the GPU", check_random_state_loaded_onto_the_gpu)
    checks.run("the detector on the GPU against the CPU", check_detector_on_the_gpu)
    checks.run("--amp: a training step under bfloat16 autocast", check_bfloat16_autocast_training_step)
    timed: Dict[str, float] = {}

    def time_the_kernels() -> str:
        timed.update(timings(cloud, frustum, args.repeats))
        return f"{len(timed)} kernels timed (timings_ms)"
    checks.run("timings", time_the_kernels)
    report = dict(
        device=torch.cuda.get_device_name(),
        torch=torch.__version__,
        cloud_points=len(cloud),
        repeats=args.repeats,
        checks=checks.results,
        timings_ms=timed,
    )
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if all(c["ok"] for c in checks.results) else 1


if __name__ == "__main__":
    sys.exit(main())
