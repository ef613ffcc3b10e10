"""Train the ego-state-only planner (AD-MLP-like baseline) on a split's keyframes and save its checkpoint.

    python tools/train_ego_mlp.py --dataroot datasets/synthetic --version v1.0-synth --split synth_train \
        --out work_dirs/ego_mlp.pth [--epochs 400]
"""
from __future__ import annotations

import argparse
import json
from typing import Optional, Sequence

from nuscenes.nuscenes import NuScenes

from perception.cli import add_debug_option, resolve_path, tool_main
from perception.datasets.splits import split_sample_tokens
from perception.engine.ego_mlp import collect_examples, train_ego_mlp
from perception.models.ego_mlp import save_ego_mlp


@tool_main
def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataroot", required=True)
    parser.add_argument("--version", default="v1.0-synth")
    parser.add_argument("--split", default="synth_train")
    parser.add_argument("--out", required=True, help="checkpoint path (.pth)")
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    add_debug_option(parser)
    args = parser.parse_args(argv)
    nusc = NuScenes(version=args.version, dataroot=resolve_path(args.dataroot), verbose=False)
    tokens = split_sample_tokens(nusc, args.split)
    features, targets = collect_examples(nusc, tokens)
    model, losses = train_ego_mlp(features, targets, epochs=args.epochs, seed=args.seed)
    summary = dict(split=args.split, version=args.version, frames=len(tokens),
                   labelled=int((targets.maneuver >= 0).sum()), epochs=args.epochs, final_losses=losses)
    save_ego_mlp(model, resolve_path(args.out), summary)
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
