"""ONNX export, the ONNX Runtime backends and INT8 quantization on the tiny model of tests/models (hand-made frames):
parity with the torch model, refusal of graphs that belong to another model, the thread policy."""
import json
import os
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the deploy extra (onnx, onnxruntime) is not installed")

from perception.deploy.backends import load_backend  # noqa: E402
import onnx  # noqa: E402

from perception.deploy.graphs import (BEV_NETWORK, export_graphs, graph_path, in_bev_network,  # noqa: E402
                                      load_onnx_detector, output_error, record_dense_inputs, set_metadata)
from perception.deploy.quantize import (keep_float, quantize_bev_network, quantize_graphs,  # noqa: E402
                                        score_error, sensitive_modules, sensitivity_sweep, weight_only_int8)
from perception.models import CHECKPOINT_FORMAT, load_detector, model_inputs  # noqa: E402
from perception.threads import apply_thread_policy, onnxruntime_session_options  # noqa: E402
from tests.models.helpers import IMAGE_H, IMAGE_W, make_frame, tiny_model, tiny_model_config  # noqa: E402


def write_model(folder, head_channels: int = 16, seed: int = 0):
    """(config path, checkpoint path) of the tiny model with random weights and non-trivial batch-norm statistics."""
    torch.manual_seed(seed)
    model = tiny_model().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
        model.head.heatmap[-1].bias.fill_(0.5)  # boxes pass the score threshold
        for embedding in model.fuser.missing_embedding.values():
            embedding.uniform_(-1, 1)
    config = tiny_model_config()
    config["head"]["head_channels"] = head_channels
    config_path = folder / f"tiny{head_channels}.py"
    config_path.write_text(f"model = dict(type='BEVFusionDetector', **{json.dumps(config)})\n"
                           f"model_inputs = dict(lidar_sweeps=1, radar_sweeps=1, image_size=[{IMAGE_W}, {IMAGE_H}])\n")
    checkpoint = folder / f"tiny{head_channels}_{seed}.pth"
    if head_channels == 16:
        torch.save({"state_dict": model.state_dict(), "meta": {"format": CHECKPOINT_FORMAT}}, checkpoint)
    return str(config_path), str(checkpoint)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(config, checkpoint, folder of the float graphs)."""
    folder = tmp_path_factory.mktemp("deploy")
    config, checkpoint = write_model(folder)
    detector = load_detector(config, checkpoint)
    out = folder / "float"
    export_graphs(detector, config, checkpoint, out, detector.batch_from_frames([make_frame(0)]))
    return config, checkpoint, out


def outputs(detector, frames):
    with torch.no_grad():
        return detector(detector.batch_from_frames(frames), mode="tensor")


def test_onnxruntime_matches_torch(exported):
    config, checkpoint, folder = exported
    torch_detector = load_detector(config, checkpoint)
    onnx_detector = load_backend("onnxruntime", config, checkpoint, onnx_dir=folder)
    assert not onnx_detector.state_dict()  # every weight comes from the graphs
    frames = [make_frame(1), make_frame(2, cameras=False)]  # a batch of 2 (the graphs were traced on 1) with a gap
    reference = outputs(torch_detector, frames)
    for name, error in output_error(reference, outputs(onnx_detector, frames)).items():
        assert error < 1e-4, name
    expected, actual = torch_detector.detect(frames), onnx_detector.detect(frames)
    assert len(expected[0]) > 0
    for a, b in zip(expected, actual):  # the same boxes (scores that tie to 1e-7 may order them differently)
        a_rows, b_rows = (np.c_[boxes.labels, boxes.centers.round(3)] for boxes in (a, b))
        assert np.array_equal(a_rows[np.lexsort(a_rows.T)], b_rows[np.lexsort(b_rows.T)])


def test_a_model_that_does_not_read_the_cameras_exports_and_runs_without_their_graphs(exported, tmp_path):
    config, checkpoint, _ = exported
    no_cameras = tmp_path / "no_cameras.py"
    no_cameras.write_text(open(config).read().replace("image_size=", "sensors=['lidar', 'radar'], image_size="))
    torch_detector = load_detector(str(no_cameras), checkpoint)
    files = export_graphs(torch_detector, str(no_cameras), checkpoint, tmp_path / "graphs",
                          torch_detector.batch_from_frames([make_frame(0)]))
    assert {path.split(".")[1] for path in files if path.startswith("encoders.")} == {"lidar", "radar"}
    onnx_detector = load_backend("onnxruntime", str(no_cameras), onnx_dir=tmp_path / "graphs")
    frames = [make_frame(1)]  # it carries the cameras; neither model reads them
    reference = outputs(torch_detector, frames)
    assert reference["heatmap"].abs().max() > 0
    for name, error in output_error(reference, outputs(onnx_detector, frames)).items():
        assert error < 1e-4, name


def test_int8_graphs_run_and_stay_near_float(exported, tmp_path):
    config, checkpoint, folder = exported
    calibration = load_onnx_detector(config, folder)
    batches = [calibration.batch_from_frames([make_frame(seed)]) for seed in (3, 4, 5)]
    recorded = quantize_graphs(config, folder, tmp_path, batches)
    paths = list(recorded)
    frames = [make_frame(6)]
    reference = outputs(calibration, frames)
    for one_bev_graph in (True, False):  # the fuser, decoder and head as one graph or as their own six
        int8 = load_onnx_detector(config, tmp_path, "int8", one_bev_graph=one_bev_graph, checkpoint=checkpoint)
        assert (int8.bev_graph is not None) == one_bev_graph
        quantized = outputs(int8, frames)
        assert all(torch.isfinite(t).all() for t in quantized.values())
        assert (torch.sigmoid(quantized["heatmap"]) - torch.sigmoid(reference["heatmap"])).abs().max() < 0.1
    for graph in ("decoder", BEV_NETWORK):
        assert any(node.op_type == "QuantizeLinear" for node in onnx.load(str(graph_path(tmp_path, graph))).graph.node)
    rows = sensitivity_sweep(config, folder, tmp_path, [calibration.batch_from_frames(frames)])
    assert [row["module"] for row in rows] == paths + ["all"]
    assert all(np.isfinite(row["score_error"]) and row["score_error"] >= 0 for row in rows)
    keep_float(folder, tmp_path, paths)  # every graph back to float arithmetic: the int8 backend refuses it
    quantize_bev_network(folder, tmp_path, recorded["fuser"], [path for path in paths if in_bev_network(path)])
    with pytest.raises(ValueError, match="holds no INT8 graph"):
        load_backend("onnxruntime-int8", config, onnx_dir=tmp_path)
    with pytest.raises(ValueError, match="holds INT8 graphs"):  # its weights are stored int8
        load_onnx_detector(config, tmp_path)
    assert graph_path(tmp_path, "decoder").stat().st_size < 0.5 * graph_path(folder, "decoder").stat().st_size


def test_a_part_kept_float_stays_float_inside_the_bev_network_graph(exported, tmp_path):
    """The sweep's choice reaches the one graph: the fuser's conv computes in float on float inputs (its weight
    stored int8, restored by Cast and Mul), the decoder's and head's convs take quantized inputs."""
    config, _, folder = exported
    calibration = load_onnx_detector(config, folder, one_bev_graph=False)
    calls = record_dense_inputs(calibration, [calibration.batch_from_frames([make_frame(seed)]) for seed in (3, 4)])
    quantize_bev_network(folder, tmp_path, calls["fuser"], ["fuser"])
    graph = onnx.load(str(graph_path(tmp_path, BEV_NETWORK))).graph
    producers = {output: node.op_type for node in graph.node for output in node.output}
    convs = {node.name: [producers.get(name) for name in node.input[:2]] for node in graph.node
             if node.op_type == "Conv"}
    assert convs and all(name.startswith(("/fuser/", "/decoder/", "/head/")) for name in convs)
    for name, (data, weight) in convs.items():
        if name.startswith("/fuser/"):
            assert data != "DequantizeLinear" and weight == "Mul"
        else:
            assert data == weight == "DequantizeLinear"
    meta = {p.key: p.value for p in onnx.load(str(graph_path(tmp_path, BEV_NETWORK))).metadata_props}
    assert json.loads(meta["perception.float_parts"]) == ["fuser"]
    with pytest.raises(ValueError, match="no node of"):
        quantize_bev_network(folder, tmp_path, calls["fuser"], ["encoders.lidar.conv"])


class _ResidualBlock(torch.nn.Module):
    """conv -> relu -> conv, plus the relu's output: the joins between INT8 layers that ACTIVATION_OPS quantizes."""

    def __init__(self):
        super().__init__()
        self.first, self.second = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        hidden = torch.relu(self.first(x))
        return self.second(hidden) + hidden


