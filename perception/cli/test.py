"""Offline evaluation with the official nuScenes metrics: a detector (or the ground-truth oracle) over a split,
the submission file, nuscenes-devkit's DetectionEval, metrics.json and report.md; optional sensor-failure
ablations. Under torchrun the frames are sharded over the processes (gloo) and gathered on rank 0."""
from __future__ import annotations

import argparse
import os
from typing import List, Optional, Sequence

from perception.cli import (EVALUATION_PROCESS_GROUP_TIMEOUT_S, add_debug_option, add_input_options, check_data_root,
                            check_evaluated_split, check_output_path, check_own_folder, input_options,
                            non_negative_int, positive_int, resolve_config, resolve_input_paths, tool_main)
from perception.cli.backend import add_backend_options, check_model_or_oracle, model_provenance
from perception.datasets.corruptions import CorruptFrames, parse_cell
from perception.detector import Detector, OracleDetector
from perception.engine import end_distributed, init_distributed_from_env
from perception.eval.ablations import ABLATIONS, AblationRun, ablation_folder, evaluate_ablations
from perception.eval.report import summary_table
from perception.eval.runner import PREDICTIONS_RUN_FILE, RESULTS_FILE, DataOptions, Shard, evaluate_split
from perception.models.ego_mlp import load_ego_mlp
from perception.paths import DATA_ROOT
from perception.sensors import SENSOR_GROUPS


