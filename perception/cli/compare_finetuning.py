"""Compare ways of adapting a trained detector to a new domain, on the same frames with the same budget: zero-shot,
training from scratch on the fine-tuning split, and fine-tuning with each method (full, head, LoRA at two ranks,
adapter); each model evaluated on the validation split with the official metrics. Writes ``table.md``, ``table.json``
(NDS, mAP, AP of cars, pedestrians, trucks and buses, the TP errors, trained parameters, iterations trained (fewer
than ``--max-iters`` where ``--time-budget-min`` stopped the run), training minutes) and ``table.png`` (NDS and car
AP against the share of parameters trained), rewritten as each row is finished, and every run's folder (work dir,
exported model, evaluation, ``row.json``) under ``--out``. Started again with the same arguments it resumes: a run
whose ``row.json`` holds those settings is read, not run again. Once every row is in, each scored model's NDS is set
against full fine-tuning's on ``--draws`` draws of the validation keyframes with replacement
(perception.eval.resampling): a second table in ``table.md`` and ``resampled`` in ``table.json``, so that a
difference smaller than the keyframes resolve shows as such. With ``--seeds S ...`` it writes one such table a
training seed (``seed_S/`` under ``--out``) and, across them, ``seeds.md`` / ``seeds.json``: each row's NDS and car
AP at every seed, their means, and its NDS against full fine-tuning's and scratch's at the same seed (on a few
keyframes a seed moves NDS about as much as the methods differ).

    python tools/compare_finetuning.py configs/fusion_tiny_real.py checkpoints/fusion_tiny.pth \\
        --dataroot ../shared/fixtures/nuscenes-scene0916 --version v1.0-mini --split real_finetune \\
        --val-split real_val --max-iters 6000 --time-budget-min 20 --learning-rate adapter=0.01 \\
        --out outputs/finetune_comparison
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from mmengine.config import Config

from perception.cli import (add_debug_option, check_data_root, check_output_path, non_negative_int, positive_float,
                            positive_int, resolve_config, resolve_input_paths, seed, tool_command, tool_main)
from perception.cli import finetune as finetune_tool
from perception.cli import test as test_tool
from perception.cli import train as train_tool
from perception.datasets.records import open_nuscenes
from perception.datasets.splits import split_sample_tokens
from perception.eval.detection import TP_ERROR_NAMES, NoDetectionsError
from perception.eval.report import format_number, markdown_table, plot_resampled, resampled_caption, resampled_table
from perception.eval.resampling import INTERVAL_LEVEL, resampled_comparison
from perception.eval.runner import RESULTS_FILE
from perception.jsonfile import read_json, write_json_atomic
from perception.models import build_detector, checkpoint_meta
from perception.models.finetune import (METHODS, FineTuningSpec, ParameterCount, count_parameters,
                                         prepare_fine_tuning)
from perception.plotting import pyplot

TP_ERRORS = tuple(TP_ERROR_NAMES.values())
CLASSES = ("car", "pedestrian", "truck", "bus")
"""The classes with an AP column: the devkit's most common and, on a split of few objects, the heavy vehicles that
move NDS most per object (benchmarks/RESULTS.md, "What decides NDS on real_val")."""
AP_KEYS = tuple(f"{name}_AP" for name in CLASSES)
"""Their keys in a row."""
COLUMNS = ("NDS", "mAP", *(f"{name} AP" for name in CLASSES)) + TP_ERRORS + ("trained parameters", "iterations",
                                                                           "training minutes")
TRAINED_FILE = "trained.json"
"""In a row's folder once its model is exported: the training minutes (a start that resumes the row evaluates that
model again; it does not train it past where its budget stopped it)."""


def runs(low_rank: int, high_rank: int, adapter_rank: int) -> List[Tuple[str, str, Optional[int]]]:
    """(name, method, rank or None) of each fine-tuned row; zero-shot and scratch are run apart."""
    return [("full", "full", None), ("head", "head", None), (f"lora r{low_rank}", "lora", low_rank),
            (f"lora r{high_rank}", "lora", high_rank), (f"adapter r{adapter_rank}", "adapter", adapter_rank)]


def method_learning_rate(text: str) -> Tuple[str, float]:
    """One --learning-rate value, METHOD=RATE with METHOD one of METHODS, as (method, rate)."""
    method, _, rate = text.partition("=")
    if method not in METHODS:
        raise argparse.ArgumentTypeError(f"{text!r}: the method must be one of {', '.join(METHODS)}")
    try:
        value = float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the rate after '=' must be a number") from None
    if not value > 0.0:
        raise argparse.ArgumentTypeError(f"{text!r}: the rate must be above 0")
    return method, value


def class_ap(metrics: dict, name: str) -> Optional[float]:
    """The class's AP, None where the split has no ground truth of it (the devkit then reports AP 0)."""
    return metrics["class_ap"][name] if metrics["num_gt"][name] else None


