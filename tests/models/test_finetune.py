"""Fine-tuning methods (perception.models.finetune): what each trains, held BatchNorm statistics, and folding LoRA
and adapters into the plain network (against the hand-written formulas and the adapted model's own outputs)."""
import copy

import pytest
import torch
from torch import nn

from perception.models import BEVFusionDetector, FusionBatch
from perception.models.finetune import (DEFAULT_TARGETS, FineTuningSpec, HeldBatchNorm1d, HeldBatchNorm2d,
                                        ResidualInputAdapter, ParameterCount, count_parameters, fold, folded_state_dict,
                                        head_output_layers, max_rank, prepare_fine_tuning, select_layers)
from tests.models.helpers import make_frame, tiny_model, tiny_model_config


@pytest.fixture(scope="module")
def batch():
    return FusionBatch.from_frames([make_frame(0), make_frame(1)])


def randomise_added_weights(model: nn.Module, seed: int = 0) -> None:
    """LoRA B and adapter up start at zero (the identity update); random values make folding non-trivial."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parts = name.split(".")  # a bare ResidualInputAdapter's are "up.weight" and "down.weight"
            if ".lora_" in name or "up" in parts or "down" in parts:
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))


def test_lora_fold_is_w_plus_scaled_b_times_a():
    from peft import LoraConfig, inject_adapter_in_model

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 5, 1))
    base = copy.deepcopy(model)
    inject_adapter_in_model(LoraConfig(r=2, lora_alpha=6, target_modules=["0", "2"]), model)
    randomise_added_weights(model)
    x = torch.randn(2, 4, 7, 9)
    adapted = model(x)
    lora_a = model[0].lora_A["default"].weight  # (r, in, 3, 3)
    lora_b = model[0].lora_B["default"].weight  # (out, r, 1, 1)
    expected = base[0].weight + 3.0 * torch.einsum("or,rikl->oikl", lora_b[:, :, 0, 0], lora_a)  # alpha / r = 3
    fold(model)
    assert isinstance(model[0], nn.Conv2d) and isinstance(model[2], nn.Conv2d)
    assert torch.allclose(model[0].weight, expected, atol=1e-6)
    assert torch.allclose(model[0].bias, base[0].bias)
    assert set(model.state_dict()) == set(base.state_dict())
    assert torch.allclose(model(x), adapted, atol=1e-5)


def changed_by_one_step(model, batch) -> set:
    """The state entries one SGD step (lr 0.1) on ``batch``'s loss changes, in train mode."""
    model.train()
    before = copy.deepcopy(model.state_dict())
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    sum(model(batch, mode="loss").values()).backward()
    optimizer.step()
    return {name for name, tensor in model.state_dict().items() if not torch.equal(before[name], tensor)}


def test_prepared_lora_layer_computes_w_x_plus_alpha_over_rank_b_a_x_in_training():
    """prepare_fine_tuning's LoRA with rank 2 and lora_alpha 6 on decoder.stage1.0 (a 16 -> 16 3x3 conv, no bias):
    conv(x, W) + (6 / 2) conv(conv(x, A), B), A (2, 16, 3, 3) with the layer's padding, B (16, 2, 1, 1), in train
    mode too (no dropout on the update); folded, the weight is W + 3 B A."""
    torch.manual_seed(0)
    model = tiny_model()
    base = copy.deepcopy(model.decoder.stage1[0].weight.detach())
    prepare_fine_tuning(model, FineTuningSpec("lora", rank=2, lora_alpha=6.0, targets=("decoder.stage1.0",)))
    randomise_added_weights(model)
    layer = model.decoder.stage1[0]
    lora_a, lora_b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    assert lora_a.shape == (2, 16, 3, 3) and lora_b.shape == (16, 2, 1, 1)
    x = torch.randn(2, 16, 6, 7)
    expected = (nn.functional.conv2d(x, base, padding=1)
                + 3.0 * nn.functional.conv2d(nn.functional.conv2d(x, lora_a, padding=1), lora_b))
    model.train()
    with torch.no_grad():
        assert torch.allclose(layer(x), expected, atol=1e-5)
    folded = fold(model).decoder.stage1[0]
    assert torch.allclose(folded.weight, base + 3.0 * torch.einsum("or,rikl->oikl", lora_b[:, :, 0, 0], lora_a),
                          atol=1e-6)


