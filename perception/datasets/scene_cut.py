"""Cutting a scene in two at a keyframe, into a new data root, so that the head of a split can be trained on and its
tail held out: a recipe for few real frames (which parts to fine-tune, how long) is then chosen on the tail, never on
the split that measures it.

The cut is made as nuScenes-scene0916's NOTICE.md describes its own: the scene record becomes two (the first part
keeps its token and gets ``-fit`` appended to its name, the second gets a new token and ``-held``); the sample and
sample_annotation prev/next links are blanked where they cross the cut, and each sensor's sample_data chain is cut
before its record of the first held keyframe, so that neither part reads the other's poses, boxes or sensor records.
The sweeps between the two keyframes stay with the first part, as a scene's last sweeps do: those of the gap's second
half, which named the first held keyframe (a sweep names its nearest keyframe), now name the first part's last one.
Instance records are kept whole. The new root holds the rewritten tables and links to everything else of the original
(sensor files, maps, the other tables).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, List, Tuple, Union

from perception.datasets.records import SPLITS_FILE
from perception.datasets.splits import custom_split_names, is_reserved_split, read_custom_splits, sample_chain
from perception.jsonfile import read_json

CUT_TABLES = ("scene", "sample", "sample_annotation", "sample_data")
"""The tables a cut rewrites; every other file of the version is linked."""


def _read_table(table_dir: Path, name: str) -> List[dict]:
    path = table_dir / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the table is missing (a nuScenes version folder has {name}.json)")
    table = read_json(str(path))
    if not isinstance(table, list):
        raise ValueError(f"{path}: not a table (a JSON list of records)")
    return table


def _cut_links(records: Dict[str, dict], crossing: List[Tuple[str, str]]) -> None:
    """Blanks the ``next`` of the first and the ``prev`` of the second token of each pair."""
    for before, after in crossing:
        records[before]["next"] = ""
        records[after]["prev"] = ""


def cut_scene_tables(tables: Dict[str, List[dict]], scene_name: str, first_held_keyframe: int
                     ) -> Tuple[str, str]:
    """Cuts scene ``scene_name`` of ``tables`` (table name -> records, CUT_TABLES at least) in place before its
    keyframe number ``first_held_keyframe`` (0-based, time order). Returns the two parts' scene names
    (``<name>-fit``: keyframes before the cut; ``<name>-held``: from it on). Raises ValueError for an unknown scene,
    a cut that leaves a part empty, or a broken chain of the scene's samples (splits.sample_chain)."""
    scenes = {scene["name"]: scene for scene in tables["scene"]}
    if scene_name not in scenes:
        raise ValueError(f"no scene named {scene_name!r} (the version has {', '.join(sorted(scenes))})")
    scene = scenes[scene_name]
    samples = {sample["token"]: sample for sample in tables["sample"]}
    chain = [sample["token"] for sample in sample_chain(scene, samples.__getitem__)]
    if not 1 <= first_held_keyframe < len(chain):
        raise ValueError(f"scene {scene_name!r} has {len(chain)} keyframes: the first held keyframe must be 1 to "
                         f"{len(chain) - 1}, got {first_held_keyframe}")
    fit, held = chain[:first_held_keyframe], chain[first_held_keyframe:]
    fit_name, held_name = f"{scene_name}-fit", f"{scene_name}-held"
    held_token = hashlib.md5(f"{scene['token']}-held".encode()).hexdigest()
    tables["scene"].append(dict(scene, token=held_token, name=held_name, nbr_samples=len(held),
                                first_sample_token=held[0]))
    scene.update(name=fit_name, nbr_samples=len(fit), last_sample_token=fit[-1])
    _cut_links(samples, [(fit[-1], held[0])])
    for token in held:
        samples[token]["scene_token"] = held_token

    held_samples = set(held)
    annotations = {record["token"]: record for record in tables["sample_annotation"]}
    _cut_links(annotations, [(record["prev"], token) for token, record in annotations.items()
                             if record["sample_token"] in held_samples and record["prev"]
                             and annotations[record["prev"]]["sample_token"] not in held_samples])

    sample_data = {record["token"]: record for record in tables["sample_data"]}
    crossing = [(record["prev"], token) for token, record in sample_data.items()
                if record["sample_token"] == held[0] and record["is_key_frame"] and record["prev"]]
    for before, _ in crossing:
        _keep_sweeps_in_fit_part(sample_data, before, held_samples, fit[-1])
    _cut_links(sample_data, crossing)
    return fit_name, held_name


