"""circle_nms: CenterPoint's greedy loop re-typed as the oracle, hand-worked cases, backends agree."""
import numpy as np
import pytest
import torch

from perception.ops import circle_nms


def centerpoint_circle_nms(centers: np.ndarray, scores: np.ndarray, thresh: float) -> list:
    """CenterPoint's circle_nms loop (suppress when squared distance <= thresh), ties broken by index."""
    order = np.argsort(-scores, kind="stable")
    suppressed = np.zeros(len(scores), bool)
    keep = []
    for a, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in order[a + 1:]:
            if not suppressed[j] and (centers[i, 0] - centers[j, 0]) ** 2 + (centers[i, 1] - centers[j, 1]) ** 2 \
                    <= thresh:
                suppressed[j] = True
    return keep


@pytest.mark.parametrize("backend", ["reference", "numba"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_circle_nms_matches_centerpoint_loop(backend, seed):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, (300, 3))  # x, y and a height that the BEV distance ignores
    scores = np.round(rng.uniform(0, 1, 300), 2)  # many ties
    centers[10:20] = centers[0]  # duplicates
    radius = 1.5
    expected = centerpoint_circle_nms(centers, scores, radius**2)
    np.testing.assert_array_equal(circle_nms(centers, scores, radius, backend=backend), expected)
    np.testing.assert_array_equal(circle_nms(centers, scores, radius, max_keep=7, backend=backend), expected[:7])


def test_circle_nms_hand_worked():
    centers = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    scores = np.array([0.5, 0.9, 0.4, 0.1])
    for backend in ("reference", "numba"):
        # 1 (0.9) suppresses 0 and 2 (distance exactly 1 <= 1); 3 is 3.16 m away
        np.testing.assert_array_equal(circle_nms(centers, scores, 1.0, backend=backend), [1, 3])
        np.testing.assert_array_equal(circle_nms(centers, scores, 0.99, backend=backend), [1, 0, 2, 3])
        assert circle_nms(centers[:0], scores[:0], 1.0, backend=backend).shape == (0,)
        assert circle_nms(centers, scores, 1.0, max_keep=0, backend=backend).shape == (0,)
    kept = circle_nms(torch.from_numpy(centers), torch.from_numpy(scores), 1.0)
    assert isinstance(kept, torch.Tensor) and kept.tolist() == [1, 3]


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_circle_nms_keeps_everything_under_a_max_keep_beyond_int64(backend):
    """Two detections 3 m apart, radius 1 m: both kept, by score (by hand). max_keep 2**63, 2**64, 1e30 kept them on
    the reference but failed in Numba (TypingError)."""
    centers, scores = np.array([[0.0, 0.0], [3.0, 0.0]]), np.array([0.2, 0.9])
    for max_keep in (2**63, 2**64, 1e30):
        assert circle_nms(centers, scores, 1.0, max_keep=max_keep, backend=backend).tolist() == [1, 0], max_keep


def test_circle_nms_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        circle_nms(np.zeros((2, 2)), np.array([0.1, np.nan]), 1.0)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        circle_nms(np.zeros((2, 2)), np.zeros(3), 1.0)


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_circle_nms_of_torch_tensors_breaks_score_ties_by_index(backend):
    """Tensors are ordered by torch's sort: it must be the stable one (ties: lower index first), as the numpy path
    and CenterPoint's loop (an unstable sort visits 100 scores of ten values in another order)."""
    rng = np.random.default_rng(4)
    centers = rng.uniform(-5, 5, (100, 2))
    scores = np.round(rng.uniform(0, 1, 100), 1)
    expected = centerpoint_circle_nms(centers, scores, 1.0**2)
    kept = circle_nms(torch.from_numpy(centers), torch.from_numpy(scores), 1.0, backend=backend)
    assert isinstance(kept, torch.Tensor)
    np.testing.assert_array_equal(kept.numpy(), expected)


def test_circle_nms_refuses_a_nan_radius():
    """A NaN radius suppresses nothing (every comparison is False): refused as a negative one is."""
    for radius in (float("nan"), -1.0):
        with pytest.raises(ValueError, match="radius_m must be >= 0"):
            circle_nms(np.zeros((2, 2)), np.ones(2), radius)
