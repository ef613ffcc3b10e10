"""Fine-tuning a trained detector on a new domain with few frames: which parameters train (``METHODS``), BatchNorm
statistics held, and folding LoRA and adapter weights back into the plain detector for export.

Methods (each starts from trained weights):

- ``full``: every parameter trains.
- ``head``: the task heads train (the CenterHead and, where the config has one, the planning head); encoders,
  fuser and decoder are frozen.
- ``lora``: low-rank updates W + (alpha / rank) B A on the Conv2d and Linear layers under ``targets`` (HF peft's
  LoRA layers; for a conv, A has the layer's kernel and B is 1x1); the base weights are frozen.
- ``adapter``: a zero-initialised residual linear bottleneck x + U D x (1x1 conv down to ``rank`` channels, 1x1
  conv up) on the input of each Conv2d / ConvTranspose2d under ``targets``, i.e. after the frozen stage that feeds
  it; everything else is frozen. The bottleneck is linear so that it folds exactly into the layer it feeds (a
  nonlinear one cannot fold into a conv): conv(x + U D x) has the weight W (I + U D) over the input channels, at
  every kernel tap, and zero padding commutes with a per-pixel linear map.

In ``lora`` and ``adapter`` the heads' output layers (the 1x1 convs to heatmap, regression and attribute logits;
a planning head's PLANNING_OUTPUT_LAYERS) train fully, as the task head does in parameter-efficient fine-tuning:
a plan adapts to a new domain with every method. BatchNorm layers always normalise with
their running statistics and never update them (``HeldBatchNorm*``): a few dozen keyframes at batch size 2
estimate them worse than the trained running averages; ``update_norm_stats`` lets the trainable ones update.
Their affine weights train where their part trains.

``frozen``: module-name prefixes held frozen whatever the method, e.g. ``planning_head`` to adapt a planning model's
perception to a new domain while its plan stays as trained.

``quantization_aware`` (with ``full`` or ``head``): every weighted layer trains on its INT8-rounded input and
weight (perception.models.quantization_aware), for a model that is then quantized (tools/quantize.py).
"""
from __future__ import annotations

import copy
import math
import sys
from dataclasses import dataclass
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Type

import torch
from mmengine.logging import print_log
from torch import nn

from perception.models import BEVFusionDetector, load_weights, read_checkpoint
from perception.models.quantization_aware import QuantizationAware, make_quantization_aware
from perception.registry import MODELS

METHODS = ("full", "head", "lora", "adapter")

DEFAULT_TARGETS = {
    "lora": ("encoders.lidar", "encoders.radar", "fuser", "decoder", "head"),
    "adapter": ("fuser.conv.0", "decoder.stage1.0", "decoder.stage2.0", "decoder.lateral1.0", "decoder.upsample2.0",
                "head.shared.0"),
}
"""Module-name prefixes whose layers get LoRA / an input adapter when ``targets`` is not given. LoRA: the LiDAR and
radar encoders, fuser, decoder and head (not the camera backbone, most of the weights). Adapter: the layers that
read each stage's output (encoders -> fuser -> decoder stage 1 -> stage 2 -> neck -> head)."""

DEFAULT_RANK = 8
"""The LoRA update's rank / the adapter's bottleneck channels when none is given."""

LORA_LAYER_TYPES = (nn.Conv2d, nn.Linear)
"""What peft's LoRA wraps here (peft 0.21 has no ConvTranspose2d layer: the decoder's upsampling stays frozen)."""
ADAPTER_LAYER_TYPES = (nn.Conv2d, nn.ConvTranspose2d)


