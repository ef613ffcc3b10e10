"""Numba CUDA kernels of perception.ops.scatter (imported lazily, on the first CUDA call)."""
from __future__ import annotations

import numpy as np
import torch
from numba import cuda

from perception.ops import _cuda_primitives as gpu
from perception.ops._backend import CudaCall, float_dtype

INT64_MAX = np.iinfo(np.int64).max


@cuda.jit
def _init_kernel(result, holder, counts, take_max):
    t = cuda.grid(1)
    if t < result.size:
        g = t // result.shape[1]
        c = t % result.shape[1]
        result[g, c] = -np.inf if take_max else 0.0
        holder[g, c] = INT64_MAX
        if c == 0:
            counts[g] = 0


@cuda.jit
def _accumulate_kernel(features, point_group, take_max, result, counts):
    """Thread (i, c): atomic add (sum) or atomic max of features[i, c] into its group; channel 0 counts."""
    t = cuda.grid(1)
    channels = features.shape[1]
    if t >= features.shape[0] * channels:
        return
    i = t // channels
    c = t % channels
    g = point_group[i]
    if g < 0:
        return
    if take_max:
        cuda.atomic.max(result, (g, c), features[i, c])
    else:
        cuda.atomic.add(result, (g, c), features[i, c])
    if c == 0:
        cuda.atomic.add(counts, g, 1)


@cuda.jit
def _holder_kernel(features, point_group, result, holder):
    """Thread (i, c): the smallest point index whose value equals its group's maximum holds the maximum."""
    t = cuda.grid(1)
    channels = features.shape[1]
    if t >= features.shape[0] * channels:
        return
    i = t // channels
    c = t % channels
    g = point_group[i]
    if g >= 0 and features[i, c] == result[g, c]:
        cuda.atomic.min(holder, (g, c), i)


@cuda.jit
def _mean_kernel(result, counts):
    t = cuda.grid(1)
    if t < result.size:
        g = t // result.shape[1]
        c = t % result.shape[1]
        result[g, c] = result[g, c] / counts[g]


def reduce_cuda(features, keys: torch.Tensor, reduce: str):
    """(voxel_features (M, C), point_group (N,), group_keys (M,), counts (M,), holder (M, C) or None) as torch
    tensors on the features' device (host for numpy features)."""
    call = CudaCall(features)
    dtype = float_dtype(features)
    device_features = call.upload(features, dtype)
    point_group, group_keys, num_groups = gpu.group_keys_gpu(call, call.upload(keys, np.int64), keys.shape[0])
    channels = features.shape[1]
    take_max = reduce == "max"
    result = call.empty((num_groups, channels), dtype)
    holder = call.empty((num_groups, channels), np.int64)
    counts = call.empty(num_groups, np.int64)
    call.launch(_init_kernel, result.size, result, holder, counts, take_max)
    call.launch(_accumulate_kernel, features.shape[0] * channels, device_features, point_group, take_max, result,
                counts)
    if take_max:
        call.launch(_holder_kernel, features.shape[0] * channels, device_features, point_group, result, holder)
    else:
        call.launch(_mean_kernel, result.size, result, counts)
    outputs = (result, point_group, group_keys, counts, holder if take_max else None)
    return tuple(None if o is None else torch.as_tensor(call.download(o)) for o in outputs)
