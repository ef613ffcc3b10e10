"""CUDA-kernel parity cases: every Numba CUDA kernel against its reference on small random and adversarial
inputs. Run by test_cuda_sim.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (the simulator must be chosen before
numba.cuda is first imported), or directly on a machine with a GPU. Skipped when neither is available."""
import os

import numpy as np
import pytest
import torch

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    from numba import cuda

    if not cuda.is_available():
        pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 or a CUDA GPU", allow_module_level=True)

from perception.ops import (  # noqa: E402
    BEVPoolGeometry,
    bev_pool,
    circle_nms,
    dynamic_voxelize,
    hard_voxelize,
    pillar_scatter,
    points_in_boxes,
    points_in_boxes_mask,
    scatter_points,
)
from perception.ops._backend import CudaCall  # noqa: E402
from perception.ops._cuda_primitives import SCAN_CHUNK, exclusive_scan  # noqa: E402
from tests.ops.inputs import POINT_RANGE, VOXEL_SIZE, adversarial_clouds, random_cloud  # noqa: E402

CLOUDS = adversarial_clouds(np.random.default_rng(0), n=120)


@pytest.mark.parametrize("max_points,max_voxels", [(4, 1000), (2, 9)])
@pytest.mark.parametrize("case", list(CLOUDS))
def test_hard_voxelize_cuda(case, max_points, max_voxels):
    points = CLOUDS[case]
    expected = hard_voxelize(points, VOXEL_SIZE, POINT_RANGE, max_points, max_voxels, backend="reference")
    result = hard_voxelize(points, VOXEL_SIZE, POINT_RANGE, max_points, max_voxels, backend="cuda")
    for got, want in zip(result, expected):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n", [0, 1, SCAN_CHUNK, SCAN_CHUNK + 1, SCAN_CHUNK**2, SCAN_CHUNK**2 + 1,
                               2 * SCAN_CHUNK**2 + 3])
def test_exclusive_scan_cuda_at_each_recursion_depth(n):
    """The scan against numpy's cumsum at the sizes where it recurses once more (a level per factor of SCAN_CHUNK)."""
    values = np.random.default_rng(n).integers(0, 5, n).astype(np.int32)
    call = CudaCall(values)
    out, total = exclusive_scan(call, call.upload(values))
    np.testing.assert_array_equal(out.copy_to_host(), np.cumsum(values) - values)
    assert total.copy_to_host()[0] == values.sum()


