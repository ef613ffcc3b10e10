"""Structured channel pruning of the detector with torch-pruning: L1 group-norm (magnitude) importance, channels
removed from the decoder and the head until their FLOPs fall by the asked fraction; the pruned widths written into
the model's config, so that the pruned model is a plain config + checkpoint pair (load_detector).

What is pruned (PRUNED_MODULES): the decoder's stage convs and the head's shared conv and branch hidden convs.
Kept: every interface between modules (the decoder's input from the fuser and its neck's output, the head's
input and its output channels), hence also the encoders and the fuser, whose outputs are such interfaces. The
decoder and head hold most of the dense FLOPs on a BEV grid (tools/prune.py's prune.json gives each module's).
"""
from __future__ import annotations

import copy
from typing import Dict, List, Tuple

import torch
from torch import nn

from perception.deploy.graphs import record_dense_inputs
from perception.models import BEVFusionDetector, FusionBatch
from perception.models.heads import CenterHead

PRUNED_MODULES = {"decoder": "decoder", "head": "head.shared"}
"""Module path of BEVFusionDetector whose inner channels are pruned -> the dense module whose recorded input is
its input."""

MAX_LAYER_RATIO = 0.9
"""No layer loses more than this fraction of its channels."""


def _convs(stage: nn.Sequential) -> List[nn.Conv2d]:
    return [layer for layer in stage if isinstance(layer, nn.Conv2d)]


def kept_layers(detector: BEVFusionDetector) -> List[nn.Module]:
    """The layers whose output channels are interfaces: the decoder's neck (its output), the head's last convs."""
    decoder, head = detector.decoder, detector.head
    return [decoder.lateral1[0], decoder.upsample2[0]] + [getattr(head, name)[-1] for name in
                                                           CenterHead.dense_parts if name != "shared"]


def pruned_widths(detector: BEVFusionDetector) -> Dict[str, dict]:
    """The config entries (model.decoder / model.head keys) that build a network of the detector's widths."""
    decoder, head = detector.decoder, detector.head
    return {"decoder": {"channels": [[conv.out_channels for conv in _convs(stage)]
                                     for stage in (decoder.stage1, decoder.stage2)]},
            "head": {"head_channels": head.shared[0].out_channels,
                     "branch_channels": {name: getattr(head, name)[0].out_channels
                                         for name in CenterHead.dense_parts if name != "shared"}}}


def dense_inputs(detector: BEVFusionDetector, batch: FusionBatch) -> Dict[str, Tuple[torch.Tensor, ...]]:
    """module path -> the positional inputs each dense module receives when the detector runs ``batch`` (modules
    not run, e.g. of an absent sensor, left out)."""
    return {path: calls[0] for path, calls in record_dense_inputs(detector, [batch]).items() if calls}


def dense_flops(detector: BEVFusionDetector, batch: FusionBatch) -> Dict[str, int]:
    """Multiply-accumulates of each dense module (BEVFusionDetector.dense_modules) run on ``batch`` (one frame),
    counted by torch-pruning's count_ops_and_params (which counts MACs); modules not run are left out."""
    import torch_pruning as tp

    modules = detector.dense_modules()
    return {path: int(tp.utils.count_ops_and_params(modules[path], inputs)[0])
            for path, inputs in dense_inputs(detector, batch).items()}


def prune_detector(detector: BEVFusionDetector, batch: FusionBatch, ratio: float, steps: int = 60
                   ) -> BEVFusionDetector:
    """A copy of ``detector`` with PRUNED_MODULES' channels pruned until their FLOPs (on ``batch``, one frame, as
    ``dense_flops`` counts them) are at most (1 - ratio) of the original's: torch-pruning's MetaPruner with L1
    group-norm importance, the same fraction of every prunable layer, raised in ``steps`` equal steps up to
    MAX_LAYER_RATIO. ``ratio`` 0 returns an unchanged copy. ValueError for a ratio outside [0, 1) or one the steps
    cannot reach."""
    import torch_pruning as tp

    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio must lie in [0, 1), got {ratio}")
    pruned = copy.deepcopy(detector).eval()
    if ratio == 0.0:
        return pruned
    modules = {path: pruned.get_submodule(path) for path in PRUNED_MODULES}
    inputs = dense_inputs(pruned, batch)
    example = {path: inputs[source] for path, source in PRUNED_MODULES.items()}
    ignored = kept_layers(pruned)

    def flops() -> int:
        return sum(int(tp.utils.count_ops_and_params(module, example[path])[0]) for path, module in modules.items())

    target = (1.0 - ratio) * flops()
    pruners = [tp.pruner.MetaPruner(module, example[path], importance=tp.importance.GroupMagnitudeImportance(p=1),
                                    pruning_ratio=MAX_LAYER_RATIO, iterative_steps=steps, ignored_layers=ignored)
               for path, module in modules.items()]
    step = 0
    while flops() > target:
        if step == steps:
            raise ValueError(f"pruning ratio {ratio}: {MAX_LAYER_RATIO:.0%} of every layer's channels leave "
                             f"{flops() / target * (1 - ratio):.0%} of the FLOPs")
        for pruner in pruners:
            pruner.step()
        step += 1
    return pruned
