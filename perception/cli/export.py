"""Exports a trained detector's dense network as ONNX graphs (perception.deploy.graphs): camera backbone + FPN and
depth net, the pillar feature nets, the encoders' convs, fuser, decoder and head branches and, in a model that
plans, the planning head's layers, one graph each; the kernels (voxelization, pillar scatter, BEV pooling, NMS)
stay outside in their Numba code. Each graph passes onnx's checker, and the graphs in ONNX Runtime are checked
against the torch model on a random frame (the head outputs and the plans), loaded both ways: the fuser, decoder and
head as bev_network.onnx (what the backends run) and as their own graphs (what tools/quantize.py calibrates and
benchmarks/bench_graphs.py times); the larger difference counts. The folder is built beside --out
(``<out>.partial``) and moved in only when the graphs pass that check: a failed or killed export leaves no folder
that loads as an export."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

from perception.cli import (add_debug_option, check_output_path, positive_float, replace_folder, resolve_config,
                            resolve_input_paths, staging_folder, tool_main)

REPORT_FILE = "export.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", help="model config (mmengine), e.g. configs/fusion_tiny.py")
    parser.add_argument("checkpoint", help="trained weights (a shipped checkpoint)")
    parser.add_argument("--out", required=True, help="folder for the graphs (<module path>.onnx) and export.json")
    parser.add_argument("--tolerance", type=positive_float, default=1e-4,
                        help="largest relative difference of the head outputs and plans, ONNX Runtime against torch")
    add_debug_option(parser)
    return parser


@tool_main
def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_output_path(parser, "--out", args.out)
    config_path = resolve_config(args.config)
    resolve_input_paths(args, "checkpoint")
    staging = staging_folder(args.out, REPORT_FILE, "export")
    from perception.deploy.graphs import (checked_outputs, example_batch, export_graphs, load_onnx_detector,
                                          output_error)
    from perception.models import load_detector

    detector = load_detector(config_path, args.checkpoint)
    files = export_graphs(detector, config_path, args.checkpoint, staging)
    check = example_batch(detector, seed=1)
    reference = checked_outputs(detector, check)
    per_loading = [output_error(reference, checked_outputs(load_onnx_detector(config_path, staging,
                                                                              one_bev_graph=one_bev_graph), check))
                   for one_bev_graph in (True, False)]  # bev_network.onnx, then the fuser's, decoder's, head's own
    errors = {name: max(loading[name] for loading in per_loading) for name in reference}
    for name, error in errors.items():
        print(f"{name}: max relative difference onnxruntime vs torch {error:.2e}")
    if max(errors.values()) > args.tolerance:
        raise ValueError(f"{staging}: the graphs differ from the torch model by {max(errors.values()):.2e} "
                         f"(> --tolerance {args.tolerance}); left there, not moved to {args.out}")
    report = {"config": args.config, "checkpoint": args.checkpoint, "graphs": {p: f.name for p, f in files.items()},
              "bytes": sum(f.stat().st_size for f in files.values()), "check_relative_error": errors,
              "tolerance": args.tolerance}
    Path(staging, REPORT_FILE).write_text(json.dumps(report, indent=2))
    replace_folder(staging, args.out)
    print(f"{len(files)} graphs, {report['bytes'] / 2 ** 20:.1f} MiB in {args.out}")
    return report


if __name__ == "__main__":
    main()
