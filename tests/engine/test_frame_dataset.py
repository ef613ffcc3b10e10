"""FrameDataset, the dataset tools/train.py builds from a config: its length and indexing with max_frames."""
import json
import os

import pytest

from perception.engine.data import FrameDataset, build_transform
from perception.sensors import SENSOR_GROUPS
from tests.conftest import TINY_WORLD


def test_max_frames_beyond_the_split_keeps_the_splits_keyframes(nusc_synthetic, synthetic_root):
    # the oracle: the split's scene names from the world's splits.json, their keyframes from the devkit's table
    with open(os.path.join(str(synthetic_root), TINY_WORLD["version"], "splits.json")) as handle:
        scene_names = set(json.load(handle)["synth_val"])
    scene_tokens = {scene["token"] for scene in nusc_synthetic.scene if scene["name"] in scene_names}
    keyframes = sum(sample["scene_token"] in scene_tokens for sample in nusc_synthetic.sample)
    assert keyframes == TINY_WORLD["samples_per_scene"]  # 4: scene 1 alone

    # max_frames = 4 + 6 = 10 asks for more than the split holds: the split's 4, not 10
    dataset = FrameDataset(str(synthetic_root), TINY_WORLD["version"], "synth_val", lidar_sweeps=1, radar_sweeps=1,
                           drop=SENSOR_GROUPS, max_frames=keyframes + 6)
    assert len(dataset) == keyframes
    assert dataset[keyframes - 1].sample_token  # the last one loads
    for outside in (keyframes, -1):  # no wrapping around: -1 is no frame (Python would give the last)
        with pytest.raises(IndexError):
            dataset[outside]


def test_a_planning_dataset_keeps_its_heads_horizon_and_step_and_its_world_in_metainfo(synthetic_root):
    # the head's horizon (3 steps) and step (0.25 s), neither PlannerConfig's default; its other keys are the head's
    dataset = FrameDataset(str(synthetic_root), TINY_WORLD["version"], "synth_val", lidar_sweeps=1, radar_sweeps=1,
                           drop=SENSOR_GROUPS, planning=dict(horizon_steps=3, step_s=0.25, hidden_channels=16))
    assert (dataset.planner_config.horizon_steps, dataset.planner_config.step_s) == (3, 0.25)
    assert dataset[0].targets.trajectory.shape == (1, 3, 2)
    # what mmengine's ConcatDataset compares between worlds (the version among them)
    assert dataset.metainfo == dict(dataroot=str(synthetic_root), version=TINY_WORLD["version"], split="synth_val")


def test_a_transform_config_builds_one_transform_or_composes_a_list_in_order():
    from perception.datasets.transforms import Compose, GlobalFlip, GlobalScaling

    assert build_transform(None) is None
    one = build_transform(dict(type="GlobalFlip", left_right_prob=1.0, seed=3))
    assert type(one) is GlobalFlip
    both = build_transform([dict(type="GlobalScaling"), dict(type="GlobalFlip")])
    assert type(both) is Compose and [type(t) for t in both.transforms] == [GlobalScaling, GlobalFlip]
    with pytest.raises(ValueError, match="unknown transform 'GlobalFlop': not in perception.datasets.transforms"):
        build_transform([dict(type="GlobalFlip"), dict(type="GlobalFlop")])
