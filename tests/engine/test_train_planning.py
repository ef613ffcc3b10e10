"""The planning head trained through tools/train.py on the tiny synthetic world (its ego branch initialised from an
ego-MLP checkpoint), exported, loaded, and graded by tools/test.py beside the other planners (README
"Decisions")."""
import json
import math
import os

import pytest
import torch
from mmengine.config import Config

from perception.cli.finetune import main as finetune
from perception.cli.test import run as evaluate
from perception.cli.train import main as train
from perception.deploy.graphs import check_export_covers
from perception.engine.data import FrameDataset
from perception.models import load_detector
from perception.models.ego_mlp import EgoMLP, save_ego_mlp
from perception.models.planning_head import PlanningDetector, PlanningHead
from perception.registry import MODELS
from tests.conftest import TINY_WORLD
from tests.engine.test_train import write_tiny_config

PLANNING = "model['planning'] = dict(horizon_steps=6, step_s=0.5, loss_weights=dict(maneuver=0.5))"
PLAN_LOSSES = ("loss_plan_trajectory", "loss_plan_maneuver", "loss_plan_lane_change")


def test_planning_trains_exports_and_is_graded(synthetic_root, tmp_path):
    torch.manual_seed(3)
    ego_mlp = EgoMLP()
    for parameter in ego_mlp.parameters():  # far from any default initialisation
        torch.nn.init.normal_(parameter, std=0.3)
    ego_init = save_ego_mlp(ego_mlp, tmp_path / "ego.pth", dict(split="test"))
    config = write_tiny_config(tmp_path, synthetic_root,
                               extra=PLANNING + f"\nmodel['planning']['ego_init'] = {str(ego_init)!r}")
    work_dir, shipped = str(tmp_path / "run"), str(tmp_path / "model.pth")
    train([config, "--work-dir", work_dir, "--max-iters", "2", "--export", shipped])  # validation plans too
    assert os.path.isfile(os.path.join(work_dir, "last_validation.json"))
    scalars = [json.loads(line) for root, _, names in os.walk(work_dir) for name in names
               if name == "scalars.json" for line in open(os.path.join(root, name))]
    logged = [entry for entry in scalars if "loss_plan_trajectory" in entry]
    assert len(logged) == 2
    for entry in logged:
        assert all(math.isfinite(entry[name]) for name in PLAN_LOSSES)
        assert entry["loss"] > sum(entry[name] for name in PLAN_LOSSES)  # detection losses are in the sum too
    assert any(entry["loss_plan_trajectory"] > 0 for entry in logged)  # the log covers the first keyframes

    detector = load_detector(config, shipped)
    assert isinstance(detector, PlanningDetector) and detector.plans
    exported = torch.load(shipped, weights_only=True)["state_dict"]
    assert any(name.startswith("planning_head.") for name in exported)
    for name, value in ego_mlp.state_dict().items():  # initialised from ego.pth, then 2 small AdamW steps
        assert torch.allclose(exported[f"planning_head.ego.{name}"], value, atol=0.02), name

    # fine-tuned, it starts from the checkpoint's ego branch, not from the ego-MLP file its config names (here one
    # that does not exist: the runner's init_weights must not read it)
    (tmp_path / "fine_tuning").mkdir()
    fine_tuning_config = write_tiny_config(tmp_path / "fine_tuning", synthetic_root, extra=PLANNING + "\n"
                                           f"model['planning']['ego_init'] = {str(tmp_path / 'absent.pth')!r}")
    fine_tuned = str(tmp_path / "fine_tuned.pth")
    finetune([fine_tuning_config, shipped, "--method", "full", "--work-dir", str(tmp_path / "ft"), "--max-iters", "1",
              "--no-validate", "--export", fine_tuned])
    tuned = torch.load(fine_tuned, weights_only=True)["state_dict"]
    for name, value in ego_mlp.state_dict().items():  # one more small step from the exported weights
        assert torch.allclose(tuned[f"planning_head.ego.{name}"], exported[f"planning_head.ego.{name}"], atol=0.02)

    (metrics,) = evaluate([config, shipped, "--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"],
                           "--split", "synth_val", "--no-plots", "--out", str(tmp_path / "eval")])
    planners = metrics["decisions"]["planners"]  # (the tiny world's 2 s logs give no maneuver labels to grade)
    for name in ("learned", "learned_with_safety"):
        for metric in ("l2_uniad_m", "l2_stp3_m", "collision_uniad", "collision_stp3"):
            assert set(planners[name][metric]) == {"1s", "2s", "3s"}
    feasibility = metrics["decisions"]["lane_change_feasibility"]
    assert list(feasibility) == ["rules_on_detections", "learned"]  # the head's feasibility graded, every frame
    assert feasibility["learned"]["gap_check_on_truth"]["sides"] == 2 * metrics["decisions"]["num_frames"]


