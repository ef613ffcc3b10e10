"""Regular grids over a metric range, with spconv's exact cell arithmetic (shared by voxelization and BEV pooling).

A value ``v`` falls in cell ``floor((v - low) / size)`` computed in float32 (as spconv's and mmcv's CPU kernels
compute it for float32 points); the cell is kept when ``0 <= cell < count`` with
``count = round((high - low) / size)`` (round half away from zero, float32). So the range's low bound is inclusive,
its high bound exclusive up to float32 rounding, and NaN / Inf coordinates are never kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numba
import numpy as np


def cell_key(x, y, z, low, size, counts):
    """Linear key ``(cz * ny + cy) * nx + cx`` of the cell of point (x, y, z), -1 when outside or non-finite.
    float32 arithmetic for float32 arguments; low, size (3,) float32 and counts (3,) int64 [nx, ny, nz]. Written
    without branches so the CPU loops vectorise; compiled for the CPU here and for the GPU in _cuda_primitives."""
    qx = (x - low[0]) / size[0]
    qy = (y - low[1]) / size[1]
    qz = (z - low[2]) / size[2]
    inside = (qx >= 0) & (qx < counts[0]) & (qy >= 0) & (qy < counts[1]) & (qz >= 0) & (qz < counts[2])
    return (np.int64(qz) * counts[1] + np.int64(qy)) * counts[0] + np.int64(qx) if inside else np.int64(-1)


cell_key_cpu = numba.njit(inline="always", cache=True)(cell_key)


@dataclass(frozen=True)
class Grid3D:
    """A regular grid: ``low`` (3,) float32 [x, y, z] m, ``size`` (3,) float32 cell edge [x, y, z] m and
    ``shape_xyz`` (nx, ny, nz) cells. Linear cell key ``(z * ny + y) * nx + x``."""

    low: np.ndarray
    size: np.ndarray
    shape_xyz: Tuple[int, int, int]

    @classmethod
    def from_range(cls, cell_size: Sequence[float], point_range: Sequence[float], what: str = "voxel") -> "Grid3D":
        """``cell_size`` (3,) [dx, dy, dz] m; ``point_range`` (6,) [x_min, y_min, z_min, x_max, y_max, z_max] m."""
        size = np.asarray(cell_size, dtype=np.float32).reshape(-1)
        bounds = np.asarray(point_range, dtype=np.float32).reshape(-1)
        if size.shape != (3,) or bounds.shape != (6,):
            raise ValueError(
                f"{what} size must have 3 values (x, y, z) and range 6 (x_min, y_min, z_min, x_max, y_max, z_max); "
                f"got {size.tolist()} and {bounds.tolist()}"
            )
        if not (np.all(np.isfinite(size)) and np.all(np.isfinite(bounds)) and np.all(size > 0)):
            raise ValueError(f"{what} size must be finite and > 0 and the range finite; got {size.tolist()}, "
                             f"{bounds.tolist()}")
        extent = (bounds[3:] - bounds[:3]) / size  # float32, as spconv computes it
        counts = np.floor(extent.astype(np.float64) + 0.5)  # std::round: half away from zero (extent > 0 here)
        if np.any(counts < 1):
            raise ValueError(f"{what} range {bounds.tolist()} holds no whole cell of size {size.tolist()}")
        if float(np.prod(counts)) >= 2.0**62:
            raise ValueError(f"{what} grid {counts.tolist()} has too many cells for 64-bit keys")
        return cls(low=bounds[:3].copy(), size=size, shape_xyz=tuple(int(c) for c in counts))

    @property
    def shape_zyx(self) -> Tuple[int, int, int]:
        nx, ny, nz = self.shape_xyz
        return nz, ny, nx

    @property
    def key_dtype(self) -> type:
        """np.int32 when every linear key fits (fewer than 2**31 cells: keys and hash tables take half the
        memory), else np.int64."""
        return np.int32 if int(np.prod(self.shape_xyz, dtype=np.float64)) < 2**31 else np.int64

    @property
    def counts(self) -> np.ndarray:
        """(3,) int64 [nx, ny, nz], the form the kernels take."""
        return np.asarray(self.shape_xyz, dtype=np.int64)

    def keys_reference(self, xyz: np.ndarray) -> np.ndarray:
        """(N,) int64 linear cell key of each row of ``xyz`` (N, 3) float32 [x, y, z] m, -1 outside or non-finite
        (plain numpy, the reference every kernel is tested against)."""
        xyz = np.asarray(xyz, dtype=np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            q = (xyz - self.low[None, :]) / self.size[None, :]  # float32
            inside = np.all((q >= 0) & (q < self.counts[None, :]), axis=1)
        cells = np.where(inside[:, None], q, 0).astype(np.int64)
        nx, ny, _ = self.shape_xyz
        keys = (cells[:, 2] * ny + cells[:, 1]) * nx + cells[:, 0]
        return np.where(inside, keys, -1)

    def decode_reference(self, keys: np.ndarray) -> np.ndarray:
        """(M, 3) int32 [z, y, x] cells of linear ``keys`` (M,)."""
        nx, ny, _ = self.shape_xyz
        keys = np.asarray(keys, dtype=np.int64)
        return np.stack([keys // (nx * ny), (keys // nx) % ny, keys % nx], axis=1).astype(np.int32)


POINT_BLOCK = 256
"""Points the CPU point-cloud kernels take a block at a time, in two loops: one that only moves memory (reads the
block's coordinates, or writes its points), one that computes (keys, destinations). Apart, the memory loop keeps many
cache misses in flight; mixed with divisions and dependent look-ups it keeps few: when the cloud was not cached, the
keys of 303k points took 0.9 instead of 1.4 ms, and the copy into the voxels 0.1-0.3 ms less."""


@numba.njit(parallel=True, cache=True)
def point_keys_cpu(xyz_source, low, size, counts, keys, num_chunks):
    """Fill ``keys`` (N,) (int32 or int64, see Grid3D.key_dtype) with the ``cell_key`` of the first 3 columns of
    ``xyz_source`` (N, C) float32, -1 when dropped; returns ``keys``. One contiguous range of points per chunk, a
    chunk per thread (twice as fast here as a prange over the points), POINT_BLOCK points at a time: their
    coordinates copied into a small buffer, then their keys computed from it."""
    n = xyz_source.shape[0]
    chunk = (n + num_chunks - 1) // num_chunks
    for c in numba.prange(num_chunks):
        block = np.empty((POINT_BLOCK, 3), np.float32)
        stop = min((c + 1) * chunk, n)
        for first in range(c * chunk, stop, POINT_BLOCK):
            last = min(first + POINT_BLOCK, stop)
            for i in range(first, last):
                block[i - first, 0] = xyz_source[i, 0]
                block[i - first, 1] = xyz_source[i, 1]
                block[i - first, 2] = xyz_source[i, 2]
            for i in range(first, last):
                keys[i] = cell_key_cpu(block[i - first, 0], block[i - first, 1], block[i - first, 2], low, size,
                                       counts)
    return keys


def table_bits(num_entries):
    """log2 of the open-addressing table size for ``num_entries`` keys: a power of two >= 2 * num_entries (load
    factor <= 1/2)."""
    bits = 1
    while (1 << bits) < 2 * num_entries:
        bits += 1
    return bits


table_bits_cpu = numba.njit(cache=True)(table_bits)


SLOT_MULTIPLIER = 2654435761
"""Knuth's multiplicative-hash constant: hash-table slots."""


def hash_bits(key, multiplier, bits):
    """Top ``bits`` (<= 32) bits of a 32-bit multiplicative hash of a non-negative int32 / int64 ``key`` (an int64's
    high 32 bits folded into the low ones first). Compiled for the CPU here and for the GPU in _cuda_primitives."""
    folded = np.uint64((key ^ (key >> 31)) & 0xFFFFFFFF)
    hashed = (folded * np.uint64(multiplier)) & np.uint64(0xFFFFFFFF)
    return np.int64(hashed >> np.uint64(32 - bits))


hash_bits_cpu = numba.njit(inline="always", cache=True)(hash_bits)


@numba.njit(inline="always", cache=True)
def find_slot_cpu(table, key, bits):
    """Index of ``key``'s slot in an open-addressing ``table`` of 2**bits slots, or of the empty slot where it
    would go: (2 * 2**bits,) of the keys' dtype, slot h holding its key at 2h (-1 = empty) and its value at 2h + 1
    (one cache line per probe); linear probing. Returns 2h."""
    mask = (1 << bits) - 1
    h = hash_bits_cpu(key, SLOT_MULTIPLIER, bits)
    while table[2 * h] != key and table[2 * h] != -1:
        h = (h + 1) & mask
    return 2 * h


@numba.njit(cache=True)
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


@numba.njit(parallel=True, cache=True)
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


@numba.njit(inline="always", cache=True)
def point_group_and_rank(i, start, chunk_group, chunk_rank, group_of, members_before):
    """(global group, rank among all its members in input order) of point i in the chunk starting at point
    ``start`` (group_keys_cpu's arrays); (-1, -1) when its key was dropped."""
    local = chunk_group[i]
    if local < 0 or group_of[start + local] < 0:
        return -1, -1
    return group_of[start + local], members_before[start + local] + chunk_rank[i]


@numba.njit(parallel=True, cache=True)
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


def write_cell(key, counts, out, row, offset):
    """out[row, offset:offset + 3] = [z, y, x] of linear ``key`` (-1s for a negative key); out[row, 0] = 0 when
    offset is 1 (the batch column). Compiled for the CPU here and for the GPU in _cuda_primitives."""
    if offset == 1:
        out[row, 0] = 0
    if key < 0:
        out[row, offset] = out[row, offset + 1] = out[row, offset + 2] = -1
    else:
        out[row, offset] = key // (counts[0] * counts[1])
        out[row, offset + 1] = (key // counts[0]) % counts[1]
        out[row, offset + 2] = key % counts[0]


write_cell_cpu = numba.njit(inline="always", cache=True)(write_cell)


@numba.njit(parallel=True, cache=True)
def decode_keys_cpu(keys, counts, with_batch):
    """(M, 4) int32 [0, z, y, x] (with_batch) or (M, 3) [z, y, x] cells of linear ``keys`` (M,), -1 rows for
    negative keys."""
    offset = 1 if with_batch else 0
    out = np.empty((keys.size, 3 + offset), np.int32)
    for v in numba.prange(keys.size):
        write_cell_cpu(keys[v], counts, out, v, offset)
    return out
