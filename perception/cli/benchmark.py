"""Per-stage latency of the pipeline (load, the model's stages, decision, end to end) as p50/p90/p99, throughput,
peak memory and threads, the kernels' backends side by side, and latency against LiDAR point count (1..10 sweeps);
JSON out and a table printed (perception.runtime.benchmark). Several backends (``--backend torch,onnxruntime,
onnxruntime-int8 --onnx FLOAT_DIR --onnx INT8_DIR``) are timed side by side, interleaved in one process on the
same frames; ratios are against the first. An onnxruntime backend listed twice with two folders (two INT8 mixes)
is reported as 'backend@folder' each.

Without CHECKPOINT the model has its initial (random) weights: every stage costs what the trained model's does,
except decoding and NMS, whose cost depends on how many boxes pass the score threshold.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict, Optional, Sequence

from mmengine.config import Config

from perception.cli import (add_data_options, add_debug_option, check_device, check_output_path, config_data,
                            positive_int, resolve_config, resolve_input_paths, tool_main)
from perception.cli.backend import add_backend_list_options, backend_folders
from perception.runtime.benchmark import (
    BenchmarkOptions, format_table, parse_sweep_counts, plot_benchmark, run_benchmark,
)
from perception.threads import apply_thread_policy


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="model config (mmengine), e.g. configs/fusion_tiny.py")
    parser.add_argument("checkpoint", nargs="?", help="trained weights (default: the config's initial weights)")
    parser.add_argument("--json", required=True, help="write the results here")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--sweeps", default="1..10", help="LiDAR sweep counts of the latency curve: 1..10 or 1,5,10")
    parser.add_argument("--iters", type=int, default=20, help="timed frames")
    parser.add_argument("--warmup", type=int, default=3, help="untimed frames first")
    parser.add_argument("--curve-iters", type=int, default=5, help="timed frames per sweep count of the curve")
    parser.add_argument("--kernel-iters", type=int, default=10, help="timed calls per kernel backend")
    parser.add_argument("--frames", type=positive_int, default=4,
                        help="distinct keyframes to cycle over (1: one calibration, the camera's BEV geometry "
                             "computed once)")
    add_data_options(parser)
    parser.add_argument("--scene", help="take the keyframes from this scene (default: the first scene)")
    parser.add_argument("--threads", type=positive_int,
                        help="threads of every pool (perception.threads; default: the CPUs this process may use)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--no-plot", action="store_true", help="no picture beside the JSON")
    add_backend_list_options(parser)
    add_debug_option(parser)
    return parser


@tool_main
def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    parser = build_parser()
    args = parser.parse_args(argv)
    config_path = resolve_config(args.config)
    resolve_input_paths(args, "checkpoint", "onnx")
    check_output_path(parser, "--json", args.json, folder=False)
    check_device(parser, args.device)
    try:
        options = BenchmarkOptions(iters=args.iters, warmup=args.warmup, sweep_counts=parse_sweep_counts(args.sweeps),
                                   curve_iters=args.curve_iters, kernel_iters=args.kernel_iters, device=args.device)
        backends = backend_folders(args.backend, args.onnx)
    except ValueError as error:
        parser.error(str(error))
    if args.threads is not None:
        apply_thread_policy(args.threads)
    config = Config.fromfile(config_path)
    dataroot, version = config_data(parser, args, config)
    from perception.datasets.records import open_nuscenes

    from perception.deploy.backends import load_backend
    from perception.models import model_inputs
    from perception.datasets.splits import scene_sample_tokens
    from perception.runtime.messages import find_scene

    detectors = {label: load_backend(backend, config_path, args.checkpoint, onnx_dir, args.device)
                 for label, backend, onnx_dir in backends}
    nusc = open_nuscenes(dataroot, version)
    scene = find_scene(nusc, args.scene or nusc.scene[0]["name"])
    tokens = scene_sample_tokens(nusc, scene)[:args.frames]

    def describe() -> Dict[str, Any]:
        return {"config": args.config, "checkpoint": args.checkpoint,
                "onnx": {label: onnx_dir for label, _, onnx_dir in backends},
                "dataroot": dataroot, "version": version,
                "scene": scene["name"], "sensors": sorted(next(iter(detectors.values())).sensors)}

    inputs = model_inputs(config)
    result = run_benchmark(nusc, tokens, detectors, options, inputs.lidar_sweeps, inputs.radar_sweeps,
                           inputs.image_size, progress=not args.quiet, describe=describe)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(format_table(result))
    print(f"results: {args.json}")
    if not args.no_plot:
        picture = os.path.splitext(args.json)[0] + ".png"
        plot_benchmark(result, picture)
        print(f"picture: {picture}")
    return result


if __name__ == "__main__":
    main()
