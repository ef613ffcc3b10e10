"""Share of LiDAR points the fog corruption (perception.datasets.corruptions, ``lidar_fog``) moves at each severity,
on keyframes read through the project's loader (1 sweep, no cameras): how heavy the fog is on a given data set.

    python benchmarks/fog_moved_points.py --dataroot ../shared/fixtures/nuscenes-scene0916 --version v1.0-mini \
        --split real_finetune --split real_val
"""
from __future__ import annotations

import argparse

import numpy as np

from perception.datasets.corruptions import corrupt
from perception.datasets.loader import NuScenesFrames

MOVED_M = 1e-3
"""A point counts as moved when the corruption displaced it by more than this [m]."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataroot", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--split", action="append", required=True, help="repeatable")
    parser.add_argument("--seed", type=int, default=0, help="corruption seed")
    args = parser.parse_args()
    moved = {severity: 0 for severity in (1, 2, 3)}
    total = frames = 0
    nusc = None
    for split in args.split:
        dataset = NuScenesFrames(args.dataroot, args.version, split, lidar_sweeps=1, radar_sweeps=1, cameras=False,
                                 nusc=nusc, progress=False)
        nusc = dataset.nusc
        for index in range(len(dataset)):
            frame = dataset[index]
            points = frame.lidar.points[:, :3]
            total += len(points)
            frames += 1
            for severity in moved:
                fogged = corrupt(frame, "lidar_fog", severity, args.seed).lidar.points[:, :3]
                moved[severity] += int((np.linalg.norm(fogged - points, axis=1) > MOVED_M).sum())
    print(f"{frames} keyframes, {total} points; lidar_fog moves "
          + " / ".join(f"{100.0 * moved[s] / total:.1f} %" for s in moved) + " at severities 1 / 2 / 3")


if __name__ == "__main__":
    main()
