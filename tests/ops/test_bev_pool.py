"""BEV pooling: an independent per-point oracle (float64), index_add reference, Numba kernel, geometry."""
import numpy as np
import pytest
import torch

from perception.ops import BEVPoolGeometry, bev_pool

BEV_RANGE = (-4.0, -3.0, -2.0, 4.0, 3.0, 2.0)
BEV_CELL = (1.0, 0.5, 2.0)
"""8 x 12 cells in (x, y), two z cells collapsed by the pooling."""


def frustum_points(seed: int, shape=(2, 3, 4, 2, 5)) -> np.ndarray:
    """(B, N, D, H, W, 3) points spread beyond BEV_RANGE, some on cell boundaries, some NaN, two in flat cell 0
    (batch 0, y row 0, x column 0: the one a "dropped point" test of cell < 0 must not confuse with -1)."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(-5, 5, size=shape + (3,)).astype(np.float32) * np.float32([1.0, 0.8, 0.5])
    flat = points.reshape(-1, 3)
    flat[::7, 0] = np.round(flat[::7, 0])  # x on cell boundaries (range bounds included)
    flat[::11, 1] = np.float32(3.0)  # y exactly at the range max: dropped
    flat[5] = np.nan
    flat[1] = BEV_RANGE[:3]  # the range's low corner, bounds inclusive: cell 0
    flat[2] = [-3.5, -2.75, 0.5]  # the middle of cell 0
    return points


def point_cell(point: np.ndarray):
    """(row y, column x) of a point's BEV cell by hand, None outside the range."""
    q = (point - np.float32(BEV_RANGE[:3])) / np.float32(BEV_CELL)
    return (int(q[1]), int(q[0])) if np.all(q >= 0) and np.all(q < [8, 12, 2]) else None


def oracle_pool(points: np.ndarray, depth: np.ndarray, context: np.ndarray, weights: np.ndarray):
    """Per-point loop in float64 over points (B, N, D, H, W, 3), depth (B, N, D, H, W), context (B, N, H, W, C):
    the pooled (B, C, 12, 8) (each point's depth times its pixel's context summed in its cell) and, for the loss
    sum(weights * pooled), the gradients of depth and context worked out by the chain rule."""
    pooled = np.zeros((points.shape[0], context.shape[-1], 12, 8))
    depth_grad, context_grad = np.zeros(depth.shape), np.zeros(context.shape)
    for b, n, d, h, w in np.ndindex(*depth.shape):
        cell = point_cell(points[b, n, d, h, w])
        if cell is not None:
            pooled[b, :, cell[0], cell[1]] += depth[b, n, d, h, w] * context[b, n, h, w]
            depth_grad[b, n, d, h, w] = weights[b, :, cell[0], cell[1]] @ context[b, n, h, w]
            context_grad[b, n, h, w] += depth[b, n, d, h, w] * weights[b, :, cell[0], cell[1]]
    return pooled, depth_grad, context_grad


def random_inputs(points: np.ndarray, channels: int, seed: int, dtype=torch.float64):
    """depth (B, N, D, H, W) a softmax over D, context (B, N, H, W, C) for frustum points (B, N, D, H, W, 3)."""
    generator = torch.Generator().manual_seed(seed)
    depth = torch.randn(points.shape[:5], generator=generator, dtype=dtype).softmax(dim=2)
    batch, cameras, _, height, width = points.shape[:5]
    return depth, torch.randn((batch, cameras, height, width, channels), generator=generator, dtype=dtype)


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_bev_pool_matches_oracle_and_gradient(backend):
    points = frustum_points(0)
    depth, context = random_inputs(points, 3, seed=0)
    geometry = BEVPoolGeometry.from_points(points, BEV_RANGE, BEV_CELL, backend=backend)
    depth_leaf, context_leaf = depth.clone().requires_grad_(), context.clone().requires_grad_()
    pooled = bev_pool(depth_leaf, context_leaf, geometry, backend=backend)
    assert pooled.shape == (2, 3, 12, 8)
    weights = torch.randn(pooled.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (pooled * weights).sum().backward()
    expected = oracle_pool(points, depth.numpy(), context.numpy(), weights.numpy())
    for got, want in zip((pooled.detach(), depth_leaf.grad, context_leaf.grad), expected):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-12)


