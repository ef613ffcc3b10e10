"""Models' robustness benchmarks side by side (tools/robustness.py's robustness.json, one per model): clean NDS,
mRA, worst corruption, worst cell, NDS with the LiDAR missing, as one Markdown table."""
from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

from perception.cli import add_debug_option, check_row_names, resolve_input_paths, tool_main
from perception.eval.robustness import check_summary, robustness_comparison
from perception.jsonfile import read_json


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("summaries", nargs="+", metavar="ROBUSTNESS_JSON", help="robustness.json of each model")
    parser.add_argument("--names", nargs="+", help="a row name per file (default: each file's folder name)")
    parser.add_argument("--out", help="write the table here as well (Markdown)")
    add_debug_option(parser)
    return parser


def run(argv: Optional[Sequence[str]] = None) -> str:
    """Parses ``argv``; prints (and with --out writes) the table and returns it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    resolve_input_paths(args, "summaries")
    names = args.names or [os.path.basename(os.path.dirname(os.path.abspath(path))) for path in args.summaries]
    check_row_names(parser, names, len(args.summaries))
    summaries = {}
    for name, path in zip(names, args.summaries):
        summaries[name] = read_json(path)  # a missing file: FileNotFoundError naming it, reported as one line
        check_summary(summaries[name], path)
    table = robustness_comparison(summaries)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(table + "\n")
    print(table)
    return table


main = tool_main(run)


if __name__ == "__main__":
    main()