def _corruption(text: str) -> CorruptFrames:
    try:
        return CorruptFrames(*parse_cell(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", nargs="?", help="model config (mmengine); omit with --oracle")
    parser.add_argument("checkpoint", nargs="?", help="model checkpoint; omit with --oracle")
    parser.add_argument("--dataroot", default=str(DATA_ROOT / "nuscenes"),
                        help="nuScenes-format data root (default: %(default)s)")
    parser.add_argument("--version", default="v1.0-trainval", help="its version folder (default: %(default)s)")
    parser.add_argument("--split", default="val", help="official split or a custom one from <version>/splits.json")
    parser.add_argument("--out", default="outputs/test", help="output folder")
    parser.add_argument("--drop", action="append", choices=SENSOR_GROUPS, default=[],
                        help="blank this sensor group at the input (repeatable)")
    parser.add_argument("--ablations", action="store_true",
                        help="run all sensors, no camera, no radar, no LiDAR, LiDAR only; write ablations.md")
    parser.add_argument("--oracle", action="store_true",
                        help="the ground truth of each frame as the detections (checks loader, conversion, writer)")
    parser.add_argument("--batch-size", type=positive_int, default=1)
    parser.add_argument("--workers", type=non_negative_int, default=0,
                        help="DataLoader worker processes (0: load in the main process)")
    add_input_options(parser)
    parser.add_argument("--zero-shot", action="store_true",
                        help="accept a checkpoint trained on other inputs (sweeps, image size, sensors read) than "
                             "CONFIG's model_inputs and evaluate it at CONFIG's: a model of one domain on another's "
                             "data, e.g. a synthetic-world model with configs/fusion_tiny_real.py (the same network)")
    parser.add_argument("--corrupt", metavar="NAME:SEVERITY", type=_corruption,
                        help="evaluate under this corruption (perception.datasets.corruptions, seed 0), e.g. "
                             "lidar_fog:2; tools/robustness.py runs them all")
    parser.add_argument("--skip-corrupt-files", action="store_true",
                        help="a frame with an unreadable sensor file is evaluated with no detections and the file "
                             "listed in report.md (default: stop with an error naming the file)")
    parser.add_argument("--ego-mlp", metavar="PATH", help="grade the ego-state-only planner of this checkpoint "
                        "(tools/train_ego_mlp.py) beside the others")
    parser.add_argument("--resume", action="store_true",
                        help="continue a killed evaluation in --out: the frames its predictions.jsonl holds are read "
                             "back, not detected again (the same model, checkpoint, data and options, else refused); "
                             "starts fresh when there is none")
    parser.add_argument("--no-plots", action="store_true", help="skip the devkit's plots in the report")
    parser.add_argument("--verbose", action="store_true", help="print the devkit's progress messages")
    add_backend_options(parser)
    add_debug_option(parser)
    return parser


def detector_from_args(args: argparse.Namespace) -> tuple:
    """(detector, its description for the report)."""
    if args.oracle:
        return OracleDetector(), "oracle: the ground truth of each frame, score 1"
    from perception.deploy.backends import load_backend

    backend = "" if args.backend == "torch" else f" on {args.backend} ({args.onnx})"
    detector = load_backend(args.backend, args.config, args.checkpoint, args.onnx, check_inputs=not args.zero_shot)
    zero_shot = ", zero-shot at the config's inputs" if args.zero_shot else ""
    return detector, f"{args.config} @ {args.checkpoint}{backend}{zero_shot}"


def _print_run(run: AblationRun, version: str, is_main: bool) -> None:
    """What one evaluation (an ablation, or the only run, named '') gave: where its report went with its summary,
    why it was not scored, or, on the main process of a version without annotations, what to do with its
    submission."""
    if run.not_scored:
        print(f"{run.name}: not scored: {run.not_scored}")
    elif run.metrics is None:
        if is_main:
            print(f"wrote {os.path.join(run.out_dir, RESULTS_FILE)}; {version} has no annotations, so no detection or "
                  f"decision metrics: submit it to the nuScenes server")
    else:
        unreadable = run.metrics["run"]["unreadable_files"]
        if unreadable:
            print(f"{len(unreadable)} unreadable files skipped (no detections on their frames), listed in the report")
        print(f"{run.name or 'evaluation'}: {os.path.join(run.out_dir, 'report.md')}\n{summary_table(run.metrics)}")


def run(argv: Optional[Sequence[str]] = None) -> List[dict]:
    """Parses ``argv`` and evaluates; returns the metrics.json content of each run on the main process (one, or
    one per ablation), nothing on the other processes."""
    parser = build_parser()
    args = parser.parse_args(argv)
    resolve_input_paths(args, "dataroot", "checkpoint", "onnx", "ego_mlp")
    check_model_or_oracle(parser, args, ["--zero-shot"])
    if args.ablations and args.drop:
        parser.error("--ablations runs its own sensor sets; leave out --drop")
    if args.oracle and (args.ablations or args.drop):
        parser.error(f"--oracle keeps the ground truth that the annotations count LiDAR or radar points in, whatever "
                     f"sensor is dropped: its rows would claim a drop it ignores; leave out "
                     f"{'--ablations' if args.ablations else '--drop'}")
    check_evaluated_split(parser, "--split", args.split)
    check_data_root(parser, args.dataroot, args.version)
    check_output_path(parser, "--out", args.out)
    run_record = os.path.join(ablation_folder(ABLATIONS[0][0]), PREDICTIONS_RUN_FILE) if args.ablations else \
        PREDICTIONS_RUN_FILE
    check_own_folder(args.out, run_record, "test", "wrote, whose results a rerun writes over")
    if not args.oracle:
        args.config = resolve_config(args.config)
    from perception.datasets.records import open_nuscenes

    init_distributed_from_env(timeout_s=EVALUATION_PROCESS_GROUP_TIMEOUT_S)
    shard = Shard.of_process_group()
    detector: Detector
    detector, description = detector_from_args(args)
    # what identifies a model's predictions for a resume (the oracle's: its name)
    provenance = {} if args.oracle else model_provenance(args.backend, args.config, args.checkpoint, args.onnx)
    # Only the main process evaluates; the others read the loader's metadata cache, not the devkit tables.
    nusc = open_nuscenes(args.dataroot, args.version, verbose=args.verbose) if shard.is_main else None
    lidar_sweeps, radar_sweeps, image_size = input_options(args, None if args.oracle else args.config)
    data = DataOptions(args.dataroot, args.version, args.split, lidar_sweeps, radar_sweeps, image_size, args.batch_size,
                       args.workers, args.skip_corrupt_files)
    ego_mlp = load_ego_mlp(args.ego_mlp) if args.ego_mlp else None
    options = dict(shard=shard, resume=args.resume, render_curves=not args.no_plots, verbose=args.verbose,
                   transform=args.corrupt, ego_mlp=ego_mlp, provenance=provenance)
    if args.ablations:
        runs, table = evaluate_ablations(detector, description, nusc, data, args.out,
                                         on_run=lambda ablation: _print_run(ablation, args.version, shard.is_main),
                                         **options)
        if table:
            print(table)
    else:
        dropped = tuple(args.drop)
        metrics = evaluate_split(detector, description, nusc, data, args.out, drop=dropped, **options)
        runs = [AblationRun("", dropped, args.out, metrics)]
        _print_run(runs[0], args.version, shard.is_main)
    results = [run.metrics for run in runs if run.metrics is not None]
    end_distributed()
    return results


main = tool_main(run)


if __name__ == "__main__":
    main()