def test_lora_trains_both_factors_and_its_first_step_moves_b_alone(batch):
    """The update (alpha / r) B A trains A and B; from B = 0 the loss's gradient reaches B ((dL/dy) (A x)^T, A
    random) but not A (B^T (dL/dy) = 0): one SGD step changes every B of the decoder and head and no A."""
    torch.manual_seed(0)
    model = tiny_model()
    prepare_fine_tuning(model, FineTuningSpec("lora", rank=2))
    trained = trained_names(model)
    lora_a = {name for name, _ in model.named_parameters() if ".lora_A." in name}
    lora_b = {name.replace(".lora_A.", ".lora_B.") for name in lora_a}
    assert lora_a and lora_a | lora_b <= trained
    changed = changed_by_one_step(model, batch)
    assert {name for name in lora_b if name.startswith(("decoder.", "head."))} <= changed
    assert not changed & lora_a


def test_the_trained_share_is_in_percent():
    # 25 of 200 parameters: 12.5 %; 1,234 of 98,765: 1.249 %
    assert ParameterCount(25, 200).percent == pytest.approx(12.5)
    assert str(ParameterCount(1234, 98765)) == "1,234 of 98,765 parameters trained (1.25 %)"


def test_max_rank_is_the_rank_a_layer_can_have():
    # LoRA's update of a conv is a (out, in / groups x kh x kw) matrix: rank at most min(in / groups x kh x kw, out);
    # a Linear's min(in, out); an input adapter's bottleneck at most the layer's input channels.
    assert max_rank(nn.Conv2d(2, 8, 3), "lora") == 8  # min(2 x 9 = 18, 8)
    assert max_rank(nn.Conv2d(4, 40, 3), "lora") == 36  # min(4 x 9, 40)
    assert max_rank(nn.Conv2d(4, 40, (3, 1), groups=2), "lora") == 6  # min(4 / 2 x 3 x 1, 40)
    assert max_rank(nn.Linear(5, 3), "lora") == 3 and max_rank(nn.Linear(3, 5), "lora") == 3
    assert max_rank(nn.Conv2d(5, 3, 3), "adapter") == 5 and max_rank(nn.ConvTranspose2d(6, 2, 2), "adapter") == 6


@pytest.mark.parametrize("layer", [nn.Conv2d(5, 3, 3, padding=1), nn.Conv2d(5, 3, 3, stride=2, padding=1),
                                   nn.ConvTranspose2d(5, 3, 2, stride=2)])
def test_adapter_fold_is_w_times_identity_plus_up_down(layer):
    torch.manual_seed(1)
    adapter = ResidualInputAdapter(layer, rank=2)
    x = torch.randn(2, 5, 6, 8)
    assert torch.equal(adapter(x), layer(x))  # zero-initialised: starts as the plain layer
    randomise_added_weights(adapter)
    mixing = torch.eye(5) + adapter.up.weight[:, :, 0, 0] @ adapter.down.weight[:, :, 0, 0]
    folded = adapter.folded()
    for position in [(0, 0), (1, 1)] if isinstance(layer, nn.ConvTranspose2d) else [(0, 0), (1, 2)]:
        k, l = position
        if isinstance(layer, nn.Conv2d):  # (out, in): W' = W M
            assert torch.allclose(folded.weight[:, :, k, l], layer.weight[:, :, k, l] @ mixing, atol=1e-6)
        else:  # ConvTranspose2d (in, out): W'^T = W^T M
            assert torch.allclose(folded.weight[:, :, k, l], mixing.T @ layer.weight[:, :, k, l], atol=1e-6)
    assert torch.allclose(folded(x), adapter(x), atol=1e-5)
    assert not torch.allclose(folded.weight, layer.weight, atol=1e-3)  # the adapter was not the identity


