"""tools/export.py, tools/quantize.py and the --backend option of tools/test.py and tools/benchmark.py on the tiny
synthetic world (tests/conftest.py) with the tiny model of tests/models: what they write, and their one-line
errors for bad input."""
import json
import os
import shutil

import pytest

pytest.importorskip("onnxruntime", reason="the deploy extra (onnx, onnxruntime) is not installed")

from perception.cli.benchmark import main as benchmark_main  # noqa: E402
from perception.cli.export import main as export_main  # noqa: E402
from perception.cli.quantize import main as quantize_main  # noqa: E402
from perception.cli.test import run as evaluate  # noqa: E402
from tests.deploy.test_deploy import write_model  # noqa: E402


@pytest.fixture(scope="module")
def model_on_world(tmp_path_factory, synthetic_root, nusc_synthetic):
    """(config naming the tiny world's data and splits, checkpoint, folder)."""
    folder = tmp_path_factory.mktemp("tools")
    config, checkpoint = write_model(folder)
    with open(config, "a") as f:
        f.write(f"dataroot = {str(synthetic_root)!r}\ndata_version = {nusc_synthetic.version!r}\n"
                "train_dataloader = dict(dataset=dict(split='synth_train'))\n"
                "val_dataloader = dict(dataset=dict(split='synth_val'))\n")
    return config, checkpoint, folder


def test_export_quantize_and_evaluate(model_on_world, synthetic_root, nusc_synthetic):
    config, checkpoint, folder = model_on_world
    exported = export_main([config, checkpoint, "--out", str(folder / "float")])
    assert max(exported["check_relative_error"].values()) < 1e-4
    assert json.loads((folder / "float" / "export.json").read_text())["graphs"]["fuser"] == "fuser.onnx"
    report = quantize_main([config, str(folder / "float"), "--out", str(folder / "int8"), "--calib-frames", "2",
                            "--eval-frames", "1", "--max-score-error", "1"])
    assert report["kept_float"] == [] and report["int8_bytes"] > 0
    scenes = sorted(nusc_synthetic.scene, key=lambda scene: scene["name"])  # synth_train, synth_val: 4 keyframes each
    assert report["dataroot"] == str(synthetic_root) and report["version"] == nusc_synthetic.version
    assert report["calibration"] == {"split": "synth_train",  # 2 frames spread over 4: the first and the last
                                     "sample_tokens": [scenes[0]["first_sample_token"], scenes[0]["last_sample_token"]]}
    assert report["evaluation"] == {"split": "synth_val", "sample_tokens": [scenes[1]["first_sample_token"]]}
    assert (folder / "int8" / "sensitivity.md").read_text().startswith("| graph quantized |")
    assert (folder / "int8" / "sensitivity.png").stat().st_size > 0
    metrics = evaluate([config, checkpoint, "--backend", "onnxruntime-int8", "--onnx", str(folder / "int8"),
                        "--dataroot", str(synthetic_root), "--version", nusc_synthetic.version, "--split",
                        "synth_val", "--out", str(folder / "test"), "--no-plots"])
    assert 0 <= metrics[0]["nd_score"] <= 1
    assert not (folder / "int8.partial").exists()  # built beside --out, moved in whole
    # a rerun killed mid-way leaves the finished folder as it was (its graphs, its report), not a mix
    finished = {path.name: path.read_bytes() for path in (folder / "int8").iterdir() if path.is_file()}
    import perception.deploy.quantize

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(perception.deploy.quantize, "sensitivity_sweep", killed)
        with pytest.raises(KeyboardInterrupt):
            quantize_main([config, str(folder / "float"), "--out", str(folder / "int8"), "--calib-frames", "2",
                           "--eval-frames", "1", "--max-score-error", "1"])
    assert (folder / "int8.partial" / "fuser.onnx").is_file()  # what the killed run had written
    assert {path.name: path.read_bytes() for path in (folder / "int8").iterdir() if path.is_file()} == finished
    shutil.copytree(folder / "int8", folder / "int8_copy")  # a second INT8 folder, timed beside the first
    int8, copy = str(folder / "int8"), str(folder / "int8_copy")
    result = benchmark_main([config, checkpoint, "--backend", "torch,onnxruntime,onnxruntime-int8,onnxruntime-int8",
                             "--onnx", str(folder / "float"), "--onnx", int8, "--onnx", copy, "--json",
                             str(folder / "bench.json"), "--iters", "3", "--warmup", "1", "--sweeps", "1,2",
                             "--curve-iters", "1", "--kernel-iters", "1", "--frames", "2", "--quiet"])
    labels = ["torch", "onnxruntime", f"onnxruntime-int8@{int8}", f"onnxruntime-int8@{copy}"]
    assert list(result["backends"]) == labels
    assert result["onnx"][labels[2]] == int8 and "hard_voxelize_lidar" in result["kernels"]
    for label, entry in result["backends"].items():  # every backend timed on every iteration, the same stages
        bev_stages = {"fuser", "decoder", "head"} if label == "torch" else {"fuser_decoder_head"}  # one graph
        assert bev_stages | {"voxelize", "detector", "end_to_end"} <= set(entry["stages_ms"])
        assert {stats["count"] for stats in entry["stages_ms"].values()} == {3}
        assert [row["lidar_sweeps"] for row in entry["sweeps_curve"]] == [1, 2]
        assert set(entry["p50_vs_first"]) == {"detector", "end_to_end"}
    assert result["backends"]["torch"]["p50_vs_first"] == {"detector": 1.0, "end_to_end": 1.0}
    assert json.loads((folder / "bench.json").read_text())["backends"].keys() == result["backends"].keys()