def row(name: str, metrics: Optional[dict], parameters: Optional[ParameterCount], iterations: Optional[int],
        minutes: Optional[float]) -> dict:
    """One table row from an evaluation's metrics.json (None: not scored, every metric None), the parameters the
    run trained, its iterations and minutes. A metric that is not defined is None ('n/a' in the table)."""
    scores = dict.fromkeys(("NDS", "mAP", *AP_KEYS, *TP_ERRORS))
    if metrics is not None:
        scores = dict(NDS=metrics["nd_score"], mAP=metrics["mean_ap"],
                      **{key: class_ap(metrics, name) for key, name in zip(AP_KEYS, CLASSES)},
                      **{error: metrics["tp_errors"][error] for error in TP_ERRORS})
    return dict(name=name, **scores,
                trained_parameters=None if parameters is None else parameters.trained,
                total_parameters=None if parameters is None else parameters.total, iterations=iterations,
                training_minutes=None if minutes is None else round(minutes, 2))


def minutes_cell(entry: dict) -> str:
    """A row's training minutes; those of the last start only where it resumed a killed one."""
    if entry["training_minutes"] is None:
        return ""
    return f"{entry['training_minutes']:.1f}" + (" (resumed: since then)" if entry.get("resumed") else "")


def table_markdown(rows: Sequence[dict], caption: str) -> str:
    """The caption, then one line per row with COLUMNS."""
    lines = []
    for entry in rows:
        trained, total = entry["trained_parameters"], entry["total_parameters"]
        lines.append([entry["name"]]
                     + [format_number(entry[key]) for key in ("NDS", "mAP", *AP_KEYS, *TP_ERRORS)]
                     + ["0" if trained is None else f"{trained:,} ({ParameterCount(trained, total).percent:.1f} %)",
                        "" if entry["iterations"] is None else str(entry["iterations"]), minutes_cell(entry)])
    return f"{caption}\n\n{markdown_table(['model', *COLUMNS], lines)}\n"


