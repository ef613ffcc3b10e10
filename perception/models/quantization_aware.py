"""Quantization-aware fine-tuning: in training, the weighted layers compute with the rounding that INT8 deployment
(perception.deploy.quantize: ONNX Runtime's static quantization, QDQ) gives them, so that the weights learn to
live with it; the trained network stays a plain float one and is quantized as any other.

Each Conv2d, ConvTranspose2d and Linear is wrapped (``QuantizationAware``): its input is rounded to uint8 on an
asymmetric per-tensor range that holds 0 and the extremes of every input the layer has seen in training (ONNX
Runtime's MinMax calibration takes the extremes over its calibration frames); its weight to int8, symmetric per
output channel, scale max |w| / 127 (ONNX Runtime's QInt8 weights). The rounding passes gradients straight
through (torch's fake_quantize ops). Folding a BatchNorm into the weight at export scales each output channel by
one factor, so the per-channel rounding of the unfolded weight is that of the folded one. A layer's output that
feeds the next layer through its BatchNorm and Relu is rounded once in deployment, as that layer's input, which is
simulated. Not simulated: the rounding of the inputs and outputs of the joins that do not feed a layer directly
(Add, Concat, Resize: perception.deploy.quantize.ACTIVATION_OPS).
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

QUANTIZED_LAYER_TYPES: Tuple[type, ...] = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
"""The layers ONNX Runtime gives INT8 weights and inputs (Conv, ConvTranspose, Gemm / MatMul once exported)."""


def int8_weight_scale(weight: torch.Tensor, output_axis: int) -> torch.Tensor:
    """The scale of ``weight`` stored as symmetric int8 per output channel (ONNX Runtime's QInt8 weights): max |w|
    / 127 over each channel along ``output_axis``, 1 for an all-zero channel; float32, in ``weight``'s rank with 1
    on every other axis (it broadcasts against ``weight``)."""
    reduce = tuple(axis for axis in range(weight.dim()) if axis != output_axis)
    scale = weight.detach().abs().amax(dim=reduce, keepdim=True) / 127.0
    return torch.where(scale > 0, scale, torch.ones_like(scale)).float()


def fake_quantize_weight(weight: torch.Tensor, output_axis: int) -> torch.Tensor:
    """``weight`` rounded to int8 as ``int8_weight_scale`` stores it, back in float; gradients pass straight
    through."""
    scale = int8_weight_scale(weight, output_axis).flatten()
    zero_point = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, output_axis, -127, 127)


def fake_quantize_input(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to uint8 on the range [min(low, 0), max(high, 0)] (scale range / 255, the zero point rounded;
    scale 1 for an empty range), back in float; gradients pass straight through."""
    low, high = torch.clamp(low, max=0.0), torch.clamp(high, min=0.0)
    scale = (high - low) / 255.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale)).float().reshape(1)
    zero_point = torch.round(-low / scale).to(torch.int32).reshape(1)
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255)


class QuantizationAware(nn.Module):
    """``layer`` (QUANTIZED_LAYER_TYPES) computing on its INT8-rounded input and weight (module docstring).
    ``input_range`` (2,) [min, max] holds the extremes of the inputs seen in training mode; until one is seen the
    input is not rounded."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        if not isinstance(layer, QUANTIZED_LAYER_TYPES):
            raise ValueError(f"quantization-aware training wraps {', '.join(t.__name__ for t in QUANTIZED_LAYER_TYPES)}"
                             f", got {layer}")
        self.layer = layer
        self.register_buffer("input_range", torch.tensor([float("inf"), float("-inf")]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                self.input_range[0] = torch.minimum(self.input_range[0], x.min())
                self.input_range[1] = torch.maximum(self.input_range[1], x.max())
        if self.input_range[0] <= self.input_range[1]:
            x = fake_quantize_input(x, self.input_range[0], self.input_range[1])
        layer = self.layer
        if isinstance(layer, nn.Linear):
            return F.linear(x, fake_quantize_weight(layer.weight, 0), layer.bias)
        if isinstance(layer, nn.Conv2d):
            return layer._conv_forward(x, fake_quantize_weight(layer.weight, 0), layer.bias)
        return F.conv_transpose2d(x, fake_quantize_weight(layer.weight, 1), layer.bias, layer.stride, layer.padding,
                                  layer.output_padding, layer.groups, layer.dilation)  # weight (in, out / groups, ..)


def make_quantization_aware(model: nn.Module) -> int:
    """Wraps every QUANTIZED_LAYER_TYPES layer of ``model`` in QuantizationAware, in place. -> how many."""
    layers = [name for name, module in model.named_modules() if isinstance(module, QUANTIZED_LAYER_TYPES)]
    for name in layers:
        model.set_submodule(name, QuantizationAware(model.get_submodule(name)))
    return len(layers)


__all__ = ["QUANTIZED_LAYER_TYPES", "QuantizationAware", "fake_quantize_input", "fake_quantize_weight",
           "int8_weight_scale", "make_quantization_aware"]
