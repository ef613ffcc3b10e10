"""Checkpoints: resuming a run from its own mmengine files, and exporting the shipped weights-only format."""
from __future__ import annotations

import json
import os
from typing import Dict, Optional

import torch
from mmengine.config import Config
from mmengine.runner import find_latest_checkpoint

from perception.engine.adapters import RESUME_SCHEME, load_own_resume_file
from perception.models import CHECKPOINT_FORMAT, ModelInputs


def resume_source(work_dir: str) -> Optional[str]:
    """The latest checkpoint mmengine recorded in ``work_dir`` (its last_checkpoint file), with RESUME_SCHEME, or
    None when the run has not saved one yet."""
    latest = find_latest_checkpoint(work_dir)
    return None if latest is None else RESUME_SCHEME + latest


def read_training_checkpoint(path: str) -> dict:
    """The mmengine training checkpoint ``path`` of this project's runs, read as the run's own file: its
    state_dict, optimizer and schedulers, and meta (iter, epoch, cfg: the run's config as text)."""
    return load_own_resume_file(RESUME_SCHEME + path, map_location="cpu")


def checkpoint_iteration(checkpoint: dict) -> int:
    """The iterations a training checkpoint (read_training_checkpoint) had trained."""
    return int(checkpoint["meta"].get("iter", 0))


def training_config(checkpoint: dict, path: str) -> Config:
    """The config the run of a training checkpoint (read from ``path``) trained with, as mmengine saved it (its
    text in meta['cfg']); ValueError naming ``path`` when it holds none."""
    text = checkpoint.get("meta", {}).get("cfg")
    if not isinstance(text, str):
        raise ValueError(f"{path}: no run config in its meta (not a checkpoint mmengine's Runner saved)")
    return Config.fromstring(text, file_format=".py")


def export_checkpoint(checkpoint: dict, out_path: str, meta: dict, inputs: ModelInputs) -> dict:
    """Writes the weights of an mmengine training checkpoint of this project (as read_training_checkpoint reads it)
    as a shipped checkpoint (save_checkpoint), with its iteration and epoch added to ``meta``. Returns the meta
    written."""
    state_dict = {name: tensor.detach().clone() for name, tensor in checkpoint["state_dict"].items()}
    meta = dict(meta, iteration=checkpoint_iteration(checkpoint), epoch=int(checkpoint["meta"].get("epoch", 0)))
    return save_checkpoint(state_dict, out_path, meta, inputs)


def save_checkpoint(state_dict: Dict[str, torch.Tensor], out_path: str, meta: dict, inputs: ModelInputs) -> dict:
    """Writes ``{'state_dict': {name: tensor}, 'meta': meta + format/inputs}`` (loads with weights_only=True);
    ``inputs``: the config's model_inputs, which load_detector checks against the config it is given. Returns the
    meta written. ``meta`` must be JSON-serialisable (ValueError otherwise)."""
    meta = dict(meta, format=CHECKPOINT_FORMAT, inputs=inputs.to_meta())
    try:
        json.dumps(meta)
    except TypeError as error:
        raise ValueError(f"save_checkpoint: meta must be JSON-serialisable: {error}") from error
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    torch.save({"state_dict": state_dict, "meta": meta}, out_path)
    return meta
