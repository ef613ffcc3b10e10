"""Offline evaluation with the official nuScenes metrics: a detector (or the ground-truth oracle) over a split,
the submission file, nuscenes-devkit's DetectionEval, metrics.json and report.md; optional sensor-failure
ablations. Under torchrun the frames are sharded over the processes (gloo) and gathered on rank 0."""
from __future__ import annotations

import argparse
import os
from typing import List, Optional, Sequence

from perception.datasets.frame import SENSOR_GROUPS
from perception.detector import Detector, OracleDetector
from perception.eval.ablations import ABLATIONS, ablation_folder, write_ablation_table
from perception.eval.detection import NoDetectionsError
from perception.eval.report import summary_table
from perception.eval.runner import DataOptions, evaluate_split, init_shard
from perception.paths import DATA_ROOT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", nargs="?", help="model config (mmengine); omit with --oracle")
    parser.add_argument("checkpoint", nargs="?", help="model checkpoint; omit with --oracle")
    parser.add_argument("--dataroot", default=str(DATA_ROOT / "nuscenes"), help="nuScenes-format data root")
    parser.add_argument("--version", default="v1.0-trainval")
    parser.add_argument("--split", default="val", help="official split or a custom one from <version>/splits.json")
    parser.add_argument("--out", default="outputs/test", help="output folder")
    parser.add_argument("--drop", action="append", choices=SENSOR_GROUPS, default=[],
                        help="blank this sensor group at the input (repeatable)")
    parser.add_argument("--ablations", action="store_true",
                        help="run all sensors, no camera, no radar, no LiDAR, LiDAR only; write ablations.md")
    parser.add_argument("--oracle", action="store_true",
                        help="the ground truth of each frame as the detections (checks loader, conversion, writer)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--lidar-sweeps", type=int, help="default: the config's lidar_sweeps (oracle: 10)")
    parser.add_argument("--radar-sweeps", type=int, help="default: the config's radar_sweeps (oracle: 6)")
    parser.add_argument("--no-plots", action="store_true", help="skip the devkit's plots in the report")
    parser.add_argument("--verbose", action="store_true", help="print the devkit's progress messages")
    return parser


def build_detector(args: argparse.Namespace) -> tuple:
    """(detector, its description for the report)."""
    if args.oracle:
        return OracleDetector(), "oracle: the ground truth of each frame, score 1"
    from perception.models import load_detector

    return load_detector(args.config, args.checkpoint, device="cpu"), f"{args.config} @ {args.checkpoint}"


def run(argv: Optional[Sequence[str]] = None) -> List[dict]:
    """Parses ``argv`` and evaluates; returns the metrics.json content of each run on the main process (one, or
    one per ablation), nothing on the other processes."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.oracle and (args.config is None or args.checkpoint is None):
        parser.error("CONFIG and CHECKPOINT are required unless --oracle is given")
    if args.ablations and args.drop:
        parser.error("--ablations runs its own sensor sets; leave out --drop")
    if not os.path.isdir(os.path.join(args.dataroot, args.version)):
        parser.error(f"no nuScenes tables at {os.path.join(args.dataroot, args.version)}")
    from nuscenes.nuscenes import NuScenes

    shard = init_shard()
    detector: Detector
    detector, description = build_detector(args)
    # Only the main process evaluates; the others read the loader's metadata cache, not the devkit tables.
    nusc = NuScenes(version=args.version, dataroot=args.dataroot, verbose=args.verbose) if shard.is_main else None
    if args.oracle:
        lidar_sweeps, radar_sweeps = 10, 6
    else:
        from perception.models import model_inputs

        lidar_sweeps, radar_sweeps, _ = model_inputs(args.config)
    data = DataOptions(args.dataroot, args.version, args.split, args.lidar_sweeps or lidar_sweeps,
                       args.radar_sweeps or radar_sweeps, args.batch_size, args.workers)
    runs = ABLATIONS if args.ablations else (("", tuple(args.drop)),)
    results, table_rows = [], []
    for name, drop in runs:
        out_dir = os.path.join(args.out, ablation_folder(name)) if name else args.out
        try:
            metrics = evaluate_split(detector, description, nusc, data, out_dir, drop=drop, shard=shard,
                                     render_curves=not args.no_plots, verbose=args.verbose)
        except NoDetectionsError as error:
            if not args.ablations:
                raise SystemExit(str(error)) from error
            print(f"{name}: not scored: {error}")
            continue
        if metrics is None:
            continue
        results.append(metrics)
        table_rows.append((name, drop, metrics))
        print(f"{name or 'evaluation'}: {os.path.join(out_dir, 'report.md')}\n{summary_table(metrics)}")
    if args.ablations and table_rows:
        write_ablation_table(args.out, table_rows)
        print(f"sensor-failure table: {os.path.join(args.out, 'ablations.md')}")
    if shard.world_size > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return results


def main(argv: Optional[Sequence[str]] = None) -> None:
    run(argv)


if __name__ == "__main__":
    main()