def test_bev_pool_gradient_of_the_context_alone():
    """A depth that needs no gradient (e.g. frozen) gets none; the context's is the oracle's."""
    points = frustum_points(5)
    depth, context = random_inputs(points, 3, seed=5)
    geometry = BEVPoolGeometry.from_points(points, BEV_RANGE, BEV_CELL)
    context_leaf = context.clone().requires_grad_()
    pooled = bev_pool(depth, context_leaf, geometry)
    weights = torch.randn(pooled.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    (pooled * weights).sum().backward()
    np.testing.assert_allclose(context_leaf.grad.numpy(),
                               oracle_pool(points, depth.numpy(), context.numpy(), weights.numpy())[2], atol=1e-12)


def test_bev_pool_geometry_identical_across_backends():
    points = frustum_points(1)
    geometries = [BEVPoolGeometry.from_points(points, BEV_RANGE, BEV_CELL, backend=b) for b in ("reference", "numba")]
    for name in ("point_order", "interval_starts", "interval_ends", "interval_cells"):
        assert torch.equal(getattr(geometries[0], name), getattr(geometries[1], name)), name
    assert geometries[0].grid_shape == (12, 8) and geometries[0].frustum_shape == (2, 3, 4, 2, 5)


def test_bev_pool_float32_numba_close_to_the_reference():
    points = frustum_points(2, shape=(1, 6, 8, 4, 6))
    depth, context = random_inputs(points, 16, seed=2, dtype=torch.float32)
    geometry = BEVPoolGeometry.from_points(torch.from_numpy(points), BEV_RANGE, BEV_CELL)
    reference = bev_pool(depth, context, geometry, backend="reference")
    torch.testing.assert_close(bev_pool(depth, context, geometry), reference, rtol=1e-5, atol=1e-5)


def test_bev_pool_numba_float32_equals_summing_the_formed_products_in_order():
    """In float32 the kernel forms each product as torch does (no fused multiply-add) and sums a cell's points in
    the geometry's sorted order: the same bits as those products summed one by one in that order."""
    points = frustum_points(4, shape=(1, 4, 6, 3, 5))
    depth, context = random_inputs(points, 8, seed=4, dtype=torch.float32)
    geometry = BEVPoolGeometry.from_points(points, BEV_RANGE, BEV_CELL)
    lifted = (depth[..., None] * context[:, :, None]).reshape(-1, 8).numpy()
    expected = np.zeros((8, 12 * 8), np.float32)
    for start, end, cell in zip(geometry.interval_starts, geometry.interval_ends, geometry.interval_cells):
        total = np.zeros(8, np.float32)
        for point in geometry.point_order[start:end]:
            total += lifted[point]
        expected[:, cell] = total
    np.testing.assert_array_equal(bev_pool(depth, context, geometry).reshape(8, -1).numpy(), expected)


def test_bev_pool_gradcheck():
    points = frustum_points(3, shape=(1, 2, 3, 2, 2))
    depth, context = random_inputs(points, 2, seed=3)
    geometry = BEVPoolGeometry.from_points(points, BEV_RANGE, BEV_CELL)
    assert torch.autograd.gradcheck(lambda d, c: bev_pool(d, c, geometry, backend="numba"),
                                    (depth.requires_grad_(), context.requires_grad_()))


def test_bev_pool_all_points_outside():
    points = np.full((1, 1, 2, 2, 2, 3), 100.0, np.float32)
    geometry = BEVPoolGeometry.from_points(points, BEV_RANGE, BEV_CELL)
    assert geometry.num_intervals == 0
    for backend in ("reference", "numba"):
        depth, context = torch.ones(1, 1, 2, 2, 2, requires_grad=True), torch.ones(1, 1, 2, 2, 4, requires_grad=True)
        pooled = bev_pool(depth, context, geometry, backend=backend)
        assert torch.equal(pooled, torch.zeros(1, 4, 12, 8))
        pooled.sum().backward()
        assert torch.equal(depth.grad, torch.zeros_like(depth)) and torch.equal(context.grad, torch.zeros_like(context))


def test_bev_pool_rejects_mismatched_inputs():
    geometry = BEVPoolGeometry.from_points(frustum_points(0), BEV_RANGE, BEV_CELL)
    depth, context = torch.zeros(2, 3, 4, 2, 5), torch.zeros(2, 3, 2, 5, 3)
    with pytest.raises(ValueError, match="as the geometry was built for"):
        bev_pool(torch.zeros(2, 3, 4, 2, 6), context, geometry)
    with pytest.raises(ValueError, match="as the geometry was built for"):
        bev_pool(depth, torch.zeros(2, 3, 2, 6, 3), geometry)
    with pytest.raises(ValueError, match="share dtype"):
        bev_pool(depth.double(), context, geometry)
    with pytest.raises(ValueError, match=r"\(B, N_cams, D, H, W, 3\)"):
        BEVPoolGeometry.from_points(np.zeros((2, 3, 3)), BEV_RANGE, BEV_CELL)


def test_an_inf_or_huge_product_stays_in_its_own_cell_on_every_backend():
    """Two frustum points (pixels), at x = -3.5 and 3.5 m: cells (y 6, x 0) and (y 6, x 7), depth 1 each. The first
    pixel's context inf (or 1e30), the second's 1: cell x 7 holds 1 x 1 = 1 on every backend (the cumsum trick, the
    reference before, gave NaN there: inf - inf; and 0 for 1e30: (1e30 + 1) - 1e30)."""
    points = np.float32([-3.5, 0, 0, 3.5, 0, 0]).reshape(1, 1, 1, 1, 2, 3)
    geometry = BEVPoolGeometry.from_points(points, (-4, -3, -2, 4, 3, 2), (1, 0.5, 2))
    for first in (float("inf"), 1e30):
        context = torch.tensor([first, 1.0]).reshape(1, 1, 1, 2, 1)
        for backend in ("reference", "numba"):
            pooled = bev_pool(torch.ones(1, 1, 1, 1, 2), context, geometry, backend=backend)[0, 0, 6]
            assert pooled[[0, 7]].tolist() == [torch.tensor(first).item(), 1.0], backend
