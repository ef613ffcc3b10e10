"""Train a detector from an mmengine config: logs, checkpoints, validation with the official nuScenes metrics,
``--resume`` after a kill, torchrun/DDP (gloo on CPU), bfloat16 AMP on GPU, export of the shipped checkpoint.

    python tools/train.py configs/fusion_tiny.py --work-dir work_dirs/fusion_tiny [--resume] [--max-iters N]
    python tools/train.py configs/fusion_tiny_real.py --dataroot ../shared/fixtures/nuscenes-scene0916 \
        --version v1.0-mini --split real_finetune --no-validate ...     # another split than the config's
    torchrun --nproc_per_node 2 tools/train.py configs/fusion_tiny.py ...
    python tools/train.py configs/fusion_tiny.py --export checkpoints/fusion_tiny.pth --export-only
"""
from __future__ import annotations

import argparse
import os
import sys
import itertools
import time
from typing import Optional, Sequence

import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.dist import get_rank
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner, find_latest_checkpoint

import perception.engine  # noqa: F401  (registers the dataset, collate, metric and DDP wrapper)
from perception.cli import (add_debug_option, check_data_root, check_output_path, positive_float, positive_int,
                            resolve_config, resolve_input_paths, resolve_path, tool_command, tool_main)
from perception.engine import (RESUME_SCHEME, apply_model_inputs, end_distributed, evaluate_validation_data,
                               export_checkpoint, init_distributed_from_env, resume_source)
from perception.engine.checkpoint import checkpoint_iteration, read_training_checkpoint, training_config
from perception.engine.data import check_annotated_data, frame_dataset_configs
from perception.jsonfile import as_read_back, read_json, write_json_atomic
from perception.models import build_detector, load_detector, load_weights, model_inputs, read_checkpoint


def set_max_iters(cfg: Config, max_iters: int) -> None:
    """Shortens or lengthens the schedule: train_cfg.max_iters, validation no later than the end, every
    iteration-based LR scheduler that ended at the old max_iters (or beyond the new one) now ends at the new one,
    and schedulers that would begin after the end are dropped."""
    old = cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = min(cfg.train_cfg.get("val_interval", max_iters), max_iters)
    schedulers = []
    for scheduler in cfg.get("param_scheduler", []) or []:
        if scheduler.get("begin", 0) >= max_iters:
            continue
        if scheduler.get("end") == old or scheduler.get("end", 0) > max_iters:
            scheduler["end"] = max_iters
            if "T_max" in scheduler:
                scheduler["T_max"] = max_iters - scheduler.get("begin", 0)
        schedulers.append(scheduler)
    cfg.param_scheduler = schedulers


_RUN_COUNTER = itertools.count()


def use_data(cfg: Config, dataroot: str, version: str, split: str, val_split: Optional[str]) -> None:
    """Points the training data at ``split`` of ``dataroot``/``version`` (a config that trains on several worlds, a
    ConcatDataset, on that one split with its first world's settings) and validation at ``val_split`` (or the
    config's validation split) of the same data."""
    train = frame_dataset_configs(cfg.train_dataloader.dataset)[0]
    cfg.train_dataloader.dataset = dict(train, dataroot=dataroot, version=version, split=split)
    if cfg.get("val_dataloader"):
        val_split = val_split or cfg.val_dataloader.dataset.split
        cfg.val_dataloader.dataset.update(dataroot=dataroot, version=version, split=val_split)


def check_data_arguments(args: argparse.Namespace) -> None:
    """ValueError when --dataroot, --version and --split are not given together, or --val-split without them or with
    --no-validate."""
    given = [name for name in ("dataroot", "version", "split") if getattr(args, name) is not None]
    if given and len(given) < 3:
        raise ValueError(f"--dataroot, --version and --split go together (got only --{', --'.join(given)})")
    if args.val_split is not None and not given:
        raise ValueError("--val-split names a split of --dataroot; without it CONFIG's validation data is used")
    if args.val_split is not None and args.no_validate:
        raise ValueError("--val-split names the validation data; --no-validate trains without validation")


