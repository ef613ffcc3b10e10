"""Fine-tune a trained detector on another domain (e.g. real nuScenes keyframes) on mmengine's Runner, with one of
perception.models.finetune.METHODS, and export it as a plain checkpoint (LoRA / adapters folded in).

    python tools/finetune.py configs/fusion_tiny_real.py checkpoints/fusion_tiny.pth \\
        --dataroot ../shared/fixtures/nuscenes-scene0916 --version v1.0-mini --split real_finetune \\
        --method lora --rank 4 --work-dir work_dirs/finetune_lora4 --time-budget-min 20 \\
        --export work_dirs/finetune_lora4.pth

CONFIG's network must be the one CHECKPOINT was trained with; its model_inputs (sweeps, image size, sensors read) may
differ. Validation uses CONFIG's validation split (``--val-split`` to choose another) on the same data root and version.
``--resume`` continues a killed run from its work dir's latest checkpoint (the adapted weights, optimizer and
iteration). Without --dataroot, --version and --split the run trains on CONFIG's own training data (e.g. the
synthetic worlds of configs/fusion_tiny_worlds.py, for a quantization-aware fine-tune of the shipped model).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import Optional, Sequence

from mmengine.dist import get_rank
from mmengine.model import is_model_wrapper

from perception.cli import (check_output_path, positive_float, positive_int, resolve_config, resolve_input_paths,
                            tool_command, tool_main)
from perception.cli.train import (add_run_arguments, build_config, check_run_paths, forget_earlier_run, run_meta,
                                  run_training)
from perception.engine import end_distributed, init_distributed_from_env, save_checkpoint
from perception.engine.data import check_annotated_data
from perception.jsonfile import as_read_back, check_same_run, write_json_atomic
from perception.models import model_inputs
from perception.models.finetune import (DEFAULT_RANK, METHODS, FineTuningSpec, count_parameters, fine_tuned_model,
                                        folded_state_dict)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="model config, e.g. configs/fusion_tiny_real.py")
    parser.add_argument("checkpoint", help="the trained detector to start from (a shipped checkpoint)")
    parser.add_argument("--method", required=True, help=f"one of {', '.join(METHODS)}")
    parser.add_argument("--rank", type=positive_int, help=f"LoRA rank / adapter bottleneck channels (default "
                                                          f"{DEFAULT_RANK}); lora and adapter only")
    parser.add_argument("--lora-alpha", type=positive_float,
                        help="LoRA scale numerator (scale alpha / rank; default: rank)")
    parser.add_argument("--targets", nargs="+",
                        help="module-name prefixes that get LoRA / adapters (default: "
                             "perception.models.finetune.DEFAULT_TARGETS)")
    parser.add_argument("--freeze", nargs="+", default=[], metavar="PREFIX",
                        help="module-name prefixes held frozen whatever the method, e.g. planning_head")
    parser.add_argument("--update-norm-stats", action="store_true",
                        help="trainable BatchNorm layers update their running statistics (default: held)")
    parser.add_argument("--quantization-aware", action="store_true",
                        help="train on INT8-rounded layer inputs and weights (full / head), for tools/quantize.py")
    add_run_arguments(parser)
    parser.add_argument("--export", help="after training, write the folded detector here as a shipped checkpoint")
    return parser


FINE_TUNING_FILE = "fine_tuning.json"
"""What a work dir's fine-tune trains (the method's settings and the base checkpoint), for --resume to check."""


def record_fine_tuning(work_dir: str, identity: dict, resuming: bool) -> None:
    """Writes FINE_TUNING_FILE into ``work_dir``; when ``resuming`` a checkpoint there, first a ValueError naming
    the file and the settings that differ unless it holds the same ``identity`` (flat: setting -> value; mmengine
    would load another method's weights with warnings and train on)."""
    path = os.path.join(work_dir, FINE_TUNING_FILE)
    identity = as_read_back(identity)
    if resuming:
        check_same_run(path, identity, "the checkpoints there",
                       "fine-tune into another --work-dir, or without --resume")
    os.makedirs(work_dir, exist_ok=True)
    write_json_atomic(path, identity, indent=2)


@tool_main
def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.export:
        check_output_path(parser, "--export", args.export, folder=False)
    args.config = resolve_config(args.config)
    resolve_input_paths(args, "checkpoint")
    check_run_paths(parser, args)
    spec = FineTuningSpec(args.method, args.rank, None if args.targets is None else tuple(args.targets),
                          args.lora_alpha, args.update_norm_stats, args.quantization_aware, tuple(args.freeze))
    started = time.time()
    launcher = init_distributed_from_env()
    cfg = build_config(args)
    cfg.launcher = launcher
    check_annotated_data(cfg)
    inputs = model_inputs(cfg)
    fine_tuned_model(cfg.model, args.checkpoint, args.config, spec)  # its errors before the work dir is touched
    fine_tuning = dataclasses.asdict(spec)
    if not cfg.get("resume"):  # before this run's settings are recorded: never beside another run's checkpoint
        forget_earlier_run(cfg.work_dir)
    record_fine_tuning(cfg.work_dir, dict(fine_tuning, base_checkpoint=os.path.abspath(args.checkpoint)),
                       resuming=bool(cfg.get("resume")))
    cfg.model = dict(type="FineTunedDetector", detector=cfg.model, checkpoint=args.checkpoint, config=args.config,
                     **fine_tuning)
    runner = run_training(cfg)
    if args.export and get_rank() == 0:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        meta = run_meta(cfg, args.config, tool_command("finetune", argv), round(time.time() - started), runner.iter,
                        base_checkpoint=args.checkpoint, fine_tuning=fine_tuning,
                        parameters=count_parameters(model)._asdict())
        save_checkpoint(folded_state_dict(model), args.export, meta, inputs)
        print(f"exported the folded detector (iteration {runner.iter}, {count_parameters(model)}) to {args.export}")
    end_distributed()


if __name__ == "__main__":
    main()
