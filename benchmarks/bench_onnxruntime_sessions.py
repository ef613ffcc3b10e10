"""ONNX Runtime's session options against the latency tail: the torch model and the exported graphs under each
variant of the session options, side by side in one process (perception.runtime.benchmark, interleaved round-robin
on the same keyframes, the config's sweeps, all sensors), under the process's thread policy (perception.threads).
Prints p50 / p90 / p99 and p99/p50 of detector and end_to_end per detector and writes the benchmark to --json.
The variants (each from the policy's options, ``perception.threads.onnxruntime_session_options``):

    policy     as the policy sets them
    intra1     intra-op threads 1: no pool, every kernel on the calling thread
    intra2     intra-op threads 2 (the policy's count on this 2-core host; explicit elsewhere)
    spinning   intra-op workers spin-wait between kernels (session.intra_op.allow_spinning = 1)

(ONNX Runtime's global thread pool cannot be timed beside these: once set, every session of the process must use
it.)

    python benchmarks/bench_onnxruntime_sessions.py configs/fusion_tiny.py checkpoints/fusion_tiny.pth \\
        --float outputs/deploy/float --int8 outputs/deploy/int8 --json outputs/deploy/sessions.json
"""
from __future__ import annotations

import argparse
import json

VARIANTS = ("policy", "intra1", "intra2", "spinning")


def session_options(variant: str):
    """onnxruntime.SessionOptions of one variant (module docstring)."""
    from perception.threads import onnxruntime_session_options

    options = onnxruntime_session_options()
    if variant == "intra1":
        options.intra_op_num_threads = 1
    elif variant == "intra2":
        options.intra_op_num_threads = 2
    elif variant == "spinning":
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    elif variant != "policy":
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("checkpoint")
    parser.add_argument("--float", required=True, help="the float graphs (tools/export.py --out)")
    parser.add_argument("--int8", help="the INT8 graphs (tools/quantize.py --out); timed under --int8-variants")
    parser.add_argument("--json", required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="of the float graphs, comma-separated")
    parser.add_argument("--int8-variants", default="policy,intra1", help="of the INT8 graphs, comma-separated")
    parser.add_argument("--iters", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--dataroot", default="datasets/synthetic")
    parser.add_argument("--version", default="v1.0-synth")
    parser.add_argument("--scene", default="synth-0000")
    args = parser.parse_args()

    from perception.threads import apply_thread_policy, set_openmp_environment

    set_openmp_environment()  # before torch loads
    from nuscenes.nuscenes import NuScenes

    from perception.deploy.graphs import load_onnx_detector
    from perception.models import load_detector, model_inputs
    from perception.runtime.benchmark import BenchmarkOptions, format_table, run_benchmark
    from perception.datasets.splits import scene_sample_tokens
    from perception.runtime.messages import find_scene

    apply_thread_policy()
    float_variants = args.variants.split(",")
    int8_variants = args.int8_variants.split(",") if args.int8 else []
    policy = session_options("policy")
    detectors = {"torch": load_detector(args.config, args.checkpoint)}
    for variant in float_variants:
        detectors[f"ort/{variant}"] = load_onnx_detector(args.config, args.float,
                                                                 session_options=session_options(variant))
    for variant in int8_variants:
        detectors[f"ort-int8/{variant}"] = load_onnx_detector(args.config, args.int8, "int8",
                                                                      session_options=session_options(variant))
    nusc = NuScenes(version=args.version, dataroot=args.dataroot, verbose=False)
    tokens = scene_sample_tokens(nusc, find_scene(nusc, args.scene))[:args.frames]
    inputs = model_inputs(args.config)
    options = BenchmarkOptions(iters=args.iters, warmup=args.warmup, sweep_counts=(inputs.lidar_sweeps,),
                               curve_iters=1, kernel_iters=1)
    result = run_benchmark(nusc, tokens, detectors, options, inputs.lidar_sweeps, inputs.radar_sweeps,
                           inputs.image_size, progress=False)
    result["session_variants"] = {"float": float_variants, "int8": int8_variants,
                                  "policy_intra_op_threads": policy.intra_op_num_threads}
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(format_table(result))


if __name__ == "__main__":
    main()
