"""scatter_points: hand-worked sums, reference vs Numba (values, coords, gradients), gradcheck, bad input."""
import numpy as np
import pytest
import torch

from perception.ops import dynamic_voxelize, scatter_points
from tests.ops.inputs import POINT_RANGE, VOXEL_SIZE, adversarial_clouds


def test_scatter_points_hand_worked():
    features = np.array([[1.0, 5.0], [3.0, 1.0], [10.0, 10.0], [2.0, 7.0]], np.float32)
    coords = np.array([[0, 1, 2], [0, 1, 2], [-1, -1, -1], [3, 0, 0]], np.int32)
    for backend in ("reference", "numba"):
        mean, mean_coords = scatter_points(features, coords, "mean", backend=backend)
        maximum, max_coords = scatter_points(features, coords, "max", backend=backend)
        np.testing.assert_array_equal(mean, [[2.0, 3.0], [2.0, 7.0]])
        np.testing.assert_array_equal(maximum, [[3.0, 5.0], [2.0, 7.0]])
        np.testing.assert_array_equal(mean_coords, [[0, 1, 2], [3, 0, 0]])
        np.testing.assert_array_equal(max_coords, mean_coords)


@pytest.mark.parametrize("reduce", ["mean", "max"])
@pytest.mark.parametrize("case", list(adversarial_clouds(np.random.default_rng(0))))
def test_scatter_points_numba_matches_reference(case, reduce):
    points = adversarial_clouds(np.random.default_rng(0))[case]
    cells = dynamic_voxelize(points, VOXEL_SIZE, POINT_RANGE)
    batch = np.arange(len(points), dtype=np.int32)[:, None] % 2
    coords = np.concatenate([batch, cells], axis=1)
    coords[cells[:, 0] < 0] = -1
    features = np.nan_to_num(points, nan=0.0, posinf=9.0, neginf=-9.0)
    features[::3] = features[:1]  # ties for max
    results = {}
    for backend in ("reference", "numba"):
        leaf = torch.from_numpy(features).double().requires_grad_()
        voxel_features, voxel_coords = scatter_points(leaf, torch.from_numpy(coords), reduce, backend=backend)
        weights = torch.arange(voxel_features.numel(), dtype=torch.float64).reshape(voxel_features.shape)
        (voxel_features * weights).sum().backward()
        results[backend] = (voxel_features.detach(), voxel_coords, leaf.grad)
    for got, want in zip(results["numba"], results["reference"]):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert len(results["numba"][1]) == len(np.unique(coords[cells[:, 0] >= 0], axis=0))


@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_scatter_points_gradcheck(reduce):
    rng = np.random.default_rng(5)
    coords = torch.from_numpy(rng.integers(0, 3, size=(12, 3)).astype(np.int32))
    features = torch.from_numpy(rng.normal(size=(12, 2))).requires_grad_()
    assert torch.autograd.gradcheck(lambda f: scatter_points(f, coords, reduce)[0], (features,))