def check_run_paths(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Before any work: parser.error when --work-dir cannot be a folder written (check_output_path) or --dataroot
    (resolved in place, resolve_input_paths) holds no tables of --version (check_data_root)."""
    if args.work_dir is not None:
        check_output_path(parser, "--work-dir", args.work_dir)
    resolve_input_paths(args, "dataroot")
    if args.dataroot is not None and args.version is not None:
        check_data_root(parser, args.dataroot, args.version)


def build_config(args: argparse.Namespace) -> Config:
    """The run's config: CONFIG with --cfg-options, the model's inputs given to its datasets, --dataroot / --version /
    --split / --val-split, the schedule, the hooks and --no-validate, --resume and --amp applied."""
    check_data_arguments(args)
    cfg = Config.fromfile(resolve_config(args.config))
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
        try:  # a key the model does not take fails here in one line, not inside the Runner
            build_detector(cfg)
        except TypeError as error:
            options = " ".join(f"{key}={value}" for key, value in args.cfg_options.items())
            raise ValueError(f"{args.config} with --cfg-options {options}: the model does not build ({error})"
                             ) from None
    apply_model_inputs(cfg)
    if args.dataroot is not None:
        use_data(cfg, args.dataroot, args.version, args.split, args.val_split)  # resolved just below
    for loader in ("train_dataloader", "val_dataloader"):  # the data found from any folder, as every tool finds it
        for dataset in frame_dataset_configs(cfg[loader].dataset) if cfg.get(loader) else ():
            dataset["dataroot"] = resolve_path(dataset["dataroot"])
    cfg.work_dir = args.work_dir or os.path.join("work_dirs", os.path.splitext(os.path.basename(args.config))[0])
    # mmengine names the run's logger, message hub and visualizer after the experiment (by default the config name
    # + a timestamp in seconds); two runs of one config in one process within a second would share them, and the
    # second would log its scalars into the first one's folder. A per-process run counter keeps them apart
    # (mmengine appends the timestamp).
    cfg.setdefault("experiment_name", f"{os.path.splitext(os.path.basename(args.config))[0]}_run{next(_RUN_COUNTER)}")
    if args.max_iters is not None:
        set_max_iters(cfg, args.max_iters)
    cfg.custom_hooks = list(cfg.get("custom_hooks", None) or []) + [dict(type="RandomStateHook")]
    if args.time_budget_min is not None:
        cfg.custom_hooks.append(dict(type="TrainTimeBudgetHook", budget_s=args.time_budget_min * 60))
    if args.no_validate:
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    if args.resume:
        source = resume_source(cfg.work_dir)
        if source is None:
            print(f"--resume: no checkpoint in {cfg.work_dir} yet, starting from scratch")
        else:
            cfg.load_from, cfg.resume = source, True
    if args.amp or cfg.get("use_amp", False):
        if not torch.cuda.is_available():
            if args.amp:
                raise ValueError("--amp needs a CUDA GPU (autocast on CPU is not used by this project)")
        else:
            cfg.optim_wrapper.type = "AmpOptimWrapper"
            cfg.optim_wrapper.dtype = "bfloat16"
    return cfg


LAST_VALIDATION_FILE = "last_validation.json"
"""A work dir's record of its run's last validation: {"iteration": N, "metrics": {"val/nuscenes/NDS": ...}}."""


def run_meta(cfg: Config, config_path: str, command: str, train_seconds: Optional[int], iteration: int,
             **extra) -> dict:
    """The JSON meta an exported checkpoint of the run's ``iteration`` carries about its run: config, command, work
    dir, training seconds (of the last start), seed, training data and the validation's scalars at that iteration
    (None when the run did not validate it), then ``extra``."""
    record_path = os.path.join(cfg.work_dir, LAST_VALIDATION_FILE)
    record = read_json(record_path) if os.path.isfile(record_path) else None
    validated = isinstance(record, dict) and record.get("iteration") == iteration
    meta = dict(config=os.path.relpath(config_path), command=command, work_dir=cfg.work_dir,
                train_seconds=train_seconds, seed=cfg.get("randomness", {}).get("seed"),
                data=dict(cfg.train_dataloader.dataset), iteration=iteration,
                validation=record["metrics"] if validated else None, **extra)
    return as_read_back(meta, default=str)


def export(cfg: Config, args: argparse.Namespace, started: float) -> None:
    """Exports the run's latest checkpoint (weights + JSON meta) to args.export (FileNotFoundError naming the work
    dir when it holds none); with --export-only (a work dir an earlier run trained, maybe with another config), the
    meta of the run as its checkpoint saved its config (seed, data, inputs), and a ValueError, the file removed,
    when the weights or those inputs do not fit args.config."""
    latest = find_latest_checkpoint(cfg.work_dir)
    if latest is None:
        raise FileNotFoundError(f"{cfg.work_dir}: no checkpoint to export")
    checkpoint = read_training_checkpoint(latest)
    run_cfg = training_config(checkpoint, latest) if args.export_only else cfg
    meta = run_meta(run_cfg, args.config, tool_command("train", args.argv),
                    None if args.export_only else round(time.time() - started), checkpoint_iteration(checkpoint))
    written = export_checkpoint(checkpoint, args.export, meta, model_inputs(run_cfg))
    if args.export_only:  # a run that just trained exports what its own config built
        try:
            load_detector(resolve_config(args.config), args.export)
        except ValueError as error:
            os.remove(args.export)
            raise ValueError(f"{latest} in --work-dir {cfg.work_dir} was not trained with {args.config}: "
                             f"{error}") from None
    print(f"exported {latest} (iteration {written['iteration']}) to {args.export} "
          f"({os.path.getsize(args.export) / 1e6:.1f} MB)")


@tool_main
def main(argv: Optional[Sequence[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="mmengine config, e.g. configs/fusion_tiny.py")
    add_run_arguments(parser)
    parser.add_argument("--export", help="after training, write the latest checkpoint here as a shipped "
                                         "checkpoint (state_dict + JSON meta; torch.load(weights_only=True))")
    parser.add_argument("--export-only", action="store_true", help="only export the work dir's latest checkpoint")
    args = parser.parse_args(argv)
    args.argv = argv
    if args.export_only and not args.export:
        parser.error("--export-only needs --export PATH")
    if args.export:
        check_output_path(parser, "--export", args.export, folder=False)
    check_run_paths(parser, args)
    started = time.time()
    launcher = init_distributed_from_env()
    cfg = build_config(args)
    cfg.launcher = launcher
    if args.export_only:
        export(cfg, args, started)
        return
    check_annotated_data(cfg)
    run_training(cfg)
    if args.export and get_rank() == 0:
        export(cfg, args, started)
    end_distributed()


class ConfigOverrides(DictAction):
    """mmengine's DictAction, with an item that is not key=value named by the parser (it failed with "not enough
    values to unpack")."""

    def __call__(self, parser, namespace, values, option_string=None):
        for value in values:
            if "=" not in value:
                parser.error(f"{option_string} {value}: expected key=value")
        super().__call__(parser, namespace, values, option_string)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a training run that build_config reads (shared with tools/finetune.py)."""
    parser.add_argument("--dataroot", help="nuScenes-format data root to train on (default: the config's data)")
    parser.add_argument("--version", help="its version, e.g. v1.0-mini (default: the config's)")
    parser.add_argument("--split", help="the split to train on (official or from splits.json)")
    parser.add_argument("--val-split", help="the split of --dataroot to validate on (default: the config's "
                                            "validation split)")
    parser.add_argument("--work-dir", help="logs and checkpoints (default work_dirs/<config name>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest checkpoint in the work dir (weights, optimizer, scheduler, "
                             "iteration); starts fresh when there is none")
    parser.add_argument("--max-iters", type=positive_int, help="override the schedule's length (LR schedule follows)")
    parser.add_argument("--time-budget-min", type=positive_float,
                        help="stop after this many minutes of training (the iteration that crosses it is saved and "
                             "validated as the last one; see perception.engine.hooks.TrainTimeBudgetHook)")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA only)")
    parser.add_argument("--no-validate", action="store_true", help="skip validation during training")
    parser.add_argument("--cfg-options", nargs="+", action=ConfigOverrides, help="override config entries: key=value")
    add_debug_option(parser)


def run_training(cfg: Config) -> Runner:
    """Builds mmengine's Runner from ``cfg``, trains, and on rank 0 writes the last validation's metrics and
    iteration to ``<work_dir>/LAST_VALIDATION_FILE``. Returns the runner (its model is the trained one). A resume is
    checked against the run it resumes (check_resumed_run), a warm start (``load_from`` without resuming) against
    the model (check_warm_start). A run that does not resume starts the work dir's records anew: an earlier run's
    last_checkpoint pointer and validation record are removed once the runner is built, before it trains (a resume
    would load that run's checkpoint until this one saves its own; a model that fails to build leaves them; the
    tools check their data before, check_annotated_data)."""
    evaluate_validation_data(cfg)
    if cfg.get("load_from") and not cfg.get("resume"):
        check_warm_start(cfg)
    runner = Runner.from_cfg(cfg)
    if cfg.get("resume"):
        check_resumed_run(cfg, runner.model.module if is_model_wrapper(runner.model) else runner.model)
    else:
        forget_earlier_run(cfg.work_dir)
    runner.train()
    if runner.val_loop is not None and get_rank() == 0:
        scalars = _last_validation(runner)
        if scalars:
            write_json_atomic(os.path.join(cfg.work_dir, LAST_VALIDATION_FILE),
                              dict(iteration=runner.iter, metrics=scalars), indent=2)
    return runner


def forget_earlier_run(work_dir: str) -> None:
    """Removes (on rank 0) an earlier run's last_checkpoint pointer and validation record from ``work_dir``: a run
    that does not resume starts the work dir's records anew."""
    if get_rank() == 0:
        for name in ("last_checkpoint", LAST_VALIDATION_FILE):
            path = os.path.join(work_dir, name)
            if os.path.isfile(path):
                os.remove(path)