def _quantized_block(block: torch.nn.Module, folder) -> tuple:
    """``block`` exported to ONNX and quantized on 4 random calibration calls (1, 3, 8, 8), then optimized by ONNX
    Runtime: (the calls, the INT8 graph, its optimized node types)."""
    import onnxruntime

    from perception.deploy.quantize import quantize_graph

    calls = [(torch.randn(1, 3, 8, 8),) for _ in range(4)]
    float_file, int8_file, optimized = folder / "block.onnx", folder / "int8.onnx", folder / "optimized.onnx"
    torch.onnx.export(block, calls[0], str(float_file), input_names=["x"], output_names=["y"], dynamo=False)
    quantize_graph(float_file, int8_file, calls)
    options = onnxruntime_session_options()
    options.optimized_model_filepath = str(optimized)
    onnxruntime.InferenceSession(str(int8_file), options, providers=["CPUExecutionProvider"])
    return calls, int8_file, [n.op_type for n in onnx.load(str(optimized)).graph.node]


def test_int8_chain_runs_unbroken_through_relu_and_add(tmp_path):
    torch.manual_seed(0)
    block = _ResidualBlock().eval()
    calls, int8_file, op_types = _quantized_block(block, tmp_path)
    # the relu's output is quantized on [0, its largest value seen in calibration] (MinMax), worked out here
    with torch.no_grad():
        relu_max = max(float(torch.relu(block.first(x)).max()) for (x,) in calls)
    graph = onnx.load(str(int8_file)).graph
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    ranges = [(float(constants[n.input[1]]), int(constants[n.input[2]])) for n in graph.node
              if n.op_type == "QuantizeLinear"]
    assert any(zero_point == 0 and scale == pytest.approx(relu_max / 255, rel=1e-6) for scale, zero_point in ranges)
    # ONNX Runtime runs it as one INT8 chain: quantized once at the input, dequantized once at the output
    assert op_types.count("QuantizeLinear") == 1 and op_types.count("DequantizeLinear") == 1
    assert "Relu" not in op_types and "Add" not in op_types and "QLinearAdd" in op_types