@dataclass(frozen=True)
class FineTuningSpec:
    """How to fine-tune: ``method`` (METHODS); ``rank`` of the LoRA update / adapter bottleneck (None: DEFAULT_RANK
    for lora and adapter; full and head add no layer and have none, so theirs stays None); ``targets``:
    module-name prefixes for lora / adapter (None: DEFAULT_TARGETS); ``lora_alpha``: LoRA's scale numerator
    (None: rank, scale 1); ``update_norm_stats``: trainable BatchNorm layers update their statistics;
    ``quantization_aware``: the weighted layers train on INT8-rounded inputs and weights (``full`` or ``head``);
    ``frozen``: module-name prefixes whose parameters do not train, whatever the method."""

    method: str
    rank: Optional[int] = None
    targets: Optional[Tuple[str, ...]] = None
    lora_alpha: Optional[float] = None
    update_norm_stats: bool = False
    quantization_aware: bool = False
    frozen: Tuple[str, ...] = ()

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown fine-tuning method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.method not in DEFAULT_TARGETS:
            if self.rank is not None:
                raise ValueError(f"rank applies to lora and adapter, not to {self.method!r} (it adds no layer)")
        elif self.rank is None:
            object.__setattr__(self, "rank", DEFAULT_RANK)
        elif self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        if self.targets is not None and self.method not in DEFAULT_TARGETS:
            raise ValueError(f"targets apply to lora and adapter, not to {self.method!r}")
        if self.lora_alpha is not None and (self.method != "lora" or not (math.isfinite(self.lora_alpha)
                                                                          and self.lora_alpha > 0)):
            raise ValueError(f"lora_alpha applies to lora and must be finite and > 0, got {self.lora_alpha} for "
                             f"{self.method!r}")
        if self.quantization_aware and self.method in DEFAULT_TARGETS:
            raise ValueError(f"quantization-aware training applies to full and head, not to {self.method!r} (its "
                             "added layers are folded into the weights after training)")

    @property
    def layer_prefixes(self) -> Tuple[str, ...]:
        return tuple(self.targets) if self.targets is not None else DEFAULT_TARGETS.get(self.method, ())


class ParameterCount(NamedTuple):
    """Parameters that train (receive gradients) and parameters of the plain detector (after folding), both without
    the encoders of sensors the detector does not read (``unread_encoders``: they neither run nor train)."""
    trained: int
    total: int

    @property
    def percent(self) -> float:
        """The share trained [%]."""
        return 100.0 * self.trained / self.total

    def __str__(self) -> str:
        return f"{self.trained:,} of {self.total:,} parameters trained ({self.percent:.2f} %)"


class _HeldStatistics:
    """BatchNorm mixin: always in eval mode (normalises with its running statistics, never updates them), whatever
    ``train()`` asks; the affine weight and bias still train where they require grad."""

    def train(self, mode: bool = True):
        return super().train(False)


class HeldBatchNorm1d(_HeldStatistics, nn.BatchNorm1d):
    """nn.BatchNorm1d with its statistics held (_HeldStatistics)."""


class HeldBatchNorm2d(_HeldStatistics, nn.BatchNorm2d):
    """nn.BatchNorm2d with its statistics held (_HeldStatistics)."""


HELD_NORMS: Dict[Type[nn.Module], Type[nn.Module]] = {nn.BatchNorm1d: HeldBatchNorm1d, nn.BatchNorm2d: HeldBatchNorm2d}


class ResidualInputAdapter(nn.Module):
    """``layer`` (Conv2d or ConvTranspose2d, one group, zero padding) applied to x + up(down(x)): a linear residual
    bottleneck of ``rank`` channels on its input. ``up`` starts at zero, so the wrapped layer starts unchanged."""

    def __init__(self, layer: nn.Module, rank: int):
        super().__init__()
        if not isinstance(layer, ADAPTER_LAYER_TYPES) or layer.groups != 1 or layer.padding_mode != "zeros":
            raise ValueError(f"an input adapter needs a Conv2d / ConvTranspose2d with one group and zero padding, "
                             f"got {layer}")
        self.layer = layer
        self.down = nn.Conv2d(layer.in_channels, rank, 1, bias=False)
        self.up = nn.Conv2d(rank, layer.in_channels, 1, bias=False)
        nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x + self.up(self.down(x)))

    def folded(self) -> nn.Module:
        """A copy of ``layer`` with the adapter folded into its weight: W' = W (I + U D) over input channels."""
        channels = self.layer.in_channels
        mixing = (torch.eye(channels, device=self.up.weight.device)
                  + self.up.weight[:, :, 0, 0] @ self.down.weight[:, :, 0, 0])  # (C, C): x -> mixing @ x
        layer = copy.deepcopy(self.layer)
        equation = "oikl,ij->ojkl" if isinstance(layer, nn.Conv2d) else "iokl,ij->jokl"  # ConvTranspose2d: (in, out)
        with torch.no_grad():
            layer.weight.copy_(torch.einsum(equation, layer.weight, mixing))
        return layer


