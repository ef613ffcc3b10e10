"""Structured channel pruning (perception.deploy.prune): the inner channels of the --scope's modules (all: the
encoders, fuser, decoder and head; decoder_head: those two), L1 group-norm importance, the same fraction of every
prunable layer, at each --ratio (the fraction of the scope's dense MACs removed). Writes per ratio
OUT/ratio_<R>/config.py (the config with the pruned widths) and model.pth (a plain checkpoint: load_detector /
torch.load weights_only), and OUT/prune.json: the scope, MACs per dense module on one real frame of --split (all
its cameras and pillars), parameters, and the detector's latency (p50 / p99 of detect on that frame, the models
timed interleaved). Ratio 0 (the unpruned model) is always a row.

After fine-tuning (tools/finetune.py OUT/ratio_<R>/config.py OUT/ratio_<R>/model.pth --method full --export
OUT/ratio_<R>/finetuned.pth) and evaluation (tools/test.py ... --out OUT/ratio_<R>/eval), ``--report OUT`` reads
each row's nd_score from OUT/ratio_<R>/eval/metrics.json and writes OUT/pruning.md (NDS against MACs and latency)
and OUT/pruning.png."""
from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from perception.cli import (add_data_options, add_debug_option, check_output_path, config_data, positive_int,
                            resolve_config, resolve_input_paths, tool_main)
from perception.deploy.prune import DEFAULT_SCOPE, SCOPES
from perception.eval.runner import METRICS_FILE
from perception.jsonfile import read_json
from perception.plotting import pyplot

PRUNE_REPORT = "prune.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="model config (mmengine)")
    parser.add_argument("checkpoint", nargs="?", help="trained weights (a shipped checkpoint)")
    parser.add_argument("--ratio", type=float, action="append", default=[],
                        help="fraction of the scope's dense MACs to remove, in [0, 1) (repeatable)")
    parser.add_argument("--scope", choices=list(SCOPES), default=DEFAULT_SCOPE,
                        help="the modules pruned: all dense ones (encoders, fuser, decoder, head) or only the decoder "
                             "and head (default: %(default)s)")
    parser.add_argument("--out", help="folder of the pruned models and prune.json")
    parser.add_argument("--split", help="the frame the MACs and latency are measured on comes from this split "
                                        "(default: the config's validation split)")
    parser.add_argument("--latency-iters", type=positive_int, default=20, help="timed detect calls per model")
    add_data_options(parser)
    parser.add_argument("--report", metavar="OUT",
                        help="instead: the NDS / MACs / latency table and plot of an OUT folder")
    add_debug_option(parser)
    return parser


PRUNED_MODEL_FILE = "model.pth"
"""A ratio's pruned checkpoint, in its ratio_dir."""


def ratio_dir(out: Path, ratio: float) -> Path:
    """OUT/ratio_<R>: one ratio's config, PRUNED_MODEL_FILE and what follows (module docstring)."""
    return out / f"ratio_{ratio:g}"


def _holds(folder: Path, paths: Sequence[str]) -> bool:
    """Whether one of ``paths`` lies in ``folder`` (or below it), links resolved."""
    return any(Path(os.path.realpath(folder)) in Path(os.path.realpath(path)).parents for path in paths)


def config_chain(path: str) -> List[str]:
    """The config ``path`` and every file it inherits from (its ``_base_`` entries, theirs, ...), links resolved:
    what a pruned config, which inherits CONFIG, needs to stay where it is."""
    chain: List[str] = []
    pending = [os.path.realpath(path)]
    while pending:
        current = pending.pop()
        if current in chain:
            continue
        chain.append(current)
        for node in ast.parse(Path(current).read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "_base_" for target in node.targets):
                bases = ast.literal_eval(node.value)
                pending += [os.path.realpath(os.path.join(os.path.dirname(current), base))
                            for base in ([bases] if isinstance(bases, str) else bases)]
    return chain


def time_detectors(detectors: Dict[str, Any], frames: List[Any], iterations: int) -> Dict[str, Dict[str, float]]:
    """name -> latency_summary of detect(frames) [ms], the detectors called round-robin (one warm-up call each)."""
    from perception.timing import latency_summary

    samples: Dict[str, List[float]] = {name: [] for name in detectors}
    for iteration in range(iterations + 1):
        for name, detector in detectors.items():
            start = time.perf_counter()
            detector.detect(frames)
            if iteration:
                samples[name].append((time.perf_counter() - start) * 1000.0)
    return {name: latency_summary(values) for name, values in samples.items()}


