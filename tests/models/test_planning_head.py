"""The planning head: shapes, the constant-velocity start, the ego branch (an EgoMLP, loadable from its checkpoint)
that the untrained head reproduces, gradients reaching every input and weight, one optimiser step lowering the
loss, masks and bad input."""
import pytest
import torch

from perception.maneuvers import Maneuver
from perception.models.ego_mlp import EgoMLP, save_ego_mlp
from perception.models.planning_head import PlanningHead
from perception.models.planning_types import DEFAULT_LOSS_WEIGHTS, EGO_FEATURES, EGO_STATE_CHANNELS, PlanningTargets


def _inputs(batch=3, channels=8):
    """BEV features and ego features: the state, and frame 0 with its position 0.5 s ago, the rest without."""
    torch.manual_seed(0)
    bev = torch.randn(batch, channels, 20, 24)
    ego = torch.zeros(3, len(EGO_FEATURES))
    ego[:, :len(EGO_STATE_CHANNELS)] = torch.tensor([[10.0, 0.1, -1.0, 1.0], [0.0, 0.0, 0.0, 0.0],
                                                     [5.0, -0.2, 0.5, 1.0]])
    ego[0, 4:7] = torch.tensor([-5.0, 0.1, 1.0])
    return bev, ego[:batch]


def _targets(batch=3, steps=6):
    times = 0.5 * torch.arange(1, steps + 1)
    trajectory = torch.stack([torch.outer(torch.tensor([9.0, 1.0, 5.0])[:batch], times),
                              torch.outer(torch.tensor([0.0, 0.0, 0.5])[:batch], times)], -1)
    valid = torch.ones(batch, steps, dtype=torch.bool)
    valid[1, 4:] = False  # the log ends 2 s after frame 1
    return PlanningTargets(trajectory, valid,
                           torch.tensor([list(Maneuver).index(m) for m in
                                         (Maneuver.BRAKE, Maneuver.STOP, Maneuver.CHANGE_LANE_LEFT)][:batch]),
                           torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0]])[:batch],
                           torch.tensor([[True, True], [False, False], [True, True]])[:batch])


def test_shapes_and_the_constant_velocity_start():
    head = PlanningHead(8)
    bev, ego = _inputs()
    outputs = head(bev, ego)
    assert outputs.trajectory.shape == (3, 6, 2) and outputs.maneuver_logits.shape == (3, len(Maneuver))
    assert outputs.lane_change_logits.shape == (3, 2)
    # untrained: 10 m/s straight ahead -> 5, 10, ..., 30 m; standing still -> 0
    assert torch.allclose(outputs.trajectory[0, :, 0], 10.0 * 0.5 * torch.arange(1, 7.0))
    assert torch.all(outputs.trajectory[1] == 0) and torch.all(outputs.trajectory[..., 1] == 0)


