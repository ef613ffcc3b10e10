"""The inference backend options that tools/test.py, tools/replay.py and tools/benchmark.py share."""
from __future__ import annotations

import argparse
from typing import List, Optional, Sequence, Tuple

from perception.deploy.backends import BACKENDS


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--onnx DIR``, for perception.deploy.backends.load_backend(args.backend, config,
    checkpoint, args.onnx, device)."""
    parser.add_argument("--backend", default="torch", choices=BACKENDS,
                        help="run the network in PyTorch, or its exported graphs in ONNX Runtime (float or INT8)")
    parser.add_argument("--onnx", help="folder of the graphs of tools/export.py (onnxruntime) or tools/quantize.py "
                                       "(onnxruntime-int8)")


def add_backend_list_options(parser: argparse.ArgumentParser) -> None:
    """``--backend A,B,..`` and ``--onnx DIR`` once per ONNX Runtime backend of the list, in its order; read them
    with ``backend_folders``."""
    parser.add_argument("--backend", default="torch",
                        help=f"comma-separated backends timed side by side, from: {', '.join(BACKENDS)}")
    parser.add_argument("--onnx", action="append", default=[],
                        help="folder of the graphs of tools/export.py (onnxruntime) or tools/quantize.py "
                             "(onnxruntime-int8): once per onnxruntime backend of --backend, in its order")


def backend_folders(backends: str, onnx_dirs: Sequence[str]) -> List[Tuple[str, Optional[str]]]:
    """'torch,onnxruntime,onnxruntime-int8' and the --onnx folders -> [(backend, its graphs folder or None)].
    ValueError for an unknown or repeated backend, or when the folders do not match the ONNX Runtime backends
    one to one."""
    names = [name.strip() for name in backends.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if not names or unknown:
        raise ValueError(f"--backend {backends!r}: choose from {', '.join(BACKENDS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"--backend {backends!r} names a backend twice")
    onnx_backends = [name for name in names if name != "torch"]
    if len(onnx_dirs) != len(onnx_backends):
        raise ValueError(f"--backend {backends!r} has {len(onnx_backends)} onnxruntime backend(s) but "
                         f"{len(onnx_dirs)} --onnx folder(s); give one --onnx per onnxruntime backend, in order")
    folders = dict(zip(onnx_backends, onnx_dirs))
    return [(name, folders.get(name)) for name in names]
