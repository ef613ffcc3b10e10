"""Copies of the tiny world with annotations removed, for the training tools' bad-input tests."""
import json
import os
import shutil
from pathlib import Path

from tests.conftest import TINY_WORLD


def annotation_free_copy(root, folder) -> str:
    """The tiny world's tables with every annotation removed (sensor files linked, not copied)."""
    copy = folder / "no_annotations"
    copy.mkdir()
    for name in os.listdir(root):
        if name != TINY_WORLD["version"]:
            os.symlink(os.path.join(root, name), copy / name)
    shutil.copytree(os.path.join(root, TINY_WORLD["version"]), copy / TINY_WORLD["version"])
    (copy / TINY_WORLD["version"] / "sample_annotation.json").write_text("[]")
    return str(copy)


def validation_annotation_free_copy(root, folder) -> str:
    """The tiny world's tables with the annotations of its synth_val scenes removed (files linked, not copied)."""
    folder.mkdir()
    copy = Path(annotation_free_copy(root, folder))
    tables = os.path.join(root, TINY_WORLD["version"])
    with open(os.path.join(tables, "splits.json")) as handle:
        val_scenes = set(json.load(handle)["synth_val"])
    with open(os.path.join(tables, "scene.json")) as handle:
        val_tokens = {scene["token"] for scene in json.load(handle) if scene["name"] in val_scenes}
    with open(os.path.join(tables, "sample.json")) as handle:
        val_samples = {sample["token"] for sample in json.load(handle) if sample["scene_token"] in val_tokens}
    with open(os.path.join(tables, "sample_annotation.json")) as handle:
        kept = [record for record in json.load(handle) if record["sample_token"] not in val_samples]
    (copy / TINY_WORLD["version"] / "sample_annotation.json").write_text(json.dumps(kept))
    return str(copy)