def test_quantize_calibrates_a_config_that_trains_on_several_datasets(model_on_world, synthetic_root,
                                                                      nusc_synthetic):
    """(A config training on a ConcatDataset, as configs/fusion_tiny_worlds.py does, failed with AttributeError:
    'ConfigDict' object has no attribute 'split'.) Calibration takes the split of the first dataset."""
    config, checkpoint, folder = model_on_world
    worlds = folder / "worlds.py"
    worlds.write_text(open(config).read() + (
        "train_dataloader = dict(dataset=dict(type='ConcatDataset', datasets=[dict(type='FrameDataset',"
        f" dataroot={str(synthetic_root)!r}, version={nusc_synthetic.version!r}, split=split)"
        " for split in ('synth_train', 'synth_val')]))\n"))
    export_main([config, checkpoint, "--out", str(folder / "worlds_float")])
    report = quantize_main([str(worlds), str(folder / "worlds_float"), "--out", str(folder / "worlds_int8"),
                            "--calib-frames", "2", "--eval-frames", "1", "--max-score-error", "1"])
    assert report["calibration"]["split"] == "synth_train" and (folder / "worlds_int8" / "quantize.json").is_file()


def test_quantize_reports_every_graph_computing_in_float(model_on_world):
    """(quantize.json's kept_float left out the planning head's graphs, which compute in float.) Checked against the
    precision each graph file records."""
    import onnx
    import torch

    from perception.deploy.graphs import graph_path
    from perception.models import CHECKPOINT_FORMAT, BEVFusionDetector
    from tests.models.helpers import tiny_model_config

    config, _, folder = model_on_world
    model = dict(tiny_model_config(), planning=dict(hidden_channels=16, pooled_cells=2))
    planning_config = folder / "tiny_planning.py"
    planning_config.write_text(f"model = dict(type='BEVFusionDetector', **{json.dumps(model)})\n"
                               + open(config).read().split("\n", 1)[1])  # the tiny model's inputs and data
    checkpoint = folder / "tiny_planning.pth"
    torch.manual_seed(0)
    torch.save({"state_dict": BEVFusionDetector(**model).state_dict(), "meta": {"format": CHECKPOINT_FORMAT}},
               checkpoint)
    export_main([str(planning_config), str(checkpoint), "--out", str(folder / "planning_float")])
    report = quantize_main([str(planning_config), str(folder / "planning_float"), "--out",
                            str(folder / "planning_int8"), "--calib-frames", "1", "--eval-frames", "1",
                            "--max-score-error", "1"])  # no graph kept float by the sweep
    graphs = json.loads((folder / "planning_float" / "export.json").read_text())["graphs"]
    precision = {path: {p.key: p.value for p in onnx.load(str(graph_path(folder / "planning_int8", path)))
                        .metadata_props}["perception.precision"] for path in graphs if path != "bev_network"}
    assert report["kept_float"] == sorted(path for path, value in precision.items() if value != "int8")
    assert report["kept_float"] == sorted(f"planning_head.{part}" for part in (
        "ego.mlp", "ego.trajectory", "ego.maneuver", "reduce", "mlp", "correction", "lane_change"))


