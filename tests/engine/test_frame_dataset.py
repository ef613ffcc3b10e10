"""FrameDataset, the dataset tools/train.py builds from a config: its length and indexing with max_frames."""
import json
import os

import pytest

from perception.engine.data import FrameDataset
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