PLANNING_OUTPUT_LAYERS = ("planning_head.correction", "planning_head.lane_change", "planning_head.ego.trajectory",
                          "planning_head.ego.maneuver")
"""The planning head's output layers (perception.models.planning_head): its BEV branch's correction and
lane-change layers, its ego branch's trajectory and maneuver layers."""


def task_heads(detector: nn.Module) -> List[nn.Module]:
    """The detector's heads: its detection head and, in a model that plans, its planning head."""
    planning = getattr(detector, "planning_head", None)
    return [detector.head] + ([] if planning is None else [planning])


def head_output_layers(detector: nn.Module) -> Tuple[str, ...]:
    """Names of the heads' output layers: the last layer of the detection head's heatmap, regression and attribute
    branches and, in a model that plans, PLANNING_OUTPUT_LAYERS."""
    detection = tuple(f"head.{branch}.{len(getattr(detector.head, branch)) - 1}"
                      for branch in ("heatmap", "regression", "attribute"))
    return detection + (PLANNING_OUTPUT_LAYERS if len(task_heads(detector)) > 1 else ())


def _is_under(name: str, prefixes: Sequence[str]) -> bool:
    """Whether module name ``name`` is one of ``prefixes`` or lies under one (``prefix.``)."""
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def select_layers(model: nn.Module, prefixes: Sequence[str], types: Tuple[type, ...], exclude: Sequence[str] = (),
                  skip_under: Sequence[str] = (), why_excluded: str = "") -> Dict[str, nn.Module]:
    """The modules of ``types`` named ``prefix`` or under ``prefix.`` for some prefix, minus ``exclude`` (for the
    reason ``why_excluded``) and those under ``skip_under``. Raises ValueError naming a prefix that selects
    nothing."""
    chosen = {}
    for prefix in prefixes:
        found = {name: module for name, module in model.named_modules()
                 if isinstance(module, types) and _is_under(name, [prefix]) and name not in exclude
                 and not _is_under(name, skip_under)}
        if not found:
            skipped = f" outside {', '.join(skip_under)} (not read)" if skip_under else ""
            excluded = [name for name in exclude if _is_under(name, [prefix])]
            left_out = f" but {', '.join(excluded)} ({why_excluded})" if excluded else ""
            raise ValueError(f"prefix {prefix!r} selects no {' / '.join(t.__name__ for t in types)} layer of the "
                             f"model{skipped}{left_out} (names look like 'decoder.stage1.0')")
        chosen.update(found)
    return chosen


def max_rank(layer: nn.Module, method: str) -> int:
    """The largest useful rank for ``layer``: LoRA's update rank is at most min(inputs per output, outputs); an
    input adapter's bottleneck at most the layer's input channels."""
    if method == "adapter":
        return layer.in_channels
    if isinstance(layer, nn.Linear):
        return min(layer.in_features, layer.out_features)
    return min(layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1], layer.out_channels)


def unread_encoder_names(model: nn.Module) -> List[str]:
    """Module names of a BEVFusionDetector's encoders for sensors it does not read (``sensors``); none for other
    modules."""
    sensors = getattr(model, "sensors", None)
    return [] if sensors is None else [f"encoders.{sensor}" for sensor in model.encoders if sensor not in sensors]


def unread_encoders(model: nn.Module) -> List[nn.Module]:
    """The encoders of unread_encoder_names."""
    return [model.get_submodule(name) for name in unread_encoder_names(model)]