def test_export_checks_the_fuser_decoder_and_head_graphs_of_their_own(tmp_path, monkeypatch, capsys):
    """(A decoder.onnx with doubled weights passed tools/export.py's check, which ran bev_network.onnx alone: the
    parts' own graphs are what tools/quantize.py calibrates and benchmarks/bench_graphs.py times.)"""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    import perception.deploy.graphs

    config, checkpoint = write_model(tmp_path)
    export_graphs = perception.deploy.graphs.export_graphs

    def with_doubled_decoder(*args, **kwargs):
        files = export_graphs(*args, **kwargs)
        graph = onnx.load(str(files["decoder"]))
        for tensor in graph.graph.initializer:  # the conv weights; shapes and indices left alone
            values = numpy_helper.to_array(tensor)
            if values.dtype == np.float32 and values.ndim >= 2:
                tensor.CopyFrom(numpy_helper.from_array(2 * values, tensor.name))
        onnx.save(graph, str(files["decoder"]))
        return files

    monkeypatch.setattr(perception.deploy.graphs, "export_graphs", with_doubled_decoder)
    with pytest.raises(SystemExit):
        export_main([config, checkpoint, "--out", str(tmp_path / "float")])
    assert "(> --tolerance 0.0001); left there, not moved" in capsys.readouterr().err
    assert not (tmp_path / "float").exists()


def test_bench_graphs_reads_the_data_given_from_any_folder(model_on_world, synthetic_root, nusc_synthetic,
                                                           tmp_path, monkeypatch):
    """(benchmarks/bench_graphs.py read the config's dataroot relative to the current folder and took no
    --dataroot.) Run from an unrelated folder, on a config whose data root is nowhere."""
    import importlib.util

    from perception.paths import REPO_ROOT

    config, checkpoint, folder = model_on_world
    elsewhere = tmp_path / "elsewhere.py"
    elsewhere.write_text(open(config).read() + "dataroot = 'no/such/world'\n")
    export_main([config, checkpoint, "--out", str(tmp_path / "float")])
    quantize_main([config, str(tmp_path / "float"), "--out", str(tmp_path / "int8"), "--calib-frames", "1",
                   "--eval-frames", "1", "--max-score-error", "1"])
    spec = importlib.util.spec_from_file_location("bench_graphs", REPO_ROOT / "benchmarks" / "bench_graphs.py")
    bench_graphs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_graphs)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["bench_graphs.py", str(elsewhere), checkpoint, "--float", "float", "--int8",
                                     "int8", "--json", "graphs.json", "--calls", "1", "--frames", "1", "--dataroot",
                                     str(synthetic_root), "--version", nusc_synthetic.version])
    result = bench_graphs.main()  # as from the command line
    assert result["dataroot"] == str(synthetic_root) and result["version"] == nusc_synthetic.version
    assert "fuser" in {row["graph"] for row in result["rows"]}
    assert json.loads((tmp_path / "graphs.json").read_text())["rows"] == result["rows"]


