"""Batching frames: a collate that keeps variable-size point sets per frame, and a seeded DataLoader.

Frames stay typed through the DataLoader: a batch is ``list[Frame]`` (point sets differ in size from frame to
frame, and a missing sensor is None, so nothing is stacked here); the model's batch builder turns the list into
tensors with a batch-index column.
"""
from __future__ import annotations

from typing import List, Sequence, Union

import torch
from torch.utils.data import DataLoader, Dataset

from perception.datasets.frame import Frame
from perception.datasets.loader import UnreadableFrame


def collate_frames(frames: Sequence[Union[Frame, UnreadableFrame]]) -> List[Union[Frame, UnreadableFrame]]:
    """The batch as a list of Frames (and UnreadableFrames, from a dataset that skips corrupt files), in loader
    order. Raises TypeError on anything else."""
    for item in frames:
        if not isinstance(item, (Frame, UnreadableFrame)):
            raise TypeError(f"collate_frames batches Frame objects, got {type(item).__name__}")
    return list(frames)


def make_frame_loader(dataset: Dataset, batch_size: int = 1, shuffle: bool = False, num_workers: int = 0,
                      seed: int = 0) -> DataLoader:
    """A DataLoader of ``list[Frame]`` batches; ``seed`` fixes the shuffle order and the workers' seeds (from
    which the random transforms derive theirs: perception.datasets.transforms.RandomTransform)."""
    if batch_size < 1 or num_workers < 0:
        raise ValueError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size} and {num_workers}")
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      collate_fn=collate_frames, generator=generator)
