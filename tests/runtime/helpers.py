"""Shared pieces of the runtime tests: detectors that record their calls, a copy of a data set to damage, and a reader
of the replay's MCAP files."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Any, Callable, Dict, FrozenSet, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mcap.decoder import DecoderFactory as McapDecoderFactory
from mcap.reader import make_reader
from mcap.records import Schema
from mcap.well_known import MessageEncoding
from mcap_protobuf.decoder import DecoderFactory as ProtobufDecoderFactory

from perception.datasets.frame import Frame
from perception.detector import OracleDetector
from perception.geometry import Boxes3D
from perception.maneuvers import PLAN_HORIZON_STEPS, PLAN_STEP_S, Maneuver
from perception.models.planning_types import PlanningOutputs, constant_velocity_rollout
from perception.timing import StageTimer


class CountingOracle(OracleDetector):
    """The oracle, remembering the sample tokens it was called on; raises KeyboardInterrupt (a kill) on call
    number ``interrupt_at`` (1-based; a replay's untimed warm-up is its first call) when given."""

    def __init__(self, interrupt_at: int = 0, delay_s: float = 0.0):
        self.calls: List[str] = []
        self.interrupt_at = interrupt_at
        self.delay_s = delay_s

    def detect(self, frames: Sequence[Frame], timer: Optional[StageTimer] = None) -> List[Boxes3D]:
        self.calls.extend(frame.sample_token for frame in frames)
        if self.interrupt_at and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        if self.delay_s:
            time.sleep(self.delay_s)
        return super().detect(frames)


class NoBoxes:
    """Detects nothing; reads only LiDAR (a detector for sweeps, where no ground truth exists)."""

    sensors: FrozenSet[str] = frozenset({"lidar"})

    def __init__(self):
        self.frames: List[Frame] = []

    def detect(self, frames: Sequence[Frame], timer: Optional[StageTimer] = None) -> List[Boxes3D]:
        self.frames.extend(frames)
        return [Boxes3D.empty() for _ in frames]


class StagedNoBoxes(NoBoxes):
    """Detects nothing, timing each model stage name it is told to (as a model's forward does with a timer)."""

    def __init__(self, stage_names: Sequence[str]):
        super().__init__()
        self.stage_names = tuple(stage_names)

    def detect(self, frames: Sequence[Frame], timer: Optional[StageTimer] = None) -> List[Boxes3D]:
        for name in self.stage_names:
            with timer.stage(name):
                pass
        return super().detect(frames)


def linked_copy(source: str, destination: str) -> str:
    """A copy of the data set at ``source`` whose files are symbolic links (cheap), tables copied for real."""
    shutil.copytree(source, destination, copy_function=os.symlink)
    return destination


def corrupt(path: str, payload: bytes = b"not a sensor file") -> None:
    """Replaces the file (or the link) at ``path`` by a real file holding ``payload``."""
    os.unlink(path)
    with open(path, "wb") as f:
        f.write(payload)


class PlanningOracle(OracleDetector):
    """The oracle that also plans (a perception.models.planning_head.PlanningDetector): remembers the ego input
    it is given per frame timestamp and proposes ``maneuver`` along the constant-velocity roll-out of its speed, at
    the waypoints of ``plan_grid``."""

    plans = True

    def __init__(self, maneuver: Maneuver, plan_grid: Tuple[int, float] = (PLAN_HORIZON_STEPS, PLAN_STEP_S)):
        self.maneuver, self.plan_grid = maneuver, plan_grid
        self.ego_inputs: Dict[int, np.ndarray] = {}

    def detect_and_plan(self, frames: Sequence[Frame], ego_state: np.ndarray, timer: Optional[StageTimer] = None
                        ) -> Tuple[List[Boxes3D], List[PlanningOutputs]]:
        plans = []
        for frame, row in zip(frames, ego_state):
            self.ego_inputs[frame.timestamp_us] = np.array(row)
            logits = torch.zeros(len(Maneuver))
            logits[list(Maneuver).index(self.maneuver)] = 1.0
            trajectory = constant_velocity_rollout(torch.tensor([float(row[0])]), *self.plan_grid)[0]
            plans.append(PlanningOutputs(trajectory, logits, torch.zeros(2)))
        return self.detect(frames), plans


class HalfConfidentOracle(OracleDetector):
    """The oracle with every second box's score lowered to 0.1 (a detector's low-confidence boxes)."""

    def detect(self, frames: Sequence[Frame], timer: Optional[StageTimer] = None) -> List[Boxes3D]:
        results = []
        for boxes in super().detect(frames):
            scores = boxes.scores.copy()
            scores[1::2] = 0.1
            results.append(dataclasses.replace(boxes, scores=scores))
        return results


class JsonDecoderFactory(McapDecoderFactory):
    """Decodes the JSON channels (the /decision channel) for mcap's reader: bytes -> Python object."""

    def decoder_for(self, message_encoding: str, schema: Optional[Schema]) -> Optional[Callable[[bytes], Any]]:
        if message_encoding != MessageEncoding.JSON:
            return None
        return lambda data: json.loads(data)


def read_mcap(path: str) -> Iterator[Tuple[str, int, Any]]:
    """(topic, log_time_ns, decoded message) of every message in an MCAP file, in log-time order: protobuf
    channels as Foxglove's message classes, JSON channels as Python objects."""
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[ProtobufDecoderFactory(), JsonDecoderFactory()])
        for _, channel, message, decoded in reader.iter_decoded_messages(log_time_order=True):
            yield channel.topic, message.log_time, decoded
