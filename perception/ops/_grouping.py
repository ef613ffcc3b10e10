"""Grouping equal cell keys in first-appearance order (voxelization, scatter): the numpy reference, and the Numba
CPU grouping by open-addressing hash tables sized by the points (never by the grid). The hash arithmetic is
compiled for the GPU in _cuda_primitives.
"""
from __future__ import annotations

from typing import Tuple

import numba
import numpy as np

from perception.ops._backend import cpu_kernel


def group_keys_reference(keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Plain numpy grouping of equal non-negative ``keys`` (N,) in first-appearance order (the reference the
    kernels are tested against): point_group (N,) int64, the point's group (-1 for a negative key), and
    group_keys (M,) the key of each group."""
    kept = np.flatnonzero(keys >= 0)
    unique_keys, first_point, inverse = np.unique(keys[kept], return_index=True, return_inverse=True)
    appearance = np.argsort(first_point, kind="stable")  # unique index -> ordered by first appearance
    group_of_unique = np.empty_like(appearance)
    group_of_unique[appearance] = np.arange(len(appearance))
    point_group = np.full(len(keys), -1, np.int64)
    point_group[kept] = group_of_unique[inverse]
    return point_group, unique_keys[appearance]


def table_bits(num_entries):
    """log2 of the open-addressing table size for ``num_entries`` keys: a power of two >= 2 * num_entries (load
    factor <= 1/2)."""
    bits = 1
    while (1 << bits) < 2 * num_entries:
        bits += 1
    return bits


table_bits_cpu = cpu_kernel()(table_bits)


SLOT_MULTIPLIER = 2654435761
"""Knuth's multiplicative-hash constant: hash-table slots."""


def hash_bits(key, multiplier, bits):
    """Top ``bits`` (<= 32) bits of a 32-bit multiplicative hash of a non-negative int32 / int64 ``key`` (an int64's
    high 32 bits folded into the low ones first). Compiled for the CPU here and for the GPU in _cuda_primitives."""
    folded = np.uint64((key ^ (key >> 31)) & 0xFFFFFFFF)
    hashed = (folded * np.uint64(multiplier)) & np.uint64(0xFFFFFFFF)
    return np.int64(hashed >> np.uint64(32 - bits))


hash_bits_cpu = cpu_kernel(inline="always")(hash_bits)


@cpu_kernel(inline="always")
def find_slot_cpu(table, key, bits):
    """Index of ``key``'s slot in an open-addressing ``table`` of 2**bits slots, or of the empty slot where it
    would go: (2 * 2**bits,) of the keys' dtype, slot h holding its key at 2h (-1 = empty) and its value at 2h + 1
    (one cache line per probe); linear probing. Returns 2h."""
    mask = (1 << bits) - 1
    h = hash_bits_cpu(key, SLOT_MULTIPLIER, bits)
    while table[2 * h] != key and table[2 * h] != -1:
        h = (h + 1) & mask
    return 2 * h


@cpu_kernel()
def _group_chunk(keys, start, stop, capacity, table, bits, chunk_group, chunk_rank, chunk_keys, chunk_sizes):
    """Serial first-appearance grouping of keys[start:stop] (keys < 0 skipped) into at most ``capacity`` groups,
    recorded in ``table`` (2**bits empty slots, see find_slot_cpu): chunk_group[i] = the key's group j in the
    chunk (-1 dropped), chunk_rank[i] = the point's rank in it; group j has key chunk_keys[start + j] and
    chunk_sizes[start + j] members. Returns the number of groups. The body selects instead of branching on
    "new key or not" (unpredictable, and a misprediction costs more than the stores it saves)."""
    num_groups = 0
    for i in range(start, stop):
        key = keys[i]
        if key < 0:
            chunk_group[i] = -1
            continue
        h = find_slot_cpu(table, key, bits)
        stored, value = table[h], table[h + 1]
        room = num_groups < capacity
        group = value if stored == key else (num_groups if room else -1)
        table[h] = key if group >= 0 else stored
        table[h + 1] = group if group >= 0 else value
        if room:  # slot num_groups is unused unless this key is new: writing it either way is harmless
            chunk_keys[start + num_groups] = key
            chunk_sizes[start + num_groups] = 0
        num_groups += np.int64(group == num_groups)
        chunk_group[i] = group
        if group >= 0:
            rank = chunk_sizes[start + group]
            chunk_rank[i] = rank
            chunk_sizes[start + group] = rank + 1
    return num_groups


# Read best whole: its two phases, grouping each chunk and merging the later chunks into the first,
# share a dozen arrays that a split would pass back and forth.
@cpu_kernel(parallel=True)
def group_keys_cpu(keys, max_groups, num_chunks):
    """Group equal non-negative ``keys`` (N,) int32 / int64 in first-appearance order; keys first seen after
    ``max_groups`` groups exist are dropped.

    The points are cut into ``num_chunks`` contiguous chunks of ``chunk`` points, grouped in parallel, each with a
    hash table sized by its points (never by the grid). The first chunk's groups are the first global groups.
    Then, chunk after chunk, each group of a later chunk is looked up in the earlier chunks' tables (read only,
    in parallel, the first table holding the key giving its global group); the groups found nowhere get the next
    global ids, in order, by a parallel prefix count. The result does not depend on ``num_chunks``.

    Returns (chunk_group, chunk_rank, group_of, members_before, group_keys, group_totals, chunk):
    chunk_group (N,) int32 the point's group in its chunk (-1 dropped), chunk_rank (N,) int32 its rank there;
    group_of and members_before (N,) int32, indexed ``c * chunk + j`` for group j of chunk c: its global group
    (-1 dropped) and the members that group has in earlier chunks; group_keys (M,) and group_totals (M,) int32
    (all members) of the M global groups. ``point_group_and_rank`` reads a point's global group and rank.
    """
    n = keys.size
    chunk = max((n + num_chunks - 1) // num_chunks, 1)
    capacity = min(n, max_groups)
    # chunk 0 keeps at most ``capacity`` groups, the others all of theirs
    bits = np.array([table_bits_cpu(min(chunk, capacity) if c == 0 else chunk) for c in range(num_chunks)])
    # tables allocated by this thread (allocating in the workers costs page faults in per-thread malloc arenas)
    # and emptied by their workers
    tables = np.empty((num_chunks, 2 << bits.max()), keys.dtype)
    chunk_group = np.empty(n, np.int32)
    chunk_rank = np.empty(n, np.int32)
    chunk_keys = np.empty(n, keys.dtype)
    chunk_sizes = np.empty(n, np.int32)
    chunk_groups = np.zeros(num_chunks, np.int64)
    for c in numba.prange(num_chunks):
        start, stop = min(c * chunk, n), min((c + 1) * chunk, n)
        tables[c, :2 << bits[c]] = -1
        chunk_groups[c] = _group_chunk(keys, start, stop, capacity if c == 0 else stop - start, tables[c], bits[c],
                                       chunk_group, chunk_rank, chunk_keys, chunk_sizes)
    group_of = np.empty(n, np.int32)  # while chunk c is merged: for its groups, the earlier group holding the key
    members_before = np.empty(n, np.int32)
    group_keys = np.empty(capacity, keys.dtype)
    group_totals = np.empty(capacity, np.int32)
    num_groups = chunk_groups[0]
    for j in numba.prange(num_groups):
        group_of[j] = j
        members_before[j] = 0
        group_keys[j] = chunk_keys[j]
        group_totals[j] = chunk_sizes[j]
    new_in_block = np.empty(num_chunks, np.int64)
    for c in range(1, num_chunks):
        first = c * chunk
        block = (chunk_groups[c] + num_chunks - 1) // num_chunks
        for b in numba.prange(num_chunks):  # blocks of chunk c's groups
            low, high = first + b * block, first + min((b + 1) * block, chunk_groups[c])
            group_of[low:high] = -1
            for s in range(c):
                table = tables[s]
                for j in range(low, high):
                    if group_of[j] < 0:
                        h = find_slot_cpu(table, chunk_keys[j], bits[s])
                        if table[h] == chunk_keys[j]:
                            group_of[j] = s * chunk + table[h + 1]
            new = 0
            for j in range(low, high):
                new += np.int64(group_of[j] < 0)
            new_in_block[b] = new
        next_ids = np.empty(num_chunks, np.int64)
        for b in range(num_chunks):
            next_ids[b] = num_groups
            num_groups += new_in_block[b]
        for b in numba.prange(num_chunks):  # a chunk's keys are distinct: each global group is touched once here
            next_id = next_ids[b]
            for j in range(first + b * block, first + min((b + 1) * block, chunk_groups[c])):
                new = group_of[j] < 0  # selects, not branches: "new or not" is unpredictable
                group = (next_id if next_id < capacity else -1) if new else group_of[group_of[j]]
                next_id += np.int64(new)
                if group >= 0:
                    before = 0 if new else group_totals[group]
                    members_before[j] = before
                    group_totals[group] = before + chunk_sizes[j]
                    group_keys[group] = chunk_keys[j]
                group_of[j] = group
        num_groups = min(num_groups, capacity)
    return (chunk_group, chunk_rank, group_of, members_before, group_keys[:num_groups], group_totals[:num_groups],
            chunk)


@cpu_kernel(inline="always")
def point_group_and_rank(i, start, chunk_group, chunk_rank, group_of, members_before):
    """(global group, rank among all its members in input order) of point i in the chunk starting at point
    ``start`` (group_keys_cpu's arrays); (-1, -1) when its key was dropped."""
    local = chunk_group[i]
    if local < 0 or group_of[start + local] < 0:
        return -1, -1
    return group_of[start + local], members_before[start + local] + chunk_rank[i]


@cpu_kernel(parallel=True)
def group_points_cpu(keys, max_groups, max_members, num_chunks):
    """group_keys_cpu resolved per point, members beyond ``max_members`` of their group dropped: point_group (N,)
    int32 (-1 dropped), point_slot (N,) int32 (rank in the group, input order; -1 dropped), group_keys (M,),
    group_sizes (M,) int32 (members kept)."""
    chunk_group, chunk_rank, group_of, members_before, group_keys, group_totals, chunk = group_keys_cpu(
        keys, max_groups, num_chunks)
    n = keys.size
    point_group = np.empty(n, np.int32)
    point_slot = np.empty(n, np.int32)
    for c in numba.prange(num_chunks):
        start = c * chunk
        for i in range(min(start, n), min(start + chunk, n)):
            group, rank = point_group_and_rank(i, start, chunk_group, chunk_rank, group_of, members_before)
            keep = group >= 0 and rank < max_members
            point_group[i] = group if keep else -1
            point_slot[i] = rank if keep else -1
    group_sizes = np.minimum(group_totals, max_members).astype(np.int32)
    return point_group, point_slot, group_keys, group_sizes
