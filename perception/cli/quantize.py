"""INT8 post-training quantization of exported graphs (perception.deploy.quantize): static, QDQ, per-channel int8
weights, uint8 activations calibrated on training frames through the real pre-processing; then a sensitivity sweep
(each graph quantized alone, then all) against the float graphs on validation frames (splits that share a keyframe
with the calibration frames are refused). Graphs whose quantization alone moves a detection score by more than
--max-score-error compute in float (their activations unquantized, their weights stored int8 and restored when the
session loads). Writes the graphs, sensitivity.json / sensitivity.md / sensitivity.png and quantize.json (the data
root, the split and sample tokens of the calibration and the evaluation frames, the graphs computing in float (the
sweep's, --keep-float's and the planning head's), the chosen mix's error, the sizes of the graphs the backends
load). The fuser, decoder and head run as one graph (bev_network.onnx), quantized whole with the nodes of the parts
kept float left in float. The folder is built beside --out (``<out>.partial``) and moved in whole when finished, so
a killed run leaves no folder the INT8 backend would load, and a rerun replaces a finished folder."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Optional, Sequence

from perception.cli import (add_data_options, add_debug_option, check_output_path, config_data, non_negative_float,
                            positive_int, replace_folder, resolve_config, resolve_input_paths, staging_folder,
                            tool_main)

REPORT_FILE = "quantize.json"
"""Written last: a folder holding it is one that tools/quantize.py finished."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", help="model config (mmengine) the graphs were exported from")
    parser.add_argument("float_dir", help="the float graphs (tools/export.py --out)")
    parser.add_argument("--out", required=True, help="folder for the INT8 graphs and the reports")
    parser.add_argument("--calib-frames", type=positive_int, default=32, help="training frames to calibrate on")
    parser.add_argument("--calib-split", help="default: the config's training split (of the first of the datasets it "
                        "trains on, where it trains on several; read from --dataroot or the config's dataroot)")
    parser.add_argument("--eval-frames", type=positive_int, default=8,
                        help="validation frames of the sensitivity sweep")
    parser.add_argument("--eval-split", help="default: the config's validation split")
    parser.add_argument("--max-score-error", type=non_negative_float, default=0.1,
                        help="a graph whose quantization alone changes a score by more computes in float (with 0.1 "
                             "the shipped model v4 keeps three graphs float; see benchmarks/RESULTS.md)")
    parser.add_argument("--keep-float", action="append", default=[], metavar="MODULE",
                        help="this graph computes in float as well (module path, e.g. head.heatmap; repeatable)")
    add_data_options(parser)
    add_debug_option(parser)
    return parser


@tool_main
def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_output_path(parser, "--out", args.out)
    config_path = resolve_config(args.config)
    resolve_input_paths(args, "float_dir")
    from mmengine.config import Config

    from perception.deploy.graphs import (BEV_NETWORK, backend_graph_files, graph_path, in_bev_network,
                                          load_onnx_detector)
    from perception.deploy.quantize import (calibrated, compare_outputs, keep_float, load_batches,
                                            quantize_bev_network, quantize_graphs, select_frames, sensitive_modules,
                                            sensitivity_sweep, write_sensitivity)
    from perception.engine.data import frame_dataset_configs

    if os.path.realpath(args.out) == os.path.realpath(args.float_dir):
        raise ValueError(f"--out {args.out}: the float graphs' folder (INT8 graphs would overwrite the float export); "
                         f"choose another folder")
    staging = staging_folder(args.out, REPORT_FILE, "quantize")
    config = Config.fromfile(config_path)
    dataroot, version = config_data(parser, args, config)
    float_detector = load_onnx_detector(config_path, args.float_dir)
    unknown = sorted(set(args.keep_float) - set(float_detector.dense_modules()))
    if unknown:
        raise ValueError(f"--keep-float {', '.join(unknown)}: no such graph; the graphs: "
                         f"{', '.join(float_detector.dense_modules())}")
    calib_split = args.calib_split or frame_dataset_configs(config.train_dataloader.dataset)[0]["split"]
    eval_split = args.eval_split or config.val_dataloader.dataset.split
    calibration_frames = select_frames(config, dataroot, version, calib_split, args.calib_frames, "calibration")
    evaluation_frames = select_frames(config, dataroot, version, eval_split, args.eval_frames, "evaluation")
    shared = [token for token in evaluation_frames.sample_tokens() if token in calibration_frames.sample_tokens()]
    if shared:
        raise ValueError(f"--calib-split {calib_split} and --eval-split {eval_split} of {dataroot}: {len(shared)} of "
                         f"the {len(evaluation_frames.indices)} evaluation frames are calibration frames "
                         f"({shared[0]}, ...): the sensitivity sweep would measure the INT8 error on the frames it was "
                         "calibrated on; choose splits that share no keyframe")
    os.makedirs(staging)
    calibration = load_batches(float_detector, calibration_frames)
    evaluation = load_batches(float_detector, evaluation_frames)
    recorded = quantize_graphs(config_path, args.float_dir, staging, calibration)
    modules = list(recorded)
    rows = sensitivity_sweep(config_path, args.float_dir, staging, evaluation)
    write_sensitivity(rows, staging, args.max_score_error)
    kept = sorted(set(sensitive_modules(rows, args.max_score_error)) | set(args.keep_float))
    keep_float(args.float_dir, staging, kept)
    float_parts = [path for path in kept if in_bev_network(path)]
    if float_parts and graph_path(args.float_dir, BEV_NETWORK).is_file():
        quantize_bev_network(args.float_dir, staging, recorded["fuser"], float_parts)
    import torch

    with torch.no_grad():
        reference = [float_detector(batch, mode="tensor") for batch in evaluation]
    chosen = compare_outputs(load_onnx_detector(config_path, staging, "int8"), reference, evaluation)
    computing_in_float = sorted(set(kept) | {path for path in modules if not calibrated(path)})  # the planning head's
    sizes = {name: sum(file.stat().st_size for file in backend_graph_files(modules, folder))
             for name, folder in (("float_bytes", args.float_dir), ("int8_bytes", staging))}
    report = {"config": args.config, "float_dir": args.float_dir, "dataroot": dataroot, "version": version,
              "calibration": calibration_frames.to_meta(), "evaluation": evaluation_frames.to_meta(),
              "max_score_error": args.max_score_error, "kept_float": computing_in_float,
              "chosen_error": chosen, **sizes, "size_ratio": sizes["int8_bytes"] / sizes["float_bytes"]}
    Path(staging, REPORT_FILE).write_text(json.dumps(report, indent=2))
    replace_folder(staging, args.out)
    print((Path(args.out) / "sensitivity.md").read_text())
    print(f"kept float: {computing_in_float or 'none'}; chosen mix: {chosen}; "
          f"size {report['size_ratio']:.0%} of float")
    return report


if __name__ == "__main__":
    main()
