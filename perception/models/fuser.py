"""``ConvFuser``: concatenates the sensors' BEV features and mixes them with a conv; any subset may be missing."""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

import torch
from torch import nn


class ConvFuser(nn.Module):
    """Per-sensor BEV features (B, C_s, ny, nx) -> (B, out_channels, ny, nx).

    ``in_channels`` maps sensor -> C_s, in the concatenation order. A sensor missing for a frame (``present``
    False, or no features at all) has its channels zero-filled plus a learned per-channel 'missing' embedding, so
    the network knows the state rather than reading zeros as 'empty road'. In training, ``modality_dropout`` is
    the probability of dropping each present sensor of each frame (at least one sensor is kept per frame).
    """

    def __init__(self, in_channels: Mapping[str, int], out_channels: int = 64, modality_dropout: float = 0.0):
        super().__init__()
        if not in_channels:
            raise ValueError("ConvFuser needs at least one sensor")
        if not 0.0 <= modality_dropout < 1.0:
            raise ValueError(f"ConvFuser: modality_dropout must lie in [0, 1), got {modality_dropout}")
        self.in_channels = dict(in_channels)
        self.out_channels = out_channels
        self.modality_dropout = modality_dropout
        self.missing_embedding = nn.ParameterDict(
            {sensor: nn.Parameter(torch.zeros(channels)) for sensor, channels in self.in_channels.items()})
        self.conv = nn.Sequential(nn.Conv2d(sum(self.in_channels.values()), out_channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def drop_modalities(self, present: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """present: sensor -> (B,) bool. Drops each True with probability modality_dropout, keeping (one of) the
        frame's present sensors where all would go."""
        sensors = list(self.in_channels)
        stacked = torch.stack([present[s] for s in sensors], dim=1)  # (B, S)
        kept = stacked & (torch.rand(stacked.shape, device=stacked.device) >= self.modality_dropout)
        emptied = ~kept.any(dim=1) & stacked.any(dim=1)
        if emptied.any():
            choice = torch.multinomial(stacked[emptied].float(), 1).squeeze(1)
            kept[emptied] = torch.nn.functional.one_hot(choice, len(sensors)).bool()
        return {sensor: kept[:, i] for i, sensor in enumerate(sensors)}

    def forward(self, features: Mapping[str, Optional[torch.Tensor]], present: Mapping[str, torch.Tensor],
                grid_shape: Tuple[int, int]) -> torch.Tensor:
        """features: sensor -> (B, C_s, ny, nx) or None (not computed: absent from every frame);
        present: sensor -> (B,) bool."""
        batch_size = next(iter(present.values())).shape[0]
        present = {s: present.get(s, torch.zeros(batch_size, dtype=torch.bool)) for s in self.in_channels}
        present = {s: p.to(self.conv[0].weight.device) for s, p in present.items()}
        if self.training and self.modality_dropout > 0:
            present = self.drop_modalities(present)
        parts = []
        for sensor, channels in self.in_channels.items():
            mask = present[sensor].view(-1, 1, 1, 1).to(self.conv[0].weight.dtype)
            embedding = self.missing_embedding[sensor].view(1, channels, 1, 1) * (1 - mask)
            feature = features.get(sensor)
            if feature is None:
                parts.append(embedding.expand(batch_size, channels, *grid_shape))
            else:
                parts.append(feature * mask + embedding)
        return self.conv(torch.cat(parts, dim=1))
