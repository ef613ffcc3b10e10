"""``BEVGrid``: the bird's-eye-view cells every encoder writes and the heads read (one source of truth)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class BEVGrid:
    """A regular grid over the ego frame.

    point_cloud_range (6,) [x_min, y_min, z_min, x_max, y_max, z_max] m; cell_size (2,) [x, y] m. The grid has
    shape (ny, nx) = ((y_max - y_min) / cell_y, (x_max - x_min) / cell_x), derived here, never configured; row i,
    column j is the cell whose lower corner is (x_min + j * cell_x, y_min + i * cell_y). One pillar spans the
    whole z range.
    """

    point_cloud_range: Tuple[float, float, float, float, float, float]
    cell_size: Tuple[float, float]

    def __post_init__(self) -> None:
        bounds = np.asarray(self.point_cloud_range, dtype=np.float64)
        cell = np.asarray(self.cell_size, dtype=np.float64)
        if bounds.shape != (6,) or cell.shape != (2,):
            raise ValueError(f"BEVGrid: point_cloud_range needs 6 values and cell_size 2, got {bounds.tolist()} "
                             f"and {cell.tolist()}")
        if not (np.isfinite(bounds).all() and np.isfinite(cell).all()):
            raise ValueError(f"BEVGrid: point_cloud_range {bounds.tolist()} and cell_size {cell.tolist()} must be "
                             "finite")
        if np.any(bounds[3:] <= bounds[:3]) or np.any(cell <= 0):
            raise ValueError(f"BEVGrid: range {bounds.tolist()} must have max > min and cells {cell.tolist()} > 0")
        cells = (bounds[3:5] - bounds[:2]) / cell
        if np.any(np.abs(cells - np.round(cells)) > 1e-6):
            raise ValueError(f"BEVGrid: the xy extent {(bounds[3:5] - bounds[:2]).tolist()} m is not a whole number "
                             f"of {cell.tolist()} m cells")
        object.__setattr__(self, "point_cloud_range", tuple(float(v) for v in bounds))
        object.__setattr__(self, "cell_size", tuple(float(v) for v in cell))

    @property
    def shape(self) -> Tuple[int, int]:
        """(ny, nx) cells."""
        x_min, y_min, _, x_max, y_max, _ = self.point_cloud_range
        return (int(round((y_max - y_min) / self.cell_size[1])), int(round((x_max - x_min) / self.cell_size[0])))

    @property
    def pillar_size(self) -> Tuple[float, float, float]:
        """(3,) [x, y, z] m: one cell by the whole z range (the voxel size of the pillar encoders)."""
        return (self.cell_size[0], self.cell_size[1], self.point_cloud_range[5] - self.point_cloud_range[2])

    @classmethod
    def from_config(cls, point_cloud_range: Sequence[float], cell_size: Sequence[float]) -> "BEVGrid":
        return cls(tuple(point_cloud_range), tuple(cell_size))