def test_hard_voxelize_cuda_beyond_one_scan_level():
    """SCAN_CHUNK**2 + 1 points: grouping's scan recurses twice (SCAN_CHUNK + 1 chunks, then 2), the other cases'
    120 points once."""
    points = random_cloud(np.random.default_rng(11), SCAN_CHUNK**2 + 1)
    expected = hard_voxelize(points, VOXEL_SIZE, POINT_RANGE, 3, 10000, backend="reference")
    result = hard_voxelize(points, VOXEL_SIZE, POINT_RANGE, 3, 10000, backend="cuda")
    for got, want in zip(result, expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case", list(CLOUDS))
def test_dynamic_voxelize_and_scatter_cuda(case):
    points = CLOUDS[case]
    cells = dynamic_voxelize(points, VOXEL_SIZE, POINT_RANGE, backend="cuda")
    np.testing.assert_array_equal(cells, dynamic_voxelize(points, VOXEL_SIZE, POINT_RANGE, backend="reference"))
    features = np.nan_to_num(points, nan=0.0, posinf=9.0, neginf=-9.0).astype(np.float64)
    features[::3] = features[:1]  # ties for max
    for reduce in ("mean", "max"):
        results = {}
        for backend in ("reference", "cuda"):
            leaf = torch.from_numpy(features).requires_grad_()
            voxel_features, voxel_coords = scatter_points(leaf, torch.from_numpy(cells), reduce, backend=backend)
            weights = torch.arange(voxel_features.numel(), dtype=torch.float64).reshape(voxel_features.shape)
            (voxel_features * weights).sum().backward()
            results[backend] = (voxel_features.detach(), voxel_coords, leaf.grad)
        for got, want in zip(results["cuda"], results["reference"]):
            torch.testing.assert_close(got, want)


@pytest.mark.parametrize("unique", [True, False])
def test_pillar_scatter_cuda(unique):
    generator = torch.Generator().manual_seed(0)
    flat = torch.randperm(2 * 4 * 5, generator=generator)[:25] if unique else torch.randint(0, 40, (25,),
                                                                                             generator=generator)
    coords = torch.stack([flat // 20, torch.zeros_like(flat), flat // 5 % 4, flat % 5], 1).int()
    features = torch.randn(25, 3, generator=generator, dtype=torch.float64)
    results = {}
    for backend in ("reference", "cuda"):
        leaf = features.clone().requires_grad_()
        canvas = pillar_scatter(leaf, coords, 2, (4, 5), backend=backend)
        (canvas * torch.arange(canvas.numel(), dtype=torch.float64).reshape(canvas.shape)).sum().backward()
        results[backend] = (canvas.detach(), leaf.grad)
    for got, want in zip(results["cuda"], results["reference"]):
        torch.testing.assert_close(got, want)


def test_bev_pool_cuda():
    rng = np.random.default_rng(1)
    points = (rng.uniform(-5, 5, size=(2, 2, 3, 2, 3, 3)) * [1.0, 0.8, 0.5]).astype(np.float32)
    points.reshape(-1, 3)[::5, 0] = np.round(points.reshape(-1, 3)[::5, 0])  # on cell boundaries
    points.reshape(-1, 3)[3] = np.nan
    points.reshape(-1, 3)[1:3] = [[-4.0, -3.0, -2.0], [-3.5, -2.75, 0.5]]  # flat cell 0 (b 0, y 0, x 0), not dropped
    bev_range, bev_cell = (-4.0, -3.0, -2.0, 4.0, 3.0, 2.0), (1.0, 0.5, 2.0)
    geometries = {b: BEVPoolGeometry.from_points(points, bev_range, bev_cell, backend=b) for b in ("reference", "cuda")}
    for name in ("point_order", "interval_starts", "interval_ends", "interval_cells"):
        assert torch.equal(getattr(geometries["cuda"], name), getattr(geometries["reference"], name)), name
    generator = torch.Generator().manual_seed(2)
    depth = torch.randn(points.shape[:5], generator=generator, dtype=torch.float64).softmax(dim=2)
    context = torch.randn((2, 2, 2, 3, 4), generator=generator, dtype=torch.float64)
    results = {}
    for backend in ("reference", "cuda"):
        depth_leaf, context_leaf = depth.clone().requires_grad_(), context.clone().requires_grad_()
        pooled = bev_pool(depth_leaf, context_leaf, geometries[backend], backend=backend)
        (pooled * torch.arange(pooled.numel(), dtype=torch.float64).reshape(pooled.shape)).sum().backward()
        results[backend] = (pooled.detach(), depth_leaf.grad, context_leaf.grad)
    for got, want in zip(results["cuda"], results["reference"]):
        torch.testing.assert_close(got, want)


def test_points_in_boxes_cuda():
    rng = np.random.default_rng(2)
    boxes = np.column_stack([rng.uniform(-3, 3, (5, 3)), rng.uniform(0.5, 3, (5, 3)), rng.uniform(-3, 3, 5)])
    boxes[0] = [0.0, 0.0, 0.0, 2.0, 4.0, 1.0, 0.0]  # axis-aligned: faces below are exactly representable
    boxes[1] = [1.0, 0.0, 0.0, 2.0, 4.0, 1.0, 0.0]  # box 0 moved 1 m along x: x in [0, 2] lies in both
    points = rng.uniform(-4, 4, (150, 3)).astype(np.float32)
    points[:5] = [[2.0, 1.0, 0.5], [-2.0, -1.0, -0.5], [np.nan, 0, 0], [np.inf, 0, 0], [1.0, 0.5, 0.0]]
    first_box = points_in_boxes(points, boxes, backend="cuda")
    assert first_box[4] == 0 and first_box[0] == 0  # in boxes 0 and 1 (by hand): the first wins
    np.testing.assert_array_equal(first_box, points_in_boxes(points, boxes, backend="reference"))
    np.testing.assert_array_equal(points_in_boxes_mask(points, boxes, backend="cuda"),
                                  points_in_boxes_mask(points, boxes, backend="reference"))
    assert points_in_boxes(points[:0], boxes, backend="cuda").shape == (0,)


@pytest.mark.parametrize("max_keep", [None, 5, 0])
def test_circle_nms_cuda(max_keep):
    rng = np.random.default_rng(3)
    centers = rng.uniform(-6, 6, (140, 3))  # 140 > 2 * 64: three mask words per row; x, y and a height
    centers[10:15] = centers[0]
    scores = np.round(rng.uniform(0, 1, 140), 1)  # ties
    np.testing.assert_array_equal(circle_nms(centers, scores, 1.2, max_keep, backend="cuda"),
                                  circle_nms(centers, scores, 1.2, max_keep, backend="reference"))
    assert circle_nms(centers[:0], scores[:0], 1.0, backend="cuda").shape == (0,)


def test_empty_and_edge_inputs_cuda():
    """The CPU tests' adversarial edges on the CUDA kernels: no pillar, every frustum point outside the grid, no
    box, a zero radius and infinite centres, float32 pooling."""
    canvas = pillar_scatter(torch.zeros(0, 3), torch.zeros(0, 4, dtype=torch.int32), 2, (4, 5), backend="cuda")
    assert torch.equal(canvas, torch.zeros(2, 3, 4, 5))
    outside = BEVPoolGeometry.from_points(np.full((1, 1, 2, 2, 2, 3), 100.0, np.float32),
                                          (-4.0, -3.0, -2.0, 4.0, 3.0, 2.0), (1.0, 0.5, 2.0), backend="cuda")
    assert outside.num_intervals == 0
    pooled = bev_pool(torch.ones(1, 1, 2, 2, 2), torch.ones(1, 1, 2, 2, 4), outside, backend="cuda")
    assert torch.equal(pooled, torch.zeros(1, 4, 12, 8))
    points = np.random.default_rng(4).uniform(-4, 4, (20, 3)).astype(np.float32)
    no_boxes = np.zeros((0, 7))
    np.testing.assert_array_equal(points_in_boxes(points, no_boxes, backend="cuda"), np.full(20, -1))
    assert points_in_boxes_mask(points, no_boxes, backend="cuda").shape == (0, 20)  # (K boxes, N points)
    centers = np.array([[0.0, 0.0], [0.0, 0.0], [1e-9, 0.0], [np.inf, 0.0], [np.inf, 0.0], [-np.inf, 1.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    for radius in (0.0, 1.0):
        np.testing.assert_array_equal(circle_nms(centers, scores, radius, backend="cuda"),
                                      circle_nms(centers, scores, radius, backend="reference"))
    rng = np.random.default_rng(5)
    frustum = (rng.uniform(-5, 5, size=(1, 2, 3, 2, 3, 3)) * [1.0, 0.8, 0.5]).astype(np.float32)
    geometry = BEVPoolGeometry.from_points(frustum, (-4.0, -3.0, -2.0, 4.0, 3.0, 2.0), (1.0, 0.5, 2.0),
                                           backend="cuda")
    depth = torch.from_numpy(rng.uniform(0, 1, frustum.shape[:5]).astype(np.float32))
    context = torch.from_numpy(rng.normal(size=(1, 2, 2, 3, 4)).astype(np.float32))
    torch.testing.assert_close(bev_pool(depth, context, geometry, backend="cuda"),
                               bev_pool(depth, context, geometry, backend="reference"), rtol=1e-5, atol=1e-6)