def test_an_adapter_starts_at_up_zero_and_down_random_so_its_first_step_trains_up():
    """y = W (x + U D x) with W = [1, 1] (a 1x1 conv 2 -> 1), rank 1, x = (1, 1): dy/dU_c = W_c (D x) = d0 + d1 for
    both channels, dy/dD = (W U) x = 0 while U = 0. Zero U alone keeps the start the plain layer and lets U learn;
    zero D too would hold both gradients at 0 for ever."""
    layer = nn.Conv2d(2, 1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    adapter = ResidualInputAdapter(layer, rank=1)
    down = adapter.down.weight[:, :, 0, 0].detach().clone()  # (1, 2)
    assert torch.equal(adapter.up.weight, torch.zeros(2, 1, 1, 1)) and down.abs().min() > 0
    adapter(torch.ones(1, 2, 1, 1)).sum().backward()
    assert torch.allclose(adapter.up.weight.grad[:, 0, 0, 0], down.sum().expand(2), atol=1e-6)
    assert torch.equal(adapter.down.weight.grad, torch.zeros(1, 2, 1, 1))


def test_an_input_adapter_needs_a_conv_with_one_group():
    # a grouped conv's weight is (out, in / groups): W (I + U D) over all input channels mixes across groups
    for layer in (nn.Conv2d(4, 4, 3, groups=2), nn.ConvTranspose2d(4, 4, 2, groups=2), nn.Linear(4, 4)):
        with pytest.raises(ValueError, match="an input adapter needs a Conv2d / ConvTranspose2d with one group"):
            ResidualInputAdapter(layer, rank=2)


def test_a_prefix_selects_its_layer_and_what_lies_under_it_not_a_sibling_sharing_its_start():
    # names "0" ... "10" and "1.0", "1.1": prefix "1" is layer 1 and its two children, not layer 10
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(11)])
    model[1] = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    assert set(select_layers(model, ["1"], (nn.Linear,))) == {"1.0", "1.1"}
    assert set(select_layers(model, ["1"], (nn.Module,))) == {"1", "1.0", "1.1"}
    assert set(select_layers(model, ["10"], (nn.Linear,))) == {"10"}


def trained_names(model: nn.Module) -> set:
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


def small_spec(method: str) -> FineTuningSpec:
    """The method with rank 2 where it has one (lora, adapter)."""
    return FineTuningSpec(method, rank=2 if method in DEFAULT_TARGETS else None)


@pytest.mark.parametrize("method", ["full", "head", "lora", "adapter"])
def test_each_method_trains_what_it_says_and_holds_norm_statistics(method, batch):
    torch.manual_seed(0)
    model = tiny_model()
    base_total = sum(p.numel() for p in model.parameters())
    count = prepare_fine_tuning(model, small_spec(method))
    trained = trained_names(model)
    outputs = head_output_layers(model)
    if method == "full":
        assert trained == {name for name, _ in model.named_parameters()}
    elif method == "head":
        assert trained == {name for name, _ in model.named_parameters() if name.startswith("head.")}
    else:
        added = {name for name in trained if not any(name.startswith(output + ".") for output in outputs)}
        assert added and all((".lora_" in name) if method == "lora" else (".down." in name or ".up." in name)
                             for name in added)
        assert {f"{output}.weight" for output in outputs} <= trained
    assert count.total == base_total
    assert count.trained == sum(p.numel() for p in model.parameters() if p.requires_grad)
    model.train()
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(not m.training for m in norms)  # held, though the model is in train mode
    before = copy.deepcopy(model.state_dict())
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    losses = model(batch, mode="loss")
    sum(losses.values()).backward()
    optimizer.step()
    after = model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and changed <= trained  # frozen weights and every running statistic unchanged


@pytest.mark.parametrize("method", ["head", "lora", "adapter"])
def test_a_planning_head_adapts_with_every_method(method):
    torch.manual_seed(0)
    model = BEVFusionDetector(**tiny_model_config(), planning=dict(hidden_channels=16, pooled_cells=2))
    prepare_fine_tuning(model, small_spec(method))
    trained = trained_names(model)
    planning = {name for name, _ in model.named_parameters() if name.startswith("planning_head.")}
    if method == "head":
        assert trained == planning | {name for name, _ in model.named_parameters() if name.startswith("head.")}
    else:
        assert trained & planning == {f"planning_head.{layer}.{kind}" for layer in
                                      ("correction", "lane_change", "ego.trajectory", "ego.maneuver")
                                      for kind in ("weight", "bias")}


