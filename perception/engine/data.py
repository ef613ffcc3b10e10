"""mmengine-facing data pieces: the frame dataset built from a config and the collate into ``FusionBatch``."""
from __future__ import annotations

from typing import Iterable, Mapping, Optional, Sequence, Tuple

import torch
from mmengine.config import Config

from perception.datasets.collate import collate_frames
from perception.datasets.frame import Frame
from perception.datasets.loader import NuScenesFrames
from perception.models import model_inputs
from perception.models.batch import FusionBatch
from perception.registry import DATASETS, FUNCTIONS


@DATASETS.register_module()
class FrameDataset(torch.utils.data.Dataset):
    """``NuScenesFrames`` of one split, built from config values; ``transform``: None, or a dict(type=...) or a
    list of them built from ``perception.datasets.transforms`` (each a Frame -> Frame callable, composed in
    order); ``max_frames``: use only the first N keyframes (quick runs, tests)."""

    def __init__(self, dataroot: str, version: str, split: str, lidar_sweeps: int = 10, radar_sweeps: int = 6,
                 image_size: Optional[Tuple[int, int]] = None, drop: Iterable[str] = (),
                 transform: Optional[object] = None, max_frames: Optional[int] = None, progress: bool = False):
        self.frames = NuScenesFrames(dataroot, version, split, lidar_sweeps=lidar_sweeps, radar_sweeps=radar_sweeps,
                                     image_size=None if image_size is None else tuple(image_size), drop=tuple(drop),
                                     transform=build_transform(transform), progress=progress)
        self.transform = self.frames.transform
        self.max_frames = max_frames
        self.metainfo = dict(dataroot=dataroot, version=version, split=split)

    def __len__(self) -> int:
        return len(self.frames) if self.max_frames is None else min(self.max_frames, len(self.frames))

    def __getitem__(self, index: int) -> Frame:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} frames")
        return self.frames[index]


DATALOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
LOADED_INPUTS = ("lidar_sweeps", "radar_sweeps", "image_size")
"""The model_inputs entries a FrameDataset loads by."""


def apply_model_inputs(cfg: Config) -> None:
    """Gives each dataloader's dataset the config's model_inputs (sweeps, image size; perception.models.model_inputs),
    so that training loads what evaluation, replay and benchmark feed the model. Raises ValueError naming the
    config when a dataset sets one of them itself (a second source that could disagree)."""
    inputs = model_inputs(cfg)._asdict()
    for name in DATALOADERS:
        loader = cfg.get(name)
        if not loader:
            continue
        repeated = [key for key in LOADED_INPUTS if key in loader.dataset]
        if repeated:
            raise ValueError(f"{cfg.filename}: {name}.dataset sets {', '.join(repeated)}; set them once in "
                             f"model_inputs")
        loader.dataset.update({key: inputs[key] for key in LOADED_INPUTS})


def build_transform(config: Optional[object]):
    """None -> None; dict(type=name, **kwargs) or a list of them -> perception.datasets.transforms objects
    (a list is wrapped in its Compose)."""
    if config is None:
        return None
    from perception.datasets import transforms

    def build_one(item: Mapping):
        item = dict(item)
        name = item.pop("type")
        if not hasattr(transforms, name):
            raise ValueError(f"unknown transform {name!r}: not in perception.datasets.transforms")
        return getattr(transforms, name)(**item)

    if isinstance(config, Mapping):
        return build_one(config)
    return transforms.Compose([build_one(item) for item in config])


@FUNCTIONS.register_module()
def collate_fusion_batch(frames: Sequence[Frame]) -> dict:
    """DataLoader collate: list of Frame -> {'batch': FusionBatch} (the model's forward keyword)."""
    return {"batch": FusionBatch.from_frames(collate_frames(frames))}
