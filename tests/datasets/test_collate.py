"""Batching: list[Frame] batches through a DataLoader with workers, seeded shuffling and augmentation."""
import numpy as np
import pytest
from torch.utils.data import DataLoader, Subset

from perception.datasets.collate import collate_frames, make_frame_loader
from perception.datasets.frame import Frame
from perception.datasets.loader import NuScenesFrames
from perception.datasets.transforms import Compose, GlobalRotation, GlobalTranslation
from tests.conftest import TINY_WORLD


@pytest.fixture(scope="module")
def dataset(synthetic_root, nusc_synthetic, tmp_path_factory):
    return NuScenesFrames(synthetic_root, TINY_WORLD["version"], "all", lidar_sweeps=2, radar_sweeps=2,
                          cameras=False, nusc=nusc_synthetic, cache_dir=tmp_path_factory.mktemp("cache"),
                          progress=False, transform=Compose([GlobalRotation(), GlobalTranslation()], seed=0))


def _epoch(dataset, seed: int, workers: int):
    batches = list(make_frame_loader(dataset, batch_size=3, shuffle=True, num_workers=workers, seed=seed))
    return [frame for batch in batches for frame in batch], [len(batch) for batch in batches]


def test_batches_are_frame_lists_of_variable_sizes(dataset):
    frames, sizes = _epoch(dataset, seed=0, workers=2)
    assert sizes == [3, 3, 2] and all(isinstance(f, Frame) for f in frames)
    assert sorted(f.sample_token for f in frames) == sorted(dataset.sample_tokens)
    assert len({len(f.lidar.points) for f in frames}) == len(frames)  # point sets of different sizes


def test_same_seed_same_order_and_augmentation_other_seed_other(dataset):
    first, _ = _epoch(dataset, seed=3, workers=2)
    again, _ = _epoch(dataset, seed=3, workers=2)
    other, _ = _epoch(dataset, seed=4, workers=2)
    assert [f.sample_token for f in first] == [f.sample_token for f in again]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.augmentation, b.augmentation)
        np.testing.assert_array_equal(a.lidar.points, b.lidar.points)
    assert [f.sample_token for f in first] != [f.sample_token for f in other]
    # Workers draw different augmentations (each restarts the transforms' generators from its own seed).
    angles = {round(float(np.arctan2(f.augmentation[1, 0], f.augmentation[0, 0])), 9) for f in first}
    assert len(angles) == len(first)


def test_any_dataloader_gets_distinct_augmentations_per_worker(dataset):
    """A plain DataLoader (as mmengine builds one), no worker_init_fn, the dataset wrapped in a Subset."""
    loader = DataLoader(Subset(dataset, [0, 1, 2, 3]), batch_size=2, num_workers=2, collate_fn=collate_frames)
    frames = [frame for batch in loader for frame in batch]
    assert len({round(float(f.augmentation[0, 3]), 9) for f in frames}) == 4


def test_collate_rejects_what_is_not_a_frame():
    with pytest.raises(TypeError, match="got dict"):
        collate_frames([{"points": np.zeros((3, 5))}])


def test_collate_keeps_frames_and_unreadable_frames_in_loader_order(dataset):
    """A dataset that skips corrupt files hands UnreadableFrames on with the Frames, in the order given."""
    from perception.datasets.loader import UnreadableFrame

    unreadable = UnreadableFrame("token", "/data/a.pcd.bin", "empty")
    first, second = dataset[1], dataset[0]
    assert [id(item) for item in collate_frames([first, unreadable, second])] == [id(first), id(unreadable),
                                                                                 id(second)]
    batches = list(make_frame_loader(Subset(dataset, [5, 2, 7]), batch_size=3))
    assert [frame.sample_token for frame in batches[0]] == [dataset.sample_tokens[i] for i in (5, 2, 7)]


@pytest.mark.parametrize("batch_size, workers", [(0, 0), (2, -1)])
def test_frame_loader_refuses_a_batch_below_one_or_negative_workers(dataset, batch_size, workers):
    with pytest.raises(ValueError, match=f"batch_size must be >= 1 and num_workers >= 0, got {batch_size} and "
                                         f"{workers}"):
        make_frame_loader(dataset, batch_size=batch_size, num_workers=workers)


def test_frames_are_frozen():
    """Frames are passed between stages (loader, transforms, model, replay): none may change one in place."""
    import dataclasses

    from perception.datasets.frame import LidarSweeps, RadarSweeps
    from perception.geometry import EgoPose, RigidTransform

    frame = Frame("s", "scene", 0, EgoPose(0, RigidTransform.identity()), None, None, {})
    for target, name in ((frame, "gt_boxes"), (frame, "missing"), (LidarSweeps(np.zeros((0, 5)), 1), "num_sweeps"),
                         (RadarSweeps(np.zeros((0, 7)), 1), "num_sweeps")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(target, name, None)