@pytest.mark.parametrize("method", ["full", "head", "lora"])
def test_an_encoder_the_model_does_not_read_neither_trains_nor_counts(method, batch):
    torch.manual_seed(0)
    model = BEVFusionDetector(**tiny_model_config(), sensors=["lidar", "radar"])
    in_use = {name: p.numel() for name, p in model.named_parameters() if not name.startswith("encoders.camera.")}
    count = prepare_fine_tuning(model, small_spec(method))
    camera = list(model.encoders["camera"].parameters())
    assert camera and not any(p.requires_grad for p in camera)
    assert count.total == sum(in_use.values())
    assert count.trained == sum(p.numel() for name, p in model.named_parameters() if p.requires_grad)
    if method == "full":
        assert count.trained == count.total


def test_an_unread_encoder_is_left_out_of_both_counts_before_fine_tuning_too():
    # a fresh model (everything requires grad) reading LiDAR and radar: its camera encoder neither trains nor counts
    model = BEVFusionDetector(**tiny_model_config(), sensors=["lidar", "radar"])
    in_use = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("encoders.camera."))
    assert in_use < sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == (in_use, in_use)


def test_frozen_prefixes_do_not_train_whatever_the_method(batch):
    torch.manual_seed(0)
    model = tiny_model()
    prepare_fine_tuning(model, FineTuningSpec("full", frozen=("head.heatmap", "decoder.stage1")))
    frozen = {name for name, _ in model.named_parameters() if name.startswith(("head.heatmap.", "decoder.stage1."))}
    assert frozen and trained_names(model) == {name for name, _ in model.named_parameters()} - frozen
    changed = changed_by_one_step(model, batch)
    assert changed and not changed & frozen
    planning = BEVFusionDetector(**tiny_model_config(), planning=dict(hidden_channels=16, pooled_cells=2))
    prepare_fine_tuning(planning, FineTuningSpec("full", frozen=("planning_head",)))
    assert trained_names(planning) == {name for name, _ in planning.named_parameters()
                                       if not name.startswith("planning_head.")}


@pytest.mark.parametrize("method", ["lora", "adapter"])
def test_a_frozen_layer_that_the_method_adapts_does_not_train(method):
    model = tiny_model()
    prepare_fine_tuning(model, FineTuningSpec(method, rank=2, targets=("head.shared.0", "decoder.stage1.0"),
                                              frozen=("head.shared.0",)))
    trained = trained_names(model)
    assert any(name.startswith("decoder.stage1.0.") for name in trained)  # its adapted sibling trains
    assert not any(name.startswith("head.shared.0.") for name in trained)


def test_default_targets_fit_a_model_with_one_sensor_and_skip_unread_encoders():
    lidar_only = BEVFusionDetector(**tiny_model_config(sensors=("lidar",)))
    prepare_fine_tuning(lidar_only, FineTuningSpec("lora", rank=2))
    assert any(name.startswith("encoders.lidar.") and ".lora_" in name for name in trained_names(lidar_only))
    no_cameras = BEVFusionDetector(**tiny_model_config(), sensors=["lidar", "radar"])
    with pytest.raises(ValueError, match=r"prefix 'encoders.camera' selects no .* outside encoders.camera \(not "):
        prepare_fine_tuning(no_cameras, FineTuningSpec("lora", rank=2, targets=("encoders.camera",)))
    prepare_fine_tuning(no_cameras, FineTuningSpec("lora", rank=2, targets=("encoders",)))
    adapted = {name.split(".")[1] for name, _ in no_cameras.named_parameters() if ".lora_" in name}
    assert adapted == {"lidar", "radar"}


