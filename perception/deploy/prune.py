"""Structured channel pruning of the detector with torch-pruning: L1 group-norm (magnitude) importance, every
prunable layer of a scope (SCOPES) losing the same fraction of its output channels until the scope's dense MACs
fall by the asked fraction; the pruned widths written into the model's config, so that the pruned model is a plain
config + checkpoint pair (load_detector).

torch-pruning traces each of ``pruning_units``, a run of dense modules with no kernel or glue between them, and
prunes the channels inside it. Kept: the output channels of each unit, i.e. every interface to a kernel (pillar
scatter, BEV pooling) or to glue it cannot trace (the fuser's concatenation and missing-sensor embeddings), the
camera depth net's output (depth bins and context, split by the lift), the decoder's neck (two halves of
``out_channels``, also the planning head's input) and the head's outputs. Hence the pillar nets, the LiDAR
encoder's single conv and the camera's bev_conv (input from a kernel, output to the fuser) are not pruned. Scope
``all`` prunes the camera backbone and FPN (``backbone_widths``, ``fpn_channels``), the radar encoder's hidden
width, the fuser's output with the decoder's input (``fuser.out_channels``: one unit, pruned on both sides), the
decoder's stages and the head's hidden convs; ``decoder_head`` only the last two.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from perception.deploy.graphs import record_dense_inputs
from perception.models import BEVFusionDetector, FusionBatch
from perception.models.heads import CenterHead

SCOPES = {"decoder_head": ("decoder", "head"), "all": ("encoders", "fuser", "decoder", "head")}
"""Pruning scope -> the top-level modules of BEVFusionDetector whose dense MACs the ratio counts and whose inner
channels are pruned."""

DEFAULT_SCOPE = "all"

MAX_LAYER_RATIO = 0.9
"""No layer loses more than this fraction of its channels."""


def in_scope(module_path: str, scope: str) -> bool:
    """Whether a dense module (a path of BEVFusionDetector.dense_modules) belongs to ``scope``."""
    return module_path.split(".")[0] in SCOPES[scope]


class FuserDecoder(nn.Module):
    """The fuser followed by the decoder, one module for torch-pruning to trace, so that the fuser's output
    channels are pruned with the decoder's input channels."""

    def __init__(self, fuser: nn.Module, decoder: nn.Module):
        super().__init__()
        self.fuser, self.decoder = fuser, decoder

    def forward(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.fuser(features, present))


def _convs(stage: nn.Sequential) -> List[nn.Conv2d]:
    return [layer for layer in stage if isinstance(layer, nn.Conv2d)]


def pruning_units(detector: BEVFusionDetector, scope: str) -> List[Tuple[nn.Module, str, List[nn.Module]]]:
    """What torch-pruning traces in ``scope``: (module, the dense module whose recorded input is its input, the
    layers whose output channels are kept) per unit, the modules being the detector's own."""
    decoder, head = detector.decoder, detector.head
    decoder_kept = [decoder.lateral1[0], decoder.upsample2[0]]
    head_unit = (head, "head.shared", [getattr(head, name)[-1] for name in CenterHead.dense_parts if name != "shared"])
    if scope == "decoder_head":
        return [(decoder, "decoder", decoder_kept), head_unit]
    units = [(FuserDecoder(detector.fuser, decoder), "fuser", decoder_kept), head_unit]
    if "camera" in detector.sensors:
        camera = detector.encoders["camera"]
        units.append((nn.Sequential(camera.backbone, camera.depth_net), "encoders.camera.backbone",
                      [camera.depth_net]))
    if "radar" in detector.sensors:
        conv = detector.encoders["radar"].conv
        units.append((conv, "encoders.radar.conv", _convs(conv)[-1:]))
    return units


def _one_width(convs: Sequence[nn.Conv2d], entry: str) -> int:
    """The output width the convs share (one config entry sets them all); ValueError where they differ."""
    widths = sorted({conv.out_channels for conv in convs})
    if len(widths) != 1:
        raise ValueError(f"{entry}: the convs it sets have widths {widths}, which the config cannot express")
    return widths[0]


def pruned_widths(detector: BEVFusionDetector) -> Dict[str, dict]:
    """The config entries (model.encoders / fuser / decoder / head keys) that build a network of the detector's
    widths (the prunable ones; the rest are the config's)."""
    decoder, head = detector.decoder, detector.head
    encoders = {}
    if "camera" in detector.sensors:
        backbone = detector.encoders["camera"].backbone
        stages = (backbone.stage1, backbone.stage2, backbone.stage3, backbone.stage4)
        encoders["camera"] = {
            "backbone_widths": [_one_width([block[0] for block in stage], "backbone_widths") for stage in stages],
            "fpn_channels": _one_width([backbone.lateral8, backbone.lateral16, backbone.output[0]], "fpn_channels")}
    if "radar" in detector.sensors:
        encoders["radar"] = {"hidden_channels": detector.encoders["radar"].conv[0].out_channels}
    return {"encoders": encoders,
            "fuser": {"out_channels": detector.fuser.conv[0].out_channels},
            "decoder": {"channels": [[conv.out_channels for conv in _convs(stage)]
                                     for stage in (decoder.stage1, decoder.stage2)]},
            "head": {"head_channels": head.shared[0].out_channels,
                     "branch_channels": {name: getattr(head, name)[0].out_channels
                                         for name in CenterHead.dense_parts if name != "shared"}}}


