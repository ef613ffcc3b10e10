"""Adapting mmengine 0.10.7 to a CPU-only torch 2.x build, without forking mmengine. Three gaps, one fix each:

1. Launcher: mmengine's ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` unconditionally, which a CPU
   build does not have. ``init_distributed_from_env`` starts the process group itself from torchrun's
   environment (gloo on CPU, nccl on CUDA); mmengine's Runner then finds it initialised and skips ``init_dist``.
2. DDP wrapper: the Runner passes ``device_ids=[LOCAL_RANK]`` to every DistributedDataParallel wrapper, which
   torch rejects for a CPU module. ``DeviceAwareDistributedDataParallel`` (registered in MODEL_WRAPPERS, chosen
   by ``model_wrapper_cfg``) drops device_ids when the module's parameters are on the CPU.
3. Resume: mmengine's local checkpoint loader calls ``torch.load`` without ``weights_only``; since torch 2.6 the
   default is True, and mmengine's own checkpoints (message hub, config text, numpy scalars) do not load. The
   training run's own resume files only are read with ``weights_only=False`` through the ``RESUME_SCHEME``
   prefix (``load_own_resume_file``; perception.engine.checkpoint gives it to the Runner); every other load keeps
   torch's safe default.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import torch
import torch.distributed as torch_dist
from mmengine.model import MMDistributedDataParallel
from mmengine.runner import CheckpointLoader

from perception.registry import MODEL_WRAPPERS

RESUME_SCHEME = "own-resume://"
"""Prefix marking a checkpoint this training run wrote itself (its work_dir). Only these are read with
``weights_only=False``: mmengine stores the message hub, the config text and numpy scalars in them, which torch's
safe loader refuses. Never give this prefix to a file from elsewhere: unpickling runs code."""


@CheckpointLoader.register_scheme(prefixes=RESUME_SCHEME)
def load_own_resume_file(filename: str, map_location=None) -> dict:
    """mmengine checkpoint loader for RESUME_SCHEME paths: torch.load(weights_only=False) of the run's own file."""
    path = os.path.expanduser(filename[len(RESUME_SCHEME):])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: resume checkpoint not found")
    return torch.load(path, map_location=map_location, weights_only=False)


def init_distributed_from_env(backend: Optional[str] = None, timeout_s: float = 600.0) -> str:
    """Starts torch.distributed from torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT).

    Returns the mmengine launcher name: 'pytorch' when started under torchrun with WORLD_SIZE > 1 (the process
    group is initialised here: ``backend`` or gloo without CUDA, nccl with it, and on CUDA the device is set to
    LOCAL_RANK), 'none' otherwise. Raises ValueError when torchrun's variables are incomplete.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return "none"
    missing = [name for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE={world_size} but {', '.join(missing)} unset: start with torchrun")
    if torch_dist.is_initialized():
        return "pytorch"
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    from datetime import timedelta

    torch_dist.init_process_group(backend=backend or ("nccl" if use_cuda else "gloo"),
                                  timeout=timedelta(seconds=timeout_s))
    return "pytorch"


def end_distributed() -> None:
    """Destroys the default process group (init_distributed_from_env's) when one is initialised; a tool calls it
    before it returns."""
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


@MODEL_WRAPPERS.register_module()
class DeviceAwareDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper that accepts the Runner's ``device_ids`` for a CPU module by dropping them (torch
    requires device_ids=None there); on CUDA it behaves exactly like MMDistributedDataParallel."""

    def __init__(self, module: torch.nn.Module, device_ids: Optional[Sequence[int]] = None, **kwargs):
        on_cpu = all(p.device.type == "cpu" for p in module.parameters())
        super().__init__(module=module, device_ids=None if on_cpu else device_ids, **kwargs)
