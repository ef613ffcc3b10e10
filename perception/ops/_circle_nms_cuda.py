"""Numba CUDA kernels of perception.ops.circle_nms (imported lazily, on the first CUDA call): a suppression
bit matrix in parallel (as torchvision's NMS kernel builds its IoU mask), then one thread walks it greedily."""
from __future__ import annotations

import numpy as np
from numba import cuda

from perception.ops._backend import CudaCall
from perception.ops._circle_distance import within_radius

BITS = 64
_within_radius_gpu = cuda.jit(device=True)(within_radius)


@cuda.jit
def _suppression_kernel(centers, order, radius_sq, words_per_row, mask):
    """Thread (rank, word): bit b of mask[rank, word] is set when the detection of rank word * 64 + b comes after
    ``rank`` and lies within the radius of it."""
    t = cuda.grid(1)
    n = order.size
    if t >= n * words_per_row:
        return
    rank = t // words_per_row
    word = t % words_per_row
    i = order[rank]
    bits = np.uint64(0)
    for b in range(BITS):
        later = word * BITS + b
        if later > rank and later < n:
            if _within_radius_gpu(centers, i, order[later], radius_sq):
                bits |= np.uint64(1) << np.uint64(b)
    mask[rank, word] = bits


@cuda.jit
def _greedy_kernel(order, mask, max_keep, removed, keep, num_kept):
    """One thread: visit ranks in order, keep the unsuppressed ones, OR their rows into ``removed``."""
    if cuda.grid(1) != 0:
        return
    count = 0
    for rank in range(order.size):
        if count == max_keep:
            break
        if (removed[rank // BITS] >> np.uint64(rank % BITS)) & np.uint64(1):
            continue
        keep[count] = order[rank]
        count += 1
        for word in range(removed.size):
            removed[word] |= mask[rank, word]
    num_kept[0] = count


def keep_cuda(centers, order, radius_sq: float, max_keep: int):
    call = CudaCall(centers)
    n = centers.shape[0]
    words_per_row = max(1, -(-n // BITS))
    mask = call.empty((n, words_per_row), np.uint64)
    device_order = call.upload(order, np.int64)
    call.launch(_suppression_kernel, n * words_per_row, call.upload(centers), device_order, radius_sq, words_per_row,
                mask)
    removed = call.upload(np.zeros(words_per_row, np.uint64))
    keep = call.empty(max(n, 1), np.int64)
    num_kept = call.empty(1, np.int64)
    call.launch(_greedy_kernel, 1, device_order, mask, max_keep, removed, keep, num_kept)
    return call.download(keep[: call.scalar(num_kept, 0)])