def write_pruned_config(path: Path, base_config: str, widths: Dict[str, dict]) -> None:
    """A config that inherits ``base_config`` (by its path relative to ``path``'s folder) and sets the pruned
    ``widths`` (perception.deploy.prune.pruned_widths): composition, so the base's order of the encoders (the
    fuser's channel order) and everything else stay as they are."""
    base = os.path.relpath(os.path.abspath(base_config), os.path.abspath(path.parent))
    entries = ", ".join(f"{module}=dict({', '.join(f'{key}={value!r}' for key, value in values.items())})"
                        for module, values in widths.items())
    path.write_text(f"# Pruned by tools/prune.py: {base_config} with these widths.\n_base_ = [{base!r}]\n"
                    f"model = dict({entries})\n")


def prune(args: argparse.Namespace, parser: argparse.ArgumentParser) -> List[Dict[str, Any]]:
    """Prunes at each ratio, writes the models and prune.json; its rows. An earlier run's ratio folders in --out
    that this run does not write are removed (prune.json and --report read this run's only), but for one holding
    CHECKPOINT, CONFIG or a config it inherits from (a pruned model pruned again; one this run would write over is
    refused first); one it writes again keeps what else it holds (a fine-tuning, an eval/ that --report then shows
    as older than the model)."""
    import torch
    from mmengine.config import Config

    from perception.datasets.loader import NuScenesFrames
    from perception.deploy.prune import dense_macs, in_scope, prune_detector, pruned_widths
    from perception.engine.checkpoint import save_checkpoint
    from perception.models import load_detector, model_inputs

    if not (args.config and args.checkpoint and args.out and args.ratio):
        parser.error("give CONFIG CHECKPOINT --ratio R [--ratio R2 ...] --out DIR (or --report DIR)")
    check_output_path(parser, "--out", args.out)
    for ratio in args.ratio:
        if not 0.0 <= ratio < 1.0:
            parser.error(f"--ratio {ratio}: a fraction in [0, 1)")
    config_path = resolve_config(args.config)
    resolve_input_paths(args, "checkpoint")
    ratios = sorted({0.0, *args.ratio})
    out = Path(args.out)
    protected = [*config_chain(config_path), args.checkpoint]
    for ratio in ratios:
        if _holds(ratio_dir(out, ratio), protected):
            parser.error(f"--out {args.out}: its {ratio_dir(out, ratio).name} holds CONFIG (or a config it inherits "
                         f"from) or CHECKPOINT, which this run would write over; prune into another folder")
    config = Config.fromfile(config_path)
    dataroot, version = config_data(parser, args, config)
    split = args.split or config.val_dataloader.dataset.split
    detector = load_detector(config_path, args.checkpoint)
    inputs = model_inputs(config)
    try:
        frame = NuScenesFrames(dataroot, version, split, inputs.lidar_sweeps, inputs.radar_sweeps,
                               image_size=inputs.image_size, progress=False)[0]
    except ValueError as error:
        raise ValueError(f"the frame to measure on: {error}") from error
    batch = detector.batch_from_frames([frame])
    models, rows = {}, []
    for ratio in ratios:
        pruned = prune_detector(detector, batch, ratio, args.scope)
        folder = ratio_dir(out, ratio)
        folder.mkdir(parents=True, exist_ok=True)
        widths = pruned_widths(pruned)
        write_pruned_config(folder / "config.py", config_path, widths)
        state_dict = {name: tensor.detach().clone() for name, tensor in pruned.state_dict().items()}
        save_checkpoint(state_dict, str(folder / PRUNED_MODEL_FILE),
                        {"pruned_from": str(args.checkpoint), "config": str(args.config), "pruning_ratio": ratio,
                         "pruning_scope": args.scope, "widths": widths}, inputs)
        macs = dense_macs(pruned, batch)
        models[f"{ratio:g}"] = pruned
        rows.append({"ratio": ratio, "config": str(folder / "config.py"), "checkpoint": str(folder / PRUNED_MODEL_FILE),
                     "widths": widths, "macs": macs, "macs_total": sum(macs.values()),
                     "macs_pruned_modules": sum(value for path, value in macs.items()
                                                 if in_scope(path, args.scope)),
                     "parameters": sum(p.numel() for p in pruned.parameters())})
    with torch.no_grad():
        latency = time_detectors(models, [frame], args.latency_iters)
    for row in rows:
        row["macs_fraction"] = row["macs_total"] / rows[0]["macs_total"]
        row["detector_ms"] = latency[f"{row['ratio']:g}"]
    report = {"config": args.config, "checkpoint": args.checkpoint, "split": split, "frame": frame.sample_token,
              "scope": args.scope, "pruned_modules": list(SCOPES[args.scope]),
              "macs_unit": "multiply-accumulates per frame (PyTorch's flop_counter)",
              "rows": rows}
    written = {ratio_dir(out, row["ratio"]) for row in rows}
    for folder in out.glob("ratio_*"):
        if folder.is_dir() and folder not in written and not _holds(folder, protected):
            shutil.rmtree(folder)  # (one holding CONFIG or a config it inherits from stays: the new configs need it)
    (out / PRUNE_REPORT).write_text(json.dumps(report, indent=2))
    for row in rows:
        print(f"ratio {row['ratio']:g}: {row['macs_total'] / 1e6:.1f} M MACs ({row['macs_fraction']:.0%}), "
              f"{row['parameters']} parameters, detector p50 {row['detector_ms']['p50_ms']:.1f} ms -> "
              f"{row['checkpoint']}")
    return rows


