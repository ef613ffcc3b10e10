"""The mmengine adapters on CPU-only torch: launcher, DDP wrapper, resume loader (each next to the failure it fixes)."""
import os
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel
from mmengine.runner import CheckpointLoader

from perception.engine import (
    RESUME_SCHEME,
    DeviceAwareDistributedDataParallel,
    init_distributed_from_env,
    load_own_resume_file,
)

TORCHRUN_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def clean_env(monkeypatch):
    for name in TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def single_process_group():
    """A 1-process gloo group (file rendezvous), destroyed afterwards."""
    with tempfile.TemporaryDirectory() as folder:
        dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=0, world_size=1)
        try:
            yield
        finally:
            dist.destroy_process_group()


def test_launcher_without_torchrun_is_none(clean_env):
    assert init_distributed_from_env() == "none"
    clean_env.setenv("WORLD_SIZE", "1")
    assert init_distributed_from_env() == "none"


def test_launcher_names_the_missing_torchrun_variables(clean_env):
    clean_env.setenv("WORLD_SIZE", "2")
    clean_env.setenv("RANK", "0")
    with pytest.raises(ValueError, match="LOCAL_RANK, MASTER_ADDR, MASTER_PORT unset"):
        init_distributed_from_env()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the gap exists only in CPU-only torch builds")
def test_mmengine_launcher_fails_on_cpu_torch_and_ours_does_not(clean_env):
    from mmengine.dist import init_dist

    clean_env.setenv("RANK", "0")
    clean_env.setenv("LOCAL_RANK", "0")
    with pytest.raises((AttributeError, RuntimeError, AssertionError)):
        init_dist("pytorch", backend="gloo")  # calls torch.cuda.set_device first
    assert not dist.is_initialized()
    clean_env.setenv("WORLD_SIZE", "1")  # a 1-process world starts nothing
    assert init_distributed_from_env() == "none" and not dist.is_initialized()


def test_launcher_under_torchrun_keeps_a_process_group_already_started(single_process_group, clean_env):
    """(torch refuses to initialise the default group twice: a second tool run in the same process under torchrun.)"""
    for name, value in (("WORLD_SIZE", "2"), ("RANK", "0"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "127.0.0.1"),
                        ("MASTER_PORT", "1")):
        clean_env.setenv(name, value)
    assert init_distributed_from_env() == "pytorch" and dist.get_world_size() == 1  # the group already there


def test_ddp_wrapper_drops_device_ids_for_a_cpu_module(single_process_group):
    module = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError):  # what mmengine's Runner does with device_ids=[LOCAL_RANK]
        MMDistributedDataParallel(module=module, device_ids=[0])
    wrapped = DeviceAwareDistributedDataParallel(module=module, device_ids=[0], broadcast_buffers=False)
    assert wrapped.device_ids is None
    wrapped(torch.randn(4, 3)).sum().backward()
    assert module.weight.grad is not None


def _mmengine_style_checkpoint(path):
    """A checkpoint with what mmengine puts in meta (numpy scalars, a config string), as Runner.save_checkpoint
    writes it."""
    torch.save({"meta": {"iter": 7, "epoch": 0, "seed": np.int64(3), "config": "x = 1"},
                "state_dict": {"weight": torch.ones(2)}, "optimizer": {"state": {}, "param_groups": []}}, path)


def test_resume_files_need_weights_only_false(tmp_path):
    path = str(tmp_path / "iter_7.pth")
    _mmengine_style_checkpoint(path)
    with pytest.raises(Exception, match="weights_only"):
        torch.load(path)  # torch's safe default refuses mmengine's meta
    with pytest.raises(Exception, match="weights_only"):
        CheckpointLoader.load_checkpoint(path)  # mmengine's local loader inherits that default
    checkpoint = CheckpointLoader.load_checkpoint(RESUME_SCHEME + path)  # the run's own file, explicitly trusted
    assert checkpoint["meta"]["iter"] == 7 and torch.equal(checkpoint["state_dict"]["weight"], torch.ones(2))
    assert load_own_resume_file(RESUME_SCHEME + path)["meta"]["seed"] == 3
    with pytest.raises(FileNotFoundError, match="resume checkpoint not found"):
        load_own_resume_file(RESUME_SCHEME + str(tmp_path / "absent.pth"))
    assert not os.path.exists(tmp_path / "absent.pth")
