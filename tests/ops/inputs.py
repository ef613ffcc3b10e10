"""Random and adversarial inputs shared by the ops tests (CPU and CUDA-simulator runs)."""
from typing import Dict

import numpy as np

VOXEL_SIZE = (0.5, 0.5, 0.25)
POINT_RANGE = (-2.0, -1.5, -1.0, 2.0, 1.5, 1.0)
"""A small grid: 8 x 6 x 8 cells, bounds and cell edges exactly representable in float32."""


def random_cloud(rng: np.random.Generator, n: int, channels: int = 4) -> np.ndarray:
    """(n, channels) float32 points spread a bit beyond POINT_RANGE (some fall outside)."""
    points = rng.normal(size=(n, channels)).astype(np.float32)
    points[:, :3] = rng.uniform(-2.4, 2.4, size=(n, 3)) * np.float32([1.0, 0.8, 0.5])
    return points


def adversarial_clouds(rng: np.random.Generator, n: int = 200) -> Dict[str, np.ndarray]:
    """Named clouds with points exactly on cell boundaries (range bounds included), outside the range, NaN / Inf,
    duplicates, empty input, and clusters that overflow a voxel."""
    low, high = np.float32(POINT_RANGE[:3]), np.float32(POINT_RANGE[3:])
    size = np.float32(VOXEL_SIZE)
    lattice = rng.integers(-1, 10, size=(n, 3)).astype(np.float32) * size + low  # on boundaries, some outside
    on_boundaries = random_cloud(rng, n)
    on_boundaries[:, :3] = lattice
    on_boundaries[: n // 10, :3] = high  # exactly the range max: dropped (max exclusive)
    on_boundaries[n // 10 : n // 5, :3] = low  # exactly the range min: kept, cell 0
    non_finite = random_cloud(rng, n)
    specials = np.array([np.nan, np.inf, -np.inf], dtype=np.float32)
    rows = rng.choice(n, size=n // 3, replace=False)
    non_finite[rows, rng.integers(0, 3, size=rows.size)] = specials[rng.integers(0, 3, size=rows.size)]
    duplicates = np.repeat(random_cloud(rng, n // 10), 10, axis=0)
    rng.shuffle(duplicates)
    crowded = random_cloud(rng, n)
    crowded[:, :3] = rng.uniform(0.01, 0.49, size=(n, 3)).astype(np.float32) * size / np.float32(0.5)
    outside = random_cloud(rng, n)
    outside[:, 0] = rng.uniform(2.0, 50.0, size=n)
    return {
        "on_boundaries": on_boundaries,
        "non_finite": non_finite,
        "duplicates": duplicates,
        "crowded_one_voxel": crowded,
        "all_outside": outside,
        "empty": np.zeros((0, 4), np.float32),
        "random": random_cloud(rng, n),
    }