def test_a_planning_model_exports_plans_as_torch_does_and_keeps_its_planning_graphs_float(tmp_path):
    import onnx

    from perception.deploy.graphs import example_batch
    from perception.models import BEVFusionDetector

    torch.manual_seed(0)
    config = dict(tiny_model_config(), planning=dict(hidden_channels=16, pooled_cells=2))
    config_path = tmp_path / "tiny_planning.py"
    config_path.write_text(f"model = dict(type='BEVFusionDetector', **{json.dumps(config)})\n"
                           f"model_inputs = dict(lidar_sweeps=1, radar_sweeps=1, image_size=[{IMAGE_W}, {IMAGE_H}])\n")
    model = BEVFusionDetector(**config).eval()
    with torch.no_grad():  # a BEV branch that moves the plan (it starts as a zero correction)
        model.planning_head.correction.weight.uniform_(-0.5, 0.5)
    checkpoint = tmp_path / "tiny_planning.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {"format": CHECKPOINT_FORMAT}}, checkpoint)
    torch_model = load_detector(config_path, checkpoint)
    files = export_graphs(torch_model, config_path, checkpoint, tmp_path / "float")
    planning_paths = {f"planning_head.{part}" for part in
                      ("ego.mlp", "ego.trajectory", "ego.maneuver", "reduce", "mlp", "correction", "lane_change")}
    assert planning_paths <= set(files)
    onnx_model = load_onnx_detector(config_path, tmp_path / "float")
    frames, ego = [make_frame(6)], example_batch(torch_model).ego_state.numpy()
    (expected,), (actual,) = (m.detect_and_plan(frames, ego)[1] for m in (torch_model, onnx_model))
    assert expected.trajectory.abs().max() > 0.1
    for name in ("trajectory", "maneuver_logits", "lane_change_logits"):
        assert torch.allclose(getattr(actual, name), getattr(expected, name), rtol=1e-4, atol=1e-5), name
    paths = list(quantize_graphs(config_path, tmp_path / "float", tmp_path / "int8",
                                 [onnx_model.batch_from_frames([make_frame(seed)]) for seed in (3, 4)]))
    precisions = {path: {p.key: p.value for p in onnx.load(str(graph_path(tmp_path / "int8", path))).metadata_props}
                  ["perception.precision"] for path in paths}
    assert {path for path, precision in precisions.items() if precision != "int8"} == planning_paths
    int8 = load_backend("onnxruntime-int8", config_path, onnx_dir=tmp_path / "int8")
    (quantized,) = int8.detect_and_plan(frames, ego)[1]
    assert quantized.trajectory.shape == (6, 2) and torch.isfinite(quantized.trajectory).all()


def test_sensitive_modules_are_those_above_the_score_error_by_hand():
    rows = [dict(module="fuser", score_error=0.10), dict(module="decoder", score_error=0.30),
            dict(module="head.heatmap", score_error=0.20), dict(module="all", score_error=0.50)]
    assert sensitive_modules(rows, 0.2) == ["decoder"]  # strictly above; the row of every graph at once is no graph
    assert sensitive_modules(rows, 0.0) == ["fuser", "decoder", "head.heatmap"]
    assert sensitive_modules(rows, 1.0) == []


def test_score_error_is_the_largest_change_of_a_detection_score_by_hand():
    # Heatmap logits 0 -> 2 and 4 -> 4.5: scores sigmoid(0) = 0.5 -> 0.880797 (0.380797) and 0.982014 -> 0.989013
    # (0.006999): the largest change 0.380797, not the logits' 2.
    reference = {"heatmap": torch.tensor([[0.0, 4.0]])}
    assert score_error(reference, {"heatmap": torch.tensor([[2.0, 4.5]])}) == pytest.approx(0.380797, abs=1e-6)