def prepare_fine_tuning(detector: nn.Module, spec: FineTuningSpec) -> ParameterCount:
    """Sets up ``detector`` (trained weights loaded) for ``spec`` in place: freezes, adds LoRA / adapters, holds the
    BatchNorm statistics. Raises ValueError for a target or a frozen prefix that selects nothing, or a rank larger
    than a layer, before changing anything; and when the frozen prefixes leave nothing to train. Targets skip the
    encoders the detector does not read; the default targets leave out the parts it lacks (a LiDAR-only model has
    no radar encoder)."""
    outputs = head_output_layers(detector)
    frozen = select_layers(detector, spec.frozen, (nn.Module,))
    unread = unread_encoder_names(detector)
    prefixes = spec.layer_prefixes
    if spec.targets is None:
        modules = dict(detector.named_modules())
        prefixes = tuple(prefix for prefix in prefixes if prefix in modules and not _is_under(prefix, unread))
    layer_types = LORA_LAYER_TYPES if spec.method == "lora" else ADAPTER_LAYER_TYPES
    layers = select_layers(detector, prefixes, layer_types, exclude=outputs, skip_under=unread,
                           why_excluded="an output layer: it trains whole with every method") if prefixes else {}
    for name, layer in layers.items():
        if spec.rank > max_rank(layer, spec.method):
            raise ValueError(f"rank {spec.rank} is larger than layer {name} allows ({layer}: at most "
                             f"{max_rank(layer, spec.method)})")
    detector.requires_grad_(spec.method == "full")
    if spec.method == "head":
        for head in task_heads(detector):
            head.requires_grad_(True)
    elif spec.method == "lora":
        from peft import LoraConfig, inject_adapter_in_model  # here: peft imports transformers (seconds)

        alpha = spec.rank if spec.lora_alpha is None else spec.lora_alpha
        config = LoraConfig(r=spec.rank, lora_alpha=alpha, lora_dropout=0.0, bias="none", target_modules=sorted(layers))
        inject_adapter_in_model(config, detector)
        for name, parameter in detector.named_parameters():
            parameter.requires_grad_(".lora_" in name)
    elif spec.method == "adapter":
        for name, layer in layers.items():
            detector.set_submodule(name, ResidualInputAdapter(layer, spec.rank))
    if spec.method in DEFAULT_TARGETS:
        for name in outputs:
            detector.get_submodule(name).requires_grad_(True)
    for name in [*unread, *frozen]:  # looked up again: LoRA and adapters wrap the layers they were given
        detector.get_submodule(name).requires_grad_(False)
    for module in detector.modules():
        if type(module) in HELD_NORMS:
            trains = any(p.requires_grad for p in module.parameters())
            if not (trains and spec.update_norm_stats):  # class swapped in place: same parameters, buffers, keys
                module.__class__ = HELD_NORMS[type(module)]
                module.eval()
    if spec.quantization_aware:
        make_quantization_aware(detector)
    count = count_parameters(detector)
    if count.trained == 0:
        raise ValueError(f"{spec.method} with frozen {', '.join(spec.frozen)}: no parameter is left to train")
    return count


def _lora_layer_type() -> Optional[type]:
    """peft's LoraLayer when peft has been imported (no LoRA layer can exist otherwise), else None."""
    if "peft" not in sys.modules:
        return None
    from peft.tuners.lora import LoraLayer

    return LoraLayer


def count_parameters(model: nn.Module) -> ParameterCount:
    """Trained parameters (requires_grad) and the parameters ``model`` has once folded (without LoRA / adapter
    weights), both without its unread encoders' (ParameterCount)."""
    lora_layer = _lora_layer_type()
    added = 0
    for module in model.modules():
        if isinstance(module, ResidualInputAdapter):
            added += sum(p.numel() for part in (module.down, module.up) for p in part.parameters())
        elif lora_layer is not None and isinstance(module, lora_layer):
            added += sum(p.numel() for name, p in module.named_parameters() if name.startswith("lora_"))
    unread = {id(p) for encoder in unread_encoders(model) for p in encoder.parameters()}
    counted = [p for p in model.parameters() if id(p) not in unread]
    return ParameterCount(sum(p.numel() for p in counted if p.requires_grad),
                          sum(p.numel() for p in counted) - added)


