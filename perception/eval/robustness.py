"""The robustness benchmark: a detector over a split under each corruption and severity
(perception.datasets.corruptions), graded with nuscenes-devkit's DetectionEval, and the resilience figures.

- RA (resilience, MultiCorrupt): NDS under a corruption at a severity / clean NDS; mRA: the mean over
  corruptions of their mean RA over severities.
- RR (resilience rate, nuScenes-C): a corruption's NDS summed over severities / (severities x clean NDS), i.e.
  its mean RA; so mRR = mRA.
- CE (corruption error, nuScenes-C): sum over severities of (1 - NDS) / the same for a baseline model; mCE: the
  mean CE over the corruptions the baseline was run on (in %; below 100 % is more robust than the baseline).

A cell (one corruption at one severity, or the clean run) is evaluated into its own folder and finished when its
cell.json exists with this run and this cell's definition (cell_definition: the corruption's level and revision):
a rerun skips it (resumable), resumes a cell stopped midway from the frames it predicted, and reruns a cell whose
corruption changed level or revision since. Under torchrun
the cells are shared across the processes (rank r runs cells r, r + world_size, ...), each evaluating its cells
alone. A cell whose every frame yields no box is scored NDS 0 and mAP 0, what the devkit's definitions give an
empty prediction set (AP 0, every TP error 1), which devkit 1.2.0 itself cannot evaluate.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch.distributed as dist
from tqdm import tqdm

from perception.datasets.corruptions import CORRUPTIONS, SEVERITIES, CorruptFrames
from perception.datasets.loader import NuScenesFrames
from perception.datasets.splits import split_sample_tokens
from perception.detector import Detector
from perception.eval.detection import NoDetectionsError
from perception.eval.report import format_number, markdown_table
from perception.eval.runner import DataOptions, Shard, evaluate_split
from perception.jsonfile import as_read_back, check_same_run, read_json, write_json_atomic
from perception.plotting import pyplot

CLEAN = "clean"
CELL_FILE = "cell.json"
JSON_FILE, MARKDOWN_FILE, HEATMAP_FILE = "robustness.json", "robustness.md", "robustness.png"


@dataclass(frozen=True)
class Cell:
    """One evaluation of the benchmark: ``corruption`` at ``severity`` (1-3), or the clean run (CLEAN, 0)."""

    corruption: str
    severity: int

    @property
    def folder(self) -> str:
        return CLEAN if self.corruption == CLEAN else f"{self.corruption}_{self.severity}"


def plan_cells(corruptions: Sequence[str], severities: Sequence[int]) -> List[Cell]:
    """The clean cell, then each corruption at each severity (once, at severity 1, for a corruption that does
    not vary with severity). ValueError for an unknown corruption or severity, no severity, or a corruption or
    severity named twice (a plan runs and counts each cell once)."""
    unknown = [name for name in corruptions if name not in CORRUPTIONS]
    if unknown:
        raise ValueError(f"unknown corruptions {unknown}; choose from {', '.join(CORRUPTIONS)}")
    if not severities or not set(severities) <= set(SEVERITIES):
        raise ValueError(f"severities must be of {', '.join(map(str, SEVERITIES))}, got {list(severities)}")
    for what, named in (("corruptions", list(corruptions)), ("severities", list(severities))):
        twice = sorted({value for value in named if named.count(value) > 1}, key=named.index)
        if twice:
            raise ValueError(f"{what} named more than once: {', '.join(map(str, twice))}")
    cells = [Cell(CLEAN, 0)]
    for name in corruptions:
        levels = sorted(severities) if CORRUPTIONS[name].varies_with_severity else [1]
        cells += [Cell(name, severity) for severity in levels]
    return cells


def cell_definition(cell: Cell) -> dict:
    """What a cell's result depends on beside the run: {"level", "revision"} of its corruption at its severity
    ({} for the clean cell), as JSON stores it (tuples as lists)."""
    if cell.corruption == CLEAN:
        return {}
    corruption = CORRUPTIONS[cell.corruption]
    return as_read_back({"level": corruption.levels[cell.severity - 1], "revision": corruption.revision})


def run_cell(detector: Detector, run: Mapping, nusc, data: DataOptions, out_dir: str, cell: Cell, seed: int,
             verbose: bool = False) -> dict:
    """Evaluates one cell into ``out_dir/<cell folder>`` and writes its cell.json ({``run``, corruption,
    severity, definition (cell_definition), nd_score, mean_ap, scored}); returns that record. A cell stopped midway
    resumes from the frames it predicted (perception.eval.runner) when they are of this run and definition, and
    starts afresh otherwise."""
    cell_dir = os.path.join(out_dir, cell.folder)
    transform = None if cell.corruption == CLEAN else CorruptFrames(cell.corruption, cell.severity, seed)
    try:
        metrics = evaluate_split(detector, run["model"], nusc, data, cell_dir, render_curves=False,
                                 verbose=verbose, transform=transform, resume=True, restart_other=True,
                                 provenance={"run": _compared(run), "definition": cell_definition(cell)})
        scores, scored = (metrics["nd_score"], metrics["mean_ap"]), True
    except NoDetectionsError:
        scores, scored = (0.0, 0.0), False
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{cell_dir}: non-finite NDS or mAP {scores}")
    record = {"run": dict(run), "corruption": cell.corruption, "severity": cell.severity,
              "definition": cell_definition(cell), "nd_score": float(scores[0]), "mean_ap": float(scores[1]),
              "scored": scored}
    os.makedirs(cell_dir, exist_ok=True)
    write_json_atomic(os.path.join(cell_dir, CELL_FILE), record, indent=2, allow_nan=False)
    return record


def _compared(run: Mapping) -> dict:
    """What makes two runs the same: ``run`` but for its "model", the name it shows (the files are known by their
    hashes: the same files under another path are the same model)."""
    return {key: value for key, value in run.items() if key != "model"}


def read_cell(out_dir: str, cell: Cell, run: Mapping) -> Optional[dict]:
    """The finished cell's record; None when not finished or stale (written under another definition of the
    cell: its corruption's level or revision changed, or before definitions were recorded), so that it is run
    again and overwritten; ValueError when it belongs to another run (model, data or seed)."""
    path = os.path.join(out_dir, cell.folder, CELL_FILE)
    if not os.path.isfile(path):
        return None
    record = read_json(path)
    if not isinstance(record, dict):
        raise ValueError(f"{path}: not a cell record (a JSON {type(record).__name__}); remove it to run the cell again")
    recorded = record.get("run", {})  # none recorded: every setting differs
    check_same_run(path, _compared(run), "the cell's figures", "choose another --out or remove it",
                   recorded=_compared(recorded) if isinstance(recorded, dict) else recorded)
    return record if record.get("definition") == cell_definition(cell) else None


def run_cells(detector: Detector, run: Mapping, nusc_factory, data: DataOptions, out_dir: str,
              cells: Sequence[Cell], seed: int, shard: Shard = Shard(), verbose: bool = False) -> Dict[Cell, dict]:
    """Every unfinished cell of this process's share (cells[rank::world_size]) evaluated, with a progress bar;
    then (after all processes finished) the records of all cells, on the main process; {} on the others.
    ``nusc_factory()``: the devkit tables, loaded only when a cell is left to run; ValueError before any cell runs
    when the split has no annotation."""
    mine = [cell for cell in cells[shard.rank::shard.world_size] if read_cell(out_dir, cell, run) is None]
    if mine:
        nusc = nusc_factory()
        if not any(nusc.get("sample", token)["anns"] for token in split_sample_tokens(nusc, data.split)):
            raise ValueError(f"split {data.split!r} of {data.dataroot} ({data.version}) has no annotations: the "
                             f"benchmark grades each cell against them")
        if shard.world_size > 1 and shard.is_main:
            # Build the loader's metadata cache once before the processes read it.
            NuScenesFrames(data.dataroot, data.version, data.split, lidar_sweeps=data.lidar_sweeps,
                           radar_sweeps=data.radar_sweeps, nusc=nusc, progress=False)
    if shard.world_size > 1:
        dist.barrier()
    for cell in tqdm(mine, unit="cell", desc=f"robustness (process {shard.rank})", disable=not mine):
        run_cell(detector, run, nusc, data, out_dir, cell, seed, verbose)
    if shard.world_size > 1:
        dist.barrier()
    if not shard.is_main:
        return {}
    records = {cell: read_cell(out_dir, cell, run) for cell in cells}
    unfinished = [cell.folder for cell, record in records.items() if record is None]
    if unfinished:
        raise RuntimeError(f"{out_dir}: cells not finished: {', '.join(unfinished)}")
    return records


def robustness_summary(records: Mapping[Cell, Mapping], corruptions: Sequence[str], severities: Sequence[int],
                       baseline: Optional[Mapping] = None, not_read: Sequence[str] = ()) -> dict:
    """The robustness.json content from the cells' records (Cell -> cell.json): clean NDS / mAP; per corruption
    its cells (NDS, mAP, RA per severity), RR and, against ``baseline`` (another model's robustness.json), CE;
    mRA (= mRR), mCE and the worst cell; ``not_read`` the corruptions not run because the model does not read
    their sensor (name and sensor). ValueError when the clean NDS is 0 (RA undefined)."""
    clean = records[Cell(CLEAN, 0)]
    if clean["nd_score"] <= 0:
        raise ValueError("the clean NDS is 0: resilience (corrupted NDS / clean NDS) is undefined")
    severities = sorted(set(severities))
    base_rows = {row["name"]: row for row in (baseline or {}).get("corruptions", [])}
    rows = []
    for name in corruptions:
        corruption = CORRUPTIONS[name]
        cells = []
        for severity in severities:
            record = records[Cell(name, severity if corruption.varies_with_severity else 1)]
            cells.append({"severity": severity, "level": corruption.levels[severity - 1],
                          "nd_score": record["nd_score"], "mean_ap": record["mean_ap"],
                          "ra": record["nd_score"] / clean["nd_score"], "scored": record["scored"]})
        row = {"name": name, "family": corruption.family, "sensor": corruption.sensor,
               "parameter": corruption.parameter, "source": corruption.source, "revision": corruption.revision,
               "varies_with_severity": corruption.varies_with_severity, "cells": cells,
               "rr": float(np.mean([c["ra"] for c in cells])), "ce": None}
        base_cells = {c["severity"]: c["nd_score"] for c in base_rows.get(name, {}).get("cells", [])}
        if set(severities) <= set(base_cells):
            base_error = sum(1 - base_cells[s] for s in severities)
            if base_error > 0:
                row["ce"] = sum(1 - c["nd_score"] for c in cells) / base_error
        rows.append(row)
    worst = min(((row["name"], c) for row in rows for c in row["cells"]), key=lambda item: item[1]["ra"],
                default=None)
    errors = [row["ce"] for row in rows if row["ce"] is not None]
    return {
        "model": clean["run"]["model"], "run": clean["run"], "severities": severities,
        "clean": {"nd_score": clean["nd_score"], "mean_ap": clean["mean_ap"]},
        "corruptions": rows,
        "not_read": [{"name": name, "sensor": CORRUPTIONS[name].sensor} for name in not_read],
        "mra": float(np.mean([row["rr"] for row in rows])) if rows else None,
        "worst": None if worst is None else {"name": worst[0], "severity": worst[1]["severity"],
                                             "ra": worst[1]["ra"], "nd_score": worst[1]["nd_score"]},
        "baseline": None if baseline is None else {"model": baseline["model"],
                                                   "mce": float(np.mean(errors)) if errors else None},
    }


def check_summary(summary, source: str) -> None:
    """ValueError naming ``source`` unless ``summary`` has what a robustness.json (robustness_summary's) holds and
    its readers read: the run and model, the clean NDS, mRA, the worst cell and per corruption its name, RR and
    cells (severity, level, NDS, RA); a revision, where missing, is check_baseline's to refuse."""
    def numbers(record, keys, optional=()) -> bool:
        return isinstance(record, dict) and all(
            isinstance(record.get(key), (int, float)) or (key in optional and key in record and record[key] is None)
            for key in keys)

    def row_ok(row) -> bool:
        return (isinstance(row, dict) and isinstance(row.get("name"), str) and numbers(row, ("rr",))
                and isinstance(row.get("cells"), list)
                and all(numbers(cell, ("severity", "nd_score", "ra")) and "level" in cell for cell in row["cells"]))

    rows = summary.get("corruptions") if isinstance(summary, dict) else None
    if (not isinstance(rows, list) or not isinstance(summary.get("run"), dict) or "model" not in summary
            or not numbers(summary.get("clean"), ("nd_score",)) or not numbers(summary, ("mra",), ("mra",))
            or not (summary.get("worst") is None or numbers(summary["worst"], ("severity", "ra")))
            or not all(row_ok(row) for row in rows)):
        raise ValueError(f"{source}: not a robustness.json (tools/robustness.py's summary: its run and model, the "
                         f"clean NDS, mRA, the worst cell, and per corruption its name, RR and cells)")


def check_baseline(baseline, source: str, run: Mapping, corruptions: Sequence[str]) -> None:
    """ValueError naming ``source`` unless ``baseline`` (its robustness.json content) is a summary (check_summary)
    of the same data as ``run`` (dataroot, version, split and corruption seed; the model may differ) whose rows of
    ``corruptions`` were run at their current levels and revision: CE divides by the baseline's errors, so any
    other baseline gives a figure that means nothing."""
    check_summary(baseline, source)
    rows = baseline["corruptions"]
    theirs, ours = baseline["run"], dict(run)
    same_data = (all(theirs.get(key) == ours[key] for key in ("version", "split", "seed"))
                 and os.path.realpath(str(theirs.get("dataroot"))) == os.path.realpath(ours["dataroot"]))
    if not same_data:
        shown = ("dataroot", "version", "split", "seed")
        raise ValueError(f"{source}: a baseline of other data ({', '.join(f'{k} {theirs.get(k)}' for k in shown)}); "
                         f"this run: {', '.join(f'{k} {ours[k]}' for k in shown)}")
    for row in rows:
        if row.get("name") not in corruptions:
            continue
        corruption = CORRUPTIONS[row["name"]]
        levels = {cell.get("severity"): cell.get("level") for cell in row["cells"]}
        current = {severity: cell_definition(Cell(row["name"], severity))["level"] for severity in levels
                   if severity in SEVERITIES}
        if row.get("revision") != corruption.revision or levels != current:
            raise ValueError(f"{source}: its {row['name']} ran at revision {row.get('revision')}, levels {levels}; "
                             f"now revision {corruption.revision}, levels {current}: run the baseline again (its "
                             f"cells of this revision are reused)")


def write_heatmap(path: str, summary: Mapping) -> None:
    """RA per corruption (rows) and severity (columns) as a PNG heatmap, values printed in the cells, titled with
    the model, the data and the clean NDS."""
    plt = pyplot()

    rows = summary["corruptions"]
    ra = np.array([[c["ra"] for c in row["cells"]] for row in rows]).reshape(len(rows), len(summary["severities"]))
    figure, axes = plt.subplots(figsize=(3.4 + 0.9 * ra.shape[1], 1.2 + 0.32 * max(len(rows), 1)))
    image = axes.imshow(ra, cmap="RdYlGn", vmin=0.0, vmax=max(1.0, float(ra.max(initial=1.0))), aspect="auto")
    axes.set_xticks(range(ra.shape[1]), [f"severity {s}" for s in summary["severities"]])
    axes.set_yticks(range(len(rows)), [row["name"] for row in rows])
    for (i, j), value in np.ndenumerate(ra):
        axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
    figure.colorbar(image, ax=axes, label="RA = NDS / clean NDS")
    run = summary["run"]
    axes.set_title(f"{summary['model']}\non {run['version']} {run['split']} at {run['dataroot']}, corruption seed "
                   f"{run['seed']}\nclean NDS {format_number(summary['clean']['nd_score'])}, "
                   f"mRA {format_number(summary['mra'])}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


def write_robustness(out_dir: str, summary: Mapping) -> None:
    """Writes robustness.json (the summary), robustness.md (the tables) and robustness.png (the RA heatmap)."""
    with open(os.path.join(out_dir, JSON_FILE), "w") as handle:
        json.dump(summary, handle, indent=2, allow_nan=False)
    severities = summary["severities"]
    baseline = summary["baseline"]
    header = (["corruption", "family"] + [f"NDS s{s}" for s in severities] + [f"mAP s{s}" for s in severities]
              + [f"RA s{s}" for s in severities] + ["RR"] + (["CE"] if baseline else []))
    table = []
    for row in summary["corruptions"]:
        cells = row["cells"]
        table.append([row["name"] + ("" if row["varies_with_severity"] else " (any severity)"), row["family"]]
                     + [format_number(c["nd_score"]) + ("" if c["scored"] else "*") for c in cells]
                     + [format_number(c["mean_ap"]) for c in cells] + [format_number(c["ra"]) for c in cells]
                     + [format_number(row["rr"])]
                     + ([format_number(None if row["ce"] is None else 100 * row["ce"], 1)] if baseline else []))
    worst = summary["worst"]
    mce = None if not baseline or baseline["mce"] is None else 100 * baseline["mce"]
    lines = [
        "# Robustness", "",
        f"Model: {summary['model']}. Data: {summary['run']['version']} {summary['run']['split']} at "
        f"{summary['run']['dataroot']}; corruption seed {summary['run']['seed']}.", "",
        f"Clean: NDS {format_number(summary['clean']['nd_score'])}, mAP {format_number(summary['clean']['mean_ap'])}."
        f" mRA {format_number(summary['mra'])} (= mRR)."
        + (f" Worst: {worst['name']} severity {worst['severity']}, RA {format_number(worst['ra'])}." if worst else "")
        + (f" mCE {format_number(mce, 1)} % against {baseline['model']}." if baseline else "")
        + ("" if not summary["not_read"] else " Not run, the model does not read their sensor: "
           + ", ".join(f"{row['name']} ({row['sensor']})" for row in summary["not_read"]) + "."), "",
        "RA = NDS / clean NDS (MultiCorrupt); RR = mean RA over severities (nuScenes-C); CE = sum of (1 - NDS) over "
        "severities / the baseline's, in % (nuScenes-C). NDS* : no box was detected, scored 0 (see "
        "perception.eval.robustness). Cell folders hold each run's metrics.json and report.md.", "",
        markdown_table(header, table), "",
        "## Corruptions", "",
        markdown_table(["corruption", "level per severity run", "parameter", "source"],
                       [[row["name"], " / ".join("-" if c["level"] is None else str(c["level"]) for c in row["cells"]),
                         row["parameter"],
                         row["source"]] for row in summary["corruptions"]]), "",
        f"![RA heatmap]({HEATMAP_FILE})", "",
    ]
    with open(os.path.join(out_dir, MARKDOWN_FILE), "w") as handle:
        handle.write("\n".join(lines))
    write_heatmap(os.path.join(out_dir, HEATMAP_FILE), summary)


def _corruption_runs(summary: Mapping) -> Dict[str, tuple]:
    """A robustness.json's corruptions, each with the severities it ran at."""
    return {row["name"]: tuple(cell["severity"] for cell in row["cells"]) for row in summary["corruptions"]}


def robustness_comparison(summaries: Mapping[str, Mapping]) -> str:
    """A Markdown table of models side by side (name -> robustness.json content): clean NDS, mRA, the worst
    corruption (lowest RR), the worst cell (lowest RA) and the NDS with the LiDAR missing ('n/a' where a summary
    lacks that corruption). Where the summaries ran different corruptions or severities, each mRA is over its own
    set, so a column "mRA, shared" adds the mean RR over the corruptions every summary ran at the same severities,
    and a line under the table names them."""
    runs = [_corruption_runs(summary) for summary in summaries.values()]
    shared = sorted(name for name, severities in runs[0].items() if all(run.get(name) == severities for run in runs))
    alike = all(run == runs[0] for run in runs)
    rows = []
    for name, summary in summaries.items():
        corruptions = {row["name"]: row for row in summary["corruptions"]}
        weakest = min(corruptions.values(), key=lambda row: row["rr"], default=None)
        worst = summary["worst"]
        worst_cell = worst and f"{worst['name']} s{worst['severity']} (RA {format_number(worst['ra'])})"
        lidar_missing = corruptions.get("lidar_missing")
        rows.append([name, format_number(summary["clean"]["nd_score"]), format_number(summary["mra"]),
                     "n/a" if weakest is None else f"{weakest['name']} (RR {format_number(weakest['rr'])})",
                     worst_cell or "n/a",
                     "n/a" if lidar_missing is None else format_number(lidar_missing["cells"][0]["nd_score"]),
                     str(len(summary["corruptions"]))])
        if not alike:
            rows[-1].insert(3, format_number(float(np.mean([corruptions[c]["rr"] for c in shared])))
                            if shared else "n/a")
    header = ["model", "clean NDS", "mRA", "worst corruption", "worst cell", "NDS, LiDAR missing", "corruptions"]
    if alike:
        return markdown_table(header, rows)
    header.insert(3, "mRA, shared")
    note = (f"The summaries ran different corruptions or severities: each mRA is over its own; \"mRA, shared\" over "
            f"the {len(shared)} every one ran at the same severities: {', '.join(shared) or 'none'}.")
    return markdown_table(header, rows) + "\n\n" + note
