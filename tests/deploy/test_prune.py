"""Structured pruning (perception.deploy.prune, tools/prune.py) of the tiny model of tests/models: the whole network
(scope all) or the decoder and head alone lose the asked fraction of their MACs, counted again by hand over the
whole detector's forward; the outputs keep their shapes, ratio 0 is the model itself, and the pruned model
is a config + plain checkpoint pair that load_detector reads with weights_only, gives the same outputs and exports
to ONNX graphs that match it."""
import json
import os
import re

import pytest
import torch
from mmengine.config import Config

pytest.importorskip("torch_pruning", reason="torch-pruning is not installed")

from perception.cli.prune import main as prune_main, write_pruned_config  # noqa: E402
from perception.deploy.graphs import example_batch, export_graphs, load_onnx_detector, output_error  # noqa: E402
from perception.deploy.prune import dense_macs, prune_detector, pruned_widths, scope_macs  # noqa: E402
from perception.engine.checkpoint import save_checkpoint  # noqa: E402
from perception.models import load_detector, model_inputs  # noqa: E402
from perception.models.bevfusion import BEVFusionDetector  # noqa: E402
from tests.deploy.test_deploy import write_model  # noqa: E402
from tests.models.helpers import make_frame, tiny_model, tiny_model_config  # noqa: E402

TINY_WIDTHS = {"encoders": {"camera": {"backbone_widths": [4, 8, 8, 8], "fpn_channels": 8},
                            "radar": {"hidden_channels": 4}},
               "fuser": {"out_channels": 16}, "decoder": {"channels": [[16], [16]]},
               "head": {"head_channels": 16, "branch_channels": {"heatmap": 16, "regression": 16, "attribute": 16}}}
"""tests.models.helpers.tiny_model_config's prunable widths, as pruned_widths writes them."""

UNPRUNABLE = ("encoders.lidar.pillars", "encoders.lidar.conv", "encoders.radar.pillars", "encoders.camera.bev_conv")
"""Dense modules whose input comes from a kernel and whose output goes to one or to the fuser's glue."""


def layer_macs(layer, inputs, output) -> int:
    """Hand-worked multiply-accumulates of one call of a weighted layer: each output element of a convolution
    sums (in channels / groups) x kernel products, each input element of a transposed convolution spreads over
    (out channels / groups) x kernel outputs, each output of a linear layer sums its in_features products."""
    if isinstance(layer, torch.nn.ConvTranspose2d):
        return inputs[0].numel() * layer.out_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
    if isinstance(layer, torch.nn.Conv2d):
        return output.numel() * layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
    return output.numel() * layer.in_features


def whole_macs(detector, batch) -> int:
    """The detector's multiply-accumulates on ``batch``: layer_macs of every weighted layer over its whole forward
    (kernels between the layers), not module by module as perception.deploy.prune counts them."""
    counted = []
    hooks = [module.register_forward_hook(lambda layer, inputs, output: counted.append(
        layer_macs(layer, inputs, output))) for module in detector.modules()
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))]
    try:
        outputs(detector, batch)
    finally:
        for hook in hooks:
            hook.remove()
    return sum(counted)


def test_a_transposed_convolution_counts_each_input_once():
    """64 -> 32 channels, kernel 2, stride 2 on 64 x 64: 64^3 inputs x 32 x 2 x 2 = 33,554,432 (torch-pruning's
    counter gave four times that)."""
    from perception.deploy.prune import module_macs

    upsample = torch.nn.ConvTranspose2d(64, 32, 2, stride=2)
    assert module_macs(upsample, (torch.zeros(1, 64, 64, 64),)) == 64 ** 3 * 32 * 4 == 33_554_432
    grouped = torch.nn.Conv2d(64, 32, 3, padding=1, groups=2)  # 32 x 64 x 64 outputs x 32 x 3 x 3, batch 2
    assert module_macs(grouped, (torch.zeros(2, 64, 64, 64),)) == 2 * 32 * 64 * 64 * 32 * 9


def leaves(widths):
    """The widths of a pruned_widths dict, flattened in a fixed order."""
    if isinstance(widths, dict):
        return [width for key in sorted(widths) for width in leaves(widths[key])]
    return [width for value in widths for width in leaves(value)] if isinstance(widths, list) else [widths]


def outputs(detector, batch):
    with torch.no_grad():
        return detector(batch, mode="tensor")


@pytest.fixture(scope="module")
def pruned_all(tmp_path_factory):
    """(config, checkpoint, the model, a batch of one frame with every sensor, the model pruned at 0.5, scope all)."""
    config, checkpoint = write_model(tmp_path_factory.mktemp("prune"))
    model = load_detector(config, checkpoint)
    batch = model.batch_from_frames([make_frame(0)])
    return config, checkpoint, model, batch, prune_detector(model, batch, 0.5, "all")