def test_the_untrained_head_plans_what_its_ego_branch_loaded_from_a_checkpoint_plans(tmp_path):
    torch.manual_seed(1)
    trained = EgoMLP()
    for parameter in trained.parameters():  # an ego MLP whose offsets are not zero
        torch.nn.init.normal_(parameter, std=0.3)
    path = save_ego_mlp(trained, tmp_path / "ego.pth", dict(split="test"))
    head = PlanningHead(8, ego_init=str(path))
    bev, ego = _inputs()
    assert not torch.allclose(head(bev, ego).trajectory, trained(ego).trajectory)  # before init_weights
    head.init_weights()
    outputs, expected = head(bev, ego), trained(ego)
    assert torch.allclose(outputs.trajectory, expected.trajectory)
    assert torch.allclose(outputs.maneuver_logits, expected.maneuver_logits)
    assert not torch.allclose(expected.trajectory[0, :, 0], 10.0 * 0.5 * torch.arange(1, 7.0))
    with pytest.raises(ValueError, match="12 of 0.5 s"):
        PlanningHead(8, horizon_steps=12, ego_init=str(path)).init_weights()
    torch.save({"weights": 1}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other.pth: not an ego-MLP checkpoint"):
        PlanningHead(8, ego_init=str(tmp_path / "other.pth")).init_weights()


def test_gradients_reach_the_bev_the_ego_state_and_every_weight():
    head = PlanningHead(8)
    bev, ego = _inputs()
    bev.requires_grad_(True)
    ego = ego.clone().requires_grad_(True)
    outputs = head(bev, ego)
    # the trajectory layer starts at zero: its weights get gradient, the layers below through the other outputs
    sum(head.loss(outputs, _targets()).values()).backward()
    assert bev.grad.abs().sum() > 0 and ego.grad.abs().sum() > 0
    for name, parameter in head.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_one_step_lowers_the_loss_and_masks_hold():
    head = PlanningHead(8)
    bev, ego = _inputs()
    targets = _targets()
    optimiser = torch.optim.SGD(head.parameters(), lr=0.05)
    before = sum(head.loss(head(bev, ego), targets).values())
    before.backward()
    optimiser.step()
    after = sum(head.loss(head(bev, ego), targets).values())
    assert after < before
    # a masked step, an unlabelled maneuver and invalid feasibility contribute nothing
    outputs = head(bev, ego)
    masked = PlanningTargets(targets.trajectory.clone(), targets.trajectory_valid, targets.maneuver.clone(),
                             targets.lane_change_ok, targets.lane_change_valid)
    masked.trajectory[1, 5] += 100.0
    masked.maneuver[0] = -1
    losses, masked_losses = head.loss(outputs, targets), head.loss(outputs, masked)
    assert masked_losses["loss_plan_trajectory"] == losses["loss_plan_trajectory"]
    logits, labels = outputs.maneuver_logits[1:], masked.maneuver[1:]  # the two rows still labelled
    by_hand = (torch.logsumexp(logits, dim=1) - logits[torch.arange(2), labels]).mean()  # -log softmax, averaged
    assert float(masked_losses["loss_plan_maneuver"]) == pytest.approx(
        DEFAULT_LOSS_WEIGHTS["maneuver"] * float(by_hand), rel=1e-6)
    nothing = PlanningTargets(targets.trajectory, torch.zeros_like(targets.trajectory_valid),
                              torch.full((3,), -1), targets.lane_change_ok, torch.zeros_like(targets.lane_change_valid))
    assert all(float(v.detach()) == 0.0 for v in head.loss(outputs, nothing).values())


def test_loss_weights_come_from_the_config_and_bad_input_is_named():
    bev, ego = _inputs()
    heavy = PlanningHead(8, loss_weights=dict(maneuver=5.0))
    light = PlanningHead(8, loss_weights=dict(maneuver=0.5))
    light.load_state_dict(heavy.state_dict())
    outputs = heavy(bev, ego)
    assert float(heavy.loss(outputs, _targets())["loss_plan_maneuver"]) == pytest.approx(
        10 * float(light.loss(outputs, _targets())["loss_plan_maneuver"]))
    with pytest.raises(ValueError, match="unknown loss weights"):
        PlanningHead(8, loss_weights=dict(steering=1.0))
    with pytest.raises(ValueError, match=str(EGO_FEATURES[0])):
        heavy(bev, ego[:, :len(EGO_STATE_CHANNELS)])


def test_the_detector_trains_and_predicts_with_the_head_switched_on():
    import dataclasses

    from perception.models import BEVFusionDetector, FusionBatch
    from tests.models.helpers import make_frame, tiny_model_config

    torch.manual_seed(0)
    without = BEVFusionDetector(**tiny_model_config(("lidar",)))
    model = BEVFusionDetector(**tiny_model_config(("lidar",)), planning=dict(hidden_channels=16, pooled_cells=2,
                                                                              loss_weights=dict(maneuver=1.0)))
    assert without.planning_head is None and model.planning_head.loss_weights["maneuver"] == 1.0
    assert without.plan_grid is None and model.plan_grid == (6, 0.5)  # the head's default waypoints
    _, ego = _inputs(batch=2)
    targets = _targets(batch=2)
    plain = FusionBatch.from_frames([make_frame(0), make_frame(1)])
    batch = dataclasses.replace(plain, ego_state=ego, planning_targets=targets)
    losses = model(batch, mode="loss")
    assert {"loss_plan_trajectory", "loss_plan_maneuver", "loss_plan_lane_change"} <= set(losses)
    assert not any(name.startswith("loss_plan") for name in model(plain, mode="loss"))  # no targets: no plan loss
    sum(losses.values()).backward()
    assert model.planning_head.mlp[0].weight.grad.abs().sum() > 0
    assert model.planning_head.ego.mlp[0].weight.grad.abs().sum() > 0
    model.eval()
    results = model(batch, mode="predict")
    assert results[0]["plan"].trajectory.shape == (6, 2) and "plan" not in model(plain, mode="predict")[0]


def test_planning_losses_by_hand():
    # weights 2 / 3 / 5 so that a swapped weight shows. By hand:
    # trajectory: L1 over frame 0's valid steps (frames 1, 2 have none): (|1-0| + |0-0| + |2-4| + |0-1|) / 4 = 1
    #   -> x2 = 2
    # maneuver: frame 0's logits all 0, label BRAKE -> ln 6; frame 1's logits [ln 5, 0, ...], label KEEP_LANE
    #   (index 0) -> -ln(5 / 10) = ln 2; frame 2 unlabelled -> (ln 6 + ln 2) / 2 = ln 12 / 2 -> x3 = 1.5 ln 12
    # lane change: frame 0 logits [0, ln 3], ok [1, 0] -> (-ln sigmoid(0) - ln(1 - 3/4)) / 2 = (ln 2 + ln 4) / 2
    #   = 1.5 ln 2 (frames 1, 2 not valid) -> x5 = 7.5 ln 2
    import math

    from perception.models.planning_types import PlanningOutputs, planning_losses

    outputs = PlanningOutputs(torch.tensor([[[1.0, 0.0], [2.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0]] * 2]),
                              torch.tensor([[0.0] * 6, [math.log(5.0), 0, 0, 0, 0, 0], [10.0, 0, 0, 0, 0, 0]]),
                              torch.tensor([[0.0, math.log(3.0)], [5.0, 5.0], [5.0, 5.0]]))
    targets = PlanningTargets(torch.tensor([[[0.0, 0.0], [4.0, 1.0]], [[3.0, 3.0], [3.0, 3.0]], [[3.0, 3.0]] * 2]),
                              torch.tensor([[True, True], [False, False], [False, False]]),
                              torch.tensor([list(Maneuver).index(Maneuver.BRAKE),
                                            list(Maneuver).index(Maneuver.KEEP_LANE), -1]),
                              torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]),
                              torch.tensor([[True, True], [False, False], [False, False]]))
    assert list(Maneuver).index(Maneuver.KEEP_LANE) == 0
    losses = planning_losses(outputs, targets, dict(trajectory=2.0, maneuver=3.0, lane_change=5.0))
    assert float(losses["loss_plan_trajectory"]) == pytest.approx(2.0, rel=1e-6)
    assert float(losses["loss_plan_maneuver"]) == pytest.approx(1.5 * math.log(12.0), rel=1e-6)
    assert float(losses["loss_plan_lane_change"]) == pytest.approx(7.5 * math.log(2.0), rel=1e-6)