def fold(model: nn.Module) -> nn.Module:
    """``model`` in place as the plain network: LoRA merged into its base layers (peft's merge), adapters folded
    into the layers they feed, quantization-aware layers unwrapped, BatchNorm layers back to torch's classes. Its
    state_dict then has exactly the keys of the model before prepare_fine_tuning, and it computes the same outputs
    (a quantization-aware model: without the rounding)."""
    lora_layer = _lora_layer_type()
    plain_norms = {held: plain for plain, held in HELD_NORMS.items()}
    for name, module in list(model.named_modules()):
        if lora_layer is not None and isinstance(module, lora_layer):
            module.merge(safe_merge=True)
            model.set_submodule(name, module.get_base_layer())
        elif isinstance(module, ResidualInputAdapter):
            model.set_submodule(name, module.folded())
        elif isinstance(module, QuantizationAware):
            model.set_submodule(name, module.layer)
        elif type(module) in plain_norms:
            module.__class__ = plain_norms[type(module)]
    return model


def folded_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The plain network's weights (``fold`` on a copy): detached CPU tensors, ready for a shipped checkpoint."""
    plain = fold(copy.deepcopy(model))
    return {name: tensor.detach().cpu().clone() for name, tensor in plain.state_dict().items()}


def fine_tuned_model(detector: Mapping, checkpoint: str, config: str, spec: FineTuningSpec
                     ) -> Tuple[BEVFusionDetector, ParameterCount]:
    """The network ``detector`` (a BEVFusionDetector config, from the file ``config``) with the weights of
    ``checkpoint`` (a shipped checkpoint), set up for fine-tuning by ``spec`` (prepare_fine_tuning), and what it
    trains. Raises ValueError naming both files when the weights do not fit the network (and prepare_fine_tuning's
    errors: a rank above a layer's, a target or freeze that names nothing); the inputs the checkpoint was trained
    on (sweeps, image size, sensors read) may differ, since adapting to new inputs is what fine-tuning is for. The
    model counts as initialised (mmengine's ``is_init``): the runner's ``init_weights`` leaves the checkpoint's
    weights as they are (a planning head would otherwise load its config's ``ego_init`` file over its ego
    branch)."""
    model = MODELS.build(dict(detector))
    load_weights(model, read_checkpoint(checkpoint)["state_dict"], checkpoint, config)
    model.is_init = True
    return model, prepare_fine_tuning(model, spec)


@MODELS.register_module(name="FineTunedDetector")
def fine_tuned_detector(detector: Mapping, checkpoint: str, config: str, method: str, rank: Optional[int] = None,
                        targets: Optional[Sequence[str]] = None, lora_alpha: Optional[float] = None,
                        update_norm_stats: bool = False, quantization_aware: bool = False, frozen: Sequence[str] = ()
                        ) -> BEVFusionDetector:
    """fine_tuned_model with these FineTuningSpec fields, what it trains logged: the model a fine-tuning run
    builds."""
    spec = FineTuningSpec(method, rank, None if targets is None else tuple(targets), lora_alpha, update_norm_stats,
                          quantization_aware, tuple(frozen))
    model, count = fine_tuned_model(detector, checkpoint, config, spec)
    print_log(f"fine-tuning {checkpoint} ({spec.method}): {count}", logger="current")
    return model


__all__ = ["ADAPTER_LAYER_TYPES", "DEFAULT_RANK", "DEFAULT_TARGETS", "FineTuningSpec", "HeldBatchNorm1d",
           "HeldBatchNorm2d", "LORA_LAYER_TYPES", "METHODS", "ParameterCount", "ResidualInputAdapter",
           "count_parameters", "fine_tuned_detector", "fine_tuned_model", "fold", "folded_state_dict",
           "head_output_layers", "max_rank", "prepare_fine_tuning", "select_layers", "unread_encoder_names",
           "unread_encoders"]
