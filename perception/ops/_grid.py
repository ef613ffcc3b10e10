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

from perception.ops._backend import cpu_kernel


def cell_key(x, y, z, low, size, counts):
    """Linear key ``(cz * ny + cy) * nx + cx`` of the cell of point (x, y, z), -1 when outside or non-finite.
    float32 arithmetic for float32 arguments; low, size (3,) float32 and counts (3,) int64 [nx, ny, nz]. Written
    without branches so the CPU loops vectorise; compiled for the CPU here and for the GPU in _cuda_primitives."""
    qx = (x - low[0]) / size[0]
    qy = (y - low[1]) / size[1]
    qz = (z - low[2]) / size[2]
    inside = (qx >= 0) & (qx < counts[0]) & (qy >= 0) & (qy < counts[1]) & (qz >= 0) & (qz < counts[2])
    return (np.int64(qz) * counts[1] + np.int64(qy)) * counts[0] + np.int64(qx) if inside else np.int64(-1)


cell_key_cpu = cpu_kernel(inline="always")(cell_key)


@dataclass(frozen=True)
class Grid3D:
    """A regular grid: ``low`` (3,) float32 [x, y, z] m, ``size`` (3,) float32 cell edge [x, y, z] m and
    ``shape_xyz`` (nx, ny, nz) cells. Linear cell key ``(z * ny + y) * nx + x``."""

    low: np.ndarray
    size: np.ndarray
    shape_xyz: Tuple[int, int, int]

    @classmethod
    def from_range(cls, cell_size: Sequence[float], point_range: Sequence[float], what: str = "voxel") -> "Grid3D":
        """``cell_size`` (3,) [dx, dy, dz] m; ``point_range`` (6,) [x_min, y_min, z_min, x_max, y_max, z_max] m.
        ValueError for a grid with no whole cell, an axis of more than 2**31 cells (cell coordinates are int32) or
        2**62 cells or more (linear keys are int64)."""
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
        if np.any(counts > 2**31):
            raise ValueError(f"{what} grid {counts.tolist()} has an axis of more than 2**31 cells: its cells would not "
                             f"fit the int32 cell coordinates")
        if float(np.prod(counts)) >= 2.0**62:
            raise ValueError(f"{what} grid {counts.tolist()} has too many cells for 64-bit keys")
        return cls(low=bounds[:3].copy(), size=size, shape_xyz=tuple(int(c) for c in counts))

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


@cpu_kernel(parallel=True)
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


write_cell_cpu = cpu_kernel(inline="always")(write_cell)


@cpu_kernel(parallel=True)
def decode_keys_cpu(keys, counts, with_batch):
    """(M, 4) int32 [0, z, y, x] (with_batch) or (M, 3) [z, y, x] cells of linear ``keys`` (M,), -1 rows for
    negative keys."""
    offset = 1 if with_batch else 0
    out = np.empty((keys.size, 3 + offset), np.int32)
    for v in numba.prange(keys.size):
        write_cell_cpu(keys[v], counts, out, v, offset)
    return out
