"""The inference backends the tools offer behind one Detector interface (detect(frames, timer=None))."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from perception.deploy.graphs import load_onnx_detector
from perception.models import BEVFusionDetector, build_detector, load_detector

BACKENDS = ("torch", "onnxruntime", "onnxruntime-int8")
"""torch: the model in PyTorch; onnxruntime: the exported float graphs in ONNX Runtime; onnxruntime-int8: the
quantized graphs (tools/quantize.py). The kernels of perception.ops run the same way under all three."""


def load_backend(backend: str, config: Union[str, Path], checkpoint: Optional[Union[str, Path]] = None,
                 onnx_dir: Optional[Union[str, Path]] = None, device: str = "cpu", check_inputs: bool = True
                 ) -> BEVFusionDetector:
    """The detector of ``config`` on ``backend``: torch from ``checkpoint`` (its initial weights without one), the
    onnxruntime backends from the graphs in ``onnx_dir`` (exported from ``checkpoint`` where one is given);
    ``check_inputs`` as in load_detector (the graphs too: load_onnx_detector). ValueError for an unknown backend, a
    missing ``onnx_dir`` (or one given to torch, which reads no graphs) or graphs of another checkpoint."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "torch" and onnx_dir is not None:
        raise ValueError(f"--onnx {onnx_dir}: the torch backend reads no graphs; give --backend onnxruntime or "
                         f"onnxruntime-int8 to run them")
    if backend == "torch":
        if checkpoint is None:
            return build_detector(config).to(device).eval()
        return load_detector(config, checkpoint, device=device, check_inputs=check_inputs)
    if onnx_dir is None:
        raise ValueError(f"--backend {backend} needs --onnx DIR: the graphs written by tools/export.py"
                         + (" and quantized by tools/quantize.py" if backend.endswith("int8") else ""))
    if not Path(onnx_dir).is_dir():
        raise FileNotFoundError(f"{onnx_dir}: no such folder of ONNX graphs")
    return load_onnx_detector(config, onnx_dir, "int8" if backend.endswith("int8") else "float32", device,
                              checkpoint=checkpoint, check_inputs=check_inputs)
