"""Numba CUDA building blocks shared by the ops: cell keys, first-appearance grouping by key and an exclusive scan.

Imported only from inside the ops' CUDA paths (this module imports numba.cuda at import time), after
``_backend.cuda_api()`` has checked that a GPU or the simulator is there.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from perception.ops._backend import CudaCall
from perception.ops._grid import cell_key, write_cell
from perception.ops._grouping import SLOT_MULTIPLIER, hash_bits, table_bits

INT32_MAX = np.iinfo(np.int32).max
SCAN_CHUNK = 64
"""Elements each thread scans serially in ``exclusive_scan`` (one level of the recursion per factor of 64)."""

cell_key_gpu = cuda.jit(device=True)(cell_key)
hash_bits_gpu = cuda.jit(device=True)(hash_bits)


@cuda.jit
def point_keys_kernel(xyz_source, low, size, counts, keys):
    """keys[i] = cell_key of xyz_source[i, :3] (float32), -1 when dropped."""
    i = cuda.grid(1)
    if i < keys.size:
        keys[i] = cell_key_gpu(xyz_source[i, 0], xyz_source[i, 1], xyz_source[i, 2], low, size, counts)


@cuda.jit
def _init_table_kernel(table_keys, table_first, table_groups):
    h = cuda.grid(1)
    if h < table_keys.size:
        table_keys[h] = -1
        table_first[h] = INT32_MAX
        table_groups[h] = -1


@cuda.jit
def _insert_kernel(keys, bits, table_keys, table_first, point_table_slot):
    """Insert each key (linear probing, atomic CAS) and keep the smallest point index seen per key."""
    i = cuda.grid(1)
    if i >= keys.size:
        return
    key = keys[i]
    if key < 0:
        point_table_slot[i] = -1
        return
    mask = (1 << bits) - 1
    h = hash_bits_gpu(key, SLOT_MULTIPLIER, bits)
    while True:
        stored = cuda.atomic.cas(table_keys, h, -1, key)
        if stored == -1 or stored == key:
            cuda.atomic.min(table_first, h, i)
            point_table_slot[i] = h
            return
        h = (h + 1) & mask


@cuda.jit
def _mark_first_kernel(point_table_slot, table_first, is_first):
    i = cuda.grid(1)
    if i < is_first.size:
        slot = point_table_slot[i]
        is_first[i] = 1 if (slot >= 0 and table_first[slot] == i) else 0


@cuda.jit
def _name_groups_kernel(keys, point_table_slot, is_first, first_rank, max_groups, table_groups, group_keys):
    """The first point of each key names its group: group = rank of that point among first points."""
    i = cuda.grid(1)
    if i < keys.size and is_first[i] == 1:
        group = first_rank[i]
        if group < max_groups:
            table_groups[point_table_slot[i]] = group
            group_keys[group] = keys[i]


@cuda.jit
def _point_groups_kernel(point_table_slot, table_groups, point_group):
    i = cuda.grid(1)
    if i < point_group.size:
        slot = point_table_slot[i]
        point_group[i] = table_groups[slot] if slot >= 0 else -1


@cuda.jit
def _chunk_scan_kernel(values, out, chunk_sums):
    t = cuda.grid(1)
    start = t * SCAN_CHUNK
    if start >= values.size:
        return
    total = 0
    for j in range(start, min(start + SCAN_CHUNK, values.size)):
        out[j] = total
        total += values[j]
    chunk_sums[t] = total


@cuda.jit
def _add_chunk_offsets_kernel(out, chunk_offsets):
    j = cuda.grid(1)
    if j < out.size:
        out[j] += chunk_offsets[j // SCAN_CHUNK]


def exclusive_scan(call: CudaCall, values):
    """Exclusive prefix sum of a (n,) int32 device array: returns (out (n,) int32, total (1,) int32 on device)."""
    num_chunks = max(1, -(-values.size // SCAN_CHUNK))
    out = call.empty(values.size, np.int32)
    chunk_sums = call.empty(num_chunks, np.int32)
    if values.size == 0:
        fill(call, chunk_sums, 0)
        return out, chunk_sums
    call.launch(_chunk_scan_kernel, num_chunks, values, out, chunk_sums)
    if num_chunks == 1:
        return out, chunk_sums
    chunk_offsets, total = exclusive_scan(call, chunk_sums)
    call.launch(_add_chunk_offsets_kernel, values.size, out, chunk_offsets)
    return out, total


@cuda.jit
def _fill_kernel(flat, value):
    i = cuda.grid(1)
    if i < flat.size:
        flat[i] = value


def fill(call: CudaCall, array, value) -> None:
    """Set every element of a contiguous device array to ``value``."""
    call.launch(_fill_kernel, array.size, array.reshape(array.size), value)


def group_keys_gpu(call: CudaCall, keys, max_groups: int):
    """Group equal non-negative ``keys`` (N,) int64 (device) in first-appearance order, as ``group_keys_cpu`` does
    without the per-group member limit: returns point_group (N,) int32 (-1: key < 0, or its group is beyond
    ``max_groups``), group_keys (M,) int64, M (host int)."""
    n = keys.size
    bits = table_bits(max(n, 1))
    table_keys = call.empty(1 << bits, np.int64)
    table_first = call.empty(1 << bits, np.int32)
    table_groups = call.empty(1 << bits, np.int32)
    call.launch(_init_table_kernel, 1 << bits, table_keys, table_first, table_groups)
    point_table_slot = call.empty(n, np.int64)
    call.launch(_insert_kernel, n, keys, bits, table_keys, table_first, point_table_slot)
    is_first = call.empty(n, np.int32)
    call.launch(_mark_first_kernel, n, point_table_slot, table_first, is_first)
    first_rank, total = exclusive_scan(call, is_first)
    num_groups = min(call.scalar(total, 0), max_groups)
    group_keys = call.empty(num_groups, np.int64)
    call.launch(_name_groups_kernel, n, keys, point_table_slot, is_first, first_rank, max_groups, table_groups,
                group_keys)
    point_group = call.empty(n, np.int32)
    call.launch(_point_groups_kernel, n, point_table_slot, table_groups, point_group)
    return point_group, group_keys, num_groups


write_cell_gpu = cuda.jit(device=True)(write_cell)


@cuda.jit
def decode_keys_kernel(keys, counts, offset, out):
    """out[v] = [0 (batch, when offset is 1), z, y, x] of linear keys[v], -1s for a negative key."""
    v = cuda.grid(1)
    if v < keys.size:
        write_cell_gpu(keys[v], counts, out, v, offset)
