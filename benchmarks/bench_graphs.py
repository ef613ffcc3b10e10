"""Each dense graph of the detector on each runtime, side by side: torch (the checkpoint), ONNX Runtime float
(tools/export.py's graphs), ONNX Runtime INT8 (tools/quantize.py's) and, when the ``openvino`` package imports,
OpenVINO on the float graphs and on the INT8 ones (it reads their QuantizeLinear / DequantizeLinear pairs as its
own low-precision ops). Inputs: what each graph receives on real validation frames (recorded from the torch
model, the config's sweeps and image size). Per graph and runtime, the median of ``--calls`` calls after two
warm-up calls, the runtimes interleaved call by call so that a load change hits them alike; with ``--idle-ms N``
each call comes after N ms of sleep, as a graph does after a pipeline stage that leaves the cores idle (on a VM
whose idle vCPUs halt, a sleeping pool worker then wakes too late to help: benchmarks/RESULTS.md, "ONNX Runtime
after an idle gap"). The thread policy (perception.threads) is applied first; OpenVINO gets the same thread count.
Where both folders hold bev_network.onnx (the fuser, decoder and head as one graph, what the backends run), one
more row times it against the same three parts in torch (outside the sum).

    python benchmarks/bench_graphs.py configs/fusion_tiny.py checkpoints/fusion_tiny.pth \
        --float outputs/deploy/float --int8 outputs/deploy/int8_all --json outputs/graphs.json \
        [--dataroot datasets/synthetic --version v1.0-synth]

The config and the checkpoint are found as the tools find them (relative to the repository root when not where
given), and so is the data: ``--dataroot`` / ``--version``, by default the config's.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

from perception.cli import add_data_options, config_data, positive_int, resolve_config, resolve_path
from perception.threads import apply_thread_policy, set_openmp_environment

set_openmp_environment()  # before torch loads


def openvino_runner(file: str, threads: int) -> Callable:
    """An ONNX graph compiled by OpenVINO for the CPU (``threads`` inference threads, latency hint, float32 where
    it computes in float: on a CPU with bfloat16 units it would otherwise pick bfloat16)."""
    import openvino as ov

    core = ov.Core()
    model = core.compile_model(file, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                                             "INFERENCE_PRECISION_HINT": "f32"})
    request = model.create_infer_request()
    return lambda *args: request.infer([a.numpy() for a in args])


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Times the graphs; -> what it writes to --json."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("checkpoint")
    parser.add_argument("--float", required=True, dest="float_dir")
    parser.add_argument("--int8", required=True, dest="int8_dir")
    parser.add_argument("--json", required=True)
    parser.add_argument("--calls", type=positive_int, default=15)
    parser.add_argument("--frames", type=positive_int, default=2, help="validation frames whose inputs are cycled")
    parser.add_argument("--idle-ms", type=float, default=0.0, help="sleep this long before each call")
    add_data_options(parser)
    args = parser.parse_args(argv)
    args.config, args.checkpoint = resolve_config(args.config), resolve_path(args.checkpoint)
    policy = apply_thread_policy()
    import numpy as np
    import torch
    from mmengine.config import Config

    from perception.deploy.quantize import load_batches, select_frames
    from perception.deploy.graphs import BEV_NETWORK, BEVNetwork, graph_path, load_onnx_detector, record_dense_inputs
    from perception.models import load_detector

    config = Config.fromfile(args.config)
    dataroot, version = config_data(parser, args, config)
    torch_detector = load_detector(args.config, args.checkpoint)
    batches = load_batches(torch_detector, select_frames(config, dataroot, version, config.val_dataloader.dataset.split,
                                                         args.frames, "benchmark"))
    recorded = record_dense_inputs(torch_detector, batches)
    runtimes: Dict[str, object] = {"torch": torch_detector,
                                   "onnxruntime": load_onnx_detector(args.config, args.float_dir, one_bev_graph=False),
                                   "onnxruntime-int8": load_onnx_detector(args.config, args.int8_dir, "int8",
                                                                          one_bev_graph=False)}
    try:
        import openvino  # noqa: F401

        with_openvino = True
    except ImportError:
        with_openvino = False
    rows: List[dict] = []
    openvino_names = ["openvino", "openvino-int8"] if with_openvino else []
    print(f"{'graph':<28}" + "".join(f"{name:>18}" for name in list(runtimes) + openvino_names))

    def timed(graph: str, calls: Dict[str, Callable], inputs: List) -> dict:
        """The median of ``args.calls`` calls of each (after two warm-up calls), interleaved, cycling ``inputs``."""
        samples: Dict[str, List[float]] = {name: [] for name in calls}
        with torch.no_grad():
            for step in range(args.calls + 2):
                for name, call in calls.items():
                    if args.idle_ms > 0:
                        time.sleep(args.idle_ms / 1000)
                    start = time.perf_counter()
                    call(*inputs[step % len(inputs)])
                    if step >= 2:
                        samples[name].append(1000 * (time.perf_counter() - start))
        row = {"graph": graph, **{f"{name}_ms": float(np.median(s)) for name, s in samples.items()}}
        print(f"{graph:<28}" + "".join(f"{row[f'{name}_ms']:>18.2f}" for name in calls))
        return row

    for path in torch_detector.dense_modules():
        if not recorded[path]:  # a planning head: these frames carry no ego state
            continue
        calls = {name: detector.get_submodule(path) for name, detector in runtimes.items()}
        for name, folder in zip(openvino_names, (args.float_dir, args.int8_dir)):  # none without openvino
            calls[name] = openvino_runner(str(graph_path(folder, path)), policy.onnxruntime_threads)
        rows.append(timed(path, calls, recorded[path]))
    totals = {key: sum(row[key] for row in rows) for key in rows[0] if key != "graph"}
    print(f"{'sum':<28}" + "".join(f"{value:>18.2f}" for value in totals.values()))
    one_graph = None  # the fuser, decoder and head as one graph, where both folders have it (not in the sum)
    if all(graph_path(folder, BEV_NETWORK).is_file() for folder in (args.float_dir, args.int8_dir)):
        one_graph = timed(BEV_NETWORK, {"torch": BEVNetwork(torch_detector).eval(),
                                        **{name: detector.bev_graph for name, detector in (
                                            ("onnxruntime", load_onnx_detector(args.config, args.float_dir)),
                                            ("onnxruntime-int8", load_onnx_detector(args.config, args.int8_dir,
                                                                                    "int8")))}},
                          recorded["fuser"])
    result = {"command": " ".join(["benchmarks/bench_graphs.py", *argv]), "policy": policy.__dict__,
              "idle_ms": args.idle_ms, "dataroot": dataroot, "version": version, "rows": rows, "sum": totals,
              BEV_NETWORK: one_graph}
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