def test_bad_input_is_one_line(model_on_world, synthetic_root, nusc_synthetic, tmp_path, capsys):
    config, checkpoint, _ = model_on_world
    other_config, _ = write_model(tmp_path, head_channels=8)
    with pytest.raises(SystemExit):
        export_main([other_config, checkpoint, "--out", str(tmp_path / "x")])
    assert "weights do not fit" in capsys.readouterr().err
    export_main([config, checkpoint, "--out", str(tmp_path / "float")])
    # an export that fails its own check is not moved to --out (it stayed there and loaded as an export)
    with pytest.raises(SystemExit):
        export_main([config, checkpoint, "--out", str(tmp_path / "strict"), "--tolerance", "1e-30"])
    assert "(> --tolerance 1e-30); left there, not moved" in capsys.readouterr().err
    assert not (tmp_path / "strict").exists() and (tmp_path / "strict.partial" / "fuser.onnx").is_file()
    for tolerance in ("nan", "-1"):  # NaN passed every check
        with pytest.raises(SystemExit) as exit_info:
            export_main([config, checkpoint, "--out", str(tmp_path / "strict"), "--tolerance", tolerance])
        assert exit_info.value.code == 2 and "must be finite and > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # NaN kept no graph float, as if chosen
        quantize_main([config, str(tmp_path / "float"), "--out", str(tmp_path / "int8"), "--max-score-error", "nan"])
    assert exit_info.value.code == 2 and "must be finite and >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        quantize_main([config, str(tmp_path / "float"), "--out", str(tmp_path / "int8"), "--calib-split", "train"])
    assert ("error: calibration frames: split 'train' is an official split of the nuScenes versions ending in "
            "'trainval', not of v1.0-synth" in capsys.readouterr().err)
    with pytest.raises(SystemExit):  # calibrated on the frames the sweep then evaluates
        quantize_main([config, str(tmp_path / "float"), "--out", str(tmp_path / "int8"), "--calib-split", "synth_val"])
    assert ("error: --calib-split synth_val and --eval-split synth_val of" in capsys.readouterr().err
            and not (tmp_path / "int8.partial").exists())  # before any work
    with pytest.raises(SystemExit):
        quantize_main([other_config, str(tmp_path / "float"), "--out", str(tmp_path / "int8"),  # (it names no data)
                       "--dataroot", str(synthetic_root), "--version", nusc_synthetic.version])
    assert "exported from another version of the model" in capsys.readouterr().err
    exported = {path.name: path.read_bytes() for path in (tmp_path / "float").iterdir()}
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not a quantize folder")
    for out, problem in ((tmp_path / "float", "the float graphs' folder (INT8 graphs would overwrite"),
                         (tmp_path / "mine", "holds files but no quantize.json")):
        with pytest.raises(SystemExit):
            quantize_main([config, str(tmp_path / "float"), "--out", str(out)])
        assert f"--out {out}: {problem}" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in (tmp_path / "float").iterdir()} == exported
    with pytest.raises(SystemExit):
        quantize_main([config, str(tmp_path / "float"), "--out", str(tmp_path / "int8"), "--keep-float", "head.x"])
    err = capsys.readouterr().err
    assert "--keep-float head.x: no such graph" in err and "calibration" not in err  # before calibrating
    with pytest.raises(SystemExit):
        benchmark_main([config, "--backend", "torch,onnxruntime", "--json", str(tmp_path / "b.json")])
    assert "1 onnxruntime backend(s) but 0 --onnx folder(s)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark_main([config, "--backend", "torch,torch", "--json", str(tmp_path / "b.json")])
    assert "names torch twice" in capsys.readouterr().err
    float_dir = str(tmp_path / "float")
    with pytest.raises(SystemExit):
        benchmark_main([config, "--backend", "onnxruntime,onnxruntime", "--onnx", float_dir, "--onnx", float_dir,
                        "--json", str(tmp_path / "b.json")])
    assert "times the same graphs twice" in capsys.readouterr().err


def test_a_model_is_known_by_its_contents_for_a_resume(tmp_path):
    """tools/test.py's and tools/replay.py's resume identity: the same files under other paths are the same model;
    other weights, another model setting or other graphs at the same paths are another."""
    import hashlib

    from perception.cli.backend import model_provenance

    (tmp_path / "a").mkdir()
    config, checkpoint = write_model(tmp_path / "a")
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "head.onnx").write_bytes(b"one graph")
    first = model_provenance("onnxruntime", config, checkpoint, str(graphs))
    assert first["checkpoint_sha256"] == hashlib.sha256(open(checkpoint, "rb").read()).hexdigest()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    moved = [str(tmp_path / "b" / name) for name in (os.path.basename(config), os.path.basename(checkpoint))]
    assert model_provenance("onnxruntime", *moved, str(graphs)) == first
    (graphs / "eval").mkdir()
    (graphs / "eval" / "predictions.jsonl").write_text("{}\n")  # an evaluation's output beside them: not a graph
    (graphs / "notes.txt").write_text("notes")
    assert model_provenance("onnxruntime", config, checkpoint, str(graphs)) == first
    (graphs / "head.onnx").write_bytes(b"another graph")
    assert model_provenance("onnxruntime", config, checkpoint, str(graphs))["graphs_sha256"] != first["graphs_sha256"]
    shutil.copy(write_model(tmp_path / "a", seed=1)[1], checkpoint)  # other weights at the same path
    assert model_provenance("torch", config, checkpoint, None)["checkpoint_sha256"] != first["checkpoint_sha256"]
    with open(config, "a") as handle:
        handle.write("model = dict(head=dict(score_threshold=0.4))\n")
    assert model_provenance("torch", config, checkpoint, None)["config_sha256"] != first["config_sha256"]
