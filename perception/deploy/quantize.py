"""INT8 post-training quantization of the exported graphs, and the per-graph sensitivity sweep that decides which
graphs stay float.

Static quantization with ONNX Runtime (``quantize_static``): QDQ format, weights int8 per output channel,
activations uint8 with MinMax ranges calibrated on the inputs each graph receives while the float model runs on
training frames (the real pre-processing: voxelization, scatter and BEV pooling feed the graphs). The weighted ops
(QUANTIZED_OPS) and the ops that join them (ACTIVATION_OPS) are quantized; the kernels outside the graphs stay
exact.

The quantizer's output is then compacted (``compact_quantized``): its INT8 weights are a quarter of the float
ones, but as written it also carries shape annotations (value_info), all-zero int32 zero points of the biases and
long generated names for each tensor it adds (a quantized tensor's name recurs in its scale, zero point, Q and DQ
outputs and nodes): 54 of the 543 KB of the shipped model's INT8 files (benchmarks/RESULTS.md). Compacting changes
no number: the graph's outputs are bit-identical and ONNX Runtime fuses the same INT8 kernels.

Sensitivity: each graph quantized alone (the others float), then all together, against the float graphs on held-out
frames; a graph whose error exceeds the tolerance computes in float, its weights stored int8 (``weight_only_int8``:
symmetric per output channel, restored to float when the session loads; the activations, whose ranges made
the graph sensitive, are not quantized). The BEV_NETWORK graph (fuser, decoder and head as one, what the backends
run) is quantized whole, the nodes of its parts that the sweep keeps float left in float (``quantize_bev_network``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Sequence, Tuple, Union

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from torch import nn

from perception.deploy.graphs import (BEV_NETWORK, config_sha256, graph_path, load_onnx_detector, open_graph,
                                      output_error, record_dense_inputs, set_metadata)
from perception.datasets.loader import NuScenesFrames
from perception.datasets.splits import evenly_spread
from perception.models import BEVFusionDetector, FusionBatch, model_inputs
from perception.models.quantization_aware import int8_weight_scale
from perception.plotting import pyplot

QUANTIZED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
"""The op types given INT8 weights and inputs."""

ACTIVATION_OPS = ("Relu", "Add", "Concat", "Resize")
"""The op types between weighted layers whose inputs and outputs are quantized too, so that a chain of INT8 layers
runs unbroken: ONNX Runtime folds a Relu into the preceding layer's output (its uint8 range then starts at 0, twice
the resolution of a range that holds the negative outputs the Relu drops), runs Add and Concat as QLinearAdd /
QLinearConcat and Resize on uint8. Everything else in a graph computes in float."""


def score_error(reference: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor]) -> float:
    """max |sigmoid(heatmap) - sigmoid(reference heatmap)|: the largest change of any detection score."""
    return float((torch.sigmoid(outputs["heatmap"]) - torch.sigmoid(reference["heatmap"])).abs().max())


class RecordedInputs(CalibrationDataReader):
    """Calibration data: one feed dict per recorded call of a graph."""

    def __init__(self, names: Sequence[str], calls: Sequence[Tuple[torch.Tensor, ...]]):
        self._feeds = iter([{n: t.numpy() for n, t in zip(names, call)} for call in calls])

    def get_next(self):
        return next(self._feeds, None)


def compact_quantized(quantized: onnx.ModelProto, float_graph: onnx.ModelProto) -> onnx.ModelProto:
    """``quantized`` (quantize_static's QDQ output of ``float_graph``) without what adds bytes but no numbers:
    value_info (ONNX Runtime infers shapes itself), the zero-point inputs of DequantizeLinear nodes whose int32
    zero points are all 0 (the biases'; optional, 0 by default), the names of the Q / DQ nodes; the tensors the
    quantizer added get short names ('q0', 'q1', ...), those of ``float_graph`` keep theirs. Modifies and returns
    ``quantized``."""
    graph = quantized.graph
    del graph.value_info[:]
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and len(node.input) == 3 and node.input[2] in initializers:
            zero_point = initializers[node.input[2]]
            if zero_point.data_type == onnx.TensorProto.INT32 and not numpy_helper.to_array(zero_point).any():
                del node.input[2]
    used = {name for node in graph.node for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    original = float_graph.graph
    float_names = ({name for node in original.node for name in (*node.input, *node.output)}
                   | {tensor.name for tensor in original.initializer}
                   | {value.name for value in (*original.input, *original.output)})
    short: dict = {}

    def rename(name: str) -> str:
        if not name or name in float_names:
            return name
        if name not in short:
            candidate = f"q{len(short)}"
            while candidate in float_names:
                candidate += "_"
            short[name] = candidate
        return short[name]

    for node in graph.node:
        node.input[:] = [rename(name) for name in node.input]
        node.output[:] = [rename(name) for name in node.output]
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            node.name = ""
    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    return quantized


def quantize_graph(float_file: Path, out_file: Path, calls: Sequence[Tuple[torch.Tensor, ...]],
                   nodes_to_exclude: Sequence[str] = ()) -> None:
    """INT8 copy of one graph, calibrated on ``calls`` (its recorded inputs) and compacted (compact_quantized);
    the nodes named in ``nodes_to_exclude`` keep float arithmetic; metadata kept, precision 'int8'."""
    if not calls:
        raise ValueError(f"{float_file}: no calibration inputs reached this graph (its sensor absent from every "
                         "calibration frame?)")
    graph = onnx.load(str(float_file))
    names = [i.name for i in graph.graph.input]
    quantize_static(str(float_file), str(out_file), RecordedInputs(names, calls), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=list(QUANTIZED_OPS + ACTIVATION_OPS), nodes_to_exclude=list(nodes_to_exclude),
                    calibrate_method=CalibrationMethod.MinMax)
    onnx.save(compact_quantized(onnx.load(str(out_file)), graph), str(out_file))
    float_meta = {p.key.split(".", 1)[1]: p.value for p in graph.metadata_props if p.key.startswith("perception.")}
    set_metadata(out_file, dict(float_meta, precision="int8", calibration_calls=len(calls)))


def quantize_graphs(config: Union[str, Path], float_dir: Union[str, Path], out_dir: Union[str, Path],
                    calibration: Sequence[FusionBatch]) -> Dict[str, List[Tuple[torch.Tensor, ...]]]:
    """Writes an INT8 copy of every graph of ``float_dir`` under ``out_dir``, the BEV_NETWORK graph's too where the
    folder has it, calibrated on ``calibration`` (batches of training frames); the graphs that are not
    ``calibrated`` keep float arithmetic (keep_float). -> module path -> the inputs it received in calibration (for
    quantize_bev_network's second pass once the sweep has chosen)."""
    if not calibration:
        raise ValueError("calibration needs at least one frame")
    detector = load_onnx_detector(config, float_dir, one_bev_graph=False)
    recorded = record_dense_inputs(detector, calibration)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for path in filter(calibrated, detector.dense_modules()):
        quantize_graph(graph_path(float_dir, path), graph_path(out_dir, path), recorded[path])
    keep_float(float_dir, out_dir, [path for path in detector.dense_modules() if not calibrated(path)])
    if graph_path(float_dir, BEV_NETWORK).is_file():
        quantize_bev_network(float_dir, out_dir, recorded["fuser"])
    return recorded


def quantize_bev_network(float_dir: Union[str, Path], out_dir: Union[str, Path],
                         calls: Sequence[Tuple[torch.Tensor, ...]], float_parts: Sequence[str] = ()) -> None:
    """INT8 copy of the BEV_NETWORK graph calibrated on ``calls`` (the fuser's recorded inputs), the nodes of
    ``float_parts`` (module paths it holds, e.g. the ones the sweep keeps float) in float arithmetic with their
    weights stored int8 (weight_only_int8); metadata 'float_parts' names them, precision 'int8_weights' when
    nothing is left to quantize."""
    float_file, out_file = graph_path(float_dir, BEV_NETWORK), graph_path(out_dir, BEV_NETWORK)
    prefixes = tuple("/" + part.replace(".", "/") + "/" for part in float_parts)  # the exporter's node scopes
    nodes = onnx.load(str(float_file)).graph.node
    excluded = [node.name for node in nodes if prefixes and node.name.startswith(prefixes)]
    if prefixes and not excluded:
        raise ValueError(f"{float_file}: no node of {list(float_parts)} in this graph")
    quantize_graph(float_file, out_file, calls, nodes_to_exclude=excluded)
    graph = weight_only_int8(onnx.load(str(out_file)))
    onnx.save(graph, str(out_file))
    quantized = any(node.op_type == "QuantizeLinear" for node in graph.graph.node)
    set_metadata(out_file, {"float_parts": json.dumps(sorted(float_parts)),
                            "precision": "int8" if quantized else "int8_weights"})


def calibrated(module_path: str) -> bool:
    """Whether quantize_graphs calibrates and quantizes the graph of ``module_path``: every graph but the planning
    head's, whose ego features come from a pose history that the calibration frames (loaded one by one) do not
    carry; its MLPs (a few thousand multiply-accumulates) keep float arithmetic, their weights stored int8."""
    return not module_path.startswith("planning_head.")


def weight_only_int8(graph: onnx.ModelProto) -> onnx.ModelProto:
    """``graph`` with the float weights (2-D or more) of its QUANTIZED_OPS stored int8, symmetric per output
    channel (perception.models.quantization_aware.int8_weight_scale), each restored by Cast and Mul by its scale
    into a tensor of the weight's name: the arithmetic and the activations stay float. Cast and Mul of constants,
    unlike a DequantizeLinear (which ONNX Runtime keeps for its QDQ fusions and runs at every call: decoder 48 -> 61
    ms, paired), are folded when the session loads, so the graph runs as fast as the float one. Modifies and returns
    ``graph``."""
    initializers = {tensor.name: tensor for tensor in graph.graph.initializer}
    dequantize = []  # the nodes restoring the weights, before every other
    for node in graph.graph.node:
        weight = initializers.get(node.input[1]) if node.op_type in QUANTIZED_OPS and len(node.input) > 1 else None
        if weight is None or weight.data_type != onnx.TensorProto.FLOAT or len(weight.dims) < 2:
            continue
        values = numpy_helper.to_array(weight)
        scale = int8_weight_scale(torch.tensor(values), _output_channel_axis(node)).numpy()
        quantized = np.clip(np.round(values / scale), -127, 127).astype(np.int8)
        graph.graph.initializer.remove(weight)
        del initializers[weight.name]
        graph.graph.initializer.extend([numpy_helper.from_array(quantized, f"{weight.name}_int8"),
                                        numpy_helper.from_array(scale, f"{weight.name}_scale")])
        dequantize += [helper.make_node("Cast", [f"{weight.name}_int8"], [f"{weight.name}_cast"],
                                        to=onnx.TensorProto.FLOAT),
                       helper.make_node("Mul", [f"{weight.name}_cast", f"{weight.name}_scale"], [weight.name])]
    nodes = dequantize + list(graph.graph.node)
    del graph.graph.node[:]
    graph.graph.node.extend(nodes)
    return graph


def _output_channel_axis(node: onnx.NodeProto) -> int:
    """The axis of a weighted op's weight (its input 1) that indexes the output channels."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        return 0 if any(a.name == "transB" and a.i for a in node.attribute) else 1
    return 1  # ConvTranspose (C_in, C_out / groups, ...), MatMul (K, N)


def keep_float(float_dir: Union[str, Path], out_dir: Union[str, Path], module_paths: Sequence[str]) -> None:
    """Puts the graphs of ``module_paths`` back in ``out_dir`` (over their INT8 copies) computing in float, their
    weights stored int8 (weight_only_int8); metadata precision 'int8_weights'."""
    for path in module_paths:
        source = graph_path(float_dir, path)
        if not source.is_file():
            raise FileNotFoundError(f"{source}: no such graph (keep_float names {path!r})")
        target = graph_path(out_dir, path)
        onnx.save(weight_only_int8(onnx.load(str(source))), str(target))
        set_metadata(target, {"precision": "int8_weights"})  # the float graph's other metadata stay


def compare_outputs(detector: nn.Module, reference: Sequence[Mapping[str, torch.Tensor]],
                    batches: Sequence[FusionBatch]) -> dict:
    """The detector's head outputs on ``batches`` against ``reference`` (the float model's on the same batches):
    the largest score_error and output_error of each output over the batches."""
    with torch.no_grad():
        outputs = [detector(batch, mode="tensor") for batch in batches]
    row = {"score_error": max(score_error(r, o) for r, o in zip(reference, outputs))}
    for name in reference[0]:
        row[f"{name}_error"] = max(output_error(r, o)[name] for r, o in zip(reference, outputs))
    return row


def sensitivity_sweep(config: Union[str, Path], float_dir: Union[str, Path], int8_dir: Union[str, Path],
                      batches: Sequence[FusionBatch]) -> List[dict]:
    """One row per ``calibrated`` graph of ``int8_dir`` quantized alone (the others from ``float_dir``), then one
    with all of them ('all'): compare_outputs against the float graphs over ``batches``."""
    detector = load_onnx_detector(config, float_dir, one_bev_graph=False)
    expected = config_sha256(config)
    with torch.no_grad():
        reference = [detector(batch, mode="tensor") for batch in batches]
    rows, float_graphs = [], dict(detector.dense_modules())
    for path in filter(calibrated, float_graphs):
        detector.set_submodule(path, open_graph(graph_path(int8_dir, path), path, expected)[0])
        rows.append({"module": path, **compare_outputs(detector, reference, batches)})
        detector.set_submodule(path, float_graphs[path])
    for path in float_graphs:
        detector.set_submodule(path, open_graph(graph_path(int8_dir, path), path, expected)[0])
    rows.append({"module": "all", **compare_outputs(detector, reference, batches)})
    return rows


def sensitive_modules(rows: Sequence[dict], max_score_error: float) -> List[str]:
    """The graphs whose quantization alone moves a detection score by more than ``max_score_error``."""
    return [row["module"] for row in rows if row["module"] != "all" and row["score_error"] > max_score_error]


def sensitivity_table(rows: Sequence[dict]) -> str:
    """The sweep as a markdown table."""
    columns = [key for key in rows[0] if key != "module"]
    lines = ["| graph quantized | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    lines += [f"| {row['module']} | " + " | ".join(f"{row[c]:.4f}" for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_sensitivity(rows: Sequence[dict], out_dir: Union[str, Path], max_score_error: float) -> None:
    """sensitivity.json, sensitivity.md and sensitivity.png (each graph's score error as a bar, the ones above
    ``max_score_error`` red, every graph at once grey, the threshold dashed) under ``out_dir``."""
    out_dir = Path(out_dir)
    (out_dir / "sensitivity.json").write_text(json.dumps(list(rows), indent=2))
    (out_dir / "sensitivity.md").write_text(sensitivity_table(rows) + "\n")
    plt = pyplot()
    sensitive = set(sensitive_modules(rows, max_score_error))
    figure, axis = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    axis.barh([row["module"] for row in rows], [row["score_error"] for row in rows],
              color=["tab:red" if row["module"] in sensitive else "tab:grey" if row["module"] == "all"
                     else "tab:blue" for row in rows])
    axis.axvline(max_score_error, color="black", linestyle="--", label=f"--max-score-error {max_score_error:g}")
    axis.invert_yaxis()
    axis.set_xlabel("largest change of a detection score, INT8 against float")
    axis.set_title("Each graph quantized alone (red: kept float), then all (grey)")
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(out_dir / "sensitivity.png", dpi=100)
    plt.close(figure)


class FrameSelection(NamedTuple):
    """Keyframes chosen from a split (select_frames), not loaded yet: the split's frames and the chosen indices."""
    frames: NuScenesFrames
    indices: List[int]

    def sample_tokens(self) -> List[str]:
        return [self.frames.sample_tokens[i] for i in self.indices]

    def to_meta(self) -> dict:
        """JSON form, as quantize.json records the frames calibration and the sweep ran on."""
        return dict(split=self.frames.split, sample_tokens=self.sample_tokens())


def select_frames(config, dataroot: str, version: str, split: str, count: int, purpose: str) -> FrameSelection:
    """``count`` keyframes spread evenly over ``split``, read at the config's model inputs; ValueError naming the
    ``purpose`` when the split has none here."""
    if count < 1:
        raise ValueError(f"the frame count must be >= 1, got {count}")
    inputs = model_inputs(config)
    try:
        frames = NuScenesFrames(dataroot, version, split, inputs.lidar_sweeps, inputs.radar_sweeps,
                                image_size=inputs.image_size, progress=False)
    except ValueError as error:
        raise ValueError(f"{purpose} frames: {error}") from error
    return FrameSelection(frames, evenly_spread(len(frames), count))


def load_batches(detector: BEVFusionDetector, selection: FrameSelection) -> List[FusionBatch]:
    """The selected frames, loaded, as one-frame batches."""
    return [detector.batch_from_frames([selection.frames[i]]) for i in selection.indices]
