"""One source for a model's inputs: the config's model_inputs block gives both the dataloaders tools/train.py
builds and what evaluation, replay and benchmark feed the model (perception.models.model_inputs)."""
import argparse

import pytest

from perception.cli import resolve_path
from perception.cli.train import build_config
from perception.engine import evaluate_validation_data
from perception.engine.data import frame_dataset_configs
from perception.models import model_inputs
from perception.paths import REPO_ROOT
from tests.conftest import TINY_WORLD


def training_config(name: str, cfg_options=None):
    """The config tools/train.py would train ``configs/<name>.py`` with."""
    return build_config(argparse.Namespace(
        config=str(REPO_ROOT / "configs" / f"{name}.py"), cfg_options=cfg_options, work_dir=None, max_iters=None,
        time_budget_min=None, no_validate=False, amp=False, resume=False, dataroot=None, version=None, split=None,
        val_split=None))


@pytest.mark.parametrize("name, lidar_sweeps, image_size", [
    ("fusion_tiny", 5, (256, 144)), ("fusion_base", 10, (704, 256)), ("lidar_only", 5, None),
    ("lidar_radar", 5, None), ("camera_only", 5, (256, 144))])
def test_dataloaders_load_what_the_model_is_fed(name, lidar_sweeps, image_size):
    cfg = training_config(name)
    inputs = model_inputs(cfg)
    assert (inputs.lidar_sweeps, inputs.radar_sweeps, inputs.image_size) == (lidar_sweeps, 6, image_size)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loaded = loader.dataset
        assert (loaded.lidar_sweeps, loaded.radar_sweeps) == (inputs.lidar_sweeps, inputs.radar_sweeps)
        assert (None if loaded.image_size is None else tuple(loaded.image_size)) == inputs.image_size


def test_sensors_follow_the_encoders():
    assert model_inputs(training_config("fusion_tiny")).sensors == ("lidar", "radar", "camera")
    assert model_inputs(training_config("camera_only")).sensors == ("camera",)


def test_a_dataset_repeating_an_input_is_refused():
    with pytest.raises(ValueError, match="train_dataloader.dataset sets lidar_sweeps; set them once in model_inputs"):
        training_config("fusion_tiny", {"train_dataloader.dataset.lidar_sweeps": 3})


def test_a_dataset_repeating_the_planning_config_is_refused():
    with pytest.raises(ValueError, match=r"train_dataloader.dataset sets planning; set them once in model_inputs "
                                         r"\(planning: in model.planning\)"):
        training_config("fusion_tiny_planning", {"train_dataloader.dataset.planning": dict(horizon_steps=3)})


def test_the_frame_datasets_of_nested_concatenated_datasets_are_found_in_order_as_they_are():
    # the configs themselves (apply_model_inputs updates them in place), depth first
    a, b, c = (dict(type="FrameDataset", split=split) for split in "abc")
    nested = dict(type="ConcatDataset", datasets=[a, dict(type="ConcatDataset", datasets=[b, c])])
    leaves = frame_dataset_configs(nested)
    assert len(leaves) == 3 and all(leaf is config for leaf, config in zip(leaves, (a, b, c)))
    assert frame_dataset_configs(a)[0] is a


@pytest.mark.parametrize("name, seeds", [("fusion_tiny_worlds", range(101, 104)),
                                         ("fusion_tiny_planning_worlds", range(101, 108))])
def test_every_world_of_a_concatenated_dataset_loads_what_the_model_is_fed(name, seeds):
    cfg = training_config(name)
    inputs = model_inputs(cfg)
    worlds = cfg.train_dataloader.dataset.datasets
    assert cfg.train_dataloader.dataset.type == "ConcatDataset" and len(worlds) == 1 + 2 * len(seeds)
    for world in worlds:
        assert (world.lidar_sweeps, world.radar_sweeps, tuple(world.image_size)) == (
            inputs.lidar_sweeps, inputs.radar_sweeps, inputs.image_size)
        assert world.get("planning") == cfg.model.get("planning")
    # the configs' data roots, found as every tool finds a path (resolve_path: from the repository, unless there)
    assert {world.dataroot for world in worlds} == {resolve_path("datasets/synthetic")} | {
        resolve_path(f"datasets/synthetic_seed{seed}") for seed in seeds}
    assert (resolve_path("datasets/synthetic"), "synth_val") not in {(world.dataroot, world.split) for world in worlds}


def test_a_concatenated_dataset_holds_each_world_in_order(synthetic_root):
    from mmengine.registry import DATASETS

    import perception.engine  # noqa: F401  (registers FrameDataset)

    def world(split):
        return dict(type="FrameDataset", dataroot=str(synthetic_root), version=TINY_WORLD["version"], split=split,
                    lidar_sweeps=1, radar_sweeps=1, image_size=None, drop=["camera"])

    train, val = DATASETS.build(world("synth_train")), DATASETS.build(world("synth_val"))
    both = DATASETS.build(dict(type="ConcatDataset", ignore_keys=["dataroot", "split"],
                               datasets=[world("synth_train"), world("synth_val")]))
    assert len(both) == len(train) + len(val) and len(val) > 0
    assert both[0].sample_token == train[0].sample_token
    assert both[len(train)].sample_token == val[0].sample_token


def test_a_model_reading_fewer_groups_than_its_encoders_never_loads_the_rest():
    cfg = training_config("fusion_tiny", {"model_inputs.sensors": ["lidar", "radar"]})
    assert model_inputs(cfg).sensors == ("lidar", "radar")
    assert cfg.model["sensors"] == ["lidar", "radar"] and "camera" in cfg.model["encoders"]
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        assert loader.dataset.drop == ["camera"]
    # a group without an encoder is the config's to load or drop: camera_only trains its depth on the LiDAR
    assert training_config("camera_only").train_dataloader.dataset.drop == ["radar"]
    with pytest.raises(ValueError, match=r"model_inputs.sensors \['lidar', 'camera'\] names groups without an "
                                         r"encoder \(encoders: \['lidar'\]\)"):
        training_config("lidar_only", {"model_inputs.sensors": ["lidar", "camera"]})
    with pytest.raises(ValueError, match=r"model.sensors \['lidar'\] differs from model_inputs' \['lidar', 'radar', "
                                         r"'camera'\]; set them once, in model_inputs.sensors"):
        training_config("fusion_tiny", {"model.sensors": ["lidar"]})


def test_the_validation_metric_scores_the_validation_datasets_data():
    cfg = training_config("fusion_tiny_real")
    evaluate_validation_data(cfg)
    dataset = cfg.val_dataloader.dataset
    assert (cfg.val_evaluator.dataroot, cfg.val_evaluator.version, cfg.val_evaluator.split) == (
        dataset.dataroot, dataset.version, dataset.split) == ("../shared/fixtures/nuscenes-scene0916", "v1.0-mini",
                                                              "real_val")
    retyped = training_config("fusion_tiny", cfg_options={"val_evaluator.split": "synth_train"})
    with pytest.raises(ValueError, match=r"fusion_tiny.py: val_evaluator sets split; the metric scores the "):
        evaluate_validation_data(retyped)
