"""Pillar scatter: a hand-worked canvas, parity with the torch reference (values and gradients), bad coords."""
import numpy as np
import pytest
import torch

from perception.ops import circle_nms, hard_voxelize, pillar_scatter
from tests.ops.inputs import POINT_RANGE, random_cloud


def random_pillars(seed: int, num_pillars: int, channels: int, batch_size: int, grid_shape, unique: bool = True):
    generator = torch.Generator().manual_seed(seed)
    ny, nx = grid_shape
    flat = torch.randperm(batch_size * ny * nx, generator=generator)[:num_pillars] if unique else torch.randint(
        0, batch_size * ny * nx, (num_pillars,), generator=generator)
    coords = torch.stack([flat // (ny * nx), torch.zeros_like(flat), flat // nx % ny, flat % nx], 1).int()
    features = torch.randn(num_pillars, channels, generator=generator, dtype=torch.float64)
    return features, coords


def test_pillar_scatter_hand_worked():
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    coords = torch.tensor([[0, 0, 1, 2], [1, 0, 0, 0]], dtype=torch.int32)
    for backend in ("reference", "numba"):
        canvas = pillar_scatter(features, coords, 2, (2, 3), backend=backend)
        expected = torch.zeros(2, 2, 2, 3)
        expected[0, :, 1, 2] = torch.tensor([1.0, 2.0])
        expected[1, :, 0, 0] = torch.tensor([3.0, 4.0])
        assert torch.equal(canvas, expected)


@pytest.mark.parametrize("unique", [True, False])
@pytest.mark.parametrize("num_pillars", [0, 1, 40])
def test_pillar_scatter_numba_matches_reference_with_gradients(unique, num_pillars):
    features, coords = random_pillars(0, num_pillars, 5, 2, (4, 6), unique=unique)
    results = {}
    for backend in ("reference", "numba"):
        leaf = features.clone().requires_grad_()
        canvas = pillar_scatter(leaf, coords, 2, (4, 6), backend=backend)
        weights = torch.randn(canvas.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        (canvas * weights).sum().backward()
        results[backend] = (canvas.detach(), leaf.grad)
    torch.testing.assert_close(results["numba"][0], results["reference"][0])
    torch.testing.assert_close(results["numba"][1], results["reference"][1])


def test_pillar_scatter_gradcheck():
    features, coords = random_pillars(2, 6, 3, 1, (3, 4), unique=False)
    leaf = features.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda f: pillar_scatter(f, coords, 1, (3, 4), backend="numba"), (leaf,))


def test_pillar_scatter_of_hard_voxelized_pillars():
    """Pillars from hard_voxelize (one z cell): each pillar's feature lands at its (y, x) cell."""
    points = random_cloud(np.random.default_rng(4), 300)
    voxels, coords, num_points = hard_voxelize(torch.from_numpy(points), (0.5, 0.5, 2.0), POINT_RANGE, 8, 100)
    features = voxels.sum(1) / num_points[:, None]
    canvas = pillar_scatter(features, coords, 1, (6, 8))
    assert torch.equal(canvas[0][:, coords[:, 2].long(), coords[:, 3].long()].t(), features)
    assert int((canvas.abs().sum(1) > 0).sum()) == len(coords)


@pytest.mark.parametrize("bad_row", [[1, 0, 0, 0], [0, 0, 3, 0], [0, 0, 0, -1]])
def test_pillar_scatter_rejects_coords_outside_the_canvas(bad_row):
    coords = torch.tensor([[0, 0, 0, 0], bad_row], dtype=torch.int32)
    with pytest.raises(ValueError, match="coords must lie"):
        pillar_scatter(torch.ones(2, 3), coords, 1, (3, 4))


def test_pillar_scatter_refuses_float_coords():
    """Cast to int64, rows [0, 0, 0.7, 1.6] and [0, 0, -0.5, 0.0] were truncated into cells (0, 1) and (0, 0) and
    passed the bounds check; scatter_points refuses float cells for the same reason."""
    coords = [[0, 0, 0.7, 1.6], [0, 0, -0.5, 0.0]]
    for float_coords, dtype in ((torch.tensor(coords), "torch.float32"), (np.array(coords), "float64")):
        with pytest.raises(ValueError, match=rf"^pillar_scatter: coords must be integer cells; got {dtype}$"):
            pillar_scatter(torch.ones(2, 3), float_coords, 1, (3, 4))


def test_pillar_scatter_and_circle_nms_refuse_limits_that_are_not_whole_numbers():
    features, coords = torch.ones(1, 2), torch.zeros(1, 4, dtype=torch.int32)
    for batch_size, grid_shape, name in ((1.9, (1, 1), "batch_size"), (1, (3.7, 4), "grid_shape"),
                                         (0, (1, 1), "batch_size")):
        with pytest.raises(ValueError, match=f"pillar_scatter: {name} must be a whole number >= 1"):
            pillar_scatter(features, coords, batch_size, grid_shape)
    with pytest.raises(ValueError, match="circle_nms: max_keep must be a whole number >= 0; got 1.5"):
        circle_nms(np.zeros((2, 2)), np.ones(2), 1.0, max_keep=1.5)
    assert circle_nms(np.zeros((2, 2)), np.ones(2), 1.0, max_keep=1.0).tolist() == [0]  # 1.0 is a whole number
