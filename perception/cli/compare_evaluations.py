"""How far apart evaluations on one split are, given how few keyframes the split holds: each folder's predictions
(``results_nusc.json``, as tools/test.py writes it) scored again by nuscenes-devkit's DetectionEval on keyframes
drawn with replacement, every folder on the same draws (perception.eval.resampling, which says what the interval
leaves out). Writes ``resampled.md`` and ``resampled.json`` under ``--out``: per evaluation its NDS and the central
interval of its resampled NDS, and its difference from the first evaluation with that difference's interval and
the share of draws in which it is not below the first.

    python tools/compare_evaluations.py outputs/finetune_comparison/full/evaluation \\
        outputs/finetune_comparison/adapter_r8/evaluation --dataroot ../shared/fixtures/nuscenes-scene0916 \\
        --version v1.0-mini --split real_val --out outputs/finetune_comparison/resampled
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from typing import List, Optional, Sequence

import numpy as np
from nuscenes.nuscenes import NuScenes

from perception.cli import add_debug_option, resolve_path, tool_command, tool_main
from perception.datasets.splits import split_sample_tokens
from perception.eval.detection import run_detection_eval
from perception.eval.report import format_number, markdown_table
from perception.eval.resampling import keyframe_draws, percentile_interval, resampled_nd_scores

RESULTS_FILE = "results_nusc.json"


def checked_results(folder: str, split_tokens: Sequence[str], split: str) -> str:
    """The folder's submission file; FileNotFoundError / ValueError naming it when it is absent or does not
    predict exactly the split's keyframes (the devkit would stop on an assertion)."""
    path = os.path.join(folder, RESULTS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file (give a folder tools/test.py wrote with --out)")
    with open(path) as handle:
        predicted = set(json.load(handle)["results"])
    if predicted != set(split_tokens):
        raise ValueError(f"{path}: predicts {len(predicted)} keyframes, {len(predicted - set(split_tokens))} of them "
                         f"outside split {split!r} of {len(split_tokens)} (evaluate every folder on that split)")
    return path


def comparison_rows(names: Sequence[str], nd_scores: Sequence[float], resampled: np.ndarray,
                    level: float) -> List[dict]:
    """Per evaluation: NDS, its resampled interval, and (from the second on) the difference from the first, the
    difference's interval on the paired draws and the share of draws in which it is not below the first."""
    rows = []
    for index, name in enumerate(names):
        entry = dict(name=name, NDS=nd_scores[index], NDS_interval=percentile_interval(resampled[index], level))
        if index:
            difference = resampled[index] - resampled[0]
            entry.update(difference=nd_scores[index] - nd_scores[0],
                         difference_interval=percentile_interval(difference, level),
                         share_not_below_first=float(np.mean(difference >= 0.0)))
        rows.append(entry)
    return rows


def rows_markdown(rows: Sequence[dict], caption: str, level: float) -> str:
    """The caption, then a line per evaluation; the first, the reference, has no difference columns."""
    def interval(values: Sequence[float]) -> str:
        return " to ".join(format_number(value) for value in values)

    lines = [[row["name"], format_number(row["NDS"]), interval(row["NDS_interval"])]
             + ([format_number(row["difference"]), interval(row["difference_interval"]),
                 format_number(row["share_not_below_first"], 2)] if "difference" in row else ["", "", ""])
             for row in rows]
    percent = f"{100 * level:g} %"
    header = ["evaluation", "NDS", f"NDS, central {percent} of draws", f"NDS - {rows[0]['name']}",
              f"difference, central {percent}", "share of draws not below it"]
    return f"{caption}\n\n{markdown_table(header, lines)}\n"


@tool_main
def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="evaluation folders of tools/test.py on one split; the first is "
                                                   "the reference of the differences")
    parser.add_argument("--names", nargs="+", help="a name per folder (default: the folders' paths)")
    parser.add_argument("--dataroot", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--split", required=True, help="the split every folder was evaluated on")
    parser.add_argument("--draws", type=int, default=1000, help="keyframe draws (default 1000)")
    parser.add_argument("--level", type=float, default=0.9, help="central share of the draws an interval spans")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    add_debug_option(parser)
    args = parser.parse_args(argv)
    names = args.names or list(args.folders)
    if len(names) != len(args.folders):
        raise ValueError(f"--names gives {len(names)} names for {len(args.folders)} folders")
    percentile_interval(np.zeros(1), args.level)  # a level outside (0, 1) stops here, before the evaluations
    dataroot = resolve_path(args.dataroot)
    nusc = NuScenes(version=args.version, dataroot=dataroot, verbose=False)
    tokens = split_sample_tokens(nusc, args.split)
    paths = [checked_results(folder, tokens, args.split) for folder in args.folders]
    evaluations = []
    with tempfile.TemporaryDirectory() as scratch:  # the devkit writes its summary files; the folders stay as they are
        for index, path in enumerate(paths):
            output = os.path.join(scratch, str(index))
            os.makedirs(output)
            evaluations.append(run_detection_eval(nusc, path, args.split, output))
    draws = keyframe_draws(len(tokens), args.draws, args.seed)
    resampled = resampled_nd_scores(evaluations, draws, progress=True)
    rows = comparison_rows(names, [evaluation.metrics.nd_score for evaluation in evaluations], resampled, args.level)
    caption = (f"NDS on {args.split} ({args.version}, {len(tokens)} keyframes) and on {args.draws} draws of as many "
               f"keyframes with replacement (seed {args.seed}); consecutive keyframes of a drive are drawn as if "
               f"independent, so the intervals are lower bounds on the uncertainty.")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "resampled.md"), "w") as handle:
        handle.write(rows_markdown(rows, caption, args.level))
    with open(os.path.join(args.out, "resampled.json"), "w") as handle:
        json.dump(dict(caption=caption, command=tool_command("compare_evaluations", argv or []), level=args.level,
                       rows=rows), handle, indent=2)
    print(rows_markdown(rows, caption, args.level))
    return rows


if __name__ == "__main__":
    main()
