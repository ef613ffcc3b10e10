"""``ConvFuser``: concatenates the sensors' BEV features and mixes them with a conv; any subset may be missing."""
from __future__ import annotations

from typing import Mapping, Optional, Tuple

import torch
from torch import nn


def stack_features(features: Mapping[str, Optional[torch.Tensor]], present: Mapping[str, torch.Tensor],
                   in_channels: Mapping[str, int], grid_shape: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """The fuser's inputs from per-sensor results. features: sensor -> (B, C_s, ny, nx), or None where not computed
    (absent from every frame); present: sensor -> (B,) bool; in_channels: sensor -> C_s in concatenation order.
    -> (B, sum C_s, ny, nx) float (zeros for a sensor not computed), (B, S) bool."""
    batch_size = next(iter(present.values())).shape[0]
    device = next(iter(present.values())).device
    computed = [f for f in features.values() if f is not None]
    dtype = computed[0].dtype if computed else torch.float32
    parts = [features[sensor] if features.get(sensor) is not None
             else torch.zeros((batch_size, channels, *grid_shape), dtype=dtype, device=device)
             for sensor, channels in in_channels.items()]
    flags = [present[sensor] if sensor in present else torch.zeros(batch_size, dtype=torch.bool, device=device)
             for sensor in in_channels]
    return torch.cat(parts, dim=1), torch.stack(flags, dim=1).to(device)


class ConvFuser(nn.Module):
    """Concatenated BEV features (B, sum C_s, ny, nx) of the sensors of ``in_channels`` (sensor -> C_s, in the
    concatenation order; see ``stack_features``) -> (B, out_channels, ny, nx).

    A sensor missing for a frame (``present`` False) has its channels replaced by a learned per-channel 'missing'
    embedding, so the network knows the state rather than reading zeros as 'empty road'. In training,
    ``modality_dropout`` is the probability of dropping each present sensor of each frame (at least one sensor is
    kept per frame).
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
        self.register_buffer("channel_sensor", torch.repeat_interleave(
            torch.arange(len(self.in_channels)), torch.tensor(list(self.in_channels.values()))), persistent=False)
        self.conv = nn.Sequential(nn.Conv2d(sum(self.in_channels.values()), out_channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def drop_modalities(self, present: torch.Tensor) -> torch.Tensor:
        """present (B, S) bool. Drops each True with probability modality_dropout, keeping (one of) the frame's
        present sensors where all would go."""
        kept = present & (torch.rand(present.shape, device=present.device) >= self.modality_dropout)
        emptied = ~kept.any(dim=1) & present.any(dim=1)
        if emptied.any():
            choice = torch.multinomial(present[emptied].float(), 1).squeeze(1)
            kept[emptied] = torch.nn.functional.one_hot(choice, present.shape[1]).bool()
        return kept

    def forward(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """features (B, sum C_s, ny, nx); present (B, S) bool, whether each frame has each sensor."""
        if self.training and self.modality_dropout > 0:
            present = self.drop_modalities(present)
        mask = present[:, self.channel_sensor].to(features.dtype)[:, :, None, None]  # (B, sum C_s, 1, 1)
        embedding = torch.cat([self.missing_embedding[sensor] for sensor in self.in_channels])[None, :, None, None]
        return self.conv(features * mask + embedding * (1 - mask))
