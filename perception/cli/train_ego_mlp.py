"""Train the ego-state-only planner (AD-MLP-like baseline) on a split's keyframes and save its checkpoint.

    python tools/train_ego_mlp.py --dataroot datasets/synthetic --version v1.0-synth --split synth_train \
        --out work_dirs/ego_mlp.pth [--epochs 400]

Several worlds: repeat --dataroot and --split, paired in order (the same version for all).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

import torch

from perception.cli import (add_debug_option, check_data_root, check_output_path, positive_int, resolve_input_paths,
                            seed, tool_command, tool_main)
from perception.datasets.records import open_nuscenes
from perception.datasets.splits import split_sample_tokens
from perception.engine.ego_mlp import collect_examples, train_ego_mlp
from perception.models.ego_mlp import save_ego_mlp
from perception.models.planning_types import PlanningTargets


@tool_main
def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataroot", required=True, action="append", help="repeat for several worlds")
    parser.add_argument("--version", default="v1.0-synth", help="of every data root (default: %(default)s)")
    parser.add_argument("--split", action="append", help="one per --dataroot, in order (default: synth_train)")
    parser.add_argument("--out", required=True, help="checkpoint path (.pth)")
    parser.add_argument("--epochs", type=positive_int, default=400, help="passes over the examples (>= 1)")
    parser.add_argument("--seed", type=seed, default=0)
    add_debug_option(parser)
    args = parser.parse_args(argv)
    resolve_input_paths(args, "dataroot")
    for dataroot in args.dataroot:
        check_data_root(parser, dataroot, args.version)
    check_output_path(parser, "--out", args.out, folder=False)
    splits = args.split or ["synth_train"] * len(args.dataroot)
    if len(splits) != len(args.dataroot):
        parser.error(f"{len(args.dataroot)} --dataroot but {len(splits)} --split: give one split per data root")
    examples = []
    for dataroot, split in zip(args.dataroot, splits):
        nusc = open_nuscenes(dataroot, args.version)
        examples.append(collect_examples(nusc, split_sample_tokens(nusc, split)))
    features = torch.cat([world_features for world_features, _ in examples])
    targets = PlanningTargets.concatenate([world_targets for _, world_targets in examples])
    data = ", ".join(f"{dataroot}:{split}" for dataroot, split in zip(args.dataroot, splits))
    if not bool(targets.trajectory_valid.any()):
        raise ValueError(f"{data}: {len(features)} keyframes, none with a logged future: nothing to train on")
    if not int((targets.maneuver >= 0).sum()):
        print(f"warning: {data}: no keyframe with a maneuver label (3 s of logged drive after it): the maneuver head "
              f"learns nothing, only the trajectory", file=sys.stderr)
    model, losses = train_ego_mlp(features, targets, epochs=args.epochs, seed=args.seed)
    summary = dict(data=[f"{dataroot}:{split}" for dataroot, split in zip(args.dataroot, splits)],
                   version=args.version, frames=len(features),
                   labelled=int((targets.maneuver >= 0).sum()), epochs=args.epochs, final_losses=losses,
                   command=tool_command("train_ego_mlp", argv))
    save_ego_mlp(model, args.out, summary)  # an output: where it is named, not under the repository
    print(json.dumps(summary, indent=1))
    print(f"wrote {os.path.abspath(args.out)}")
    return summary


if __name__ == "__main__":
    main()