def test_weight_only_int8_by_hand():
    # a 1x1 conv with weights [[1.0, 0.3], [-0.2, 0.05]]: per output channel scales 1 / 127 and 0.2 / 127, stored
    # [[127, 38], [-127, 32]] (0.3 * 127 = 38.1, 0.05 / 0.2 * 127 = 31.75), restored [[1, 38 / 127],
    # [-0.2, 32 * 0.2 / 127]]; the conv's output is the input times those
    import onnx
    import onnxruntime
    from onnx import helper, numpy_helper

    weight = np.array([[1.0, 0.3], [-0.2, 0.05]], dtype=np.float32).reshape(2, 2, 1, 1)
    graph = helper.make_model(helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 1, 1])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 1, 1])],
        [numpy_helper.from_array(weight, "w")]), opset_imports=[helper.make_opsetid("", 17)])
    quantized = weight_only_int8(graph)
    onnx.checker.check_model(quantized)
    stored = {t.name: numpy_helper.to_array(t) for t in quantized.graph.initializer}
    assert "w" not in stored and stored["w_int8"].dtype == np.int8
    assert stored["w_int8"].reshape(2, 2).tolist() == [[127, 38], [-127, 32]]
    x = np.array([2.0, 10.0], dtype=np.float32).reshape(1, 2, 1, 1)
    (y,) = onnxruntime.InferenceSession(quantized.SerializeToString()).run(None, {"x": x})
    np.testing.assert_allclose(y.ravel(), [2.0 + 10.0 * 38 / 127, -0.4 + 10.0 * 32 * 0.2 / 127], rtol=1e-6)


@pytest.mark.parametrize("op, attributes", [("MatMul", {}), ("Gemm", {}), ("Gemm", {"transB": 1})])
def test_weight_only_int8_scales_each_output_channel_of_a_matmul_and_gemm_by_hand(op, attributes):
    # y = x W with W (K, N) = [[1.0, 0.3], [-0.2, 0.05]] (MatMul, Gemm): the output channels are W's columns, scales
    # 1 / 127 and 0.3 / 127, stored [[127, 127], [-25, 21]] (-0.2 x 127 = -25.4, 0.05 / 0.3 x 127 = 21.17); for
    # x = (2, 10): y = (2 - 10 x 25 / 127, 0.6 + 10 x 21 x 0.3 / 127) = (0.031496, 1.096063). Gemm with transB:
    # y = x W^T, the output channels are W's rows, stored [[127, 38], [-127, 32]] as a conv's: y = (2 + 10 x 38 /
    # 127, -0.4 + 10 x 32 x 0.2 / 127) = (4.992126, 0.103937).
    import onnx
    import onnxruntime
    from onnx import helper, numpy_helper

    weight = np.array([[1.0, 0.3], [-0.2, 0.05]], dtype=np.float32)
    graph = helper.make_model(helper.make_graph(
        [helper.make_node(op, ["x", "w"], ["y"], **attributes)], "weighted",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(weight, "w")]), opset_imports=[helper.make_opsetid("", 17)])
    quantized = weight_only_int8(graph)
    onnx.checker.check_model(quantized)
    stored = {t.name: numpy_helper.to_array(t) for t in quantized.graph.initializer}
    transposed = attributes.get("transB") == 1
    assert stored["w_int8"].tolist() == ([[127, 38], [-127, 32]] if transposed else [[127, 127], [-25, 21]])
    (y,) = onnxruntime.InferenceSession(quantized.SerializeToString()).run(
        None, {"x": np.array([[2.0, 10.0]], dtype=np.float32)})
    expected = ([2.0 + 10.0 * 38 / 127, -0.4 + 10.0 * 32 * 0.2 / 127] if transposed
                else [2.0 - 10.0 * 25 / 127, 0.6 + 10.0 * 21 * 0.3 / 127])
    np.testing.assert_allclose(y.ravel(), expected, rtol=1e-5)


def test_calibration_without_frames_is_refused(exported, tmp_path):
    config, _, folder = exported
    with pytest.raises(ValueError, match="calibration needs at least one frame"):
        quantize_graphs(config, folder, tmp_path, [])


def test_graph_of_another_model_version_is_refused(exported, tmp_path):
    _, _, folder = exported
    other_config, _ = write_model(tmp_path, head_channels=8)
    with pytest.raises(ValueError, match=r"\.onnx: exported from another version of the model"):
        load_onnx_detector(other_config, folder)


def test_graph_of_an_earlier_export_format_is_refused(exported, tmp_path):
    config, _, folder = exported
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    set_metadata(old / "encoders.lidar.pillars.onnx", {"format": "perception-onnx-v1"})
    with pytest.raises(ValueError, match=r"lidar.pillars.onnx: not a graph of this version's export \(format "
                                         r"'perception-onnx-v1', expected 'perception-onnx-v2'\); export again"):
        load_onnx_detector(config, old)


def test_missing_mixed_or_wrong_precision_graphs_are_refused(exported, tmp_path):
    config, _, folder = exported
    with pytest.raises(FileNotFoundError, match=r"lidar.pillars.onnx: no such graph"):
        load_onnx_detector(config, tmp_path)
    with pytest.raises(ValueError, match="needs --onnx DIR"):
        load_backend("onnxruntime", config)
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        load_backend("tensorrt", config)
    with pytest.raises(ValueError, match="the torch backend reads no graphs"):  # the graphs were ignored
        load_backend("torch", config, onnx_dir=folder)
    with pytest.raises(ValueError, match="holds no INT8 graph"):
        load_backend("onnxruntime-int8", config, onnx_dir=folder)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for file in folder.glob("*.onnx"):
        (mixed / file.name).write_bytes(file.read_bytes())
    set_metadata(graph_path(mixed, "encoders.lidar.conv"), {"checkpoint_sha256": "0" * 64})
    with pytest.raises(ValueError, match="graphs of different checkpoints mixed"):
        load_onnx_detector(config, mixed)


