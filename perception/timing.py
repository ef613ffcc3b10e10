"""Stage timers and latency statistics.

How a stage is timed (for the model's forward, the replay and the benchmark alike)::

    timer = StageTimer(device)            # "cpu" or a CUDA device
    with timer.stage("voxelize"):
        voxels, coords, counts = hard_voxelize(...)
    with timer.stage("lidar_encoder"):
        ...
    timer.elapsed_ms()                    # {"voxelize": 1.9, "lidar_encoder": 12.3}; then timer.reset()

Code that may or may not be given a timer (a model's forward called with ``timer=None`` in training) writes
``with stage(timer, "fuser"):``, which times nothing when the timer is None.

On the CPU a stage is the ``time.perf_counter`` wall time of its block. On a CUDA device a stage is the GPU time
between two ``torch.cuda.Event`` records placed on the current stream at the block's entry and exit (the block's
host code only enqueues kernels); ``elapsed_ms`` synchronises once and reads them all. Stages may nest (an
"end_to_end" stage around the others); a name entered twice in one record accumulates.

A detector's ``detect(frames, timer=None)`` (perception.detector.Detector) is given the replay's and the
benchmark's timer and may time its own stages with the names in STAGES.

Contenders compared for speed (detectors, kernel backends) are timed side by side in one run, interleaved call by
call: ``round_robin``.

A leaf module (standard library, numpy; torch only for CUDA timers): the models, the runtime and the tools all
time with it.
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np

STAGES: Tuple[str, ...] = (
    "load", "preprocess", "lidar_encoder", "radar_encoder", "voxelize", "camera_encoder", "bev_pool", "fuser",
    "decoder", "head", "fuser_decoder_head", "decode_nms", "planning_head", "detector", "decision", "end_to_end",
)
"""Every stage of one frame, in pipeline order. The model's detect times preprocess .. decode_nms with these names
when it is given a StageTimer (``detect(frames, timer=timer)``): preprocess (camera resize, tensors), each encoder,
fuser, decoder, head (or fuser_decoder_head: the three as one ONNX graph, perception.deploy), decode_nms,
planning_head (a planning head's forward, in ``detect_and_plan``); nested inside the encoders, voxelize (hard
pillars of the LiDAR and the radar encoders together) and bev_pool (the camera encoder's BEV pooling). The
benchmark and the replay time the rest: load (the Frame from files), detector (the whole detect call, around the
model's stages), decision, and end_to_end (load + detector + decision)."""

NESTED_STAGES: Tuple[str, ...] = ("voxelize", "bev_pool")
"""The stages timed inside an encoder's (STAGES' docstring): a sum of stages leaves them out."""

PERCENTILES = (50, 90, 99)

Measured = TypeVar("Measured")


class StageTimer:
    """Times named stages of one record (one frame); ``elapsed_ms()`` returns them, ``reset()`` starts the next.

    ``device``: "cpu" (perf_counter) or a CUDA device ("cuda", "cuda:0", a torch.device): CUDA events.
    """

    def __init__(self, device: Union[str, "torch.device"] = "cpu") -> None:  # noqa: F821
        self.device = str(device)
        self.uses_cuda_events = self.device.startswith("cuda")
        self._cpu_ms: Dict[str, float] = {}
        self._cuda_events: List[Tuple[str, object, object]] = []

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Times the ``with`` block as stage ``name`` (accumulating when the name repeats in one record)."""
        if self.uses_cuda_events:
            import torch

            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            try:
                yield
            finally:
                end.record()
                self._cuda_events.append((name, start, end))
        else:
            start_s = time.perf_counter()
            try:
                yield
            finally:
                self._cpu_ms[name] = self._cpu_ms.get(name, 0.0) + 1000.0 * (time.perf_counter() - start_s)

    def elapsed_ms(self) -> Dict[str, float]:
        """Milliseconds per stage of the current record, in the order the stages first finished (a nested stage
        before the one around it)."""
        elapsed = dict(self._cpu_ms)
        if self._cuda_events:
            import torch

            torch.cuda.synchronize(self.device)
            for name, start, end in self._cuda_events:
                elapsed[name] = elapsed.get(name, 0.0) + float(start.elapsed_time(end))
        return elapsed

    def reset(self) -> None:
        self._cpu_ms.clear()
        self._cuda_events.clear()


def stage(timer: Optional[StageTimer], name: str):
    """``timer.stage(name)``, or a context that times nothing when ``timer`` is None."""
    return contextlib.nullcontext() if timer is None else timer.stage(name)


def round_robin(contenders: Mapping[str, Callable[[int], Measured]], rounds: int, warmup: int = 0
                ) -> Dict[str, List[Measured]]:
    """Runs contenders side by side: ``warmup + rounds`` rounds, each calling every contender (name -> function
    of the round's index, counted from 0 with the warm-up rounds, that times itself and returns its measurement)
    once; round i starts with the (i mod n)-th contender and goes on in order (a, b, c | b, c, a | c, a, b | ...),
    so that drift of the host (load, clock, caches) hits them all alike and none always runs after the same one.
    -> name -> the measurements of the ``rounds`` rounds after the warm-up ones, in round order."""
    if not contenders or rounds < 1 or warmup < 0:
        raise ValueError(f"round_robin needs a contender, rounds >= 1 and warmup >= 0; got {len(contenders)} "
                         f"contenders, rounds={rounds}, warmup={warmup}")
    names = list(contenders)
    measured: Dict[str, List[Measured]] = {name: [] for name in names}
    for index in range(warmup + rounds):
        start = index % len(names)
        for name in names[start:] + names[:start]:
            value = contenders[name](index)
            if index >= warmup:
                measured[name].append(value)
    return measured


def latency_summary(samples: Sequence[float], unit: str = "ms") -> Dict[str, float]:
    """p50 / p90 / p99 / mean / min / max of one stage's latencies (keys suffixed with ``unit``: p50_ms, ...)
    and their count; percentiles interpolate linearly between order statistics (numpy's default)."""
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        raise ValueError("latency_summary needs at least one sample")
    summary = {f"p{q}_{unit}": float(np.percentile(values, q)) for q in PERCENTILES}
    summary.update({f"mean_{unit}": float(values.mean()), f"min_{unit}": float(values.min()),
                    f"max_{unit}": float(values.max()), "count": int(values.size)})
    return summary


def summarize_records(records: Sequence[Mapping[str, float]]) -> Dict[str, Dict[str, float]]:
    """Per-stage ``latency_summary`` over records (each a StageTimer.elapsed_ms() dict); stages in STAGES order
    first, then any others in the order first seen."""
    names: List[str] = [name for name in STAGES if any(name in r for r in records)]
    for record in records:
        names.extend(name for name in record if name not in names)
    return {name: latency_summary([r[name] for r in records if name in r]) for name in names}
