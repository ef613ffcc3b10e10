"""One training step of each fine-tuning method (forward, backward, optimizer step), side by side on the same batches.

    .venv/bin/python benchmarks/bench_finetuning_step.py configs/fusion_tiny_real.py checkpoints/fusion_tiny.pth \\
        --dataroot ../shared/fixtures/nuscenes-scene0916 --version v1.0-mini --split real_finetune \\
        [--methods full head lora adapter] [--rank 8] [--steps 40] [--profile]

Each method's model is the one tools/finetune.py trains (perception.models.finetune.fine_tuned_model: CONFIG's network
with CHECKPOINT's weights, set up for the method), with the config's optimizer (mmengine's build_optim_wrapper) and
the split's first keyframes (read as tools/finetune.py reads them) in batches of the config's size, built once,
without the training transform, so that every method steps on the same tensors. After 5 warm-up steps each, the
methods take their steps in turn (round robin), so that the host's drift falls on all of them alike. Prints each
method's median, p10 and p90 a step and its median over full fine-tuning's; with ``--profile``, the operators that
took most of each method's time over 10 more steps (torch.profiler, CPU).
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Dict, List

import numpy as np
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from perception.cli import positive_int
from perception.cli.train import use_data
from perception.engine.data import FrameDataset, apply_model_inputs, collate_fusion_batch
from perception.models.finetune import DEFAULT_RANK, METHODS, FineTuningSpec, fine_tuned_model

WARMUP_STEPS = 5
PROFILED_STEPS = 10


def main(argv=None) -> Dict[str, List[float]]:
    """Runs the benchmark and prints its tables; returns each method's step times [s]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("checkpoint")
    parser.add_argument("--dataroot", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--rank", type=positive_int, default=DEFAULT_RANK, help="of lora and adapter")
    parser.add_argument("--steps", type=positive_int, default=40, help="timed steps a method")
    parser.add_argument("--batches", type=positive_int, default=4, help="distinct batches, taken in turn")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)

    cfg = Config.fromfile(args.config)
    use_data(cfg, args.dataroot, args.version, args.split, None)
    apply_model_inputs(cfg)
    dataset_cfg = dict(cfg.train_dataloader.dataset, transform=None)
    dataset_cfg.pop("type")
    dataset = FrameDataset(**dataset_cfg)
    size = cfg.train_dataloader.batch_size
    if len(dataset) < size * args.batches:
        raise ValueError(f"{args.split}: {len(dataset)} keyframes, {size * args.batches} needed for {args.batches} "
                         f"batches of {size}")
    batches = [collate_fusion_batch([dataset[b * size + i] for i in range(size)]) for b in range(args.batches)]

    models = {}
    for method in args.methods:
        spec = FineTuningSpec(method, args.rank if method in ("lora", "adapter") else None)
        model, count = fine_tuned_model(cfg.model, args.checkpoint, args.config, spec)
        model.train()
        models[method] = (model, build_optim_wrapper(model, cfg.optim_wrapper), count)

    def step(method: str, index: int) -> None:
        model, optim_wrapper, _ = models[method]
        model.train_step(batches[index % len(batches)], optim_wrapper)

    for method in args.methods:
        for index in range(WARMUP_STEPS):
            step(method, index)
    times: Dict[str, List[float]] = {method: [] for method in args.methods}
    for index in range(args.steps):
        for method in args.methods:
            start = time.perf_counter()
            step(method, index)
            times[method].append(time.perf_counter() - start)

    reference = statistics.median(times["full"]) if "full" in times else None
    print(f"{args.config} from {args.checkpoint}, {args.split}: batches of {size}, {args.steps} steps a method, "
          f"torch {torch.get_num_threads()} threads")
    print("| method | parameters trained | median ms a step | p10 / p90 ms | median over full's |")
    print("| --- | --- | ---: | --- | ---: |")
    for method, samples in times.items():
        median = statistics.median(samples)
        p10, p90 = np.percentile(samples, [10, 90]) * 1000.0
        ratio = f"{median / reference:.2f}x" if reference else "n/a"
        count = models[method][2]
        print(f"| {method} | {count.trained:,} ({count.percent:.1f} %) | {median * 1000.0:.1f} | {p10:.1f} / {p90:.1f} "
              f"| {ratio} |")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for method in args.methods:
            with profile(activities=[ProfilerActivity.CPU]) as profiled:
                for index in range(PROFILED_STEPS):
                    step(method, index)
            print(f"\n{method}, {PROFILED_STEPS} steps:")
            print(profiled.key_averages().table(sort_by="self_cpu_time_total", row_limit=12,
                                                max_name_column_width=40))
    return times


if __name__ == "__main__":
    main()
