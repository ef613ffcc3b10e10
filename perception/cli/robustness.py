"""The robustness benchmark: a detector over a split under each corruption (perception.datasets.corruptions) at
each severity; NDS and mAP per cell, resilience (RA, mRA), RR and, against a baseline's robustness.json, mCE
(perception.eval.robustness) into robustness.md, robustness.json and robustness.png. A corruption of a sensor group
the model does not read would leave its input unchanged: it is not run, and the report names it. Resumable
(finished cells are not run again); under torchrun the cells are shared across the processes."""
from __future__ import annotations

import argparse
import os
from typing import List, Optional, Sequence

from perception.cli import (EVALUATION_PROCESS_GROUP_TIMEOUT_S, add_debug_option, check_data_root,
                            check_evaluated_split, check_output_path, non_negative_int, positive_int, resolve_config,
                            resolve_input_paths, seed, tool_main)
from perception.datasets.corruptions import CORRUPTIONS, SEVERITIES
from perception.engine import end_distributed, init_distributed_from_env
from perception.eval.robustness import (
    JSON_FILE, MARKDOWN_FILE, check_baseline, plan_cells, robustness_summary, run_cells, write_robustness,
)
from perception.eval.runner import DataOptions, Shard
from perception.jsonfile import read_json
from perception.paths import DATA_ROOT

def _planned(corruptions: List[str], severities: List[int]) -> None:
    """argparse.ArgumentTypeError with plan_cells' message when it refuses ``corruptions`` x ``severities``."""
    try:
        plan_cells(corruptions, severities)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def corruption_names(text: str) -> List[str]:
    """An argparse type: comma-separated names of registered corruptions, each once."""
    names = [name for name in text.split(",") if name]
    if not names:
        raise argparse.ArgumentTypeError("names no corruption")
    _planned(names, list(SEVERITIES))
    return names


def severity_numbers(text: str) -> List[int]:
    """An argparse type: comma-separated severities of SEVERITIES, each once."""
    try:
        severities = [int(value) for value in text.split(",") if value]
    except ValueError:
        raise argparse.ArgumentTypeError(f"severities must be of {', '.join(map(str, SEVERITIES))}, "
                                         f"got {text!r}") from None
    _planned([], severities)
    return severities


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", help="model config (mmengine)")
    parser.add_argument("checkpoint", help="model checkpoint")
    parser.add_argument("--dataroot", default=str(DATA_ROOT / "nuscenes"),
                        help="nuScenes-format data root (default: %(default)s)")
    parser.add_argument("--version", default="v1.0-trainval", help="its version folder (default: %(default)s)")
    parser.add_argument("--split", default="val", help="official split or a custom one from <version>/splits.json")
    parser.add_argument("--corruptions", type=corruption_names, default=",".join(CORRUPTIONS),
                        help="comma-separated corruption names, each once (default: all): " + ", ".join(CORRUPTIONS))
    parser.add_argument("--severities", type=severity_numbers, default=",".join(map(str, SEVERITIES)),
                        help="comma-separated, each once, of " + ",".join(map(str, SEVERITIES)))
    parser.add_argument("--seed", type=seed, default=0, help="corruption seed (part of a cell's identity)")
    parser.add_argument("--baseline", help="robustness.json of a baseline model, for CE and mCE")
    parser.add_argument("--out", default="outputs/robustness", help="output folder (finished cells are kept)")
    parser.add_argument("--batch-size", type=positive_int, default=1)
    parser.add_argument("--workers", type=non_negative_int, default=0,
                        help="DataLoader worker processes (0: load in the main process)")
    parser.add_argument("--verbose", action="store_true", help="print the devkit's progress messages")
    add_debug_option(parser)
    return parser


def run(argv: Optional[Sequence[str]] = None) -> Optional[dict]:
    """Parses ``argv`` and runs the benchmark; returns the robustness.json content on the main process."""
    parser = build_parser()
    args = parser.parse_args(argv)
    resolve_input_paths(args, "dataroot", "checkpoint", "baseline")
    corruptions, severities = args.corruptions, args.severities
    check_data_root(parser, args.dataroot, args.version)
    check_evaluated_split(parser, "--split", args.split)
    check_output_path(parser, "--out", args.out)
    config = resolve_config(args.config)
    from perception.models import load_detector, model_inputs

    inputs = model_inputs(config)
    not_read = [name for name in corruptions if CORRUPTIONS[name].sensor not in inputs.sensors]
    corruptions = [name for name in corruptions if name not in not_read]
    if not corruptions:
        parser.error(f"the model reads {', '.join(inputs.sensors)} only: none of --corruptions changes its input")
    if not_read:
        print(f"robustness: not run, the model does not read their sensor: {', '.join(not_read)}")
    cells = plan_cells(corruptions, severities)
    # the data root as os.path.realpath names it: the same folder however a run names it
    identity = {"model": f"{args.config} @ {args.checkpoint}", "dataroot": os.path.realpath(args.dataroot),
                "version": args.version, "split": args.split, "seed": args.seed}
    baseline = None
    if args.baseline:
        if not os.path.isfile(args.baseline):
            raise ValueError(f"{args.baseline}: no such robustness.json; run tools/robustness.py with the baseline "
                             f"model's config and checkpoint on the same data first (its --out holds it)")
        baseline = read_json(args.baseline)
        check_baseline(baseline, args.baseline, identity, corruptions)
    from perception.datasets.records import open_nuscenes

    init_distributed_from_env(timeout_s=EVALUATION_PROCESS_GROUP_TIMEOUT_S)
    shard = Shard.of_process_group()
    detector = load_detector(config, args.checkpoint, device="cpu")
    from perception.cli.backend import model_provenance

    # the model known by its files' contents: another config or other weights at the same paths are another run
    identity.update(model_provenance("torch", config, args.checkpoint, None))
    data = DataOptions(args.dataroot, args.version, args.split, lidar_sweeps=inputs.lidar_sweeps,
                       radar_sweeps=inputs.radar_sweeps, image_size=inputs.image_size, batch_size=args.batch_size,
                       workers=args.workers)
    os.makedirs(args.out, exist_ok=True)
    records = run_cells(detector, identity,
                        lambda: open_nuscenes(args.dataroot, args.version, verbose=args.verbose),
                        data, args.out, cells, args.seed, shard, args.verbose)
    summary = None
    if shard.is_main:
        summary = robustness_summary(records, corruptions, severities, baseline, not_read)
        write_robustness(args.out, summary)
        print(f"robustness: {os.path.join(args.out, MARKDOWN_FILE)}, {os.path.join(args.out, JSON_FILE)}; clean "
              f"NDS {summary['clean']['nd_score']:.3f}, mRA {summary['mra']:.3f}")
    end_distributed()
    return summary


main = tool_main(run)


if __name__ == "__main__":
    main()