def plot_comparison(rows: Sequence[dict], caption: str, path: str) -> None:
    """A PNG of the rows: NDS and car AP of each fine-tuned model against the share of the parameters it trained
    (labels above and below the points in turn, by share, so that neighbours' labels do not overlap), zero-shot and
    scratch as lines across (scratch trains them all); a row not scored is left out."""
    plt = pyplot()

    def share(entry: dict) -> float:
        return ParameterCount(entry["trained_parameters"], entry["total_parameters"]).percent

    baselines = [entry for entry in rows if entry["name"] in ("zero-shot", "scratch")]
    fine_tuned = sorted((entry for entry in rows if entry["name"] not in ("zero-shot", "scratch")), key=share)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    for axis, key, title in zip(axes, ("NDS", "car_AP"), ("NDS", "car AP")):
        for entry in baselines:
            if entry[key] is not None:
                axis.axhline(entry[key], linestyle=":" if entry["name"] == "zero-shot" else "--", color="grey")
                axis.annotate(entry["name"], (0.0, entry[key]), xycoords=("axes fraction", "data"),
                              textcoords="offset points", xytext=(4, 3), fontsize=8, color="grey")
        scored = [entry for entry in fine_tuned if entry[key] is not None]
        for position, entry in enumerate(scored):
            axis.plot(share(entry), entry[key], "o")
            axis.annotate(entry["name"], (share(entry), entry[key]), textcoords="offset points",
                          xytext=(5, 4 if position % 2 == 0 else -11), fontsize=8)
        axis.set_xscale("log")
        axis.set_xlim(0.5, 200.0)
        axis.set_xticks([1, 3, 10, 30, 100], ["1", "3", "10", "30", "100"])
        axis.set_xlabel("parameters trained [% of the network in use]")
        axis.set_ylabel(title)
        axis.grid(alpha=0.3)
    figure.suptitle(caption, fontsize=8, wrap=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def resampled_rows(rows: Sequence[dict], dataroot: str, args: argparse.Namespace) -> str:
    """Full fine-tuning first, then every other scored row, set against it on keyframe draws of the validation
    split (resampled_comparison); appended to table.md, written as ``resampled`` into table.json and drawn in
    resampled.png. Returns the markdown."""
    order = sorted((entry["name"] for entry in rows if entry["NDS"] is not None), key=lambda name: name != "full")
    if not order or order[0] != "full":
        return "No NDS intervals: full fine-tuning was not scored.\n"
    nusc = open_nuscenes(dataroot, args.version)
    paths = [os.path.join(args.out, name.replace(" ", "_"), "evaluation", RESULTS_FILE) for name in order]
    resampled = resampled_comparison(nusc, args.val_split, paths, order, args.draws, progress=True)
    caption = resampled_caption(args.val_split, args.version, len(split_sample_tokens(nusc, args.val_split)),
                                args.draws, seed=0)
    text = resampled_table(resampled, caption, INTERVAL_LEVEL)
    plot_resampled(resampled, caption, INTERVAL_LEVEL, os.path.join(args.out, "resampled.png"))
    with open(os.path.join(args.out, "table.md"), "a") as handle:
        handle.write("\n" + text)
    table_path = os.path.join(args.out, "table.json")
    table = read_json(table_path)
    table["resampled"] = resampled
    with open(table_path, "w") as handle:
        json.dump(table, handle, indent=2)
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="the model config for the new domain, e.g. configs/fusion_tiny_real.py")
    parser.add_argument("checkpoint", help="the trained detector to adapt (a shipped checkpoint)")
    parser.add_argument("--dataroot", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--split", required=True, help="the split every run trains on")
    parser.add_argument("--val-split", required=True, help="the split every model is evaluated on")
    parser.add_argument("--max-iters", type=positive_int, required=True, help="iterations of every training run")
    parser.add_argument("--time-budget-min", type=positive_float, help="and at most this many minutes each")
    parser.add_argument("--lora-ranks", type=positive_int, nargs=2, default=(4, 8), metavar=("LOW", "HIGH"))
    parser.add_argument("--adapter-rank", type=positive_int, default=8)
    parser.add_argument("--learning-rate", type=method_learning_rate, action="append", default=[],
                        metavar="METHOD=RATE",
                        help="the peak learning rate of one method's runs (every rank), e.g. adapter=0.01; repeat "
                             "for more methods (default: the config's, as for training from scratch)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=seed,
                       help="every training run's seed (randomness.seed: initialisation, batch order, "
                            "augmentation; default: the config's). On a few keyframes it moves NDS by about as much "
                            "as the methods differ (benchmarks/RESULTS.md)")
    seeds.add_argument("--seeds", type=seed, nargs="+", metavar="S",
                       help="the whole table once a seed, into OUT/seed_S, then seeds.md / seeds.json across them")
    parser.add_argument("--draws", type=non_negative_int, default=200,
                        help="keyframe draws for the NDS intervals against full fine-tuning (default 200, about 0.5 s "
                             "a draw per model on 12 real keyframes; 0: none)")
    parser.add_argument("--out", default="outputs/finetune_comparison")
    add_debug_option(parser)
    return parser


def table_caption(args: argparse.Namespace, config: str, seeds: Sequence[int]) -> str:
    """What the rows were trained on, with which budget, learning rates and training seeds (none: the config's)."""
    return (f"{os.path.relpath(args.checkpoint)} adapted with {os.path.relpath(config)} on {args.split}, "
            f"evaluated on {args.val_split} ({args.version}); every run {args.max_iters} iterations"
            + ("" if args.time_budget_min is None else f", at most {args.time_budget_min:g} min")
            + f"; learning rate {Config.fromfile(config).optim_wrapper.optimizer.lr:g}"
            + "".join(f", {method} {rate:g}" for method, rate in dict(args.learning_rate).items())
            + ("" if not seeds else f"; seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}") + ".")


def compare_table(args: argparse.Namespace, argv: Sequence[str]) -> List[dict]:
    """Every row of the table for ``args`` (one seed) into ``args.out``; returns the rows."""
    config, dataroot = resolve_config(args.config), args.dataroot
    os.makedirs(args.out, exist_ok=True)
    budget = ["--max-iters", str(args.max_iters), "--no-validate"]
    budget += [] if args.time_budget_min is None else ["--time-budget-min", str(args.time_budget_min)]

    def evaluate(name: str, model: str, *options: str) -> Optional[dict]:
        out = os.path.join(args.out, name.replace(" ", "_"), "evaluation")
        try:
            return test_tool.run([config, model, "--dataroot", dataroot, "--version", args.version, "--split",
                                  args.val_split, "--out", out, "--no-plots", *options])[0]
        except NoDetectionsError as error:  # a model that detects nothing: the devkit cannot score it
            print(f"{name}: not scored: {error}")
            return None

    def trained(name: str, train, resume: bool) -> Tuple[str, float]:
        """Trains row ``name`` (resuming its killed run's last checkpoint when ``resume``; when that run had exported
        its model, TRAINED_FILE says so and it is not trained further); its model and the minutes the start that
        finished it trained."""
        folder = os.path.join(args.out, name.replace(" ", "_"))
        model, marker = os.path.join(folder, "model.pth"), os.path.join(folder, TRAINED_FILE)
        if resume and os.path.exists(marker):
            print(f"{name}: trained by an earlier start ({model}), evaluated again")
            return model, read_json(marker)["minutes"]
        started = time.time()
        resuming = ["--resume"] if resume else []
        train(["--work-dir", os.path.join(folder, "work"), *budget, "--export", model, *resuming])
        minutes = (time.time() - started) / 60.0
        write_json_atomic(marker, dict(minutes=minutes), indent=2)
        return model, minutes

    for name, method, rank in runs(*args.lora_ranks, args.adapter_rank):  # every row's request before any run
        prepare_fine_tuning(build_detector(config), FineTuningSpec(method, rank))
    rates = dict(args.learning_rate)
    caption = table_caption(args, config, [] if args.seed is None else [args.seed])
    settings = dict(config=os.path.abspath(config), checkpoint=os.path.abspath(args.checkpoint),
                    dataroot=os.path.abspath(dataroot), version=args.version, split=args.split,
                    val_split=args.val_split, max_iters=args.max_iters, time_budget_min=args.time_budget_min,
                    seed=args.seed)
    seeded = [] if args.seed is None else [f"randomness.seed={args.seed}"]
    rows: List[dict] = []

    def add_row(name: str, run: Callable[[bool], dict], learning_rate: Optional[float] = None) -> None:
        """Appends run ``name``'s row, read from its row.json when it holds these settings and its learning rate
        (a finished run of an earlier start), else run and saved, resuming the training of an earlier start
        that was killed with the same settings (its started.json); then rewrites the tables."""
        folder = os.path.join(args.out, name.replace(" ", "_"))
        path, started_path = os.path.join(folder, "row.json"), os.path.join(folder, "started.json")
        saved = read_json(path) if os.path.exists(path) else None
        row_settings = dict(settings, learning_rate=learning_rate)
        if saved is not None and saved["settings"] == row_settings:
            print(f"{name}: finished by an earlier start ({path}), not run again")
            rows.append(saved["row"])
        else:
            resume = os.path.exists(started_path) and read_json(started_path) == row_settings
            os.makedirs(folder, exist_ok=True)
            # an earlier start's row (other settings) and, unless this run resumes, its trained model are not this
            # run's: neither may be read as this run's if it is stopped before it writes its own
            for stale in [path] + ([] if resume else [os.path.join(folder, TRAINED_FILE)]):
                if os.path.exists(stale):
                    os.remove(stale)
            write_json_atomic(started_path, row_settings, indent=2)
            entry = run(resume)
            rows.append(dict(entry, resumed=resume) if resume else entry)
            write_json_atomic(path, dict(settings=row_settings, row=rows[-1]), indent=2)
        with open(os.path.join(args.out, "table.md"), "w") as handle:
            handle.write(table_markdown(rows, caption))
        with open(os.path.join(args.out, "table.json"), "w") as handle:
            json.dump(dict(caption=caption, command=tool_command("compare_finetuning", argv),
                           rows=rows), handle, indent=2)
        plot_comparison(rows, caption, os.path.join(args.out, "table.png"))

    def scratch(resume: bool) -> dict:
        data = ["--dataroot", dataroot, "--version", args.version, "--split", args.split]
        options = ["--cfg-options", *seeded] if seeded else []
        model, minutes = trained("scratch", lambda extra: train_tool.main([config, *data, *extra, *options]), resume)
        return row("scratch", evaluate("scratch", model), count_parameters(build_detector(config)),
                   checkpoint_meta(model)["iteration"], minutes)

    def fine_tuned(name: str, method: str, options: List[str], resume: bool) -> dict:
        overrides = seeded + ([f"optim_wrapper.optimizer.lr={rates[method]!r}"] if method in rates else [])
        options = [*options, "--cfg-options", *overrides] if overrides else options
        model, minutes = trained(name, lambda extra: finetune_tool.main(
            [config, args.checkpoint, "--dataroot", dataroot, "--version", args.version, "--split", args.split,
             "--method", method, *extra, *options]), resume)
        meta = checkpoint_meta(model)
        return row(name, evaluate(name, model), ParameterCount(**meta["parameters"]), meta["iteration"], minutes)

    # the checkpoint as trained (maybe on other sweeps or image size) at config's inputs: tools/test.py --zero-shot
    add_row("zero-shot", lambda _: row("zero-shot", evaluate("zero-shot", args.checkpoint, "--zero-shot"), None,
                                       None, None))
    add_row("scratch", scratch)
    for name, method, rank in runs(*args.lora_ranks, args.adapter_rank):
        options = [] if rank is None else ["--rank", str(rank)]
        add_row(name, lambda resume: fine_tuned(name, method, options, resume), rates.get(method))
    text = table_markdown(rows, caption)
    if args.draws > 0:
        text += "\n" + resampled_rows(rows, dataroot, args)
    print(text)
    return rows


def seed_rows(tables: Mapping[int, Sequence[dict]]) -> List[dict]:
    """Across the tables of each seed ({seed: rows}, the same rows in each): per row its NDS and car AP at each
    seed, their means (None where a seed did not score it), and its NDS minus full fine-tuning's and scratch's at
    the same seed (None where either is not scored)."""
    by_seed = {seed: {entry["name"]: entry for entry in rows} for seed, rows in tables.items()}

    def mean(values: Sequence[Optional[float]]) -> Optional[float]:
        return None if None in values else sum(values) / len(values)

    def minus(entries: Mapping[str, dict], name: str, reference: str) -> Optional[float]:
        other = entries.get(reference, {}).get("NDS")
        return None if entries[name]["NDS"] is None or other is None else entries[name]["NDS"] - other

    summary = []
    for name in (entry["name"] for entry in next(iter(tables.values()))):
        nds = [entries[name]["NDS"] for entries in by_seed.values()]
        car = [entries[name]["car_AP"] for entries in by_seed.values()]
        summary.append(dict(name=name, seeds=list(by_seed), NDS=nds, NDS_mean=mean(nds), car_AP=car,
                            car_AP_mean=mean(car),
                            NDS_minus_full=[minus(entries, name, "full") for entries in by_seed.values()],
                            NDS_minus_scratch=[minus(entries, name, "scratch") for entries in by_seed.values()]))
    return summary


def seeds_markdown(summary: Sequence[dict], caption: str) -> str:
    """The caption, then one line per row of seed_rows: values at each seed joined by ' / ', and the means."""
    def each(values: Sequence[Optional[float]]) -> str:
        return " / ".join(format_number(value) for value in values)

    seeds = " / ".join(str(seed) for seed in summary[0]["seeds"])
    header = ["model", f"NDS, seed {seeds}", "NDS mean", "NDS - full", "NDS - scratch", f"car AP, seed {seeds}",
              "car AP mean"]
    lines = [[entry["name"], each(entry["NDS"]), format_number(entry["NDS_mean"]), each(entry["NDS_minus_full"]),
              each(entry["NDS_minus_scratch"]), each(entry["car_AP"]), format_number(entry["car_AP_mean"])]
             for entry in summary]
    return f"{caption}\n\n{markdown_table(header, lines)}\n"


@tool_main
def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    """One table (rows returned), or with --seeds one a seed and the summary across them (seed_rows returned)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    resolve_input_paths(args, "checkpoint", "dataroot")
    check_output_path(parser, "--out", args.out)
    if args.lora_ranks[0] == args.lora_ranks[1]:
        parser.error(f"--lora-ranks {args.lora_ranks[0]} {args.lora_ranks[1]}: two different ranks (the rows are "
                     f"named by their rank: one would replace the other)")
    if args.seeds is not None and len(set(args.seeds)) < len(args.seeds):
        parser.error(f"--seeds {' '.join(map(str, args.seeds))}: each seed once")
    check_data_root(parser, args.dataroot, args.version)
    if args.seeds is None:
        return compare_table(args, argv)
    tables = {seed: compare_table(argparse.Namespace(**dict(vars(args), seed=seed,
                                                            out=os.path.join(args.out, f"seed_{seed}"))), argv)
              for seed in args.seeds}
    summary = seed_rows(tables)
    caption = table_caption(args, resolve_config(args.config), args.seeds)
    text = seeds_markdown(summary, caption)
    with open(os.path.join(args.out, "seeds.md"), "w") as handle:
        handle.write(text)
    with open(os.path.join(args.out, "seeds.json"), "w") as handle:
        json.dump(dict(caption=caption, command=tool_command("compare_finetuning", argv), rows=summary), handle,
                  indent=2)
    print(text)
    return summary


if __name__ == "__main__":
    main()
