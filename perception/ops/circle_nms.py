"""Circle NMS of BEV detections (CenterPoint's), reference numpy, Numba CPU, Numba CUDA.

Detections are visited by descending score (ties: lower index first); a visited detection not yet suppressed is
kept and suppresses every later one whose centre lies within ``radius_m`` of it (distance <= radius). CenterPoint
compares the *squared* distance with its ``min_radius`` config value; pass ``radius_m = sqrt(min_radius)`` to
reproduce its configs exactly.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from perception.ops._backend import (as_numpy, check_float, cpu_kernel, is_torch, like, resolve_backend,
                                     whole_number)
from perception.ops._circle_distance import within_radius

Array = Any  # np.ndarray or torch.Tensor


def _score_order(scores: Array) -> Array:
    """Indices by descending score, stable (on the scores' device for tensors)."""
    if is_torch(scores):
        return torch.sort(scores, descending=True, stable=True).indices
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def _keep_reference(centers: np.ndarray, order: np.ndarray, radius_sq: float, max_keep: int) -> np.ndarray:
    suppressed = np.zeros(len(order), bool)
    ordered = centers[order, :2].astype(np.float64)  # the BEV plane: x, y
    keep = []
    for rank in range(len(order)):
        if len(keep) == max_keep:
            break
        if suppressed[rank]:
            continue
        keep.append(order[rank])
        distance_sq = ((ordered[rank + 1:] - ordered[rank]) ** 2).sum(axis=1)
        suppressed[rank + 1:] |= distance_sq <= radius_sq
    return np.asarray(keep, dtype=np.int64)


_within_radius_cpu = cpu_kernel(inline="always")(within_radius)


@cpu_kernel()
def _keep_cpu(centers, order, radius_sq, max_keep):
    n = order.size
    suppressed = np.zeros(n, np.bool_)
    keep = np.empty(min(n, max_keep), np.int64)
    num_kept = 0
    for rank in range(n):
        if suppressed[rank] or num_kept == max_keep:
            continue
        i = order[rank]
        keep[num_kept] = i
        num_kept += 1
        for later in range(rank + 1, n):
            if not suppressed[later] and _within_radius_cpu(centers, i, order[later], radius_sq):
                suppressed[later] = True
    return keep[:num_kept]


def circle_nms(
    centers: Array, scores: Array, radius_m: float, max_keep: Optional[int] = None, backend: Optional[str] = None
) -> Array:
    """Indices (int64) of the detections kept, by descending score.

    centers (N, 2+) [x, y, ...] m in the BEV plane; scores (N,), both float32 or float64; radius_m: suppression
    radius [m]; max_keep: stop after this many kept (None: no limit). Returns the centers' type and device."""
    if centers.ndim != 2 or centers.shape[1] < 2 or scores.shape != (centers.shape[0],):
        raise ValueError(f"circle_nms: centers must be (N, 2) [x, y] and scores (N,); got "
                         f"{tuple(centers.shape)} and {tuple(scores.shape)}")
    check_float("circle_nms", "centers", centers)
    check_float("circle_nms", "scores", scores)
    if not radius_m >= 0:
        raise ValueError(f"circle_nms: radius_m must be >= 0, got {radius_m}")
    if bool(np.isnan(as_numpy(scores)).any()):
        raise ValueError("circle_nms: scores contain NaN")
    max_keep = centers.shape[0] if max_keep is None else min(whole_number("circle_nms", "max_keep", max_keep, 0),
                                                             centers.shape[0])  # Numba types no int past 64 bits
    order = _score_order(scores)
    radius_sq = float(radius_m) ** 2
    chosen = resolve_backend(backend, centers)
    if chosen == "cuda":
        from perception.ops._circle_nms_cuda import keep_cuda

        return keep_cuda(centers, order, radius_sq, max_keep)
    host_centers, host_order = as_numpy(centers), as_numpy(order, np.int64)
    run = _keep_reference if chosen == "reference" else _keep_cpu
    return like(run(host_centers, host_order, radius_sq, max_keep), centers)
