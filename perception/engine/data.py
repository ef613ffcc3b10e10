"""mmengine-facing data pieces: the frame dataset built from a config and the collate into ``FusionBatch``."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config

from perception.datasets.collate import collate_frames
from perception.datasets.frame import Frame
from perception.datasets.loader import NuScenesFrames, UnreadableFrame
from perception.datasets.splits import check_evaluated_split
from perception.decision import PlannerConfig
from perception.decision.learned import past_ego_features
from perception.engine.planning_data import logged_targets
from perception.models import model_config, model_inputs
from perception.models.batch import FusionBatch
from perception.models.planning_types import PlanningTargets
from perception.registry import DATASETS, FUNCTIONS
from perception.sensors import DEFAULT_LIDAR_SWEEPS, DEFAULT_RADAR_SWEEPS, SENSOR_GROUPS


@dataclass(frozen=True)
class PlannedFrame:
    """A frame with the planning head's input and targets from the log: ego_state (len(EGO_FEATURES),) float32,
    the ego features from past poses only (perception.decision.learned.past_ego_features); targets:
    PlanningTargets of this one frame (batch dimension 1, perception.engine.planning_data.logged_targets)."""

    frame: Frame
    ego_state: np.ndarray
    targets: PlanningTargets


@DATASETS.register_module()
class FrameDataset(torch.utils.data.Dataset):
    """``NuScenesFrames`` of one split, built from config values; ``transform``: None, or a dict(type=...) or a
    list of them built from ``perception.datasets.transforms`` (each a Frame -> Frame callable, composed in
    order); ``max_frames``: use only the first N keyframes (quick runs, tests); ``planning``: None, or the model's
    planning head config (set by apply_model_inputs): items are then PlannedFrame with the targets at the head's
    horizon_steps and step_s. The targets are in the keyframe's ego frame, so planning refuses a transform (a
    geometric augmentation would move the frame but not the logged drive). ``random_sweeps_seed``: None, or read
    a random number of sweeps per keyframe (1..lidar_sweeps, 1..radar_sweeps; perception.datasets.loader.
    RandomSweepCounts with this seed), for training. A keyframe with a file the readers reject is an UnreadableFrame
    here, which crosses a DataLoader worker as a value: its batch (collate_fusion_batch) makes the model's
    FusionBatchPreprocessor raise the reader's CorruptFileError in the main process."""

    def __init__(self, dataroot: str, version: str, split: str, lidar_sweeps: int = DEFAULT_LIDAR_SWEEPS,
                 radar_sweeps: int = DEFAULT_RADAR_SWEEPS,
                 image_size: Optional[Tuple[int, int]] = None, drop: Iterable[str] = (),
                 transform: Optional[object] = None, max_frames: Optional[int] = None, progress: bool = False,
                 planning: Optional[Mapping] = None, random_sweeps_seed: Optional[int] = None):
        if planning is not None and transform is not None:
            raise ValueError(f"FrameDataset {dataroot} {split}: the planning targets are not augmented; set "
                             f"transform=None when model.planning is set")
        self.planner_config = None if planning is None else PlannerConfig(
            **{key: planning[key] for key in ("horizon_steps", "step_s") if key in planning})
        self.frames = NuScenesFrames(dataroot, version, split, lidar_sweeps=lidar_sweeps, radar_sweeps=radar_sweeps,
                                     image_size=None if image_size is None else tuple(image_size), drop=tuple(drop),
                                     transform=build_transform(transform), progress=progress,
                                     random_sweeps_seed=random_sweeps_seed, skip_corrupt_files=True)
        self.max_frames = max_frames
        self.metainfo = dict(dataroot=dataroot, version=version, split=split)

    def full_init(self) -> None:
        """mmengine's dataset interface, which its ConcatDataset calls: the frames are indexed at construction."""

    def __len__(self) -> int:
        return len(self.frames) if self.max_frames is None else min(self.max_frames, len(self.frames))

    def __getitem__(self, index: int) -> Union[Frame, PlannedFrame, UnreadableFrame]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} frames")
        frame = self.frames[index]
        if self.planner_config is None or isinstance(frame, UnreadableFrame):
            return frame
        tokens = [frame.sample_token]
        return PlannedFrame(frame, past_ego_features(self.frames.nusc, tokens)[0],
                            logged_targets(self.frames.nusc, tokens, self.planner_config))


DATALOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
LOADED_INPUTS = ("lidar_sweeps", "radar_sweeps", "image_size")
"""The model_inputs entries a FrameDataset loads by."""
EVALUATED_DATA = ("dataroot", "version", "split")
"""What the validation metric takes from the validation dataset."""


def frame_dataset_configs(dataset: Mapping) -> List[Mapping]:
    """The FrameDataset configs inside a dataloader's dataset config: itself, or those of a ConcatDataset's
    ``datasets`` (mmengine's, for training on several worlds), recursively."""
    if dataset.get("type") == "ConcatDataset":
        return [leaf for part in dataset["datasets"] for leaf in frame_dataset_configs(part)]
    return [dataset]


