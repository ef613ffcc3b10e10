"""Thread settings against the end-to-end latency tail: the benchmark pipeline (perception.runtime.benchmark, the
config's sweeps, all sensors) in a fresh process per run, each variant's pools set before the first frame, the
variants alternated ``--repeats`` times. Prints p50 / p90 / p99 and p99/p50 of end_to_end and detector per run and
writes them all to --json. The variants:

    libraries    nothing set: torch's and Numba's OpenMP pools and their default wait policy (spin, then sleep)
    passive      OMP_WAIT_POLICY=PASSIVE only
    policy       perception.threads.apply_thread_policy(): passive with its short spin (GOMP_SPINCOUNT), every pool
                 at the CPU count, OpenCV and numpy's BLAS 1 thread, ONNX Runtime without spinning
    torch1       the policy with torch on one thread
    numba1       the policy with Numba on one thread
    spin10k      the policy with GOMP_SPINCOUNT=10000: idle OpenMP workers spin ~0.1 ms before they sleep (libgomp,
                 torch's and Numba's runtimes: an explicit spin count overrides the wait policy's)
    spin100k     the same with GOMP_SPINCOUNT=100000 (~1 ms)

    python benchmarks/bench_threads.py configs/fusion_tiny.py checkpoints/fusion_tiny.pth --json outputs/threads.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Dict, List

from perception.threads import OPENMP_ENVIRONMENT

VARIANTS: Dict[str, Dict[str, str]] = {
    "libraries": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "policy": OPENMP_ENVIRONMENT,
    "torch1": OPENMP_ENVIRONMENT,
    "numba1": OPENMP_ENVIRONMENT,
    "spin10k": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "10000"},
    "spin100k": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "100000"},
}
"""Variant -> the environment its process starts with (the OpenMP runtimes read it once, at load)."""


def run_child(args: argparse.Namespace) -> None:
    """One benchmark run under ``args.child``'s thread settings; its summary JSON on stdout's last line."""
    import numba
    import torch
    from nuscenes.nuscenes import NuScenes

    from perception.deploy.backends import load_backend
    from perception.models import model_inputs
    from perception.runtime.benchmark import BenchmarkOptions, run_benchmark
    from perception.datasets.splits import scene_sample_tokens
    from perception.runtime.messages import find_scene
    from perception.threads import apply_thread_policy

    if args.child != "libraries" and args.child != "passive":
        apply_thread_policy()
    if args.child == "torch1":
        torch.set_num_threads(1)
    if args.child == "numba1":
        numba.set_num_threads(1)
    nusc = NuScenes(version=args.version, dataroot=args.dataroot, verbose=False)
    tokens = scene_sample_tokens(nusc, find_scene(nusc, args.scene))[:args.frames]
    detector = load_backend(args.backend, args.config, args.checkpoint, args.onnx)
    inputs = model_inputs(args.config)
    options = BenchmarkOptions(iters=args.iters, warmup=args.warmup, sweep_counts=(inputs.lidar_sweeps,),
                               curve_iters=1, kernel_iters=1)
    result = run_benchmark(nusc, tokens, {args.backend: detector}, options, inputs.lidar_sweeps, inputs.radar_sweeps,
                           inputs.image_size, progress=False)
    summary = {"variant": args.child, "threads": result["threads"],
               **{f"{stage}_{key}": result["backends"][args.backend]["stages_ms"][stage][key]
                  for stage in ("end_to_end", "detector")
                  for key in ("p50_ms", "p90_ms", "p99_ms")}}
    print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("checkpoint")
    parser.add_argument("--json", required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--iters", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--dataroot", default="datasets/synthetic")
    parser.add_argument("--version", default="v1.0-synth")
    parser.add_argument("--scene", default="synth-0000")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--onnx")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}")
    passed = [a for a in sys.argv[1:] if a != "--json" and a != args.json]
    runs: List[dict] = []
    print(f"{'variant':<10}{'e2e p50':>9}{'p90':>7}{'p99':>7}{'p99/p50':>9}{'det p50':>9}{'p99':>7}")
    for _ in range(args.repeats):
        for variant in variants:
            env = {k: v for k, v in os.environ.items() if k not in OPENMP_ENVIRONMENT}
            env.update(VARIANTS[variant])
            out = subprocess.run([sys.executable, __file__, *passed, "--json", "-", "--child", variant], env=env,
                                 capture_output=True, text=True, check=True)
            run = json.loads(out.stdout.strip().splitlines()[-1])
            runs.append(run)
            print(f"{variant:<10}{run['end_to_end_p50_ms']:>9.1f}{run['end_to_end_p90_ms']:>7.1f}"
                  f"{run['end_to_end_p99_ms']:>7.1f}{run['end_to_end_p99_ms'] / run['end_to_end_p50_ms']:>9.2f}"
                  f"{run['detector_p50_ms']:>9.1f}{run['detector_p99_ms']:>7.1f}", flush=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump({"command": " ".join(sys.argv), "cpus": len(os.sched_getaffinity(0)), "runs": runs}, f, indent=2)


if __name__ == "__main__":
    main()
