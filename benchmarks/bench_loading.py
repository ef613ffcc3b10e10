"""Frames per second of the nuScenes loader (perception.datasets.loader.NuScenesFrames): 10 LiDAR sweeps,
6 radar sweeps of the 5 radars, 6 camera images, ground truth; per sensor group and all together.

    .venv/bin/python benchmarks/bench_loading.py [--datasets real,synthetic] [--synthetic-root datasets/synthetic]
        [--image-size 704x396] [--max-frames 40] [--repeats 3] [--workers 2] [--json out.json]

Datasets: the real fixture (../shared/fixtures/nuscenes-real: 3 keyframes, 1600x900 JPEGs, no sweep files, so
1 LiDAR and 1 radar sweep per frame whatever is asked) and a synthetic world (every sweep present). Each figure
is the median time of one ``dataset[i]`` in one process over ``--repeats`` passes over the frames, after one
warm-up pass (metadata cached, files in the page cache); the configurations (LiDAR only, radar only, cameras
only, all) take turns frame by frame. ``--workers``: also an epoch through
make_frame_loader with that many worker processes (frames/s, wall time).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from perception.cli import non_negative_int, parse_image_size, positive_int
from perception.datasets.collate import make_frame_loader
from perception.datasets.loader import NuScenesFrames
from perception.datasets.splits import evenly_spread
from perception.paths import DATA_ROOT, REAL_FIXTURE_ROOT

GROUPS = {"lidar": ("radar", "camera"), "radar": ("lidar", "camera"), "camera": ("lidar", "radar"), "all": ()}
"""Measured configuration -> the sensor groups it drops."""


def frame_times_ms(datasets: Dict[str, NuScenesFrames], indices: List[int], repeats: int) -> Dict[str, float]:
    """Median ms of one ``dataset[i]`` per configuration, over ``repeats`` passes over ``indices`` after a
    warm-up pass; the configurations take turns frame by frame, so a burst of load on the shared machine hits
    them alike."""
    times: Dict[str, List[float]] = {name: [] for name in datasets}
    for repeat in range(repeats + 1):
        for index in indices:
            for name, dataset in datasets.items():
                start = time.perf_counter()
                dataset[index]
                if repeat:  # pass 0 warms the page cache and the metadata cache
                    times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def loader_frames_per_s(dataset: NuScenesFrames, indices: List[int], workers: int) -> float:
    subset = torch.utils.data.Subset(dataset, indices)
    start = time.perf_counter()
    count = sum(len(batch) for batch in make_frame_loader(subset, batch_size=1, num_workers=workers))
    return count / (time.perf_counter() - start)


def measure(name: str, dataroot: str, version: str, split: str, image_size: Optional[Tuple[int, int]],
            max_frames: int, repeats: int, workers: int, cache_dir: str) -> Dict:
    results: Dict = {"dataset": name, "dataroot": dataroot, "version": version, "split": split,
                     "image_size": image_size}
    datasets = {group: NuScenesFrames(dataroot, version, split, image_size=image_size, drop=drop,
                                      cache_dir=cache_dir, progress=False) for group, drop in GROUPS.items()}
    dataset = datasets["all"]
    indices = evenly_spread(len(dataset), max_frames)
    for group, milliseconds in frame_times_ms(datasets, indices, repeats).items():
        results[f"{group}_ms"] = milliseconds
    sample = [dataset[i] for i in indices[:5]]
    front = sample[0].cameras["CAM_FRONT"].image
    results.update(
        frames=len(indices),
        lidar_points=int(np.mean([len(f.lidar.points) for f in sample])),
        lidar_sweeps=int(np.mean([f.lidar.num_sweeps for f in sample])),
        radar_points=int(np.mean([len(f.radar.points) for f in sample])),
        radar_sweeps=int(np.mean([f.radar.num_sweeps for f in sample])),
        images=f"{len(sample[0].cameras)} x {front.shape[1]}x{front.shape[0]}",
        source_image="{}x{}".format(*_source_image_size(dataset)),
    )
    if workers > 0:
        results[f"loader_{workers}_workers_fps"] = loader_frames_per_s(dataset, indices, workers)
    results["all_fps"] = 1e3 / results["all_ms"]
    return results


def _source_image_size(dataset: NuScenesFrames) -> Tuple[int, int]:
    width, height = dataset.table.image_sizes[dataset.table.image_sizes[:, 0] > 0][0]
    return int(width), int(height)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="real,synthetic", help="comma-separated: real, synthetic")
    parser.add_argument("--synthetic-root", default=str(DATA_ROOT / "synthetic"))
    parser.add_argument("--synthetic-version", default="v1.0-synth")
    parser.add_argument("--image-size", type=parse_image_size, default=None, help="resize images to WxH")
    parser.add_argument("--max-frames", type=positive_int, default=40)
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--workers", type=non_negative_int, default=2, help="also time a DataLoader epoch (0: skip)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)

    runs = []
    with tempfile.TemporaryDirectory() as cache_dir:
        chosen = args.datasets.split(",")
        if "real" in chosen and (REAL_FIXTURE_ROOT / "v1.0-mini").is_dir():
            runs.append(measure("real fixture", str(REAL_FIXTURE_ROOT), "v1.0-mini", "mini_val", args.image_size,
                                args.max_frames, args.repeats, args.workers, cache_dir))
        if "synthetic" in chosen and os.path.isdir(os.path.join(args.synthetic_root, args.synthetic_version)):
            runs.append(measure("synthetic", args.synthetic_root, args.synthetic_version, "all", args.image_size,
                                args.max_frames, args.repeats, args.workers, cache_dir))
    if not runs:
        raise SystemExit(f"no dataset found among {args.datasets}: real fixture at {REAL_FIXTURE_ROOT}, "
                         f"synthetic at {args.synthetic_root}")
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print("| dataset | frames | LiDAR pts (sweeps) | radar pts (sweeps) | images (source) | LiDAR ms | radar ms "
          "| cameras ms | all ms | frames/s | DataLoader frames/s |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in runs:
        loader = next((f"{v:.1f} ({k.split('_')[1]} workers)" for k, v in r.items() if k.startswith("loader_")), "-")
        print(f"| {r['dataset']} | {r['frames']} | {r['lidar_points']} ({r['lidar_sweeps']}) | {r['radar_points']} "
              f"({r['radar_sweeps']}) | {r['images']} ({r['source_image']}) | {r['lidar_ms']:.1f} | "
              f"{r['radar_ms']:.1f} | {r['camera_ms']:.1f} | {r['all_ms']:.1f} | {r['all_fps']:.1f} | {loader} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=2)


if __name__ == "__main__":
    main()