def test_norm_statistics_are_held_at_once_in_a_model_left_in_train_mode():
    # prepare_fine_tuning on a model already in train mode: every norm evaluates with its running statistics
    # straight away, not only after the next train() call
    model = tiny_model().train()
    prepare_fine_tuning(model, FineTuningSpec("head"))
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, (HeldBatchNorm1d, HeldBatchNorm2d)) and not m.training for m in norms)


def test_fold_gives_the_norms_back_their_torch_class():
    # the folded (exported) network is the plain one: its norms update their statistics again in train mode
    model = tiny_model()
    prepare_fine_tuning(model, FineTuningSpec("adapter", rank=2))
    fold(model).train()
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and {type(m) for m in norms} == {nn.BatchNorm1d, nn.BatchNorm2d}
    assert all(m.training for m in norms)


def test_a_rank_at_a_layers_bound_is_allowed_one_above_is_not():
    # encoders.radar.conv.0: a 4 -> 4 3x3 conv, LoRA rank at most min(4 x 9, 4) = 4; decoder.upsample2.0: a
    # ConvTranspose2d 16 -> 8, its input adapter at most 16 (its input channels, not its 8 outputs)
    for method, target, bound in (("lora", "encoders.radar.conv.0", 4), ("adapter", "decoder.upsample2.0", 16)):
        prepare_fine_tuning(tiny_model(), FineTuningSpec(method, rank=bound, targets=(target,)))
        with pytest.raises(ValueError, match=f"rank {bound + 1} is larger than layer {target} .*at most {bound}\\)"):
            prepare_fine_tuning(tiny_model(), FineTuningSpec(method, rank=bound + 1, targets=(target,)))


def test_default_targets_skip_an_encoder_the_model_has_but_does_not_read():
    # a model with a radar encoder that reads the LiDAR and the cameras only: LoRA's default targets (lidar and
    # radar encoders, fuser, decoder, head) leave the radar encoder out instead of failing on it
    model = BEVFusionDetector(**tiny_model_config(), sensors=["lidar", "camera"])
    prepare_fine_tuning(model, FineTuningSpec("lora", rank=2))
    parts = [name.split(".") for name, _ in model.named_parameters() if ".lora_" in name]
    assert {".".join(part[:2] if part[0] == "encoders" else part[:1]) for part in parts} == {
        "encoders.lidar", "fuser", "decoder", "head"}
    assert not any(p.requires_grad for p in model.encoders["radar"].parameters())


def test_update_norm_stats_lets_trainable_norms_update(batch):
    model = tiny_model()
    prepare_fine_tuning(model, FineTuningSpec("head", update_norm_stats=True))
    model.train()
    assert model.head.shared[1].training and not isinstance(model.head.shared[1], HeldBatchNorm2d)
    assert isinstance(model.decoder.stage1[1], HeldBatchNorm2d) and not model.decoder.stage1[1].training


@pytest.mark.parametrize("method", ["lora", "adapter"])
def test_folded_detector_computes_the_adapted_outputs_with_the_base_keys(method, batch):
    torch.manual_seed(0)
    model = tiny_model()
    base_keys = set(model.state_dict())
    count = prepare_fine_tuning(model, FineTuningSpec(method, rank=2))
    randomise_added_weights(model, seed=3)
    assert count.trained < count.total
    model.eval()
    with torch.no_grad():
        adapted = model(batch, mode="tensor")
    state = folded_state_dict(model)
    assert set(state) == base_keys
    plain = tiny_model()
    plain.load_state_dict(state, strict=True)
    plain.eval()
    with torch.no_grad():
        folded = plain(batch, mode="tensor")
    for name in adapted:
        assert torch.allclose(folded[name], adapted[name], atol=1e-4), name
    assert count_parameters(plain) == (sum(p.numel() for p in plain.parameters()), count.total)


