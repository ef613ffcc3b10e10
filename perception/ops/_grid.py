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
SHARD_MULTIPLIER = 0x85EBCA6B
"""A second odd constant: shards, independent of the slots."""


def hash_bits(key, multiplier, bits):
    """Top ``bits`` (<= 32) bits of a 32-bit multiplicative hash of a non-negative int64 ``key`` (its high 32
    bits folded into the low ones first). Compiled for the CPU here and for the GPU in _cuda_primitives."""
    folded = np.uint64((key ^ (key >> 31)) & 0xFFFFFFFF)
    hashed = (folded * np.uint64(multiplier)) & np.uint64(0xFFFFFFFF)
    return np.int64(hashed >> np.uint64(32 - bits))


hash_bits_cpu = numba.njit(inline="always", cache=True)(hash_bits)


@numba.njit(inline="always", cache=True)
def find_or_insert_cpu(table_keys, table_values, key, bits, new_value):
    """The value stored for ``key`` in an open-addressing table (2**bits slots, key -1 = empty, linear probing,
    values beside the keys). When the key is absent: stores ``key -> new_value`` and returns it if
    ``new_value >= 0`` (the caller's next id, or -1 when it has no room left), else returns -1 and leaves the
    table unchanged."""
    mask = (1 << bits) - 1
    h = hash_bits_cpu(key, SLOT_MULTIPLIER, bits)
    while table_keys[h] != key and table_keys[h] != -1:
        h = (h + 1) & mask
    if table_keys[h] == key:
        return table_values[h]
    if new_value >= 0:
        table_keys[h] = key
        table_values[h] = new_value
    return new_value


@numba.njit(cache=True)
def _shard(key, num_shards):
    """Shard of ``key`` in [0, num_shards) (multiply-shift range reduction of a second hash)."""
    return (hash_bits_cpu(key, SHARD_MULTIPLIER, 32) * num_shards) >> 32


@numba.njit(parallel=True, cache=True)
def _partition_by_shard(keys, num_shards):
    """Point indices bucketed by the shard of their key, input order kept inside each bucket (keys < 0 go to
    shard 0): returns order (N,) int64 and bounds (num_shards + 1,) with shard s owning
    order[bounds[s]:bounds[s + 1]]. A parallel counting sort over one contiguous chunk of points per thread."""
    n = keys.size
    chunk = (n + num_shards - 1) // num_shards
    counts = np.zeros((num_shards, num_shards), np.int64)
    for c in numba.prange(num_shards):
        for i in range(c * chunk, min((c + 1) * chunk, n)):
            counts[c, 0 if keys[i] < 0 else _shard(keys[i], num_shards)] += 1
    positions = np.empty((num_shards, num_shards), np.int64)
    bounds = np.zeros(num_shards + 1, np.int64)
    total = 0
    for b in range(num_shards):
        bounds[b] = total
        for c in range(num_shards):
            positions[c, b] = total
            total += counts[c, b]
    bounds[num_shards] = total
    order = np.empty(n, np.int64)
    for c in numba.prange(num_shards):
        cursor = positions[c].copy()
        for i in range(c * chunk, min((c + 1) * chunk, n)):
            b = 0 if keys[i] < 0 else _shard(keys[i], num_shards)
            order[cursor[b]] = i
            cursor[b] += 1
    return order, bounds


@numba.njit(cache=True)
def _group_shard(keys, points, capacity, max_members, base, point_group, point_slot, group_first, group_keys,
                 group_sizes):
    """Serial first-appearance grouping of the keys of ``points`` (ascending indices; keys < 0 are dropped) into
    ids ``base + j`` (j < capacity), with an open-addressing table sized by them. Returns the number of groups."""
    bits = table_bits_cpu(max(capacity, 1))
    table_keys = np.full(1 << bits, -1, np.int64)
    table_groups = np.empty(1 << bits, np.int32)
    num_groups = 0
    for i in points:
        key = keys[i]
        point_group[i] = -1
        point_slot[i] = -1
        if key < 0:
            continue
        next_group = base + num_groups if num_groups < capacity else -1
        group = find_or_insert_cpu(table_keys, table_groups, key, bits, next_group)
        if group < 0:
            continue
        if group == next_group:
            num_groups += 1
            group_first[group] = i
            group_keys[group] = key
        slot = group_sizes[group]
        if slot < max_members:
            point_group[i] = group
            point_slot[i] = slot
            group_sizes[group] = slot + 1
    return num_groups


@numba.njit(parallel=True, cache=True)
def group_keys_cpu(keys, max_groups, max_members, num_shards):
    """Group equal non-negative ``keys`` (N,) int64 in first-appearance order. Keys first seen after
    ``max_groups`` groups exist are dropped; a member beyond ``max_members`` in its group is dropped.

    The keys are split into ``num_shards`` shards by hash, each grouped serially by one thread with a hash table
    sized by its keys (never by the grid), and the shards' groups are merged by their first point. The result
    does not depend on ``num_shards``.

    Returns point_group (N,) int32 (-1 dropped), point_slot (N,) int32 (rank of the point in its group, input
    order; -1 dropped), group_keys (M,) int64, group_sizes (M,) int32 (members kept).
    """
    n = keys.size
    point_group = np.empty(n, np.int32)
    point_slot = np.empty(n, np.int32)
    if num_shards == 1:
        order, bounds = np.arange(n), np.array([0, n])
    else:
        order, bounds = _partition_by_shard(keys, num_shards)
    capacities = np.minimum(bounds[1:num_shards + 1] - bounds[:num_shards], max_groups)
    bases = np.zeros(num_shards + 1, np.int64)
    bases[1:] = np.cumsum(capacities)
    group_first = np.empty(bases[num_shards], np.int64)
    shard_group_keys = np.empty(bases[num_shards], np.int64)
    shard_group_sizes = np.zeros(bases[num_shards], np.int32)
    shard_groups = np.zeros(num_shards, np.int64)
    for shard in numba.prange(num_shards):
        shard_groups[shard] = _group_shard(keys, order[bounds[shard]:bounds[shard + 1]], capacities[shard],
                                           max_members, bases[shard], point_group, point_slot, group_first,
                                           shard_group_keys, shard_group_sizes)
    # merge: each shard's groups are already in first-appearance order
    rank = np.full(bases[num_shards], -1, np.int32)
    heads = bases[:num_shards].copy()
    num_groups = 0
    while num_groups < max_groups:
        best = -1
        for shard in range(num_shards):
            if heads[shard] < bases[shard] + shard_groups[shard] and (
                    best < 0 or group_first[heads[shard]] < group_first[heads[best]]):
                best = shard
        if best < 0:
            break
        rank[heads[best]] = num_groups
        heads[best] += 1
        num_groups += 1
    group_keys = np.empty(num_groups, np.int64)
    group_sizes = np.empty(num_groups, np.int32)
    for j in range(rank.size):
        if rank[j] >= 0:
            group_keys[rank[j]] = shard_group_keys[j]
            group_sizes[rank[j]] = shard_group_sizes[j]
    for i in numba.prange(n):
        if point_group[i] >= 0:
            point_group[i] = rank[point_group[i]]
            if point_group[i] < 0:
                point_slot[i] = -1
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