def test_the_bev_correction_adds_to_the_ego_branch_in_x_y_order():
    # a correction bias of +1 on step 1's x, +2 on its y, -1 on step 2's y and +4 on BRAKE's logit: the head's
    # plan is its ego branch's plus exactly those
    head = PlanningHead(8)
    bev, ego = _inputs()
    steps = 2 * head.horizon_steps
    with torch.no_grad():
        head.correction.bias[[0, 1, 3]] = torch.tensor([1.0, 2.0, -1.0])
        head.correction.bias[steps + list(Maneuver).index(Maneuver.BRAKE)] = 4.0
        outputs, branch = head(bev, ego), head.ego(ego)
    shift = torch.zeros(head.horizon_steps, 2)
    shift[0] = torch.tensor([1.0, 2.0])
    shift[1, 1] = -1.0
    assert torch.allclose(outputs.trajectory - branch.trajectory, shift.expand(3, -1, -1), atol=1e-5)
    logit_shift = torch.zeros(len(Maneuver))
    logit_shift[list(Maneuver).index(Maneuver.BRAKE)] = 4.0
    assert torch.allclose(outputs.maneuver_logits - branch.maneuver_logits, logit_shift.expand(3, -1), atol=1e-5)


def test_the_ego_features_reach_both_mlps_divided_by_their_typical_magnitudes():
    # frame 0 by hand (EGO_FEATURE_SCALE 10, 0.5, 2, 1, then 5, 1, 1 for the position 0.5 s ago):
    # speed 10 / 10 = 1, yaw rate 0.1 / 0.5 = 0.2, acceleration -1 / 2 = -0.5, known 1, x -5 / 5 = -1, y 0.1, known 1
    head = PlanningHead(8)
    bev, ego = _inputs()
    seen = {}
    head.mlp.register_forward_pre_hook(
        lambda module, inputs: seen.__setitem__("head", inputs[0][:, -len(EGO_FEATURES):]))  # after the pooled BEV
    head.ego.mlp.register_forward_pre_hook(lambda module, inputs: seen.__setitem__("ego", inputs[0]))
    with torch.no_grad():
        head(bev, ego)
    expected = torch.tensor([1.0, 0.2, -0.5, 1.0, -1.0, 0.1, 1.0])
    for name in ("head", "ego"):
        assert torch.allclose(seen[name][0, :7], expected, atol=1e-6), name
        assert not seen[name][0, 7:].any(), name  # the older positions unknown: zeros