RESUMED_RUN_KEYS = ("train_dataloader.dataset", "randomness")
"""The settings a resume must share with the run it resumes, besides the network's weights."""


def check_resumed_run(cfg: Config, model: torch.nn.Module) -> None:
    """ValueError naming the checkpoint ``cfg.load_from`` when its weights do not fit ``model`` (the run's network,
    built) strictly (mmengine loads them with warnings and trains on, or fails inside the optimizer), when the run
    that saved it had other training data or another seed (RESUMED_RUN_KEYS, from the config text mmengine saved in
    it), or other LR schedulers (begin, end, T_max: mmengine restores the saved ones, so a resume with another
    --max-iters would train the new length on the old schedule)."""
    path = cfg.load_from[len(RESUME_SCHEME):]
    checkpoint = read_training_checkpoint(path)
    trained = training_config(checkpoint, path)

    def entry(config: Config, key: str):
        value = config
        for part in key.split("."):
            value = value.get(part) if value is not None else None
        return as_read_back(value.to_dict() if isinstance(value, ConfigDict) else value, default=str)

    differing = [key for key in RESUMED_RUN_KEYS if entry(cfg, key) != entry(trained, key)]
    if differing:
        raise ValueError(f"{path}: its run had another {', '.join(differing)} than this one's: resume with the "
                         f"run's config and options, or train into another --work-dir")
    load_weights(model, checkpoint["state_dict"], path, cfg.filename or "the config")
    keys = ("begin", "end", "T_max")
    theirs = [tuple(scheduler.get(key) for key in keys) for scheduler in checkpoint.get("param_schedulers") or []]
    ours = [tuple(scheduler.get(key, 0 if key == "begin" else None) for key in keys)
            for scheduler in cfg.get("param_scheduler") or []]
    if len(theirs) != len(ours) or any(a != b for first, second in zip(theirs, ours)
                                       for a, b in zip(first, second) if a is not None):
        raise ValueError(f"{path}: the run's LR schedule (begin, end, T_max) {theirs}, this one's {ours}: resume "
                         f"with the run's --max-iters, or train into another --work-dir")


def check_warm_start(cfg: Config) -> None:
    """ValueError naming the checkpoint ``cfg.load_from`` (a shipped checkpoint, read_checkpoint) and the config
    when its weights do not fit the config's model: mmengine loads them non-strictly, with warnings, and would train
    the layers that do not fit from their initialisation."""
    load_weights(build_detector(cfg), read_checkpoint(cfg.load_from)["state_dict"], cfg.load_from,
                 cfg.filename or "the config")


def _last_validation(runner: Runner) -> dict:
    """The latest validation metrics the message hub logged (nuscenes/NDS ...), as plain floats."""
    return {name: float(buffer.current()) for name, buffer in runner.message_hub.log_scalars.items()
            if name.startswith("val/nuscenes/")}


if __name__ == "__main__":
    main()