def _without_metadata(file, key: str) -> None:
    """Drops metadata_props['perception.<key>'] from an ONNX file (as a graph exported before it was recorded)."""
    model = onnx.load(str(file))
    kept = [p for p in model.metadata_props if p.key != f"perception.{key}"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(file))


@pytest.mark.parametrize("edit, message", [
    (dict(module="encoders.radar.conv"), r"lidar\.conv\.onnx: holds module 'encoders\.radar\.conv', expected "
                                         r"'encoders\.lidar\.conv'$"),
    ("model_inputs", r"lidar\.conv\.onnx: records no model inputs .*; export again with tools/export\.py$"),
    (dict(inputs=json.dumps([["renamed", "float32", ["N", 8, 16, 16]]])),
     r"lidar\.conv\.onnx: its inputs \['input'\] differ from the recorded signature \['renamed'\]$"),
    ("checkpoint_sha256", r": encoders\.lidar\.conv\.onnx record no checkpoint; export them again"),
    (dict(precision="int8"), r": holds INT8 graphs, not the float export"),
], ids=["another_module", "no_model_inputs", "renamed_inputs", "no_checkpoint", "int8_among_float"])
def test_a_graph_whose_records_do_not_fit_its_place_is_refused_naming_it(exported, tmp_path, edit, message):
    """The float export with one graph's metadata edited (the rest as exported): one recorded as another module,
    one without the model inputs or the checkpoint it came from (an earlier export), one whose recorded input
    names are not the graph's, one INT8 graph among the float ones (the float backend would have run it)."""
    config, _, folder = exported
    edited = tmp_path / "edited"
    shutil.copytree(folder, edited)
    graph = graph_path(edited, "encoders.lidar.conv")
    if isinstance(edit, dict):
        set_metadata(graph, edit)
    else:
        _without_metadata(graph, edit)
    with pytest.raises(ValueError, match=message):
        load_onnx_detector(config, edited)


def test_output_error_is_each_output_s_largest_difference_over_its_largest_magnitude_by_hand():
    # heatmap: differences 0.5 and 0, over max |reference| 4: 0.125; an all-zero reference is divided by 1e-12, not
    # by 0: a difference of 1e-13 gives 0.1. Outputs the reference has not are not compared.
    reference = {"heatmap": torch.tensor([[2.0, -4.0]]), "velocity": torch.zeros(2, dtype=torch.float64)}
    outputs = {"heatmap": torch.tensor([[2.5, -4.0]]), "velocity": torch.tensor([1e-13, 0.0], dtype=torch.float64),
               "extra": torch.ones(1)}
    errors = output_error(reference, outputs)
    assert list(errors) == ["heatmap", "velocity"]
    assert errors["heatmap"] == pytest.approx(0.125) and errors["velocity"] == pytest.approx(0.1)


def test_the_backends_load_the_bev_network_graph_in_place_of_its_parts_own_by_hand(tmp_path):
    """The files whose sizes quantize.json compares (float_bytes, int8_bytes): each dense module's graph, but where
    the folder has bev_network.onnx, that one in place of the fuser's, decoder's and head's (which stay for the
    sweep and calibration and are not loaded)."""
    from perception.deploy.graphs import backend_graph_files

    modules = ["encoders.lidar.conv", "fuser", "decoder", "head.shared", "head.heatmap"]
    assert backend_graph_files(modules, tmp_path) == [tmp_path / f"{module}.onnx" for module in modules]
    graph_path(tmp_path, BEV_NETWORK).write_bytes(b"")
    assert backend_graph_files(modules, tmp_path) == [tmp_path / "encoders.lidar.conv.onnx",
                                                      tmp_path / "bev_network.onnx"]


class _RecordedOutputs(torch.nn.Module):
    """A stand-in detector: each 'batch' is the head outputs it returns."""

    def forward(self, batch, mode):
        assert mode == "tensor"
        return batch


def test_a_graph_s_sweep_row_is_its_largest_error_over_the_evaluation_frames_by_hand():
    # Two frames, reference heatmap logits (0, 4) on both. Frame 1's INT8 logits (2, 4.5): scores 0.5 -> 0.880797
    # (0.380797) and 0.982014 -> 0.989013; heatmap error max |diff| 2 / 4 = 0.5. Frame 2's (0.5, 4): 0.5 -> 0.622459
    # (0.122459); error 0.5 / 4 = 0.125. The row holds the larger of each (a graph is as bad as its worst frame).
    from perception.deploy.quantize import compare_outputs

    reference = [{"heatmap": torch.tensor([[0.0, 4.0]])}] * 2
    frames = [{"heatmap": torch.tensor([[2.0, 4.5]])}, {"heatmap": torch.tensor([[0.5, 4.0]])}]
    for order in (frames, frames[::-1]):
        row = compare_outputs(_RecordedOutputs(), reference, order)
        assert row == pytest.approx({"score_error": 0.380797, "heatmap_error": 0.5}, abs=1e-6)


