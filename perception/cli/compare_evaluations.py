"""How far apart evaluations on one split are, given how few keyframes the split holds: each folder's predictions
(``results_nusc.json``, as tools/test.py writes it) scored again by nuscenes-devkit's DetectionEval on keyframes
drawn with replacement, every folder on the same draws (perception.eval.resampling, which says what the interval
leaves out). Writes ``resampled.md``, ``resampled.json`` and ``resampled.png`` under ``--out``: per evaluation its
NDS and the central interval of its resampled NDS, and its difference from the first evaluation with that
difference's interval and the share of draws in which it is not below the first.

    python tools/compare_evaluations.py outputs/finetune_comparison/full/evaluation \\
        outputs/finetune_comparison/adapter_r8/evaluation --dataroot ../shared/fixtures/nuscenes-scene0916 \\
        --version v1.0-mini --split real_val --out outputs/finetune_comparison/resampled
"""
from __future__ import annotations

import argparse
import json
import os
from typing import List, Optional, Sequence

from perception.cli import (add_debug_option, check_data_root, check_evaluated_split, check_output_path,
                            check_row_names, positive_int, resolve_input_paths, seed, tool_command, tool_main)
from perception.datasets.records import open_nuscenes
from perception.datasets.splits import split_sample_tokens
from perception.eval.report import plot_resampled, resampled_caption, resampled_table
from perception.eval.resampling import INTERVAL_LEVEL, resampled_comparison
from perception.eval.runner import RESULTS_FILE


@tool_main
def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="evaluation folders of tools/test.py on one split; the first is "
                                                   "the reference of the differences")
    parser.add_argument("--names", nargs="+", help="a name per folder (default: the folders' paths)")
    parser.add_argument("--dataroot", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--split", required=True, help="the split every folder was evaluated on")
    parser.add_argument("--draws", type=positive_int, default=1000, help="keyframe draws (default 1000)")
    parser.add_argument("--level", type=float, default=INTERVAL_LEVEL,
                        help=f"central share of the draws an interval spans (default {INTERVAL_LEVEL})")
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--out", required=True)
    add_debug_option(parser)
    args = parser.parse_args(argv)
    resolve_input_paths(args, "folders", "dataroot")
    check_data_root(parser, args.dataroot, args.version)
    check_evaluated_split(parser, "--split", args.split)
    check_output_path(parser, "--out", args.out)
    if not 0.0 < args.level < 1.0:
        parser.error(f"--level {args.level}: a share of the draws, in (0, 1)")
    names = args.names or list(args.folders)
    check_row_names(parser, names, len(args.folders))
    nusc = open_nuscenes(args.dataroot, args.version)
    rows = resampled_comparison(nusc, args.split, [os.path.join(folder, RESULTS_FILE) for folder in args.folders],
                                names, args.draws, args.level, args.seed, progress=True)
    caption = resampled_caption(args.split, args.version, len(split_sample_tokens(nusc, args.split)), args.draws,
                                args.seed)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "resampled.md"), "w") as handle:
        handle.write(resampled_table(rows, caption, args.level))
    plot_resampled(rows, caption, args.level, os.path.join(args.out, "resampled.png"))
    with open(os.path.join(args.out, "resampled.json"), "w") as handle:
        json.dump(dict(caption=caption, command=tool_command("compare_evaluations", argv or []), level=args.level,
                       rows=rows), handle, indent=2)
    print(resampled_table(rows, caption, args.level))
    return rows


if __name__ == "__main__":
    main()