def test_predict_gives_each_frame_its_own_plan():
    # the oracle: each frame planned alone (eval: nothing mixes frames); frame 1 stands still, frame 0 drives 10 m/s
    import dataclasses

    from perception.models import BEVFusionDetector, FusionBatch
    from tests.models.helpers import make_frame, tiny_model_config

    torch.manual_seed(0)
    model = BEVFusionDetector(**tiny_model_config(("lidar",)), planning=dict(hidden_channels=16, pooled_cells=2)).eval()
    _, ego = _inputs(batch=2)
    frames = [make_frame(0), make_frame(1)]
    with torch.no_grad():
        both = model(dataclasses.replace(FusionBatch.from_frames(frames), ego_state=ego), mode="predict")
        alone = [model(dataclasses.replace(FusionBatch.from_frames([frame]), ego_state=ego[i:i + 1]),
                       mode="predict")[0] for i, frame in enumerate(frames)]
    assert not torch.allclose(both[0]["plan"].trajectory, both[1]["plan"].trajectory)
    for together, single in zip(both, alone):
        for name in ("trajectory", "maneuver_logits", "lane_change_logits"):
            assert torch.allclose(getattr(together["plan"], name), getattr(single["plan"], name), atol=1e-5), name


def test_the_default_maneuver_loss_weight_is_one_half():
    # One labelled frame with all 6 maneuver logits 0: cross-entropy ln 6 = 1.7918; the default weight 0.5 gives
    # 0.5 x 1.7918 = 0.8959 (a literal, not the constant under test).
    from perception.models.planning_types import PlanningOutputs

    assert len(Maneuver) == 6
    outputs = PlanningOutputs(torch.zeros(1, 2, 2), torch.zeros(1, 6), torch.zeros(1, 2))
    targets = PlanningTargets(torch.zeros(1, 2, 2), torch.zeros(1, 2, dtype=torch.bool),
                              torch.tensor([list(Maneuver).index(Maneuver.BRAKE)]), torch.zeros(1, 2),
                              torch.zeros(1, 2, dtype=torch.bool))
    assert float(PlanningHead(8).loss(outputs, targets)["loss_plan_maneuver"]) == pytest.approx(0.8959, abs=1e-4)