def test_every_backend_refuses_a_checkpoint_and_graphs_of_other_inputs_unless_told_not_to_check(tmp_path):
    """(The onnxruntime backends loaded the graphs of a model trained on other sweeps, reading the config's, where
    the torch backend refused the same config and checkpoint.)"""
    config, checkpoint = write_model(tmp_path)
    state_dict = torch.load(checkpoint, weights_only=True)["state_dict"]
    ten_sweeps_config = tmp_path / "ten_sweeps.py"  # the same model on 10 LiDAR sweeps; `config` loads 1
    ten_sweeps_config.write_text(open(config).read().replace("lidar_sweeps=1,", "lidar_sweeps=10,"))
    other = str(tmp_path / "ten_sweeps.pth")
    torch.save({"state_dict": state_dict, "meta": {"format": CHECKPOINT_FORMAT, "inputs": dict(
        model_inputs(config).to_meta(), lidar_sweeps=10)}}, other)
    graphs = tmp_path / "graphs"
    export_graphs(load_detector(ten_sweeps_config, other), ten_sweeps_config, other, graphs,
                  load_detector(config, checkpoint).batch_from_frames([make_frame(0)]))
    assert load_backend("onnxruntime", ten_sweeps_config, other, graphs) is not None  # its own config loads
    for backend, onnx_dir in (("torch", None), ("onnxruntime", graphs)):
        with pytest.raises(ValueError, match=r"ten_sweeps\.pth: trained on inputs .*'lidar_sweeps': 10"):
            load_backend(backend, config, other, onnx_dir)
    with pytest.raises(ValueError, match=r"\.onnx: exported for inputs .*'lidar_sweeps': 10.*, but .*tiny16\.py "
                                         r"gives .*'lidar_sweeps': 1,"):
        load_backend("onnxruntime", config, onnx_dir=graphs)  # the graphs alone say it too
    zero_shot = load_backend("torch", config, other, check_inputs=False)  # as load_detector(..., check_inputs=False)
    assert all(torch.equal(zero_shot.state_dict()[name], value) for name, value in state_dict.items())
    frames = [make_frame(3)]
    onnx_zero_shot = load_backend("onnxruntime", config, other, graphs, check_inputs=False)
    for name, value in outputs(zero_shot, frames).items():
        assert torch.allclose(outputs(onnx_zero_shot, frames)[name], value, rtol=1e-4, atol=1e-5), name


def test_backend_not_installed_is_named(exported, monkeypatch):
    import builtins

    config, _, folder = exported
    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(ValueError, match="need the onnxruntime package"):
        load_onnx_detector(config, folder)


def test_the_openmp_environment_spins_briefly_and_keeps_what_the_user_set(monkeypatch):
    from perception.threads import OPENMP_SPIN_COUNT, set_openmp_environment

    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    set_openmp_environment()
    assert os.environ["GOMP_SPINCOUNT"] == OPENMP_SPIN_COUNT and os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_thread_policy_sets_every_pool():
    import cv2
    import numba

    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return {pool["filepath"]: pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    before = torch.get_num_threads(), numba.get_num_threads(), cv2.getNumThreads(), blas_threads()
    try:
        policy = apply_thread_policy(threads=1)
        assert (torch.get_num_threads(), numba.get_num_threads(), cv2.getNumThreads()) == (1, 1, 1)
        assert policy.onnxruntime_threads == 1 and onnxruntime_session_options().intra_op_num_threads == 1
        options = onnxruntime_session_options()  # idle workers sleep: spinning ones held the cores torch needs
        assert (options.inter_op_num_threads, options.get_session_config_entry("session.intra_op.allow_spinning")) \
            == (1, "0")
        threadpool_limits(2, user_api="blas")
        apply_thread_policy(threads=2)  # numpy's BLAS stays on one thread whatever the count
        assert torch.get_num_threads() == 2 and blas_threads() and set(blas_threads().values()) == {1}
        most = numba.config.NUMBA_NUM_THREADS  # Numba's pool cannot grow past it: said, not hidden
        with pytest.warns(UserWarning, match=f"threads {most + 1}: Numba's pool has at most {most} "):
            policy = apply_thread_policy(threads=most + 1)
        assert (policy.numba_threads, policy.torch_threads, numba.get_num_threads()) == (most, most + 1, most)
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])
        cv2.setNumThreads(before[2])
        threadpool_limits(before[3])


def test_a_part_outside_the_export_is_named(exported):
    config, checkpoint, _ = exported
    detector = load_detector(config, checkpoint)
    detector.add_module("extra_head", torch.nn.Linear(2, 2))  # weights that no graph holds
    with pytest.raises(ValueError, match=r"covers the network's dense parts only; .*extra_head"):
        export_graphs(detector, config, checkpoint, "unused")


