"""Training hooks of the project."""
from __future__ import annotations

import time

import torch
from mmengine.dist import broadcast
from mmengine.hooks import Hook
from mmengine.logging import print_log

from perception.registry import HOOKS


@HOOKS.register_module()
class TrainTimeBudgetHook(Hook):
    """Ends training once ``budget_s`` seconds of wall-clock time have passed since this process started training.

    The iteration that crosses the budget becomes the last one (the loop's max_iters is lowered to it), so
    everything a normal end does happens: CheckpointHook saves it (save_last) and the loop validates it. The
    learning-rate schedule is not compressed: it simply stops where the budget ends. Rank 0's clock decides for
    every process (broadcast), so DDP processes stop at the same iteration.
    """

    priority = "NORMAL"  # before CheckpointHook (VERY_LOW) looks for the last iteration

    def __init__(self, budget_s: float):
        if budget_s <= 0:
            raise ValueError(f"TrainTimeBudgetHook: budget_s must be > 0, got {budget_s}")
        self.budget_s = float(budget_s)
        self.started = None

    def before_train(self, runner) -> None:
        self.started = time.time()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        spent = torch.tensor([float(time.time() - self.started >= self.budget_s)])
        broadcast(spent)
        if spent.item() and runner.iter + 1 < runner.max_iters:
            runner.train_loop._max_iters = runner.iter + 1  # IterBasedTrainLoop has no public setter
            print_log(f"time budget of {self.budget_s:.0f} s spent: iteration {runner.iter + 1} is the last",
                      logger="current")