def dense_inputs(detector: BEVFusionDetector, batch: FusionBatch) -> Dict[str, Tuple[torch.Tensor, ...]]:
    """module path -> the positional inputs each dense module receives when the detector runs ``batch`` (modules
    not run, e.g. of an absent sensor, left out)."""
    return {path: calls[0] for path, calls in record_dense_inputs(detector, [batch]).items() if calls}


def module_macs(module: nn.Module, inputs: Tuple[torch.Tensor, ...]) -> int:
    """Multiply-accumulates of one call ``module(*inputs)``: its convolutions (transposed ones too) and matrix
    products, counted by PyTorch's torch.utils.flop_counter (2 FLOPs a multiply-accumulate), for the whole batch
    (all the cameras, all the pillars). Normalisations, activations and biases are not counted. (torch-pruning's
    counter, used before, counted a stride-s transposed convolution s^2 times over.)"""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops() // 2


def dense_macs(detector: BEVFusionDetector, batch: FusionBatch) -> Dict[str, int]:
    """Multiply-accumulates of each dense module (BEVFusionDetector.dense_modules) when the detector runs ``batch``
    (``module_macs``; one frame: all its cameras, all its pillars); modules not run are left out."""
    modules = detector.dense_modules()
    return {path: module_macs(modules[path], inputs) for path, inputs in dense_inputs(detector, batch).items()}


def scope_macs(detector: BEVFusionDetector, batch: FusionBatch, scope: str) -> int:
    """The dense MACs (``dense_macs``) of the modules in ``scope``."""
    return sum(value for path, value in dense_macs(detector, batch).items() if in_scope(path, scope))


def prune_detector(detector: BEVFusionDetector, batch: FusionBatch, ratio: float, scope: str = DEFAULT_SCOPE,
                   steps: int = 60) -> BEVFusionDetector:
    """A copy of ``detector`` with the channels inside ``scope``'s pruning_units pruned until the scope's MACs (on
    ``batch``, one frame that runs every sensor, as ``scope_macs`` counts them) are at most (1 - ratio) of the
    original's: torch-pruning's MetaPruner with L1 group-norm importance, the same fraction of every prunable layer,
    raised in ``steps`` equal steps up to MAX_LAYER_RATIO. ``ratio`` 0 returns an unchanged copy. ValueError for a
    ratio outside [0, 1) or one the steps cannot reach, an unknown scope, or a batch without one of the sensors."""
    import torch_pruning as tp

    if scope not in SCOPES:
        raise ValueError(f"pruning scope {scope!r}: one of {', '.join(SCOPES)}")
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio must lie in [0, 1), got {ratio}")
    pruned = copy.deepcopy(detector).eval()
    if ratio == 0.0:
        return pruned
    inputs = dense_inputs(pruned, batch)
    units = pruning_units(pruned, scope)
    missing = [source for _, source, _ in units if source not in inputs]
    if missing:
        raise ValueError(f"pruning needs a frame that runs every dense module; this one does not run "
                         f"{', '.join(missing)} (a sensor is missing)")
    # The fuser's stand-ins for a missing sensor (ConvFuser.missing_embedding) are parameters outside any layer,
    # one per encoder output channel: named with their channel dimension, which torch-pruning would otherwise guess
    # with a warning (it leaves them either way: the encoders' outputs are not pruned; tests/deploy/test_prune.py).
    embeddings = [(parameter, 0) for parameter in pruned.fuser.missing_embedding.values()]
    pruners = [tp.pruner.MetaPruner(module, inputs[source], importance=tp.importance.GroupMagnitudeImportance(p=1),
                                    pruning_ratio=MAX_LAYER_RATIO, iterative_steps=steps, ignored_layers=kept,
                                    unwrapped_parameters=embeddings if isinstance(module, FuserDecoder) else None)
               for module, source, kept in units]

    def units_macs() -> int:  # counted whole per unit (the scope's other modules keep theirs)
        return sum(module_macs(module, inputs[source]) for module, source, _ in units)

    scope_before = scope_macs(pruned, batch, scope)
    outside_units = scope_before - units_macs()
    target = (1.0 - ratio) * scope_before
    step = 0
    while (scope_now := outside_units + units_macs()) > target:
        if step == steps:
            raise ValueError(f"pruning ratio {ratio}: {MAX_LAYER_RATIO:.0%} of every layer's channels leave "
                             f"{scope_now / target * (1 - ratio):.0%} of the MACs")
        for pruner in pruners:
            pruner.step()
        step += 1
    pruned.fuser.out_channels = pruned.fuser.conv[0].out_channels
    return pruned