def test_module_macs_add_up_to_the_whole_forward(pruned_all):
    _, _, model, batch, pruned = pruned_all  # six cameras, many pillars: each module counted for all of them
    for detector in (model, pruned):
        assert sum(dense_macs(detector, batch).values()) == whole_macs(detector, batch)


def test_whole_network_at_half_the_macs(pruned_all):
    _, _, model, batch, pruned = pruned_all
    assert 0.4 <= whole_macs(pruned, batch) / whole_macs(model, batch) <= 0.5
    widths = pruned_widths(pruned)
    assert all(after < before for after, before in zip(leaves(widths), leaves(TINY_WIDTHS)))  # every layer lost some
    assert pruned_widths(model) == TINY_WIDTHS  # the original is left as it was
    before, after = dense_macs(model, batch), dense_macs(pruned, batch)
    assert {path: after[path] for path in UNPRUNABLE} == {path: before[path] for path in UNPRUNABLE}
    reference = outputs(model, batch)
    assert {k: v.shape for k, v in outputs(pruned, batch).items()} == {k: v.shape for k, v in reference.items()}


def test_pruned_model_round_trips_and_exports(pruned_all, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    config, _, _, batch, pruned = pruned_all
    pruned_config, pruned_checkpoint = tmp_path / "config.py", tmp_path / "model.pth"
    write_pruned_config(pruned_config, config, pruned_widths(pruned))
    save_checkpoint({name: tensor.clone() for name, tensor in pruned.state_dict().items()}, str(pruned_checkpoint),
                    {}, model_inputs(config))
    assert set(torch.load(pruned_checkpoint, weights_only=True)["state_dict"]) == set(pruned.state_dict())
    loaded = load_detector(pruned_config, pruned_checkpoint)
    assert pruned_widths(loaded) == pruned_widths(pruned)
    reference, reloaded = outputs(pruned, batch), outputs(loaded, batch)
    assert all(torch.equal(reloaded[k], reference[k]) for k in reference)
    export_graphs(loaded, pruned_config, pruned_checkpoint, tmp_path / "onnx", batch)  # onnx.checker on each graph
    onnx_detector = load_onnx_detector(pruned_config, tmp_path / "onnx")
    frames = loaded.batch_from_frames([make_frame(1), make_frame(2, cameras=False)])
    for name, error in output_error(outputs(loaded, frames), outputs(onnx_detector, frames)).items():
        assert error < 1e-4, name


def test_decoder_head_scope_prunes_those_alone():
    torch.manual_seed(0)
    model = tiny_model().eval()
    batch = example_batch(model, 2000, 50)
    pruned = prune_detector(model, batch, 0.5, "decoder_head")
    assert 0.35 <= scope_macs(pruned, batch, "decoder_head") / scope_macs(model, batch, "decoder_head") <= 0.5
    before, after = dense_macs(model, batch), dense_macs(pruned, batch)
    untouched = [path for path in before if path.startswith(("encoders.", "fuser"))]
    assert {path: after[path] for path in untouched} == {path: before[path] for path in untouched}
    widths = pruned_widths(pruned)
    assert (widths["encoders"], widths["fuser"]) == (TINY_WIDTHS["encoders"], TINY_WIDTHS["fuser"])
    assert all(width < 16 for width in leaves([widths["decoder"], widths["head"]]))


def test_a_model_that_does_not_read_the_cameras_prunes_what_it_reads():
    torch.manual_seed(0)
    model = BEVFusionDetector(**tiny_model_config(), sensors=("lidar", "radar")).eval()
    batch = model.batch_from_frames([make_frame(0, cameras=False)])
    pruned = prune_detector(model, batch, 0.5, "all")
    assert 0.35 <= scope_macs(pruned, batch, "all") / scope_macs(model, batch, "all") <= 0.5
    assert "camera" not in pruned_widths(pruned)["encoders"]
    camera_before, camera_after = model.encoders["camera"].state_dict(), pruned.encoders["camera"].state_dict()
    assert all(torch.equal(camera_after[key], value) for key, value in camera_before.items())


def test_ratio_zero_is_the_model_and_bad_arguments_are_named():
    torch.manual_seed(0)
    model = tiny_model().eval()
    batch = example_batch(model, 2000, 50)
    unpruned = prune_detector(model, batch, 0.0, "all")
    assert pruned_widths(unpruned) == TINY_WIDTHS
    reference, result = outputs(model, batch), outputs(unpruned, batch)
    assert all(torch.equal(result[k], reference[k]) for k in reference)
    for ratio in (1.0, -0.5):  # a negative ratio came back unpruned without a word
        with pytest.raises(ValueError, match=r"pruning ratio must lie in \[0, 1\)"):
            prune_detector(model, batch, ratio)
    with pytest.raises(ValueError, match="pruning scope 'head': one of decoder_head, all"):
        prune_detector(model, batch, 0.5, "head")
    without_cameras = model.batch_from_frames([make_frame(0, cameras=False)])
    with pytest.raises(ValueError, match="does not run encoders.camera.backbone"):
        prune_detector(model, without_cameras, 0.5, "all")


def test_tool_writes_loadable_models_and_the_report(tmp_path, synthetic_root, nusc_synthetic, capsys):
    config, checkpoint = write_model(tmp_path)
    rows = prune_main([config, checkpoint, "--ratio", "0.5", "--out", str(tmp_path / "pruned"), "--dataroot",
                       str(synthetic_root), "--version", nusc_synthetic.version, "--split", "synth_val",
                       "--latency-iters", "1"])
    assert json.loads((tmp_path / "pruned" / "prune.json").read_text())["scope"] == "all"  # the default
    assert [row["ratio"] for row in rows] == [0.0, 0.5]
    assert rows[1]["macs_pruned_modules"] == rows[1]["macs_total"] <= 0.5 * rows[0]["macs_total"]
    assert rows[1]["macs_fraction"] <= 0.5 and rows[1]["detector_ms"]["count"] == 1
    original = load_detector(config, checkpoint)
    batch = example_batch(original, 2000, 50)
    with torch.no_grad():
        reference = original(batch, mode="tensor")
        for row in rows:
            assert torch.load(row["checkpoint"], weights_only=True)["meta"]["pruning_scope"] == "all"
            model = load_detector(row["config"], row["checkpoint"])
            assert pruned_widths(model) == row["widths"]
            result = model(batch, mode="tensor")
            if row["ratio"] == 0:  # not pruned, not fine-tuned: the original model
                assert all(torch.equal(result[k], reference[k]) for k in reference)
            assert {k: v.shape for k, v in result.items()} == {k: v.shape for k, v in reference.items()}
    eval_dir = tmp_path / "pruned" / "ratio_0.5" / "eval"
    eval_dir.mkdir()
    (eval_dir / "metrics.json").write_text(json.dumps({"nd_score": 0.25}))
    reported = prune_main(["--report", str(tmp_path / "pruned")])
    assert [row["nds"] for row in reported] == [None, 0.25]
    table = (tmp_path / "pruned" / "pruning.md").read_text()
    assert table.startswith("Pruning scope: all (encoders, fuser, decoder, head)")
    assert "| 0 |" in table and "not measured" in table and "0.2500" in table
    assert (tmp_path / "pruned" / "pruning.png").stat().st_size > 0
    # pruned again into the same folder: the evaluation was of the model before, not of this one
    model = tmp_path / "pruned" / "ratio_0.5" / "model.pth"
    os.utime(model, (model.stat().st_atime, (eval_dir / "metrics.json").stat().st_mtime + 10))
    assert [row["nds"] for row in prune_main(["--report", str(tmp_path / "pruned")])] == [None, None]
    assert "not measured (eval/ older than model.pth)" in (tmp_path / "pruned" / "pruning.md").read_text()
    written = json.loads((tmp_path / "pruned" / "prune.json").read_text())
    for row in written["rows"]:  # the keys of before, when the MAC counts were named flops
        row["flops_total"] = row.pop("macs_total")
    (tmp_path / "pruned" / "prune.json").write_text(json.dumps(written))
    with pytest.raises(SystemExit):
        prune_main(["--report", str(tmp_path / "pruned")])
    assert re.search(r"prune\.json: rows without macs_total .* run tools/prune\.py again", capsys.readouterr().err)
    with pytest.raises(SystemExit):  # before any model is pruned
        prune_main([config, checkpoint, "--out", str(tmp_path / "none"), "--latency-iters", "0"])
    assert not (tmp_path / "none").exists()


def test_a_fresh_run_leaves_only_its_own_ratio_folders(tmp_path, synthetic_root, nusc_synthetic, capsys):
    """(An earlier run's ratio folders stayed beside this run's, which prune.json and --report do not read.) A ratio
    pruned again keeps what else its folder holds (--report marks an evaluation older than the model)."""
    config, checkpoint = write_model(tmp_path)
    out = tmp_path / "pruned"

    def run(ratio):
        return prune_main([config, checkpoint, "--ratio", ratio, "--out", str(out), "--dataroot", str(synthetic_root),
                           "--version", nusc_synthetic.version, "--split", "synth_val", "--latency-iters", "1"])

    run("0.5")
    (out / "ratio_0" / "eval").mkdir()
    (out / "ratio_0" / "eval" / "metrics.json").write_text(json.dumps({"nd_score": 0.25}))
    assert [row["ratio"] for row in run("0.25")] == [0.0, 0.25]
    assert sorted(path.name for path in out.iterdir() if path.is_dir()) == ["ratio_0", "ratio_0.25"]
    assert (out / "ratio_0" / "eval" / "metrics.json").is_file()
    # The pruned model pruned again into the same folder: its own folder, which the new configs inherit, stays.
    prune_main([str(out / "ratio_0.25" / "config.py"), str(out / "ratio_0.25" / "model.pth"), "--ratio", "0.1",
                "--out", str(out), "--dataroot", str(synthetic_root), "--version", nusc_synthetic.version,
                "--split", "synth_val", "--latency-iters", "1"])
    assert sorted(path.name for path in out.iterdir() if path.is_dir()) == ["ratio_0", "ratio_0.1", "ratio_0.25"]
    Config.fromfile(str(out / "ratio_0.1" / "config.py"))
    # ... and at its own ratio it would write over its own config and weights: refused before any work.
    with pytest.raises(SystemExit):
        prune_main([str(out / "ratio_0.25" / "config.py"), str(out / "ratio_0.25" / "model.pth"), "--ratio", "0.25",
                    "--out", str(out), "--dataroot", str(synthetic_root), "--version", nusc_synthetic.version,
                    "--split", "synth_val", "--latency-iters", "1"])
    assert "its ratio_0.25 holds CONFIG (or a config it inherits from) or CHECKPOINT" in capsys.readouterr().err
    Config.fromfile(str(out / "ratio_0.25" / "config.py"))
    # A third generation: ratio_0.1's config inherits ratio_0.25's, which stays too; writing it over is refused.
    again = [str(out / "ratio_0.1" / "config.py"), str(out / "ratio_0.1" / "model.pth"), "--out", str(out),
             "--dataroot", str(synthetic_root), "--version", nusc_synthetic.version, "--split", "synth_val",
             "--latency-iters", "1"]
    prune_main([*again, "--ratio", "0.05"])
    assert sorted(path.name for path in out.iterdir() if path.is_dir()) == [
        "ratio_0", "ratio_0.05", "ratio_0.1", "ratio_0.25"]
    Config.fromfile(str(out / "ratio_0.05" / "config.py"))
    with pytest.raises(SystemExit):
        prune_main([*again, "--ratio", "0.25"])
    assert "its ratio_0.25 holds CONFIG (or a config it inherits from)" in capsys.readouterr().err


def test_a_ratio_the_steps_cannot_reach_is_refused():
    # two steps at most take 90% of every layer's channels: the decoder and head keep their outputs (the head's
    # classes and boxes, the decoder's two halves), so far more than 1% of their MACs remain
    torch.manual_seed(0)
    model = tiny_model().eval()
    with pytest.raises(ValueError, match=r"pruning ratio 0\.99: 90% of every layer's channels leave \d+% of the MACs"):
        prune_detector(model, example_batch(model, 2000, 50), 0.99, "decoder_head", steps=2)


def test_widths_one_config_entry_cannot_express_are_refused():
    torch.manual_seed(0)
    model = tiny_model().eval()
    model.encoders["camera"].backbone.stage2[1][0] = torch.nn.Conv2d(8, 6, 3, padding=1, bias=False)
    with pytest.raises(ValueError, match=r"backbone_widths: the convs it sets have widths \[6, 8\]"):
        pruned_widths(model)
    model = tiny_model().eval()
    model.encoders["camera"].backbone.lateral8 = torch.nn.Conv2d(8, 5, 1)
    with pytest.raises(ValueError, match=r"fpn_channels: the convs it sets have widths \[5, 8\]"):
        pruned_widths(model)


def test_the_pruned_fuser_states_its_pruned_width(pruned_all):
    *_, pruned = pruned_all
    width = pruned.fuser.conv[0].weight.shape[0]  # the conv's output channels as its weight holds them
    assert width < 16 and pruned.fuser.out_channels == width == pruned.decoder.stage1[0].weight.shape[1]


def test_the_missing_sensor_embeddings_are_named_to_torch_pruning_and_kept():
    import warnings

    torch.manual_seed(0)
    model = tiny_model().eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pruned = prune_detector(model, model.batch_from_frames([make_frame(0)]), 0.5, "all")
    assert not [w for w in caught if "Unwrapped parameters" in str(w.message)]  # torch-pruning's guess, not made
    before, after = model.fuser.missing_embedding, pruned.fuser.missing_embedding
    assert set(after) == set(before) and all(torch.equal(after[key], before[key]) for key in before)
