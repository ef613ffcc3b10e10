"""The shipped checkpoints: each a plain state dict that torch.load(..., weights_only=True) reads and load_detector
puts into its config's network, its meta the JSON card beside it."""
import hashlib
import json

import pytest
import torch
from mmengine.config import Config

from perception.models import load_detector
from perception.models.ego_mlp import load_ego_mlp
from perception.paths import REPO_ROOT

SHIPPED = ("fusion_tiny", "fusion_tiny_planning", "fusion_tiny_robust", "lidar_only")
"""checkpoints/<name>.pth, which loads into configs/<name>.py."""


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_checkpoint_loads_weights_only_and_matches_its_card(name):
    path = REPO_ROOT / "checkpoints" / f"{name}.pth"
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    with open(path.with_suffix(".json")) as handle:
        assert json.load(handle) == json.loads(json.dumps(checkpoint["meta"]))
    load_detector(REPO_ROOT / "configs" / f"{name}.py", path)


def _assert_trained_by_its_recipe(meta: dict) -> None:
    """The card's training data are its config's, seed 7's synth_val not among them, for the config's iterations."""
    trained_on = {(world["dataroot"], world["split"]) for world in meta["data"]["datasets"]}
    assert ("datasets/synthetic", "synth_val") not in trained_on  # what measures it stays unseen
    recipe = Config.fromfile(REPO_ROOT / meta["config"])
    assert trained_on == {(world.dataroot, world.split) for world in recipe.train_dataloader.dataset.datasets}
    assert meta["iteration"] == recipe.max_iters


def test_the_shipped_fusion_tiny_names_the_worlds_it_was_trained_on_and_its_start():
    meta = torch.load(REPO_ROOT / "checkpoints" / "fusion_tiny.pth", map_location="cpu", weights_only=True)["meta"]
    assert meta["version"] == "v4" and meta["config"] == "configs/fusion_tiny_worlds.py"
    assert meta["started_from"]["version"] == "v3" and meta["started_from"]["iteration"] == 5224
    _assert_trained_by_its_recipe(meta)
    assert {world["seed"] for world in meta["worlds"]} == {101, 102, 103}


def test_the_shipped_planning_model_starts_from_the_shipped_detector_and_its_ego_mlp():
    meta = torch.load(REPO_ROOT / "checkpoints" / "fusion_tiny_planning.pth", map_location="cpu",
                      weights_only=True)["meta"]
    assert meta["config"] == "configs/fusion_tiny_planning_worlds.py"
    assert meta["started_from"]["checkpoint"] == "checkpoints/fusion_tiny.pth"
    assert meta["started_from"]["version"] == "v4"
    shipped_detector = (REPO_ROOT / "checkpoints" / "fusion_tiny.pth").read_bytes()
    assert meta["started_from"]["sha256"] == hashlib.sha256(shipped_detector).hexdigest()
    _assert_trained_by_its_recipe(meta)
    ego_path = REPO_ROOT / "checkpoints" / "ego_mlp.pth"
    ego = load_ego_mlp(ego_path)
    with open(ego_path.with_suffix(".json")) as handle:
        card = json.load(handle)
    assert card == torch.load(ego_path, map_location="cpu", weights_only=True)["meta"]
    assert "datasets/synthetic:synth_val" not in card["data"]
    planning = Config.fromfile(REPO_ROOT / "configs" / "fusion_tiny_planning.py").model.planning
    assert (ego.horizon_steps, ego.step_s) == (planning.horizon_steps, planning.step_s)  # the head's ego branch


def test_the_shipped_robust_model_is_its_config_s_recipe_from_v3():
    meta = torch.load(REPO_ROOT / "checkpoints" / "fusion_tiny_robust.pth", map_location="cpu",
                      weights_only=True)["meta"]
    assert meta["config"] == "configs/fusion_tiny_robust.py" and meta["started_from"]["version"] == "v3"
    recipe = Config.fromfile(REPO_ROOT / meta["config"])
    # its transforms in the config's order: the corruptions first, where the sensors are mounted
    assert [t["type"] for t in meta["data"]["transform"]] == [t.type for t in recipe.train_transform]
    assert meta["data"]["transform"][0]["type"] == "RandomCorruption"
    assert (meta["data"]["dataroot"], meta["data"]["split"]) == ("datasets/synthetic", "synth_train")
