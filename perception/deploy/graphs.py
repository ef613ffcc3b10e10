"""The detector's dense parts as ONNX graphs, and the detector rebuilt around them for ONNX Runtime.

``BEVFusionDetector.dense_modules()`` names the submodules that hold all the weights the model runs with and take
and return tensors only (pillar feature nets, encoder convs, camera backbone + FPN and depth net, fuser, decoder,
head branches, the planning head's layers);
``export_graphs`` writes each as ``<module path>.onnx``, and the fuser, decoder and head once more as one graph,
``bev_network.onnx`` (BEV_NETWORK). ``load_onnx_detector`` builds the model from its config and puts an
``OnnxGraph`` (an ONNX Runtime session as a torch module) in place of each, or the one graph in place of those
three parts, so the model's own code runs around them: voxelization, pillar scatter, BEV pooling, decoding and NMS
stay the Numba / torch code of perception.ops and perception.models, and the stage timer times the same stages.

Every graph records in its metadata_props which model it belongs to (GRAPH_FORMAT, the config's model hash, the
model's inputs (sweeps, image size, sensors read), the checkpoint's hash, its module path, precision and input
signature); a graph of another model version or of other inputs, or graphs of two exports mixed in one folder, are
refused with an error naming the file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import warnings
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from torch import nn

from perception.geometry import EgoPose, RigidTransform
from perception.models import (BEVFusionDetector, FusionBatch, build_detector, check_trained_inputs, model_inputs,
                               read_checkpoint)
from perception.models.finetune import unread_encoder_names
from perception.models.heads import CenterHead
from perception.models.planning_types import EGO_FEATURE_SCALE
from perception.sensors import CAMERA_CHANNELS
from perception.threads import onnxruntime_session_options

GRAPH_FORMAT = "perception-onnx-v2"
"""metadata_props['perception.format'] of every graph this module writes (v2: the pillar nets take the per-point
features of Pillarization.point_features, v1's took the pillars)."""

OPSET = 17
PRECISIONS = ("float32", "int8")

BEV_NETWORK = "bev_network"
"""The graph of the fuser, decoder and head as one (``<folder>/bev_network.onnx``, BEVNetwork): the backends run it
in place of those parts' own graphs (one session instead of six, no layout transposes, and in INT8 no dequantize /
quantize, at the five joins between them); their own graphs stay for what takes the parts one by one (the
sensitivity sweep, calibration, benchmarks/bench_graphs.py)."""


def config_sha256(config: Union[str, Path, Config]) -> str:
    """The hash of a config's ``model`` entry (architecture and every size): what a graph must have been exported
    from."""
    config = config if isinstance(config, Config) else Config.fromfile(str(config))
    text = json.dumps(config.model.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: Union[str, Path]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def graphs_sha256(folder: Union[str, Path]) -> str:
    """One sha256 of the graphs (``*.onnx``, graph_path's files) in ``folder``: their names and their contents'
    sha256, in name order (graphs exported or quantized again into the same folder hash otherwise; other files
    there, an evaluation's output say, do not count)."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.onnx")):
        digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def graph_path(folder: Union[str, Path], module_path: str) -> Path:
    """Where the graph of a dense module lives: ``<folder>/<module path>.onnx``."""
    return Path(folder) / f"{module_path}.onnx"


def example_batch(detector: BEVFusionDetector, lidar_points: int = 20000, radar_points: int = 300, seed: int = 0
                  ) -> FusionBatch:
    """One frame of random inputs in the detector's range: LiDAR and radar points uniform over the grid, random
    images at its image size, six cameras looking forward (K with the focal length half the width) and, for a
    model that plans, ego features of their typical magnitudes (EGO_FEATURE_SCALE) times uniform [-1, 1]. Enough
    to trace and check the dense parts; not a scene."""
    rng = np.random.default_rng(seed)
    low, high = np.array(detector.grid.point_cloud_range[:3]), np.array(detector.grid.point_cloud_range[3:])

    def points(count: int, extra: np.ndarray) -> torch.Tensor:
        xyz = rng.uniform(low, high, size=(count, 3))
        return torch.from_numpy(np.concatenate([np.zeros((count, 1)), xyz, extra], axis=1).astype(np.float32))

    lidar = points(lidar_points, np.stack([rng.uniform(0, 255, lidar_points), rng.uniform(0, 0.5, lidar_points)], 1))
    radar = points(radar_points, np.concatenate([rng.uniform(-5, 20, (radar_points, 1)),
                                                 rng.normal(0, 5, (radar_points, 2)),
                                                 rng.uniform(0, 0.5, (radar_points, 1))], axis=1))
    width, height = detector.image_size or (32, 32)
    cameras = len(CAMERA_CHANNELS)
    intrinsics = torch.tensor([[width / 2, 0, width / 2], [0, width / 2, height / 2], [0, 0, 1]]).float()
    camera_to_ego = torch.eye(4)
    camera_to_ego[:3, :3] = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])  # camera z forward = ego x
    camera_to_ego[:3, 3] = torch.tensor([1.5, 0.0, 1.6])
    return FusionBatch(
        batch_size=1, lidar=lidar, radar=radar,
        images=torch.from_numpy(rng.uniform(0, 1, (1, cameras, 3, height, width)).astype(np.float32)),
        intrinsics=intrinsics.expand(1, cameras, 3, 3).clone(),
        camera_to_ego=camera_to_ego.expand(1, cameras, 4, 4).clone(),
        camera_valid=torch.ones(1, cameras, dtype=torch.bool),
        present={sensor: torch.ones(1, dtype=torch.bool) for sensor in ("lidar", "radar", "camera")},
        gt_boxes=None, sample_tokens=["example"], ego_poses=[EgoPose(0, RigidTransform.identity())],
        ego_state=(torch.from_numpy((rng.uniform(-1, 1, len(EGO_FEATURE_SCALE)) * EGO_FEATURE_SCALE)[None])
                   .float() if detector.plans else None))


BEV_NETWORK_PARTS = ("fuser", "decoder", "head")
"""The detector's submodules the BEV_NETWORK graph holds, in the order they run."""


def in_bev_network(module_path: str) -> bool:
    """Whether the BEV_NETWORK graph holds a dense module (one of BEV_NETWORK_PARTS or inside one)."""
    return module_path.split(".")[0] in BEV_NETWORK_PARTS


def backend_graph_files(module_paths: Sequence[str], folder: Union[str, Path]) -> List[Path]:
    """The graph files load_onnx_detector opens in ``folder`` for a model of these dense module paths."""
    if not graph_path(folder, BEV_NETWORK).is_file():
        return [graph_path(folder, path) for path in module_paths]
    return [graph_path(folder, path) for path in module_paths if not in_bev_network(path)] + [
        graph_path(folder, BEV_NETWORK)]


class BEVNetwork(nn.Module):
    """The fuser, decoder and head of ``detector`` as one module, what export_graphs writes as the BEV_NETWORK
    graph: forward(features (N, sum C_s, ny, nx), present (N, S) bool), the fuser's inputs -> the head outputs
    (CenterHead.forward's, in its order), preceded by the decoder's output (N, C, ny, nx) when the model plans (its
    planning head reads it)."""

    def __init__(self, detector: BEVFusionDetector):
        super().__init__()
        self.fuser, self.decoder, self.head = detector.fuser, detector.decoder, detector.head
        self.plans = detector.plans
        self.train(detector.training)  # the mode torch.onnx.export restores on the detector's parts after tracing

    def output_names(self) -> List[str]:
        """The graph's output names: 'decoded' when the model plans, then the head outputs'."""
        return ["decoded"] * self.plans + list(CenterHead.OUTPUTS)

    def forward(self, features: torch.Tensor, present: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        decoded = self.decoder(self.fuser(features, present))
        outputs = self.head(decoded)
        return (decoded,) * self.plans + tuple(outputs[name] for name in CenterHead.OUTPUTS)


def check_export_covers(detector: BEVFusionDetector, config: Union[str, Path, Config]) -> None:
    """ValueError naming the config when some weights lie outside ``dense_modules()``: a part of the model that
    these graphs do not cover (the encoders of groups the model does not read never run and need none)."""
    prefixes = tuple(f"{path}." for path in [*detector.dense_modules(), *unread_encoder_names(detector)])
    outside = sorted({key.rsplit(".", 1)[0] for key in detector.state_dict() if not key.startswith(prefixes)})
    if outside:
        name = config.filename if isinstance(config, Config) else config
        raise ValueError(f"{name}: the ONNX export covers the network's dense parts only; this model also has "
                         f"weights in {outside}")


def record_dense_inputs(detector: BEVFusionDetector, batches: Sequence[FusionBatch]
                        ) -> Dict[str, List[Tuple[torch.Tensor, ...]]]:
    """module path -> the positional inputs each dense module received while the detector ran ``batches``
    (mode 'predict' for a batch that carries the ego state, so that a planning head runs too, else 'tensor'):
    what tracing and calibration feed the graphs."""
    recorded: Dict[str, List[Tuple[torch.Tensor, ...]]] = {path: [] for path in detector.dense_modules()}
    handles = [module.register_forward_pre_hook(
        lambda module, args, path=path: recorded[path].append(tuple(a.detach().clone() for a in args)))
        for path, module in detector.dense_modules().items()]
    try:
        with torch.no_grad():
            for batch in batches:
                detector(batch, mode="predict" if batch.ego_state is not None else "tensor")
    finally:
        for handle in handles:
            handle.remove()
    return recorded


def input_names(module: nn.Module, count: int) -> List[str]:
    """The names of a module's first ``count`` forward arguments (nn.Sequential: 'input')."""
    names = list(inspect.signature(module.forward).parameters)
    return names[:count] if len(names) >= count else [f"input{i}" for i in range(count)]


def signature(inputs: Sequence[Tuple[str, str, Sequence[Union[int, str]]]]) -> str:
    """JSON [[name, element type, dims]] with 'N' for the batch-like first dimension."""
    return json.dumps([[name, dtype, list(dims)] for name, dtype, dims in inputs])


def set_metadata(path: Union[str, Path], properties: Mapping[str, str]) -> None:
    """Writes ``perception.<key>`` metadata_props into an ONNX file (replacing those already there)."""
    import onnx

    model = onnx.load(str(path))
    keep = [p for p in model.metadata_props if p.key not in {f"perception.{k}" for k in properties}]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in properties.items():
        model.metadata_props.add(key=f"perception.{key}", value=str(value))
    onnx.save(model, str(path))


def export_graphs(detector: BEVFusionDetector, config: Union[str, Path, Config], checkpoint: Union[str, Path],
                  out_dir: Union[str, Path], batch: Optional[FusionBatch] = None) -> Dict[str, Path]:
    """Exports every dense module of ``detector`` (the weights of ``checkpoint``, built from ``config``) as an ONNX
    graph under ``out_dir``, traced on ``batch`` (default: example_batch) with the first dimension of every input
    and output dynamic; each is checked with onnx.checker. -> module path -> file."""
    import onnx

    check_export_covers(detector, config)
    detector = detector.eval()
    recorded = record_dense_inputs(detector, [batch if batch is not None else example_batch(detector)])
    identity = dict(format=GRAPH_FORMAT, config_sha256=config_sha256(config),
                    model_inputs=json.dumps(model_inputs(config).to_meta()), checkpoint=Path(checkpoint).name,
                    checkpoint_sha256=file_sha256(checkpoint), precision="float32")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    modules = {**detector.dense_modules(), BEV_NETWORK: BEVNetwork(detector)}
    for path, module in modules.items():
        args = recorded[path if path != BEV_NETWORK else "fuser"]  # the BEV network takes the fuser's inputs
        if not args:
            raise ValueError(f"{path}: the example batch did not reach this module, so it cannot be traced")
        args = args[0]
        names = input_names(module, len(args))
        outputs = module.output_names() if path == BEV_NETWORK else ["output"]
        file = graph_path(out_dir, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
            torch.onnx.export(module, args, str(file), dynamo=False, opset_version=OPSET, input_names=names,
                              output_names=outputs, do_constant_folding=True,
                              dynamic_axes={name: {0: "N"} for name in names + outputs})
        inputs = [(n, str(a.dtype).replace("torch.", ""), ["N", *a.shape[1:]]) for n, a in zip(names, args)]
        set_metadata(file, dict(identity, module=path, inputs=signature(inputs)))
        onnx.checker.check_model(str(file))
        files[path] = file
    return files


class OnnxGraph(nn.Module):
    """One ONNX graph as a torch module: forward(*tensors) -> tensor on the first input's device, through an
    ONNX Runtime session (its inputs in the graph's order, one output)."""

    def __init__(self, session, file: Path):
        super().__init__()
        self.session = session
        self.file = file
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    def run(self, *inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Output name -> tensor on the first input's device."""
        if len(inputs) != len(self.input_names):
            raise ValueError(f"{self.file}: takes {len(self.input_names)} inputs ({self.input_names}), "
                             f"got {len(inputs)}")
        feeds = {name: tensor.detach().cpu().numpy() for name, tensor in zip(self.input_names, inputs)}
        outputs = self.session.run(None, feeds)
        return {name: torch.from_numpy(output).to(inputs[0].device) for name, output in zip(self.output_names, outputs)}

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        (output,) = self.run(*inputs).values()
        return output

    def extra_repr(self) -> str:
        return str(self.file)


class BEVNetworkGraph(OnnxGraph):
    """The BEV_NETWORK graph as the detector's ``bev_graph``: forward(features, present) -> (the decoder's output,
    None unless the model plans; the head outputs by name)."""

    def forward(self, features: torch.Tensor, present: torch.Tensor
                ) -> Tuple[Optional[torch.Tensor], Dict[str, torch.Tensor]]:
        outputs = self.run(features, present)
        return outputs.pop("decoded", None), outputs


class InBEVNetwork(nn.Module):
    """Stands in a detector's slot for a part that runs inside its BEV_NETWORK graph; calling it is an error."""

    def __init__(self, file: Path):
        super().__init__()
        self.file = file

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(f"this part runs inside {self.file} (the detector's bev_graph)")

    def extra_repr(self) -> str:
        return str(self.file)


def onnxruntime_providers(device: str) -> List[str]:
    """ONNX Runtime's execution providers for a device ("cpu" or "cuda[:N]"); ValueError when onnxruntime is not
    installed or has no CUDA provider."""
    try:
        import onnxruntime
    except ImportError:
        raise ValueError("the onnxruntime backends need the onnxruntime package: pip install -e '.[deploy]'") from None
    if not device.startswith("cuda"):
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise ValueError(f"--device {device}: this onnxruntime has no CUDA provider (available: "
                         f"{onnxruntime.get_available_providers()}; install onnxruntime-gpu)")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def open_graph(file: Path, module_path: str, expected_config: str, device: str = "cpu", session_options=None,
               graph_type: type = OnnxGraph, expected_inputs: Optional[Tuple[dict, str]] = None
               ) -> Tuple[OnnxGraph, dict]:
    """An OnnxGraph of ``file`` and its perception metadata; ValueError naming the file when it is not a graph of
    ``module_path`` exported from a config with model hash ``expected_config`` (and, with ``expected_inputs``
    (ModelInputs.to_meta() of a config, that config's name), for those model inputs). ``session_options``: ONNX
    Runtime's, default the thread policy's (perception.threads.onnxruntime_session_options); ``graph_type``:
    OnnxGraph or BEVNetworkGraph."""
    providers = onnxruntime_providers(device)
    import onnxruntime

    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such graph (the graph of {module_path}; export with tools/export.py)")
    try:
        session = onnxruntime.InferenceSession(str(file), session_options or onnxruntime_session_options(),
                                               providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types for unreadable files
        raise ValueError(f"{file}: not a readable ONNX graph: {error}") from None
    meta = {key.split(".", 1)[1]: value for key, value in session.get_modelmeta().custom_metadata_map.items()
            if key.startswith("perception.")}
    if meta.get("format") != GRAPH_FORMAT:
        raise ValueError(f"{file}: not a graph of this version's export (format {meta.get('format')!r}, expected "
                         f"{GRAPH_FORMAT!r}); export again with tools/export.py")
    if meta.get("module") != module_path:
        raise ValueError(f"{file}: holds module {meta.get('module')!r}, expected {module_path!r}")
    if meta.get("config_sha256") != expected_config:
        raise ValueError(f"{file}: exported from another version of the model (config hash "
                         f"{meta.get('config_sha256', '?')[:12]}, this config's {expected_config[:12]}); export again "
                         "with tools/export.py")
    if expected_inputs is not None:
        configured, config_name = expected_inputs
        if "model_inputs" not in meta:
            raise ValueError(f"{file}: records no model inputs (sweeps, image size, sensors read; an export before "
                             "they were recorded); export again with tools/export.py")
        if json.loads(meta["model_inputs"]) != configured:
            raise ValueError(f"{file}: exported for inputs {json.loads(meta['model_inputs'])}, but {config_name} "
                             f"gives {configured}; give the config the graphs were exported with, or export again")
    recorded = [name for name, _, _ in json.loads(meta.get("inputs", "[]"))]
    if recorded != [i.name for i in session.get_inputs()]:
        raise ValueError(f"{file}: its inputs {[i.name for i in session.get_inputs()]} differ from the recorded "
                         f"signature {recorded}")
    return graph_type(session, file), meta


def load_onnx_detector(config: Union[str, Path], onnx_dir: Union[str, Path], precision: str = "float32",
                       device: str = "cpu", session_options=None, one_bev_graph: bool = True,
                       checkpoint: Optional[Union[str, Path]] = None, check_inputs: bool = True) -> BEVFusionDetector:
    """The detector of ``config`` with its dense modules run by ONNX Runtime from the graphs in ``onnx_dir``
    (a perception.detector.Detector: detect(frames, timer=None)): the fuser, decoder and head by the BEV_NETWORK
    graph where the folder has it and ``one_bev_graph`` (False: by their own graphs, which the sensitivity sweep
    and calibration swap and record one by one). ``precision`` 'float32' wants only float graphs, 'int8' at least
    one INT8 graph (tools/quantize.py keeps sensitive ones float); ``session_options`` as in open_graph;
    ``checkpoint``, when given, the file the graphs must have been exported from. With ``check_inputs`` (as in
    perception.models.load_detector) the graphs, and the checkpoint where given, must record the config's model
    inputs. Errors name the file: a missing graph, one of another model version or of other inputs, graphs of two
    exports mixed, graphs of another checkpoint."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if check_inputs and checkpoint is not None:
        check_trained_inputs(read_checkpoint(checkpoint), checkpoint, config)
    detector = build_detector(config).eval()
    check_export_covers(detector, config)
    expected = config_sha256(config)
    expected_inputs = (model_inputs(config).to_meta(), str(config)) if check_inputs else None
    checkpoints = {}
    precisions = set()
    bev_file = graph_path(onnx_dir, BEV_NETWORK)
    in_bev_graph = {path for path in detector.dense_modules() if in_bev_network(path)} if (
        one_bev_graph and bev_file.is_file()) else set()
    if in_bev_graph:
        graph, meta = open_graph(bev_file, BEV_NETWORK, expected, device, session_options, BEVNetworkGraph,
                                 expected_inputs)
        checkpoints[graph.file] = meta.get("checkpoint_sha256")
        precisions.add(meta.get("precision"))
        detector.bev_graph = graph
    for path in detector.dense_modules():
        if path in in_bev_graph:
            detector.set_submodule(path, InBEVNetwork(bev_file))
            continue
        graph, meta = open_graph(graph_path(onnx_dir, path), path, expected, device, session_options,
                                 expected_inputs=expected_inputs)
        checkpoints[graph.file] = meta.get("checkpoint_sha256")
        precisions.add(meta.get("precision"))
        detector.set_submodule(path, graph)
    unrecorded = [file.name for file, digest in checkpoints.items() if digest is None]
    if unrecorded:
        raise ValueError(f"{onnx_dir}: {', '.join(unrecorded)} record no checkpoint; export them again with "
                         f"tools/export.py")
    if len(set(checkpoints.values())) > 1:
        raise ValueError(f"{onnx_dir}: graphs of different checkpoints mixed: "
                         + ", ".join(f"{file.name} {digest[:12]}" for file, digest in checkpoints.items()))
    if checkpoint is not None and set(checkpoints.values()) != {file_sha256(checkpoint)}:
        raise ValueError(f"{onnx_dir}: graphs exported from another checkpoint than {checkpoint} (export it with "
                         f"tools/export.py, or give the checkpoint the graphs came from)")
    if precision == "float32" and precisions != {"float32"}:
        raise ValueError(f"{onnx_dir}: holds INT8 graphs, not the float export (tools/export.py) asked for here; the "
                         f"onnxruntime-int8 backend loads them")
    if precision == "int8" and "int8" not in precisions:
        raise ValueError(f"{onnx_dir}: holds no INT8 graph; quantize it with tools/quantize.py")
    return detector.to(device)


def checked_outputs(detector: BEVFusionDetector, batch: FusionBatch) -> Dict[str, torch.Tensor]:
    """What tools/export.py compares between the graphs and torch: the head outputs of ``batch`` (mode 'tensor')
    and, when the model plans and the batch carries the ego state, each field of the frames' PlanningOutputs as
    'plan.<field>' (mode 'predict')."""
    with torch.no_grad():
        outputs = dict(detector(batch, mode="tensor"))
        if detector.plans and batch.ego_state is not None:
            plans = [result["plan"] for result in detector(batch, mode="predict")]
            outputs.update({f"plan.{field.name}": torch.stack([getattr(plan, field.name) for plan in plans])
                            for field in dataclasses.fields(plans[0])})
    return outputs


def output_error(reference: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor]) -> Dict[str, float]:
    """Per head output: max |a - b| / max |a| (relative to the reference's scale)."""
    return {name: float((outputs[name] - ref).abs().max() / ref.abs().max().clamp(min=1e-12))
            for name, ref in reference.items()}