def test_compacting_a_quantized_graph_changes_no_output(exported, tmp_path):
    import onnx
    import onnxruntime
    from onnxruntime.quantization import QuantFormat, quantize_static

    from perception.deploy.graphs import record_dense_inputs
    from perception.deploy.quantize import RecordedInputs, compact_quantized

    config, _, folder = exported
    detector = load_onnx_detector(config, folder, one_bev_graph=False)
    calls = record_dense_inputs(detector, [detector.batch_from_frames([make_frame(seed)]) for seed in (3, 4)])["fuser"]
    float_file, plain = graph_path(folder, "fuser"), tmp_path / "plain.onnx"
    names = [i.name for i in onnx.load(str(float_file)).graph.input]
    quantize_static(str(float_file), str(plain), RecordedInputs(names, calls), quant_format=QuantFormat.QDQ,
                    per_channel=True)
    compact = tmp_path / "compact.onnx"
    onnx.save(compact_quantized(onnx.load(str(plain)), onnx.load(str(float_file))), str(compact))
    onnx.checker.check_model(str(compact))
    assert compact.stat().st_size < plain.stat().st_size
    assert not onnx.load(str(compact)).graph.value_info
    feeds = {name: tensor.numpy() for name, tensor in zip(names, calls[-1])}
    results = [onnxruntime.InferenceSession(str(f), onnxruntime_session_options(),
                                            providers=["CPUExecutionProvider"]).run(None, feeds)[0]
               for f in (plain, compact)]
    assert np.array_equal(results[0], results[1])


def test_graphs_of_another_checkpoint_are_refused(exported, tmp_path):
    """(tools/test.py --backend onnxruntime reported the checkpoint it was given while the graphs held another's.)"""
    config, checkpoint, folder = exported
    other = tmp_path / "other.pth"
    other.write_bytes(open(checkpoint, "rb").read() + b"\0")
    with pytest.raises(ValueError, match=f"{folder}: graphs exported from another checkpoint than {other}"):
        load_backend("onnxruntime", config, other, onnx_dir=folder)


def _one_node_graph(op, weight, x_shape, y_shape, **attributes):
    """x -> op(x, w) -> y, the weight ``weight`` an initializer named w (opset 17)."""
    from onnx import helper, numpy_helper

    return helper.make_model(helper.make_graph(
        [helper.make_node(op, ["x", "w"], ["y"], **attributes)], op.lower(),
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, y_shape)],
        [numpy_helper.from_array(weight, "w")]), opset_imports=[helper.make_opsetid("", 17)])


def test_quantize_graph_scales_each_output_channel_of_a_conv_by_hand(tmp_path):
    # a 1x1 conv with weights [[1.0, 0.3], [-0.2, 0.05]]: INT8 weights per output channel, scales max |w| / 127 =
    # 1 / 127 and 0.2 / 127 (one scale for the whole tensor would be 1 / 127), stored [[127, 38], [-127, 32]]
    # (0.3 x 127 = 38.1, 0.05 / 0.2 x 127 = 31.75); three calibration calls, recorded in the metadata
    from onnx import numpy_helper

    from perception.deploy.quantize import quantize_graph

    weight = np.array([[1.0, 0.3], [-0.2, 0.05]], dtype=np.float32).reshape(2, 2, 1, 1)
    float_file, int8_file = tmp_path / "conv.onnx", tmp_path / "int8.onnx"
    onnx.save(_one_node_graph("Conv", weight, [1, 2, 1, 1], [1, 2, 1, 1]), str(float_file))
    torch.manual_seed(0)
    quantize_graph(float_file, int8_file, [(torch.randn(1, 2, 1, 1),) for _ in range(3)])
    quantized = onnx.load(str(int8_file))
    constants = {t.name: numpy_helper.to_array(t) for t in quantized.graph.initializer}
    producers = {output: node for node in quantized.graph.node for output in node.output}
    (conv,) = [node for node in quantized.graph.node if node.op_type == "Conv"]
    dequantize = producers[conv.input[1]]
    assert dequantize.op_type == "DequantizeLinear"
    assert constants[dequantize.input[0]].reshape(2, 2).tolist() == [[127, 38], [-127, 32]]
    np.testing.assert_allclose(constants[dequantize.input[1]], [1 / 127, 0.2 / 127], rtol=1e-6)
    meta = {p.key: p.value for p in quantized.metadata_props}
    assert (meta["perception.precision"], meta["perception.calibration_calls"]) == ("int8", "3")


