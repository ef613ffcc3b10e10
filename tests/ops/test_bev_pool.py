"""BEV pooling: an independent per-point oracle (float64), cumsum-trick reference, Numba kernel, geometry."""
import numpy as np
import pytest
import torch

from perception.ops import BEVPoolGeometry, bev_pool

BEV_RANGE = (-4.0, -3.0, -2.0, 4.0, 3.0, 2.0)
BEV_CELL = (1.0, 0.5, 2.0)
"""8 x 12 cells in (x, y), two z cells collapsed by the pooling."""


def frustum_points(seed: int, shape=(2, 3, 4, 2, 5)) -> np.ndarray:
    """(B, N, D, H, W, 3) points spread beyond BEV_RANGE, some on cell boundaries, some NaN."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(-5, 5, size=shape + (3,)).astype(np.float32) * np.float32([1.0, 0.8, 0.5])
    flat = points.reshape(-1, 3)
    flat[::7, 0] = np.round(flat[::7, 0])  # x on cell boundaries (range bounds included)
    flat[::11, 1] = np.float32(3.0)  # y exactly at the range max: dropped
    flat[5] = np.nan
    return points


def oracle_pool(points: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Per-point loop in float64: the cell of each point by hand, its features summed there."""
    batch, channels = points.shape[0], features.shape[-1]
    out = np.zeros((batch, channels, 12, 8))
    flat_points, flat_features = points.reshape(batch, -1, 3), features.reshape(batch, -1, channels)
    for b in range(batch):
        for p, f in zip(flat_points[b], flat_features[b]):
            q = (p - np.float32(BEV_RANGE[:3])) / np.float32(BEV_CELL)
            if np.all(q >= 0) and np.all(q < [8, 12, 2]):
                out[b, :, int(q[1]), int(q[0])] += f
    return out


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_bev_pool_matches_oracle_and_gradient(backend):
    points = frustum_points(0)
    features = torch.randn(points.shape[:5] + (3,), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    geometry = BEVPoolGeometry.from_points(points, BEV_RANGE, BEV_CELL, backend=backend)
    leaf = features.clone().requires_grad_()
    pooled = bev_pool(leaf, geometry, backend=backend)
    assert pooled.shape == (2, 3, 12, 8)
    np.testing.assert_allclose(pooled.detach().numpy(), oracle_pool(points, features.numpy()), atol=1e-12)
    # d(sum(w * pooled)) / d(features) = w at the point's cell: the oracle applied to one-hot features
    weights = torch.randn(pooled.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (pooled * weights).sum().backward()
    channels_first = leaf.grad.reshape(2, -1, 3)
    flat = points.reshape(2, -1, 3)
    for b in range(2):
        for i in range(0, flat.shape[1], 3):
            q = (flat[b, i] - np.float32(BEV_RANGE[:3])) / np.float32(BEV_CELL)
            inside = np.all(q >= 0) and np.all(q < [8, 12, 2])
            expected = weights[b, :, int(q[1]), int(q[0])] if inside else torch.zeros(3, dtype=torch.float64)
            torch.testing.assert_close(channels_first[b, i], expected)


def test_bev_pool_geometry_identical_across_backends():
    points = frustum_points(1)
    geometries = [BEVPoolGeometry.from_points(points, BEV_RANGE, BEV_CELL, backend=b) for b in ("reference", "numba")]
    for name in ("point_order", "interval_starts", "interval_ends", "interval_cells"):
        assert torch.equal(getattr(geometries[0], name), getattr(geometries[1], name)), name
    assert geometries[0].grid_shape == (12, 8) and geometries[0].frustum_shape == (2, 3, 4, 2, 5)


def test_bev_pool_float32_numba_close_to_cumsum_reference():
    points = frustum_points(2, shape=(1, 6, 8, 4, 6))
    features = torch.randn(points.shape[:5] + (16,), generator=torch.Generator().manual_seed(2))
    geometry = BEVPoolGeometry.from_points(torch.from_numpy(points), BEV_RANGE, BEV_CELL)
    reference = bev_pool(features, geometry, backend="reference")
    torch.testing.assert_close(bev_pool(features, geometry), reference, rtol=1e-5, atol=1e-4)


def test_bev_pool_gradcheck():
    points = frustum_points(3, shape=(1, 2, 3, 2, 2))
    features = torch.randn(points.shape[:5] + (2,), dtype=torch.float64, requires_grad=True)
    geometry = BEVPoolGeometry.from_points(points, BEV_RANGE, BEV_CELL)
    assert torch.autograd.gradcheck(lambda f: bev_pool(f, geometry, backend="numba"), (features,))


def test_bev_pool_all_points_outside():
    points = np.full((1, 1, 2, 2, 2, 3), 100.0, np.float32)
    geometry = BEVPoolGeometry.from_points(points, BEV_RANGE, BEV_CELL)
    assert geometry.num_intervals == 0
    for backend in ("reference", "numba"):
        features = torch.ones(1, 1, 2, 2, 2, 4, requires_grad=True)
        pooled = bev_pool(features, geometry, backend=backend)
        assert torch.equal(pooled, torch.zeros(1, 4, 12, 8))
        pooled.sum().backward()
        assert torch.equal(features.grad, torch.zeros_like(features))


def test_bev_pool_rejects_mismatched_features():
    geometry = BEVPoolGeometry.from_points(frustum_points(0), BEV_RANGE, BEV_CELL)
    with pytest.raises(ValueError, match="as the geometry was built for"):
        bev_pool(torch.zeros(2, 3, 4, 2, 6, 3), geometry)
    with pytest.raises(ValueError, match=r"\(B, N_cams, D, H, W, 3\)"):
        BEVPoolGeometry.from_points(np.zeros((2, 3, 3)), BEV_RANGE, BEV_CELL)