def _keep_sweeps_in_fit_part(sample_data: Dict[str, dict], token: str, held_samples: set, last_fit_sample: str
                             ) -> None:
    """Names ``last_fit_sample`` as the sample of the sweeps from ``token`` back along prev links (to a keyframe
    record) that name a held sample: their chain stays in the fit part. (A sweep names its nearest keyframe, so the
    second half of the gap before the cut named the first held one.)"""
    while token and not sample_data[token]["is_key_frame"] and sample_data[token]["sample_token"] in held_samples:
        sample_data[token]["sample_token"] = last_fit_sample
        token = sample_data[token]["prev"]


def cut_scene(dataroot: Union[str, Path], version: str, scene_name: str, first_held_keyframe: int,
              out: Union[str, Path], fit_split: str, held_split: str) -> Path:
    """Writes to ``out`` a data root in which scene ``scene_name`` of ``dataroot``/``version`` is cut before its
    keyframe ``first_held_keyframe`` (cut_scene_tables), with the custom splits ``fit_split`` and ``held_split``
    (one part each) added to the original's splits.json, where a split that named the scene now names both parts
    (ValueError naming the file when it is not an object of lists of scene names). An official split that lists the
    scene (scene-0916 in mini_val) lists neither part: the devkit's lists are fixed, and the parts are renamed.
    ``out`` must not exist. Returns ``out``."""
    source, out = Path(dataroot), Path(out)
    table_dir = source / version
    if not table_dir.is_dir():
        raise FileNotFoundError(f"{table_dir}: no such version folder")
    if out.exists():
        raise ValueError(f"{out} exists: a cut is written to a new folder")
    if fit_split == held_split:
        raise ValueError(f"the two parts need two split names, got {fit_split!r} twice")
    tables = {name: _read_table(table_dir, name) for name in CUT_TABLES}
    splits_path = str(table_dir / SPLITS_FILE)
    custom = read_custom_splits(splits_path)
    splits = {name: custom_split_names(splits_path, custom, name) for name in custom}
    for name in (fit_split, held_split):
        if name in splits:
            raise ValueError(f"{splits_path} already has a split named {name!r}")
        if is_reserved_split(name):
            raise ValueError(f"{name!r} names an official nuScenes split (or every scene), which is read before "
                             f"splits.json: name the part otherwise")
    fit_scene, held_scene = cut_scene_tables(tables, scene_name, first_held_keyframe)
    parts = {scene_name: [fit_scene, held_scene]}
    splits = {name: [part for scene in scenes for part in parts.get(scene, [scene])] for name, scenes in splits.items()}
    splits.update({fit_split: [fit_scene], held_split: [held_scene]})

    (out / version).mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name != version:
            os.symlink(entry.resolve(), out / entry.name)
    rewritten = {f"{name}.json" for name in CUT_TABLES} | {SPLITS_FILE}
    for entry in table_dir.iterdir():
        if entry.name not in rewritten:
            os.symlink(entry.resolve(), out / version / entry.name)
    for name, records in tables.items():
        (out / version / f"{name}.json").write_text(json.dumps(records, indent=1))
    (out / version / SPLITS_FILE).write_text(json.dumps(splits, indent=1))
    return out


__all__ = ["CUT_TABLES", "cut_scene", "cut_scene_tables"]
