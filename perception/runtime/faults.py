"""Fault injection over a message stream: drops, duplicates, late (out-of-order) deliveries and stalled sensors,
seeded, so that replay and tests can show which faults the streaming state survives and counts.

A corrupt file is a fault of the data, not of the stream: tests make one in a copy of a data set.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

from perception.runtime.messages import SensorMessage
from perception.sensors import ALL_CHANNELS


@dataclass(frozen=True)
class FaultPlan:
    """What to inject. ``drop`` / ``duplicate`` / ``delay``: probability per message of being lost, delivered
    twice, or delivered after the next message of its channel. ``stall``: (channel, start_s, end_s): the channel
    delivers nothing from start_s to end_s after the stream's first message."""

    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    stall: Optional[Tuple[str, float, float]] = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop", "duplicate", "delay"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault probability {name}={value} is not in [0, 1]")
        if self.stall is not None:
            channel, start_s, end_s = self.stall
            if channel not in ALL_CHANNELS:
                raise ValueError(f"stall: unknown channel {channel!r}; known: {ALL_CHANNELS}")
            if not 0 <= start_s < end_s:
                raise ValueError(f"stall: needs 0 <= start_s < end_s, got {start_s}, {end_s}")
        if self.seed < 0:
            raise ValueError(f"fault seed={self.seed} is negative (numpy's generators take seeds >= 0)")

    @classmethod
    def parse(cls, spec: str) -> "FaultPlan":
        """From 'drop=0.05,duplicate=0.02,delay=0.02,stall=CAM_FRONT:1.0:2.5,seed=3' (any subset, any order)."""
        values: Dict[str, object] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            name, _, value = item.partition("=")
            try:
                if name in ("drop", "duplicate", "delay"):
                    values[name] = float(value)
                elif name == "seed":
                    values[name] = int(value)
                elif name == "stall":
                    channel, start_s, end_s = value.split(":")
                    values[name] = (channel, float(start_s), float(end_s))
                else:
                    raise ValueError(f"unknown fault {name!r}")
            except ValueError as error:
                raise ValueError(f"fault spec {spec!r}: cannot read {item!r} ({error}); expected e.g. "
                                 "drop=0.05,duplicate=0.02,delay=0.02,stall=CAM_FRONT:1.0:2.5,seed=0") from None
        return cls(**values)


def inject_faults(messages: Iterable[SensorMessage], plan: FaultPlan) -> Iterator[SensorMessage]:
    """The stream with ``plan``'s faults applied (deterministic for a given plan and stream)."""
    rng = np.random.default_rng(plan.seed)
    held: Dict[str, List[SensorMessage]] = {}
    start_us: Optional[int] = None
    for message in messages:
        start_us = message.timestamp_us if start_us is None else start_us
        draw_drop, draw_duplicate, draw_delay = rng.random(3)
        if plan.stall is not None:
            channel, stall_start_s, stall_end_s = plan.stall
            elapsed_s = (message.timestamp_us - start_us) * 1e-6
            if message.channel == channel and stall_start_s <= elapsed_s < stall_end_s:
                continue
        if draw_drop < plan.drop:
            continue
        late = held.pop(message.channel, [])
        if draw_delay < plan.delay and not late:
            held[message.channel] = [message]
        else:
            yield message
            if draw_duplicate < plan.duplicate:
                yield message
        yield from late
    for late in held.values():
        yield from late
