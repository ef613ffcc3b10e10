"""The inference backend options that tools/test.py, tools/replay.py and tools/benchmark.py share."""
from __future__ import annotations

import argparse
from typing import Dict, List, Optional, Sequence, Tuple

from perception.deploy.backends import BACKENDS


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--onnx DIR``, for perception.deploy.backends.load_backend(args.backend, config,
    checkpoint, args.onnx, device)."""
    parser.add_argument("--backend", default="torch", choices=BACKENDS,
                        help="run the network in PyTorch, or its exported graphs in ONNX Runtime (float or INT8)")
    parser.add_argument("--onnx", help="folder of the graphs of tools/export.py (onnxruntime) or tools/quantize.py "
                                       "(onnxruntime-int8)")


def check_model_or_oracle(parser: argparse.ArgumentParser, args: argparse.Namespace,
                          model_options: Sequence[str] = ()) -> None:
    """parser.error unless ``args`` name a model (CONFIG and CHECKPOINT) or the oracle alone: --oracle with CONFIG,
    CHECKPOINT, --backend, --onnx or one of the tool's flags ``model_options`` (e.g. "--zero-shot"), which the oracle
    would ignore."""
    if not args.oracle:
        if args.config is None or args.checkpoint is None:
            parser.error("CONFIG and CHECKPOINT are required unless --oracle is given")
        return
    given = {"CONFIG": args.config is not None, "CHECKPOINT": args.checkpoint is not None,
             "--backend": args.backend != "torch", "--onnx": args.onnx is not None,
             **{option: getattr(args, option[2:].replace("-", "_")) for option in model_options}}
    ignored = [name for name, named in given.items() if named]
    if ignored:
        parser.error(f"--oracle runs no model: leave out {', '.join(ignored)}")


def model_provenance(backend: str, config: str, checkpoint: str, onnx_dir: Optional[str]) -> Dict[str, str]:
    """What identifies a model's outputs when a run resumes (tools/test.py, tools/replay.py): the ``backend``, the
    sha256 of ``config``'s model (perception.deploy.graphs.config_sha256), of the ``checkpoint`` and of the graphs in
    ``onnx_dir`` where there is one; by content, so that the same files under another path are the same
    model and other contents at the same path another."""
    from perception.deploy.graphs import config_sha256, file_sha256, graphs_sha256

    provenance = {"backend": backend, "config_sha256": config_sha256(config),
                  "checkpoint_sha256": file_sha256(checkpoint)}
    if onnx_dir:
        provenance["graphs_sha256"] = graphs_sha256(onnx_dir)
    return provenance


def add_backend_list_options(parser: argparse.ArgumentParser) -> None:
    """``--backend A,B,..`` and ``--onnx DIR`` once per ONNX Runtime backend of the list, in its order; read them
    with ``backend_folders``."""
    parser.add_argument("--backend", default="torch",
                        help=f"comma-separated backends timed side by side, from: {', '.join(BACKENDS)}; an "
                             f"onnxruntime backend may repeat with other graphs (e.g. two INT8 mixes)")
    parser.add_argument("--onnx", action="append", default=[],
                        help="folder of the graphs of tools/export.py (onnxruntime) or tools/quantize.py "
                             "(onnxruntime-int8): once per onnxruntime backend of --backend, in its order")


def backend_folders(backends: str, onnx_dirs: Sequence[str]) -> List[Tuple[str, str, Optional[str]]]:
    """'torch,onnxruntime,onnxruntime-int8' and the --onnx folders -> [(label, backend, its graphs folder or
    None)]; the label is the backend, or 'backend@folder' for a backend listed more than once. ValueError for an
    unknown backend, torch twice, the same graphs twice, or folders that do not match the ONNX Runtime backends one
    to one."""
    names = [name.strip() for name in backends.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if not names or unknown:
        raise ValueError(f"--backend {backends!r}: choose from {', '.join(BACKENDS)}")
    if names.count("torch") > 1:
        raise ValueError(f"--backend {backends!r} names torch twice")
    onnx_backends = [name for name in names if name != "torch"]
    if len(onnx_dirs) != len(onnx_backends):
        raise ValueError(f"--backend {backends!r} has {len(onnx_backends)} onnxruntime backend(s) but "
                         f"{len(onnx_dirs)} --onnx folder(s); give one --onnx per onnxruntime backend, in order")
    folders = iter(onnx_dirs)
    pairs = [(name, None if name == "torch" else next(folders)) for name in names]
    if len(set(pairs)) != len(pairs):
        raise ValueError(f"--backend {backends!r} with --onnx {list(onnx_dirs)} times the same graphs twice")
    return [(f"{name}@{folder}" if names.count(name) > 1 else name, name, folder) for name, folder in pairs]
