"""Dataset splits: which scenes and keyframes a split holds.

Official splits (train, val, test, mini_train, mini_val, ...) come from the devkit's ``create_splits_scenes``;
any other name is a custom split read from ``<dataroot>/<version>/splits.json`` (the devkit's custom-split file:
split name -> scene names; the synthetic world writes one). ``"all"`` means every scene of the version. An official
split is taken only on the versions nuscenes-devkit evaluates it on (OFFICIAL_SPLIT_VERSIONS).
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Callable, Dict, List

from nuscenes.nuscenes import NuScenes
from nuscenes.utils.splits import create_splits_scenes

from perception.datasets.records import SPLITS_FILE
from perception.jsonfile import read_json

ALL_SCENES = "all"

OFFICIAL_SPLIT_VERSIONS: Dict[str, str] = {
    "train": "trainval", "val": "trainval", "train_detect": "trainval", "train_track": "trainval",
    "mini_train": "mini", "mini_val": "mini",
    "test": "test",
}
"""Official split -> how the name of a version it belongs to ends: nuscenes-devkit 1.2.0's rule in load_gt
(nuscenes/eval/common/loaders.py), whose assertion stops an evaluation of the split on any other version (the
mini version's scenes are listed in train and val too)."""


def check_evaluated_split(split: str) -> None:
    """ValueError when ``split`` is ALL_SCENES: the loader takes every scene of the version, but nuscenes-devkit's
    DetectionEval evaluates only a split it knows (it took "all" for a custom split and failed after the work:
    "Custom split requested, but no valid file found at .../splits.json")."""
    if split == ALL_SCENES:
        raise ValueError(f"{ALL_SCENES}: nuscenes-devkit evaluates a split it knows (an official one, or one of the "
                         f"version's splits.json), not every scene of the version; name one")


def is_reserved_split(name: str) -> bool:
    """Whether ``name`` is an official split or ALL_SCENES, which a custom split of that name cannot replace (they
    are read before splits.json)."""
    return name == ALL_SCENES or name in create_splits_scenes()


def split_scenes(nusc: NuScenes, split: str) -> List[str]:
    """Names of the split's scenes present in ``nusc`` (in the split's order).

    Raises ValueError when an official split is not one of this version's (check_split_version: 'val' on
    v1.0-mini), none of the split's scenes is in this version, the custom split is unknown, not a list of scene
    names, names a scene the version lacks (a misspelling, say) or lists a scene twice (its keyframes would count
    twice).
    """
    present = [scene["name"] for scene in nusc.scene]
    if split == ALL_SCENES:
        return present
    check_split_version(split, nusc.version)
    official = create_splits_scenes()
    names = official[split] if split in official else _custom_split(nusc, split, present)
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise ValueError(f"split {split!r} of {nusc.version} at {nusc.dataroot} lists {', '.join(repeated)} more than "
                         f"once")
    present_set = set(present)
    chosen = [name for name in names if name in present_set]
    if not chosen:
        raise ValueError(f"split {split!r} has no scene in {nusc.version} at {nusc.dataroot} "
                         f"({len(names)} scenes listed, {len(present)} present)")
    return chosen


def check_split_version(split: str, version: str) -> None:
    """ValueError naming both when ``split`` is an official split of another version than ``version``
    (OFFICIAL_SPLIT_VERSIONS)."""
    ending = OFFICIAL_SPLIT_VERSIONS.get(split)
    if ending is not None and not version.endswith(ending):
        own = [name for name, end in OFFICIAL_SPLIT_VERSIONS.items() if version.endswith(end)]
        raise ValueError(f"split {split!r} is an official split of the nuScenes versions ending in {ending!r}, not of "
                         f"{version}: nuscenes-devkit evaluates it on no other (official splits of {version}: "
                         f"{', '.join(own) or 'none'}; a custom one goes in {version}/{SPLITS_FILE})")


def _custom_split(nusc: NuScenes, split: str, present: List[str]) -> List[str]:
    """The scene names of custom split ``split`` in the version's splits.json; ValueError naming the file when it
    is missing, not JSON, not an object, has no such split, or the split is not a list of names of scenes in
    ``present``."""
    path = os.path.join(nusc.dataroot, nusc.version, SPLITS_FILE)
    custom = read_custom_splits(path)
    if split not in custom:
        listed = [key for key, value in custom.items() if isinstance(value, list)]
        raise ValueError(f"{path}: no custom split {split!r} (a list of scene names); custom splits there: "
                         f"{', '.join(sorted(listed)) or 'none'}; official splits: "
                         f"{', '.join(sorted(create_splits_scenes()))}")
    names = custom_split_names(path, custom, split)
    unknown = sorted(set(names) - set(present))
    if unknown:
        raise ValueError(f"{path}: custom split {split!r} names scenes that {nusc.version} lacks: "
                         f"{', '.join(unknown)}")
    return names


def read_custom_splits(path: str) -> dict:
    """The custom splits file at ``path`` (split name -> scene names; its entries unchecked), {} where there is none;
    ValueError naming the file when it is not JSON or not an object."""
    custom = read_json(path) if os.path.isfile(path) else {}
    if not isinstance(custom, dict):
        raise ValueError(f"{path}: not a JSON object of split name -> list of scene names")
    return custom


def custom_split_names(path: str, custom: dict, split: str) -> List[str]:
    """``custom[split]`` of the custom splits read from ``path``; ValueError naming the file when it is not a list of
    scene names (strings)."""
    names = custom[split]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{path}: custom split {split!r} must be a list of scene names (strings), got {names!r}")
    return names


def scene_sample_tokens(nusc: NuScenes, scene: dict) -> List[str]:
    """Keyframe (sample) tokens of one scene record, in time order (a ValueError as sample_chain says)."""
    return [sample["token"] for sample in sample_chain(scene, lambda token: nusc.get("sample", token))]


def sample_chain(scene: dict, get_sample: Callable[[str], dict]) -> List[dict]:
    """The sample records of ``scene`` from its first_sample_token along their ``next`` links (``get_sample``: token
    -> record, a KeyError for an unknown token). ValueError naming the scene when a link leads to no sample or
    back into the chain, and the two samples too when their timestamps do not increase along it."""
    chain, seen, token = [], set(), scene["first_sample_token"]
    while token:
        if token in seen:
            raise ValueError(f"scene {scene['name']!r}: its samples' next links loop back to sample {token}")
        seen.add(token)
        try:
            sample = get_sample(token)
        except KeyError:
            link = f"sample {chain[-1]['token']}'s next" if chain else "first_sample_token"
            raise ValueError(f"scene {scene['name']!r}: {link} {token} is not in the sample table") from None
        if chain and sample["timestamp"] <= chain[-1]["timestamp"]:
            raise ValueError(f"scene {scene['name']!r}: the timestamps of consecutive samples {chain[-1]['token']} "
                             f"({chain[-1]['timestamp']}) and {token} ({sample['timestamp']}) do not increase")
        chain.append(sample)
        token = sample["next"]
    return chain


def split_sample_tokens(nusc: NuScenes, split: str) -> List[str]:
    """Keyframe (sample) tokens of the split, scene by scene in split_scenes order, each scene in time order."""
    scene_by_name = {scene["name"]: scene for scene in nusc.scene}
    return [token for name in split_scenes(nusc, split) for token in scene_sample_tokens(nusc, scene_by_name[name])]


def evenly_spread(total: int, count: int) -> List[int]:
    """min(count, total) indices into ``total`` items, spread evenly from the first to the last, ascending."""
    chosen = min(count, total)
    if chosen < 1:
        return []
    return sorted({round(i * (total - 1) / max(chosen - 1, 1)) for i in range(chosen)})
