"""Hooks that stop a training run as a kill would, for the resume tests; a module of its own so that a config's
custom_imports can register them in torchrun's processes too (KILLS_IMPORT)."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

KILLS_IMPORT = "custom_imports = dict(imports=['tests.engine.kills'], allow_failed_imports=False)"
"""The config line that registers these hooks in a process of its own (with the repository on PYTHONPATH)."""


class SimulatedKill(RuntimeError):
    pass


@HOOKS.register_module(force=True)
class KillAfterIteration(Hook):
    """Raises after the checkpoint of iteration ``iteration`` is written, as a killed run would stop there."""

    priority = "LOWEST"  # after CheckpointHook

    def __init__(self, iteration: int):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            raise SimulatedKill(f"killed after iteration {self.iteration}")


@HOOKS.register_module(force=True)
class KillBeforeTraining(Hook):
    """Raises before the first iteration: a run killed before it saved anything."""

    def before_train(self, runner):
        raise SimulatedKill("killed before the first iteration")
