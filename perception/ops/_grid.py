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


@numba.njit(parallel=True, cache=True)
def point_keys_cpu(xyz_source, low, size, counts):
    """(N,) int64 ``cell_key`` of the first 3 columns of ``xyz_source`` (N, C) float32, -1 when dropped."""
    n = xyz_source.shape[0]
    keys = np.empty(n, np.int64)
    for i in numba.prange(n):
        keys[i] = cell_key_cpu(xyz_source[i, 0], xyz_source[i, 1], xyz_source[i, 2], low, size, counts)
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
    """Top ``bits`` (<= 32) bits of a 32-bit multiplicative hash of a non-negative int64 ``key`` (its high 32
    bits folded into the low ones first). Compiled for the CPU here and for the GPU in _cuda_primitives."""
    folded = np.uint64((key ^ (key >> 31)) & 0xFFFFFFFF)
    hashed = (folded * np.uint64(multiplier)) & np.uint64(0xFFFFFFFF)
    return np.int64(hashed >> np.uint64(32 - bits))


hash_bits_cpu = numba.njit(inline="always", cache=True)(hash_bits)


@numba.njit(inline="always", cache=True)
def find_or_insert_cpu(table, key, bits, new_value):
    """The value stored for ``key`` (>= 0) in an open-addressing ``table`` of 2**bits slots: (2 * 2**bits,) int64,
    slot h holding its key at 2h (-1 = empty) and its value at 2h + 1, so that a probe touches one cache line;
    linear probing. When the key is absent: stores ``key -> new_value`` and returns it if ``new_value >= 0`` (the
    caller's next id, or -1 when it has no room left), else returns -1 and leaves the table unchanged."""
    mask = (1 << bits) - 1
    h = hash_bits_cpu(key, SLOT_MULTIPLIER, bits)
    while table[2 * h] != key and table[2 * h] != -1:
        h = (h + 1) & mask
    if table[2 * h] == key:
        return table[2 * h + 1]
    if new_value >= 0:
        table[2 * h] = key
        table[2 * h + 1] = new_value
    return new_value


@numba.njit(cache=True)
def _group_chunk(keys, start, stop, capacity, table, bits, local_group, local_rank, chunk_keys, chunk_sizes):
    """Serial first-appearance grouping of keys[start:stop] (keys < 0 skipped) into at most ``capacity`` groups,
    recorded in ``table`` (2**bits empty slots, see find_or_insert_cpu): local_group[i] = the key's group j in the chunk
    (-1 dropped), local_rank[i] = the point's rank in it; group j has key chunk_keys[start + j] and
    chunk_sizes[start + j] members. Returns the number of groups."""
    num_groups = 0
    previous_key = -1
    group = -1
    for i in range(start, stop):
        key = keys[i]
        if key < 0:
            local_group[i] = -1
            continue
        if key != previous_key:  # scan order often repeats a cell: skip the probe
            group = find_or_insert_cpu(table, key, bits, num_groups if num_groups < capacity else -1)
            if group >= 0 and group == num_groups:
                chunk_keys[start + group] = key
                chunk_sizes[start + group] = 0
                num_groups += 1
            previous_key = key
        local_group[i] = group
        if group >= 0:
            local_rank[i] = chunk_sizes[start + group]
            chunk_sizes[start + group] += 1
    return num_groups


@numba.njit(parallel=True, cache=True)
def group_keys_cpu(keys, max_groups, max_members, num_chunks):
    """Group equal non-negative ``keys`` (N,) int64 in first-appearance order. Keys first seen after
    ``max_groups`` groups exist are dropped; a member beyond ``max_members`` in its group is dropped.

    The points are cut into ``num_chunks`` contiguous chunks grouped in parallel, each with a hash table sized by
    its points (never by the grid). The first chunk's groups are the first global groups and its table becomes
    the global one: the later chunks' groups are merged into it serially in chunk order (one probe per group,
    which keeps the first-appearance order), then every point's group and rank are resolved in parallel. The
    result does not depend on ``num_chunks``.

    Returns point_group (N,) int32 (-1 dropped), point_slot (N,) int32 (rank of the point in its group, input
    order; -1 dropped), group_keys (M,) int64, group_sizes (M,) int32 (members kept).
    """
    n = keys.size
    chunk = max((n + num_chunks - 1) // num_chunks, 1)
    capacity = min(n, max_groups)
    global_bits = table_bits_cpu(max(capacity, 1))
    global_table = np.empty(2 << global_bits, np.int64)
    local_group = np.empty(n, np.int32)
    point_slot = np.empty(n, np.int32)
    chunk_keys = np.empty(n, np.int64)
    chunk_sizes = np.empty(n, np.int32)
    chunk_groups = np.zeros(num_chunks, np.int64)
    chunk_bits = table_bits_cpu(max(chunk, 1))
    # tables allocated by this thread (allocating in the workers costs page faults in per-thread malloc arenas)
    # and emptied by their workers
    chunk_tables = np.empty((max(num_chunks - 1, 0), 2 << chunk_bits), np.int64)
    for c in numba.prange(num_chunks):
        start, stop = min(c * chunk, n), min((c + 1) * chunk, n)
        if c == 0:
            global_table[:] = -1
            chunk_groups[c] = _group_chunk(keys, start, stop, capacity, global_table, global_bits, local_group,
                                           point_slot, chunk_keys, chunk_sizes)
        else:
            chunk_tables[c - 1] = -1
            chunk_groups[c] = _group_chunk(keys, start, stop, stop - start, chunk_tables[c - 1], chunk_bits,
                                           local_group, point_slot, chunk_keys, chunk_sizes)
    # the first chunk's group j is global group j; merge the others: global id and members of earlier chunks
    global_group = np.empty(n, np.int32)  # indexed like chunk_keys
    members_before = np.empty(n, np.int32)
    total_sizes = np.zeros(capacity, np.int64)
    num_groups = chunk_groups[0]
    for j in range(num_groups):
        global_group[j] = j
        members_before[j] = 0
        total_sizes[j] = chunk_sizes[j]
    for c in range(1, num_chunks):
        for j in range(c * chunk, c * chunk + chunk_groups[c]):
            next_group = num_groups if num_groups < capacity else -1
            group = find_or_insert_cpu(global_table, chunk_keys[j], global_bits, next_group)
            global_group[j] = group
            if group < 0:
                continue
            if group == num_groups:
                num_groups += 1
            members_before[j] = total_sizes[group]
            total_sizes[group] += chunk_sizes[j]
    group_keys = np.empty(num_groups, np.int64)
    group_sizes = np.empty(num_groups, np.int32)
    point_group = np.empty(n, np.int32)
    for c in numba.prange(num_chunks):
        start = c * chunk
        for i in range(min(start, n), min(start + chunk, n)):
            group = -1 if local_group[i] < 0 else global_group[start + local_group[i]]
            if group >= 0:
                slot = members_before[start + local_group[i]] + point_slot[i]
                if slot < max_members:
                    point_group[i] = group
                    point_slot[i] = slot
                    if slot == 0:
                        group_keys[group] = keys[i]
                    continue
            point_group[i] = -1
            point_slot[i] = -1
    for g in numba.prange(num_groups):
        group_sizes[g] = min(total_sizes[g], max_members)
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