def test_scatter_points_rejects_bad_input():
    with pytest.raises(ValueError, match="reduce"):
        scatter_points(np.zeros((2, 2)), np.zeros((2, 3), np.int32), "sum")
    for coords in (np.zeros((3, 3), np.int32), np.zeros((2, 2), np.int32), np.zeros((2, 5), np.int32)):
        with pytest.raises(ValueError, match=r"\(N, 3\) \[z, y, x\] or \(N, 4\) \[b, z, y, x\]"):
            scatter_points(np.zeros((2, 2)), coords)
    for features in (np.zeros((2, 2), np.float16), torch.zeros((2, 2), dtype=torch.float16)):  # failed in the kernel
        with pytest.raises(ValueError, match="features must be float32 or float64; got"):
            scatter_points(features, np.zeros((2, 3), np.int32))


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_voxel_keys_numba_match_torch(dtype):
    """The Numba keys and radices equal the torch ones: rows with any negative entry are -1, a row of all-negative
    or partly negative coords does not widen a radix, no valid row gives radices of 1; too wide a span fails."""
    from perception.ops.scatter import _mixed_radix_keys

    rng = np.random.default_rng(8)
    cases = [rng.integers(-2, 50, size=(1000, 4)), np.array([[-1, 900, 3], [2, 1, 0], [0, 0, 0]]),
             np.full((5, 3), -1), np.zeros((0, 3))]
    for coords in cases:
        coords = torch.from_numpy(coords.astype(dtype))
        for got, want in zip(_mixed_radix_keys(coords, "numba"), _mixed_radix_keys(coords, "reference")):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert _mixed_radix_keys(torch.tensor([[-1, 900, 3], [2, 1, 0]]), "numba")[1].tolist() == [3, 2, 1]
    for backend in ("numba", "reference"):
        with pytest.raises(ValueError, match="too many for 64-bit keys"):
            _mixed_radix_keys(torch.tensor([[2**31, 2**31, 2**31]]), backend)


def test_scatter_points_refuses_float_cells_and_a_nan_under_max():
    """Float cells were truncated by the reference and the CUDA path (-0.5 -> 0, kept) and dropped by Numba's (a
    negative entry); a NaN under "max" came out NaN, 5.0 or depending on the row order by backend."""
    for backend in ("reference", "numba"):
        with pytest.raises(ValueError, match="voxel_coords must be integer cells; got float64"):
            scatter_points(np.ones((2, 1)), np.array([[0, 0, 1], [-0.5, 0, 0]]), backend=backend)
        features = np.array([[1.0], [np.nan], [5.0]])
        with pytest.raises(ValueError, match="reduce 'max' needs features without NaN"):
            scatter_points(features, np.zeros((3, 3), np.int32), "max", backend=backend)
        mean, _ = scatter_points(features, np.zeros((3, 3), np.int32), "mean", backend=backend)
        assert np.isnan(mean).all()  # a NaN in a mean: NaN on every backend


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_scatter_points_returns_coords_of_the_input_dtype(backend):
    """int32 cells (dynamic_voxelize's) come back int32, int64 ones int64, numpy or torch (the keys are int64)."""
    features = np.array([[1.0], [2.0], [4.0]], np.float32)
    for dtype, torch_dtype in ((np.int32, torch.int32), (np.int64, torch.int64)):
        coords = np.array([[0, 1, 2], [3, 0, 0], [0, 1, 2]], dtype)
        _, out = scatter_points(features, coords, backend=backend)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, [[0, 1, 2], [3, 0, 0]])
        _, out = scatter_points(torch.from_numpy(features), torch.from_numpy(coords), backend=backend)
        assert out.dtype == torch_dtype


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_scatter_points_refuses_coords_whose_keys_pass_int64(backend):
    """[z, y, x] radices (1, 2**32, 2**31 + 1) span 2**63 + 2**32 cells: the row (0, 2**32 - 1, 2**31) has key
    (2**32 - 1) * (2**31 + 1) + 2**31 = 2**63 + 2**32 - 1, past int64 (it would wrap negative and be dropped):
    refused, as any span of 2**62 cells or more. A span just under, (1, 2**31, 2**31 - 1), decodes its rows back."""
    with pytest.raises(ValueError, match="too many for 64-bit keys"):
        scatter_points(np.ones((2, 1)), np.array([[0, 2**32 - 1, 2**31], [0, 0, 0]], np.int64), backend=backend)
    coords = np.array([[0, 2**31 - 1, 2**31 - 2], [0, 0, 5], [0, 2**31 - 1, 2**31 - 2]], np.int64)
    mean, out = scatter_points(np.array([[1.0], [2.0], [4.0]]), coords, backend=backend)
    np.testing.assert_array_equal(out, coords[:2])
    np.testing.assert_array_equal(mean, [[2.5], [2.0]])