def count_annotated_frames(dataset: Mapping) -> int:
    """Keyframes of a FrameDataset config's split (or of each of a ConcatDataset's) that carry at least one
    ground-truth box (reads the loader's metadata, which training reads next anyway)."""
    total = 0
    for part in frame_dataset_configs(dataset):
        frames = NuScenesFrames(part["dataroot"], part["version"], part["split"], lidar_sweeps=part["lidar_sweeps"],
                                radar_sweeps=part["radar_sweeps"], progress=False)
        total += int((np.diff(frames.table.gt_offsets) > 0).sum())
    return total


def check_annotated_data(cfg: Config) -> None:
    """ValueError naming the splits and data roots, before a run touches its work dir, when the training data
    holds no annotated keyframe or the validation data (when the run validates) none to score, or is no split the
    devkit evaluates (check_evaluated_split: it failed at the first validation); a split or data root that cannot
    be read fails here with the loader's error."""
    def named(dataset: Mapping) -> str:
        return " + ".join(f"split {part['split']!r} of {part['dataroot']} ({part['version']})"
                          for part in frame_dataset_configs(dataset))

    if count_annotated_frames(cfg.train_dataloader.dataset) == 0:
        raise ValueError(f"{named(cfg.train_dataloader.dataset)} has no annotated keyframe to train on")
    validation = cfg.get("val_dataloader")
    if not validation:
        return
    for part in frame_dataset_configs(validation.dataset):
        try:
            check_evaluated_split(part["split"])
        except ValueError as error:
            raise ValueError(f"the validation data, {named(validation.dataset)}: split {error}") from None
    if count_annotated_frames(validation.dataset) == 0:
        raise ValueError(f"the validation data, {named(validation.dataset)}, has no annotated keyframe to score "
                         f"(--no-validate trains without it)")


def apply_model_inputs(cfg: Config) -> None:
    """Gives each dataloader's FrameDatasets the config's model_inputs (sweeps, image size;
    perception.models.model_inputs), so that training loads what evaluation, replay and benchmark feed the model,
    and the model's planning config (``planning``; left out when the model has none); the model the sensor groups
    it reads (``sensors``), the datasets the groups it has an encoder for but does not read (``drop``; a group
    without an encoder may still be loaded for training, as camera_only's LiDAR for depth supervision). Raises
    ValueError naming the config when a dataset sets one of them itself (a second source that could disagree)."""
    inputs = model_inputs(cfg)._asdict()
    cfg.model = model_config(cfg)
    unread = [group for group in SENSOR_GROUPS if group in cfg.model["encoders"] and group not in inputs["sensors"]]
    planning = cfg.model.get("planning")
    for name in DATALOADERS:
        loader = cfg.get(name)
        if not loader:
            continue
        for dataset in frame_dataset_configs(loader.dataset):
            repeated = [key for key in LOADED_INPUTS + ("planning",) if key in dataset]
            if repeated:
                raise ValueError(f"{cfg.filename}: {name}.dataset sets {', '.join(repeated)}; set them once in "
                                 f"model_inputs (planning: in model.planning)")
            dataset.update({key: inputs[key] for key in LOADED_INPUTS})
            dataset["drop"] = sorted(set(dataset.get("drop", ())) | set(unread))
            if planning is not None:
                dataset["planning"] = dict(planning)


def evaluate_validation_data(cfg: Config) -> None:
    """Gives the validation metric (``val_evaluator``) the validation dataset's data root, version and split
    (EVALUATED_DATA), once every change to the data is made; ValueError naming the config when the metric sets one
    of them itself (a second source that could disagree)."""
    evaluator, validation = cfg.get("val_evaluator"), cfg.get("val_dataloader")
    if not (evaluator and validation):
        return
    repeated = [key for key in EVALUATED_DATA if key in evaluator]
    if repeated:
        raise ValueError(f"{cfg.filename}: val_evaluator sets {', '.join(repeated)}; the metric scores the "
                         f"validation dataset's (val_dataloader.dataset)")
    evaluator.update({key: validation.dataset[key] for key in EVALUATED_DATA})


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
def collate_fusion_batch(items: Sequence[Union[Frame, PlannedFrame, UnreadableFrame]]) -> dict:
    """DataLoader collate: list of Frame -> {'batch': FusionBatch} (the model's forward keyword); a list of
    PlannedFrame adds their ego_state and planning_targets to the batch. A batch with an UnreadableFrame is
    {'unreadable': the first one}, whose error FusionBatchPreprocessor raises."""
    unreadable = [item for item in items if isinstance(item, UnreadableFrame)]
    if unreadable:
        return {"unreadable": unreadable[0]}
    planned = [item for item in items if isinstance(item, PlannedFrame)]
    if not planned:
        return {"batch": FusionBatch.from_frames(collate_frames(items))}
    if len(planned) != len(items):
        raise TypeError("collate_fusion_batch: a batch mixes PlannedFrame with other items")
    batch = FusionBatch.from_frames(collate_frames([item.frame for item in planned]))
    targets = PlanningTargets.concatenate([item.targets for item in planned])
    ego_state = torch.from_numpy(np.stack([item.ego_state for item in planned]))
    return {"batch": replace(batch, ego_state=ego_state, planning_targets=targets)}
