"""The configs' learning-rate schedules stepped by mmengine's own schedulers, against the arithmetic of their
definition: a given peak learning rate is the peak, and the cosine ends at 5 % of it, whatever the rate."""
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS

from perception.cli.train import set_max_iters
from perception.paths import REPO_ROOT


def learning_rates(cfg: Config) -> list:
    """The LR of each iteration, the schedulers stepped after each as mmengine's ParamSchedulerHook does."""
    wrapper = build_optim_wrapper(torch.nn.Linear(2, 2), cfg.optim_wrapper)
    schedulers = [PARAM_SCHEDULERS.build(dict(scheduler, optimizer=wrapper)) for scheduler in cfg.param_scheduler]
    rates = []
    for _ in range(cfg.train_cfg.max_iters):
        rates.append(wrapper.param_groups[0]["lr"])
        for scheduler in schedulers:
            scheduler.step()
    return rates


@pytest.mark.filterwarnings("ignore:Detected call of `scheduler.step()` before `optimizer.step()`")
@pytest.mark.parametrize("config, peak", [("fusion_tiny_planning.py", 5e-5), ("fusion_tiny_real.py", 0.01)])
def test_a_learning_rate_given_is_the_peak_and_the_floor_follows_it(config, peak):
    cfg = Config.fromfile(str(REPO_ROOT / "configs" / config))
    cfg.merge_from_dict({"optim_wrapper.optimizer.lr": peak})  # what --cfg-options / --learning-rate set
    set_max_iters(cfg, 200)
    rates = learning_rates(cfg)
    cosine = cfg.param_scheduler[-1]
    begin, steps = cosine["begin"], cosine["T_max"]
    assert max(rates) == pytest.approx(peak, rel=1e-9)
    # cosine from the peak at its begin to 5 % of the peak at T_max: eta + (peak - eta) (1 + cos(pi t / T)) / 2
    floor = 0.05 * peak
    last = len(rates) - 1
    expected = floor + (peak - floor) * (1 + math.cos(math.pi * (last - begin) / steps)) / 2
    assert rates[-1] == pytest.approx(expected, rel=1e-6) and rates[-1] < 0.06 * peak
