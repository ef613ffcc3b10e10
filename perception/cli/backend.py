"""The inference backend options that tools/test.py, tools/replay.py and tools/benchmark.py share."""
from __future__ import annotations

import argparse

from perception.deploy.backends import BACKENDS


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--onnx DIR``, for perception.deploy.backends.load_backend(args.backend, config,
    checkpoint, args.onnx, device)."""
    parser.add_argument("--backend", default="torch", choices=BACKENDS,
                        help="run the network in PyTorch, or its exported graphs in ONNX Runtime (float or INT8)")
    parser.add_argument("--onnx", help="folder of the graphs of tools/export.py (onnxruntime) or tools/quantize.py "
                                       "(onnxruntime-int8)")
