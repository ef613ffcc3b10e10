"""``BEVDecoder``: a SECOND-style 2D backbone over the fused BEV grid and an FPN-style neck back to full size."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def _stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
              nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    for _ in range(blocks - 1):
        layers += [nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class BEVDecoder(nn.Module):
    """(B, in_channels, ny, nx) -> (B, out_channels, ny, nx); ny and nx must be even.

    Stage 1 at stride 1 (channels[0], blocks[0] convs), stage 2 at stride 2 (channels[1], blocks[1] convs); the
    neck concatenates stage 1 (1x1 conv) with stage 2 upsampled by a transposed conv, out_channels / 2 each.
    """

    def __init__(self, in_channels: int, channels: Sequence[int] = (64, 128), blocks: Sequence[int] = (2, 3),
                 out_channels: int = 128):
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"BEVDecoder: out_channels must be even, got {out_channels}")
        self.out_channels = out_channels
        self.stage1 = _stage(in_channels, channels[0], blocks[0], 1)
        self.stage2 = _stage(channels[0], channels[1], blocks[1], 2)
        half = out_channels // 2
        self.lateral1 = nn.Sequential(nn.Conv2d(channels[0], half, 1, bias=False), nn.BatchNorm2d(half),
                                      nn.ReLU(inplace=True))
        self.upsample2 = nn.Sequential(nn.ConvTranspose2d(channels[1], half, 2, stride=2, bias=False),
                                       nn.BatchNorm2d(half), nn.ReLU(inplace=True))

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        if bev.shape[-1] % 2 or bev.shape[-2] % 2:
            raise ValueError(f"BEVDecoder: the BEV grid {tuple(bev.shape[-2:])} must have even sides")
        stage1 = self.stage1(bev)
        stage2 = self.stage2(stage1)
        return torch.cat([self.lateral1(stage1), self.upsample2(stage2)], dim=1)
