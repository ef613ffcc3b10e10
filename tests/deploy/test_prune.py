"""Structured pruning (perception.deploy.prune, tools/prune.py) of the tiny model of tests/models: FLOPs fall by the
asked fraction, the outputs keep their shapes, ratio 0 is the model itself, and the pruned model is a config +
plain checkpoint pair that load_detector reads with weights_only."""
import json

import pytest
import torch

pytest.importorskip("torch_pruning", reason="torch-pruning is not installed")

from perception.cli.prune import main as prune_main  # noqa: E402
from perception.deploy.graphs import example_batch  # noqa: E402
from perception.deploy.prune import PRUNED_MODULES, dense_flops, prune_detector, pruned_widths  # noqa: E402
from perception.models import load_detector  # noqa: E402
from tests.deploy.test_deploy import write_model  # noqa: E402
from tests.models.helpers import tiny_model  # noqa: E402


def _pruned_flops(flops):
    return sum(value for path, value in flops.items() if path.split(".")[0] in PRUNED_MODULES)


def test_half_the_flops_same_output_shapes():
    torch.manual_seed(0)
    model = tiny_model().eval()
    batch = example_batch(model, 2000, 50)
    pruned = prune_detector(model, batch, 0.5)
    before, after = dense_flops(model, batch), dense_flops(pruned, batch)
    assert 0.35 <= _pruned_flops(after) / _pruned_flops(before) <= 0.5
    assert {path: after[path] for path in after if path.startswith("encoders.")} == \
        {path: before[path] for path in before if path.startswith("encoders.")}  # encoders untouched
    widths = pruned_widths(pruned)
    assert all(width < 16 for stage in widths["decoder"]["channels"] for width in stage)
    assert widths["head"]["head_channels"] < 16
    with torch.no_grad():
        reference, outputs = model(batch, mode="tensor"), pruned(batch, mode="tensor")
    assert {k: v.shape for k, v in outputs.items()} == {k: v.shape for k, v in reference.items()}
    assert pruned_widths(model)["decoder"]["channels"] == [[16], [16]]  # the original is left as it was
    with pytest.raises(ValueError, match=r"pruning ratio must lie in \[0, 1\)"):
        prune_detector(model, batch, 1.0)


def test_tool_writes_loadable_models_and_the_report(tmp_path, synthetic_root, nusc_synthetic):
    config, checkpoint = write_model(tmp_path)
    rows = prune_main([config, checkpoint, "--ratio", "0.5", "--out", str(tmp_path / "pruned"), "--dataroot",
                       str(synthetic_root), "--version", nusc_synthetic.version, "--split", "synth_val",
                       "--latency-iters", "1"])
    assert [row["ratio"] for row in rows] == [0.0, 0.5]
    assert rows[1]["flops_pruned_modules"] <= 0.5 * rows[0]["flops_pruned_modules"]
    assert rows[1]["flops_total"] < rows[0]["flops_total"] and rows[1]["detector_ms"]["count"] == 1
    original = load_detector(config, checkpoint)
    batch = example_batch(original, 2000, 50)
    with torch.no_grad():
        reference = original(batch, mode="tensor")
        for row in rows:
            torch.load(row["checkpoint"], weights_only=True)
            model = load_detector(row["config"], row["checkpoint"])
            assert pruned_widths(model) == row["widths"]
            outputs = model(batch, mode="tensor")
            if row["ratio"] == 0:  # not pruned, not fine-tuned: the original model
                assert all(torch.equal(outputs[k], reference[k]) for k in reference)
            assert {k: v.shape for k, v in outputs.items()} == {k: v.shape for k, v in reference.items()}
    eval_dir = tmp_path / "pruned" / "ratio_0.5" / "eval"
    eval_dir.mkdir()
    (eval_dir / "metrics.json").write_text(json.dumps({"nd_score": 0.25}))
    reported = prune_main(["--report", str(tmp_path / "pruned")])
    assert [row["nds"] for row in reported] == [None, 0.25]
    table = (tmp_path / "pruned" / "pruning.md").read_text()
    assert "| 0 |" in table and "not measured" in table and "0.2500" in table
    assert (tmp_path / "pruned" / "pruning.png").stat().st_size > 0