def test_bad_fine_tuning_requests_fail_before_changing_the_model():
    with pytest.raises(ValueError, match="unknown fine-tuning method 'prompt'"):
        FineTuningSpec("prompt")
    # a rank is the added layers' (default 8); full and head add none, so a rank there is refused, not recorded
    assert [FineTuningSpec(method).rank for method in ("full", "head", "lora", "adapter")] == [None, None, 8, 8]
    for method in ("full", "head"):
        with pytest.raises(ValueError, match=f"rank applies to lora and adapter, not to '{method}'"):
            FineTuningSpec(method, rank=4)
    with pytest.raises(ValueError, match="rank must be >= 1, got 0"):
        FineTuningSpec("adapter", rank=0)
    for method in ("full", "head"):  # they add no layer to place
        with pytest.raises(ValueError, match=f"targets apply to lora and adapter, not to '{method}'"):
            FineTuningSpec(method, targets=("decoder",))
    # a LoRA scale of 0 trains nothing (it read as the rank's scale 1); a negative one flips the update; the
    # other methods have none
    for method, alpha in (("lora", 0.0), ("lora", -4.0), ("lora", float("nan")), ("adapter", 2.0)):
        with pytest.raises(ValueError, match=f"lora_alpha applies to lora and must be finite and > 0, got {alpha}"):
            FineTuningSpec(method, lora_alpha=alpha)
    model = tiny_model()
    with pytest.raises(ValueError, match="rank 64 is larger than layer"):
        prepare_fine_tuning(model, FineTuningSpec("lora", rank=64))
    with pytest.raises(ValueError, match="rank 17 is larger than layer"):  # the decoder reads 16 channels
        prepare_fine_tuning(model, FineTuningSpec("adapter", rank=17, targets=("decoder.stage1.0",)))
    with pytest.raises(ValueError, match="prefix 'decoder.stage9' selects no"):
        prepare_fine_tuning(model, FineTuningSpec("lora", targets=("decoder.stage9",)))
    output = head_output_layers(model)[0]  # trains whole with every method: no LoRA there
    with pytest.raises(ValueError, match=f"selects no .* but {output} \\(an output layer: it trains whole"):
        prepare_fine_tuning(model, FineTuningSpec("lora", targets=(output,)))
    for method, frozen in (("head", ("head",)), ("full", ("encoders", "fuser", "decoder", "head"))):
        with pytest.raises(ValueError, match=f"{method} with frozen {', '.join(frozen)}: no parameter is left"):
            prepare_fine_tuning(tiny_model(), FineTuningSpec(method, frozen=frozen))
    with pytest.raises(ValueError, match="prefix 'planing_head' selects no"):
        prepare_fine_tuning(model, FineTuningSpec("full", frozen=("planing_head",)))
    assert all(p.requires_grad for p in model.parameters())
    assert not any(isinstance(m, (ResidualInputAdapter, HeldBatchNorm2d)) for m in model.modules())


def test_default_lora_alpha_is_the_rank_so_the_fold_adds_b_a_unscaled():
    """FineTuningSpec's lora_alpha None is the rank (scale alpha / rank = 1). On decoder.stage1.0 (16 -> 16 3x3
    conv) with rank 2: A's filter 0 takes 1 x input channel 0 at the centre tap, filter 1 takes 2 x channel 1;
    B maps r0 -> output 0 times 3 and r1 -> output 1 times 0.5. B A: centre tap (out 0, in 0) = 3 x 1 = 3,
    (out 1, in 1) = 0.5 x 2 = 1, every other weight 0; folded W + 1 x B A (scale 2 would add 6 and 2)."""
    model = tiny_model()
    base = copy.deepcopy(model.decoder.stage1[0].weight.detach())
    prepare_fine_tuning(model, FineTuningSpec("lora", rank=2, targets=("decoder.stage1.0",)))
    layer = model.decoder.stage1[0]
    with torch.no_grad():
        layer.lora_A["default"].weight.zero_()
        layer.lora_B["default"].weight.zero_()
        layer.lora_A["default"].weight[0, 0, 1, 1] = 1.0
        layer.lora_A["default"].weight[1, 1, 1, 1] = 2.0
        layer.lora_B["default"].weight[0, 0, 0, 0] = 3.0
        layer.lora_B["default"].weight[1, 1, 0, 0] = 0.5
    expected = base.clone()
    expected[0, 0, 1, 1] += 3.0
    expected[1, 1, 1, 1] += 1.0
    assert torch.allclose(fold(model).decoder.stage1[0].weight, expected, atol=1e-6)
