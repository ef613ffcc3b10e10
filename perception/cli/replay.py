"""Replay a logged drive (a nuScenes scene) through the whole pipeline, message by message, as the car saw it:
frames.jsonl, a video, PNG frames, an MCAP file for Foxglove and summary.json in --out (perception.runtime.replay).
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from perception.cli import (add_debug_option, add_input_options, check_data_root, check_device, check_output_path,
                            check_own_folder, input_options, non_negative_float, positive_float, resolve_config,
                            resolve_input_paths, tool_main)
from perception.cli.backend import add_backend_options, check_model_or_oracle, model_provenance
from perception.detector import Detector, OracleDetector
from perception.paths import REAL_FIXTURE_ROOT
from perception.runtime.faults import FaultPlan
from perception.runtime.replay import RUN_FILE, ReplayOptions, ReplaySummary, replay_scene


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", nargs="?", help="model config (mmengine); omit with --oracle")
    parser.add_argument("checkpoint", nargs="?", help="model checkpoint; omit with --oracle")
    parser.add_argument("--dataroot", default=str(REAL_FIXTURE_ROOT),
                        help="nuScenes-format data root (default: %(default)s)")
    parser.add_argument("--version", default="v1.0-mini", help="its version folder (default: %(default)s)")
    parser.add_argument("--scene", help="scene name or token (default: the first scene)")
    parser.add_argument("--oracle", action="store_true", help="ground truth as the detections (keyframes only)")
    parser.add_argument("--device", default="cpu", help="torch device of the model")
    parser.add_argument("--realtime", action="store_true", help="pace messages at their capture times")
    parser.add_argument("--speed", type=positive_float, default=1.0, help="with --realtime: this many times real time")
    parser.add_argument("--every-sweep", action="store_true", help="a frame at every LiDAR sweep, not keyframes only")
    parser.add_argument("--stale-after-s", type=positive_float, default=ReplayOptions.stale_after_s,
                        help="a sensor whose newest message is older than this is left out of the frame")
    parser.add_argument("--sync-window-s", type=non_negative_float, default=ReplayOptions.sync_window_s,
                        help="wait this long after the LiDAR trigger for radar sweeps and images")
    parser.add_argument("--deadline-s", type=positive_float,
                        help="a frame is late beyond this (default: the frame period)")
    add_input_options(parser)
    parser.add_argument("--faults", help="inject faults, e.g. drop=0.05,duplicate=0.02,delay=0.02,"
                                         "stall=CAM_FRONT:1.0:2.5,seed=0")
    parser.add_argument("--out", default="outputs/replay", help="output folder")
    parser.add_argument("--resume", action="store_true", help="keep the frames already in OUT/frames.jsonl")
    parser.add_argument("--no-video", action="store_true", help="skip the PNG frames and the video")
    parser.add_argument("--no-mcap", action="store_true", help="skip the MCAP file")
    parser.add_argument("--display-min-score", type=float, default=ReplayOptions.display_min_score,
                        help="draw (and put in the MCAP) boxes scoring at least this; frames.jsonl keeps all")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_backend_options(parser)
    add_debug_option(parser)
    return parser


def print_summary(summary: ReplaySummary) -> None:
    """The replay's frame counts, latency and stage table."""
    overtaken = f", {summary.overtaken} LiDAR triggers after a later frame, none made" if summary.overtaken else ""
    print(f"scene {summary.scene}: {summary.frames} frames ({summary.watchdog} by the watchdog{overtaken}), "
          f"{summary.processed} processed, {summary.resumed} "
          f"resumed, {summary.skipped} skipped, {summary.late} late; {summary.messages} messages, "
          f"{summary.sensor_duration_s:.1f} s of drive in {summary.wall_s:.1f} s "
          f"({summary.realtime_factor:.2f}x real time)")
    print("faults: " + ", ".join(f"{name} {count}" for name, count in summary.faults.items()))
    if summary.stages_ms:
        print(f"{'stage':<16}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'n':>6}")
        for name, stats in summary.stages_ms.items():
            print(f"{name:<16}{stats['p50_ms']:>10.1f}{stats['p90_ms']:>10.1f}{stats['p99_ms']:>10.1f}"
                  f"{stats['count']:>6}")
        print(f"{'latency':<16}{1000 * summary.latency_s['p50_s']:>10.1f}{1000 * summary.latency_s['p90_s']:>10.1f}"
              f"{1000 * summary.latency_s['p99_s']:>10.1f}{summary.latency_s['count']:>6}")
    for name, path in summary.outputs.items():
        print(f"{name}: {path}")


@tool_main
def main(argv: Optional[Sequence[str]] = None) -> ReplaySummary:
    parser = build_parser()
    args = parser.parse_args(argv)
    resolve_input_paths(args, "dataroot", "checkpoint", "onnx")
    check_model_or_oracle(parser, args)
    check_data_root(parser, args.dataroot, args.version)
    check_output_path(parser, "--out", args.out)
    check_own_folder(args.out, RUN_FILE, "replay", "wrote, whose pictures, video, MCAP and summary a rerun replaces")
    check_device(parser, args.device)
    config_path = None if args.oracle else resolve_config(args.config)
    lidar_sweeps, radar_sweeps, image_size = input_options(args, config_path)
    try:
        faults = FaultPlan.parse(args.faults) if args.faults else None
        options = ReplayOptions(
            every_sweep=args.every_sweep, realtime=args.realtime, speed=args.speed, stale_after_s=args.stale_after_s,
            sync_window_s=args.sync_window_s, deadline_s=args.deadline_s, lidar_sweeps=lidar_sweeps,
            radar_sweeps=radar_sweeps, image_size=image_size, faults=faults, video=not args.no_video,
            mcap=not args.no_mcap, device=args.device, display_min_score=args.display_min_score)
    except (ValueError, argparse.ArgumentTypeError) as error:
        parser.error(str(error))
    detector: Detector  # after the options are checked: loading the model is work
    if args.oracle:
        detector = OracleDetector()
    else:
        from perception.deploy.backends import load_backend

        detector = load_backend(args.backend, config_path, args.checkpoint, args.onnx, args.device)
    from perception.datasets.records import open_nuscenes

    nusc = open_nuscenes(args.dataroot, args.version)
    scene = args.scene or nusc.scene[0]["name"]
    run = {"model": "oracle"} if args.oracle else model_provenance(args.backend, config_path, args.checkpoint,
                                                                   args.onnx)
    summary = replay_scene(nusc, scene, detector, args.out, options, resume=args.resume, progress=not args.quiet,
                           run=run)
    print_summary(summary)
    return summary


if __name__ == "__main__":
    main()