def test_a_model_without_planning_is_not_graded_as_a_planner(synthetic_root, tmp_path):
    cfg = Config.fromfile(write_tiny_config(tmp_path, synthetic_root))
    detector = MODELS.build(cfg.model)
    assert isinstance(detector, PlanningDetector) and not detector.plans
    with pytest.raises(ValueError, match="no planning head"):
        detector.detect_and_plan([], torch.zeros(0, 4).numpy())


def test_planning_refuses_an_augmented_dataset(synthetic_root):
    with pytest.raises(ValueError, match="planning targets are not augmented"):
        FrameDataset(str(synthetic_root), TINY_WORLD["version"], "synth_train", planning=dict(),
                     transform=dict(type="GlobalFlip"))


def test_the_onnx_export_covers_every_weight_of_the_planning_head(synthetic_root, tmp_path):
    cfg = Config.fromfile(write_tiny_config(tmp_path, synthetic_root, extra=PLANNING))
    detector = MODELS.build(cfg.model)
    check_export_covers(detector, cfg)  # raises when a weight of the state dict lies outside every graph
    assert {path for path in detector.dense_modules() if path.startswith("planning_head.")} == {
        f"planning_head.{part}" for part in PlanningHead.dense_parts}


def test_collate_keeps_each_frames_ego_state_and_targets_with_its_frame():
    # three planned frames, each with its own ego speed (3, 5, 7 m/s) and maneuver label (0, 1, 2): row i of the
    # batch is item i's frame, ego state and targets; a batch mixing planned and plain frames is refused
    import dataclasses

    import numpy as np

    from perception.engine.data import PlannedFrame, collate_fusion_batch
    from perception.models.planning_types import EGO_FEATURES, PlanningTargets
    from tests.models.helpers import make_frame

    items = []
    for i, speed in enumerate((3.0, 5.0, 7.0)):
        ego_state = np.zeros(len(EGO_FEATURES), dtype=np.float32)
        ego_state[0] = speed
        targets = PlanningTargets(torch.full((1, 6, 2), speed), torch.ones(1, 6, dtype=torch.bool),
                                  torch.tensor([i]), torch.tensor([[1.0, 0.0]]), torch.tensor([[True, i == 1]]))
        items.append(PlannedFrame(make_frame(i, token=f"t{i}"), ego_state, targets))
    batch = collate_fusion_batch(items)["batch"]
    assert batch.sample_tokens == ["t0", "t1", "t2"]
    assert batch.ego_state[:, 0].tolist() == [3.0, 5.0, 7.0] and batch.ego_state.shape == (3, len(EGO_FEATURES))
    assert batch.planning_targets.trajectory[:, 0, 0].tolist() == [3.0, 5.0, 7.0]
    assert batch.planning_targets.maneuver.tolist() == [0, 1, 2]
    assert batch.planning_targets.lane_change_valid[:, 1].tolist() == [False, True, False]
    plain = collate_fusion_batch([make_frame(0)])["batch"]
    assert plain.ego_state is None and plain.planning_targets is None
    with pytest.raises(TypeError, match="mixes PlannedFrame"):
        collate_fusion_batch([items[0], dataclasses.replace(make_frame(1))])