def report(out: Path) -> List[Dict[str, Any]]:
    """pruning.md and pruning.png of OUT from prune.json and each ratio's eval/metrics.json (a row without one, or
    with one older than the ratio's model.pth, an evaluation of a model pruned before, shows NDS as not measured)."""
    plt = pyplot()

    file = out / PRUNE_REPORT
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no pruning run here (run tools/prune.py CONFIG CHECKPOINT --out {out})")
    pruning = read_json(str(file))
    rows = pruning["rows"]
    if any("macs_total" not in row for row in rows):
        raise ValueError(f"{file}: rows without macs_total (a prune.json written before its counts were named MACs, "
                         f"flops_*): run tools/prune.py again into {out}")
    scope = pruning.get("scope", "decoder_head")  # a prune.json of before --scope pruned those two
    lines = [f"Pruning scope: {scope} ({', '.join(SCOPES[scope])})", "",
             "| ratio | MACs (M) | MACs / unpruned | parameters | detector p50 ms | detector p99 ms | NDS |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        folder = ratio_dir(out, row["ratio"])
        metrics, model = folder / "eval" / METRICS_FILE, folder / PRUNED_MODEL_FILE
        stale = metrics.is_file() and model.is_file() and metrics.stat().st_mtime < model.stat().st_mtime
        row["nds"] = read_json(str(metrics))["nd_score"] if metrics.is_file() and not stale else None
        nds = ("not measured (eval/ older than model.pth)" if stale else "not measured" if row["nds"] is None
               else f"{row['nds']:.4f}")
        lines.append(f"| {row['ratio']:g} | {row['macs_total'] / 1e6:.1f} | {row['macs_fraction']:.2f} | "
                     f"{row['parameters']} | {row['detector_ms']['p50_ms']:.1f} | {row['detector_ms']['p99_ms']:.1f} "
                     f"| {nds} |")
    (out / "pruning.md").write_text("\n".join(lines) + "\n")
    measured = [row for row in rows if row["nds"] is not None]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for axis, key, label in ((axes[0], "macs_total", "MACs [M]"), (axes[1], "detector_ms", "detector p50 [ms]")):
        values = [row[key] / 1e6 if key == "macs_total" else row[key]["p50_ms"] for row in measured]
        axis.plot(values, [row["nds"] for row in measured], "o-")
        for value, row in zip(values, measured):
            axis.annotate(f"{row['ratio']:g}", (value, row["nds"]))
        axis.set_xlabel(label)
        axis.set_ylabel("NDS")
        axis.grid(True, alpha=0.3)
    figure.suptitle("pruning ratio: NDS against MACs and latency")
    figure.tight_layout()
    figure.savefig(out / "pruning.png", dpi=120)
    plt.close(figure)
    print("\n".join(lines))
    return rows


@tool_main
def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.report:
        return report(Path(args.report))
    return prune(args, parser)


if __name__ == "__main__":
    main()
