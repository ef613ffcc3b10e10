"""Training hooks of the project."""
from __future__ import annotations

import random
import time

import numpy as np
import torch
from mmengine.dist import broadcast
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

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


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Keeps the random streams a training step draws from in every checkpoint and gives them back when a run
    resumes, so that the resumed run draws what an uninterrupted one would have: torch's global generator (the
    fuser's modality dropout), on a GPU the current CUDA device's too, numpy's and Python's, and the model's own
    (its AdversarialTraining's). mmengine saves none of them (a CUDA state saved by a GPU run is not given back on
    a machine without one). Given back just before the first iteration after the resume (after the loop has skipped
    the data already trained on), where the uninterrupted run stood when it saved. A validation leaves them as it
    found them (its DataLoader draws a seed from torch's: after a checkpoint the run went on from other draws than a
    resume of it). Under DDP every process gets rank 0's streams back (the checkpoint is saved by rank 0 alone:
    Runner.save_checkpoint is master_only): with the configs' one seed every process's (they draw alike); with
    ``randomness.diff_rank_seed`` the others' are lost (gathering them each iteration made a torchrun process abort
    now and then in gloo)."""

    priority = "NORMAL"

    def __init__(self):
        self.resumed = None
        self.before_validation = None

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def _state(self, runner) -> dict:
        adversarial = getattr(self._model(runner), "adversarial", None)
        return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                "adversarial": None if adversarial is None else adversarial.random_state,
                "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None}

    def _give_back(self, runner, state: dict) -> None:
        torch.set_rng_state(state["torch"].cpu())  # a checkpoint loaded onto the GPU (mmengine's resume) has it there
        np.random.set_state(state["numpy"])
        random.setstate(state["python"])
        if state.get("cuda") is not None and torch.cuda.is_available():  # none in a checkpoint of before it
            torch.cuda.set_rng_state(state["cuda"].cpu())
        adversarial = getattr(self._model(runner), "adversarial", None)
        if adversarial is not None and state["adversarial"] is not None:
            adversarial.random_state = state["adversarial"]

    def before_val(self, runner) -> None:
        self.before_validation = self._state(runner)

    def after_val(self, runner) -> None:
        state, self.before_validation = self.before_validation, None
        self._give_back(runner, state)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint["random_state"] = self._state(runner)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self.resumed = checkpoint.get("random_state")  # none in a checkpoint of before this hook, or a shipped one

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.resumed is None:
            return
        state, self.resumed = self.resumed, None
        self._give_back(runner, state)
