"""``BEVDecoder``: a SECOND-style 2D backbone over the fused BEV grid and an FPN-style neck back to full size."""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn


def _stage(in_channels: int, widths: Sequence[int], stride: int) -> nn.Sequential:
    """3x3 conv + BN + ReLU per entry of ``widths`` (its output channels); the first at ``stride``."""
    layers = []
    for index, width in enumerate(widths):
        layers += [nn.Conv2d(in_channels, width, 3, stride=stride if index == 0 else 1, padding=1, bias=False),
                   nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        in_channels = width
    return nn.Sequential(*layers)


def stage_widths(channels: Union[int, Sequence[int]], blocks: int) -> list:
    """The width of each conv of a stage: ``channels`` for all ``blocks`` convs, or one width per conv (a pruned
    model, perception.deploy.prune)."""
    widths = [int(channels)] * blocks if isinstance(channels, int) else [int(c) for c in channels]
    if len(widths) != blocks:
        raise ValueError(f"BEVDecoder: a stage of {blocks} convs was given {len(widths)} widths {list(channels)}")
    return widths


class BEVDecoder(nn.Module):
    """(B, in_channels, ny, nx) -> (B, out_channels, ny, nx); ny and nx must be even.

    Stage 1 at stride 1 (channels[0], blocks[0] convs), stage 2 at stride 2 (channels[1], blocks[1] convs); the
    neck concatenates stage 1 (1x1 conv) with stage 2 upsampled by a transposed conv, out_channels / 2 each.
    A stage's channels: one width for all its convs, or a list of one per conv (a pruned model).
    """

    def __init__(self, in_channels: int, channels: Sequence[Union[int, Sequence[int]]] = (64, 128),
                 blocks: Sequence[int] = (2, 3), out_channels: int = 128):
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"BEVDecoder: out_channels must be even, got {out_channels}")
        self.out_channels = out_channels
        widths1, widths2 = stage_widths(channels[0], blocks[0]), stage_widths(channels[1], blocks[1])
        self.stage1 = _stage(in_channels, widths1, 1)
        self.stage2 = _stage(widths1[-1], widths2, 2)
        half = out_channels // 2
        self.lateral1 = nn.Sequential(nn.Conv2d(widths1[-1], half, 1, bias=False), nn.BatchNorm2d(half),
                                      nn.ReLU(inplace=True))
        self.upsample2 = nn.Sequential(nn.ConvTranspose2d(widths2[-1], half, 2, stride=2, bias=False),
                                       nn.BatchNorm2d(half), nn.ReLU(inplace=True))

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        if bev.shape[-1] % 2 or bev.shape[-2] % 2:
            raise ValueError(f"BEVDecoder: the BEV grid {tuple(bev.shape[-2:])} must have even sides")
        stage1 = self.stage1(bev)
        stage2 = self.stage2(stage1)
        return torch.cat([self.lateral1(stage1), self.upsample2(stage2)], dim=1)