def test_compacting_keeps_a_nonzero_zero_point_and_names_clear_of_the_float_graphs_by_hand():
    # y = q0 + DequantizeLinear(5, scale 1, zero point 2) + DequantizeLinear(7, scale 1, zero point 0), int32:
    # q0 + 3 + 7. Only the all-zero int32 zero point goes; the quantizer's names become q1, q2, ... clear of the
    # float graph's input q0 (the first short name, 'q0', is taken: 'q0_').
    import onnxruntime
    from onnx import helper, numpy_helper

    from perception.deploy.quantize import compact_quantized

    def model(nodes, initializers):
        return helper.make_model(helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info("q0", onnx.TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])], initializers),
            opset_imports=[helper.make_opsetid("", 17)])

    def int32(value, name):
        return numpy_helper.from_array(np.array([value], dtype=np.int32), name)

    float_graph = model([helper.make_node("Add", ["q0", "b"], ["y"])],
                        [numpy_helper.from_array(np.array([10.0], dtype=np.float32), "b")])
    quantized = model(
        [helper.make_node("DequantizeLinear", ["b_quantized", "b_scale", "b_zero_point"], ["b_dq"], name="b_DQ"),
         helper.make_node("DequantizeLinear", ["c_quantized", "b_scale", "c_zero_point"], ["c_dq"], name="c_DQ"),
         helper.make_node("Add", ["b_dq", "c_dq"], ["b"]), helper.make_node("Add", ["q0", "b"], ["y"])],
        [int32(5, "b_quantized"), numpy_helper.from_array(np.array(1.0, dtype=np.float32), "b_scale"),
         int32(2, "b_zero_point"), int32(7, "c_quantized"), int32(0, "c_zero_point")])
    compact = compact_quantized(quantized, float_graph)
    onnx.checker.check_model(compact)
    dequantize = [node for node in compact.graph.node if node.op_type == "DequantizeLinear"]
    assert [len(node.input) for node in dequantize] == [3, 2] and all(not node.name for node in dequantize)
    names = [name for node in compact.graph.node for name in node.output] + [t.name for t in compact.graph.initializer]
    assert len(names) == len(set(names)) and "q0" not in names and "q0_" in names
    (y,) = onnxruntime.InferenceSession(compact.SerializeToString()).run(None, {"q0": np.array([1.0], np.float32)})
    assert y.tolist() == [11.0]


def test_weight_only_int8_scales_each_output_channel_of_a_transposed_conv_by_hand():
    # ConvTranspose's weight is (C_in, C_out, k, k): W = [[1.0, 0.3], [-0.2, 0.05]] (1x1), its output channels are
    # W's columns, scales 1 / 127 and 0.3 / 127, stored [[127, 127], [-25, 21]] (-0.2 x 127 = -25.4, 0.05 / 0.3 x
    # 127 = 21.17); for x = (2, 10): y = (2 - 10 x 25 / 127, 0.6 + 10 x 21 x 0.3 / 127)
    import onnxruntime
    from onnx import numpy_helper

    weight = np.array([[1.0, 0.3], [-0.2, 0.05]], dtype=np.float32).reshape(2, 2, 1, 1)
    quantized = weight_only_int8(_one_node_graph("ConvTranspose", weight, [1, 2, 1, 1], [1, 2, 1, 1]))
    onnx.checker.check_model(quantized)
    stored = {t.name: numpy_helper.to_array(t) for t in quantized.graph.initializer}
    assert stored["w_int8"].reshape(2, 2).tolist() == [[127, 127], [-25, 21]]
    x = np.array([2.0, 10.0], dtype=np.float32).reshape(1, 2, 1, 1)
    (y,) = onnxruntime.InferenceSession(quantized.SerializeToString()).run(None, {"x": x})
    np.testing.assert_allclose(y.ravel(), [2.0 - 10.0 * 25 / 127, 0.6 + 10.0 * 21 * 0.3 / 127], rtol=1e-5)


def test_torch_backend_without_a_checkpoint_is_in_eval_mode_and_missing_folders_are_named(tmp_path):
    config, _ = write_model(tmp_path)
    detector = load_backend("torch", config)
    assert not any(module.training for module in detector.modules())
    with pytest.raises(FileNotFoundError, match=r"missing: no such folder of ONNX graphs"):
        load_backend("onnxruntime-int8", config, onnx_dir=tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"fuser\.onnx: no such graph \(keep_float names 'fuser'\)"):
        keep_float(tmp_path, tmp_path, ["fuser"])


class _TwoBranches(torch.nn.Module):
    """Two convs concatenated into the graph's output: the Concat that ACTIVATION_OPS quantizes (no INT8 layer after
    it asks for its output quantized)."""

    def __init__(self):
        super().__init__()
        self.left, self.right = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.cat([self.left(x), self.right(x)], 1)


def test_int8_chain_runs_unbroken_through_concat(tmp_path):
    torch.manual_seed(0)
    _, _, op_types = _quantized_block(_TwoBranches().eval(), tmp_path)
    assert "QLinearConcat" in op_types and "Concat" not in op_types
    assert op_types.count("QuantizeLinear") == 1 and op_types.count("DequantizeLinear") == 1


def test_the_sweep_quantizes_each_graph_alone(exported, tmp_path):
    """int8_dir holds the float graphs but one, whose weights are rounded to int8: that graph's row and the row of
    every graph at once move the scores (by the same amount), every other row is the float model exactly."""
    config, _, folder = exported
    int8 = tmp_path / "int8"
    shutil.copytree(folder, int8)
    detector = load_onnx_detector(config, folder, one_bev_graph=False)
    first, *others = detector.dense_modules()
    onnx.save(weight_only_int8(onnx.load(str(graph_path(int8, first)))), str(graph_path(int8, first)))
    rows = sensitivity_sweep(config, folder, int8, [detector.batch_from_frames([make_frame(6)])])
    errors = {row["module"]: row["score_error"] for row in rows}
    assert list(errors) == [first, *others, "all"]
    assert errors[first] > 0 and errors["all"] == errors[first]
    assert all(errors[path] == 0 for path in others)
