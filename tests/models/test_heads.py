"""CenterPoint head: target assignment, losses and decoding, against hand-worked values."""
import math

import numpy as np
import pytest
import torch

from perception.classes import ATTRIBUTES, DETECTION_CLASSES
from perception.geometry import Boxes3D
from perception.models import BEVGrid, CenterHead
from perception.models.heads import (
    REGRESSION_CHANNELS,
    build_targets,
    draw_gaussian,
    gaussian_focal_loss,
    gaussian_radius,
    local_peaks,
    yaw_axis_loss,
)

GRID = BEVGrid((-8.0, -8.0, -3.0, 8.0, 8.0, 3.0), (0.5, 0.5))  # 32 x 32 cells


def test_grid_shape_is_derived_and_checked():
    assert GRID.shape == (32, 32)
    assert BEVGrid((-51.2, -40.0, -5, 51.2, 40.0, 3), (0.8, 0.8)).shape == (100, 128)
    with pytest.raises(ValueError, match="whole number"):
        BEVGrid((-8.0, -8.0, -3.0, 8.0, 8.0, 3.0), (0.7, 0.5))
    # a pillar: one cell by the whole z range, 3 - (-5) = 8 m high
    assert BEVGrid((-51.2, -40.0, -5, 51.2, 40.0, 3), (0.8, 0.4)).pillar_size == (0.8, 0.4, 8.0)
    with pytest.raises(ValueError, match="must have max > min"):  # pillars of no height
        BEVGrid((-8.0, -8.0, 3.0, 8.0, 8.0, 3.0), (0.5, 0.5))


@pytest.mark.parametrize("bounds, cell", [
    ((-8.0, -8.0, -3.0, 8.0, 8.0, float("nan")), (0.5, 0.5)),  # once built, with a NaN pillar height
    ((-8.0, -8.0, -3.0, 8.0, 8.0, 3.0), (float("nan"), 0.5)),  # once built, shape failing on int(NaN)
    ((-8.0, -8.0, -3.0, float("inf"), 8.0, 3.0), (0.5, 0.5)),
    ((-8.0, -8.0, -3.0, 8.0, 8.0, 3.0), (0.5, float("inf"))),
])
def test_grid_refuses_a_range_or_cell_size_that_is_not_finite(bounds, cell):
    with pytest.raises(ValueError, match=r"BEVGrid: .*(nan|inf).* must be finite"):
        BEVGrid(bounds, cell)


def test_gaussian_radius_matches_centerpoint_by_hand():
    # CenterPoint / mmdet3d's gaussian_radius for a 4 x 4-cell box at min_overlap 0.1, worked by hand:
    # r1 = (8 + sqrt(64 - 4 * 16 * 0.9 / 1.1)) / 2 = 5.7056; r2 = (16 + sqrt(256 - 16 * 14.4)) / 2 = 10.5298;
    # r3 = (-1.6 + sqrt(2.56 + 4 * 0.4 * 14.4)) / 2 = 1.7298; the radius is the smallest.
    assert gaussian_radius(4.0, 4.0, min_overlap=0.1) == pytest.approx(1.72982, abs=1e-4)
    # an 8 x 4-cell box: r3 = (-2.4 + sqrt(5.76 + 4 * 0.4 * 28.8)) / 2 = (-2.4 + 7.2) / 2 = 2.4 (r1 9.13, r2 17.37)
    assert gaussian_radius(8.0, 4.0, min_overlap=0.1) == pytest.approx(2.4, abs=1e-9)
    assert gaussian_radius(8, 8) > gaussian_radius(4, 4)


def _centerpoint_gaussian_radius(height, width, min_overlap=0.5):
    """CenterPoint's gaussian_radius (det3d/core/utils/center_utils.py), transcribed: the reference."""
    a1 = 1
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2 = 4
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def _centerpoint_heatmap(shape, row, col, radius):
    """CenterPoint's draw_heatmap_gaussian on an empty map: gaussian2D((2r+1, 2r+1), sigma=(2r+1)/6), values below
    eps * max zeroed, clipped at the border."""
    diameter = 2 * radius + 1
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    gaussian = np.exp(-(x * x + y * y) / (2 * (diameter / 6) ** 2))
    gaussian[gaussian < np.finfo(gaussian.dtype).eps * gaussian.max()] = 0
    heatmap = np.zeros(shape)
    height, width = shape
    left, right = min(col, radius), min(width - col, radius + 1)
    top, bottom = min(row, radius), min(height - row, radius + 1)
    heatmap[row - top:row + bottom, col - left:col + right] = gaussian[radius - top:radius + bottom,
                                                                       radius - left:radius + right]
    return heatmap


def test_heatmap_radius_is_centerpoints_in_cells_not_metres():
    """A 2 m x 4 m car on 0.5 m cells is 4 x 8 cells. CenterPoint's radius at min_overlap 0.1, by hand:
    r1 = (12 + sqrt(144 - 4 * 32 * 0.9 / 1.1)) / 2 = 9.13; r2 = (24 + sqrt(576 - 16 * 28.8)) / 2 = 17.37;
    r3 = (-2.4 + sqrt(5.76 + 4 * 0.4 * 28.8)) / 2 = (-2.4 + 7.2) / 2 = 2.4 -> int 2: a 5 x 5 gaussian at (row 11,
    col 18). (The same formula on the size in metres, 2 x 4, gives 1.2 -> a 3 x 3 one.)"""
    assert _centerpoint_gaussian_radius(8.0, 4.0, 0.1) == pytest.approx(2.4, abs=1e-9)
    box = Boxes3D(centers=[[1.3, -2.2, 0.7]], sizes=[[2.0, 4.0, 1.5]], yaws=[0.5],
                  labels=[DETECTION_CLASSES.index("car")])
    heatmap = build_targets([box], GRID, min_radius=0).heatmap[0, 0].numpy()
    rows, cols = np.nonzero(heatmap)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (9, 13, 16, 20)
    np.testing.assert_allclose(heatmap, _centerpoint_heatmap(GRID.shape, 11, 18, 2), rtol=1e-6, atol=1e-7)


def test_draw_gaussian_peak_symmetry_and_border():
    heatmap = np.zeros((9, 9), dtype=np.float32)
    draw_gaussian(heatmap, 4, 4, 2)
    assert heatmap[4, 4] == 1.0
    sigma = 5 / 6
    assert heatmap[4, 5] == pytest.approx(math.exp(-1 / (2 * sigma ** 2)), rel=1e-6)
    assert np.allclose(heatmap, heatmap.T) and np.allclose(heatmap, heatmap[::-1])
    assert heatmap[4, 7] == 0 and heatmap[1, 4] == 0  # outside the radius
    corner = np.zeros((5, 5), dtype=np.float32)
    draw_gaussian(corner, 0, 0, 2)  # clipped at the border, no error
    assert corner[0, 0] == 1.0 and corner[2, 2] > 0


def test_targets_of_one_box_by_hand():
    box = Boxes3D(centers=[[1.3, -2.2, 0.7]], sizes=[[2.0, 4.0, 1.5]], yaws=[0.5], velocities=[[3.0, -1.0]],
                  labels=[DETECTION_CLASSES.index("car")], attributes=[ATTRIBUTES.index("vehicle.moving")])
    targets = build_targets([box, Boxes3D.empty()], GRID)
    col, row = (1.3 + 8) / 0.5, (-2.2 + 8) / 0.5  # 18.6, 11.6
    assert targets.mask[0].sum() == 1 and targets.mask[1].sum() == 0
    assert int(targets.indices[0, 0]) == 11 * 32 + 18
    assert targets.heatmap[0, 0, 11, 18] == 1.0 and targets.heatmap[0, 1:].max() == 0
    assert targets.heatmap[1].max() == 0
    expected = [col - 18, row - 11, 0.7, math.log(2.0), math.log(4.0), math.log(1.5), math.sin(0.5), math.cos(0.5),
                3.0, -1.0]
    assert np.allclose(targets.regression[0, 0].numpy(), expected, atol=1e-5)
    assert int(targets.attributes[0, 0]) == ATTRIBUTES.index("vehicle.moving")


def test_targets_ignore_boxes_outside_the_grid_and_cap_objects():
    outside = Boxes3D(centers=[[9.0, 0.0, 0.0], [0.0, -8.1, 0.0]], sizes=[[1, 1, 1]] * 2, yaws=[0, 0])
    assert build_targets([outside], GRID).mask.sum() == 0
    # the range is half-open, [-8, 8) m: a centre exactly on the upper edge (x = 8 would be cell 32 of 32, which
    # the flat index row * 32 + 32 reads as the next row's first cell) is outside; on the lower edge, cell 0
    edges = Boxes3D(centers=[[8.0, 0.0, 0.0], [0.0, 8.0, 0.0], [-8.0, -8.0, 0.0]], sizes=[[1, 1, 1]] * 3,
                    yaws=[0, 0, 0])
    targets = build_targets([edges], GRID)
    assert targets.mask.sum() == 1 and int(targets.indices[0, 0]) == 0
    many = Boxes3D(centers=np.zeros((5, 3)), sizes=np.ones((5, 3)), yaws=np.zeros(5))
    with pytest.raises(ValueError, match="at most 4"):
        build_targets([many], GRID, max_objects=4)


def test_focal_loss_by_hand():
    # one positive cell with p = sigmoid(0) = 0.5 and one negative cell with target 0.5, p = 0.5:
    # positive: -log(0.5) * 0.5^2; negative: -log(0.5) * 0.5^2 * (1 - 0.5)^4; divided by 1 positive.
    logits = torch.zeros(1, 1, 1, 2)
    target = torch.tensor([[[[1.0, 0.5]]]])
    expected = math.log(2) * 0.25 + math.log(2) * 0.25 * 0.5 ** 4
    assert float(gaussian_focal_loss(logits, target)) == pytest.approx(expected, rel=1e-5)


def _perfect_outputs(boxes: Boxes3D) -> dict:
    """Head outputs that encode ``boxes`` exactly: heatmap logits +10 at the centres, -10 elsewhere."""
    targets = build_targets([boxes], GRID, min_radius=0)
    ny, nx = GRID.shape
    heatmap = torch.where(targets.heatmap == 1, torch.tensor(10.0), torch.tensor(-10.0))
    regression = torch.zeros(1, len(REGRESSION_CHANNELS), ny * nx)
    attribute = torch.zeros(1, len(ATTRIBUTES), ny * nx)
    for k in range(int(targets.mask.sum())):
        cell = int(targets.indices[0, k])
        regression[0, :, cell] = targets.regression[0, k]
        if targets.attributes[0, k] >= 0:
            attribute[0, targets.attributes[0, k], cell] = 5.0
    return dict(heatmap=heatmap, regression=regression.reshape(1, -1, ny, nx),
                attribute=attribute.reshape(1, -1, ny, nx))


def test_local_peaks_are_torch_max_pool_peaks_on_ties_borders_and_nan():
    """Against the oracle F.max_pool2d (stride 1, padding 1): the cells at or above the threshold equal to their
    neighbourhood's maximum, by descending value. Random maps, plateaus of equal values, -inf, a NaN (never a
    peak, nor is a cell beside it), maps of one row or column."""
    generator = torch.Generator().manual_seed(0)
    maps = [torch.rand(10, 17, 23, generator=generator), torch.randint(0, 3, (4, 9, 9), generator=generator).float(),
            torch.rand(1, 1, 7, generator=generator), torch.rand(2, 6, 1, generator=generator)]
    special = torch.rand(3, 8, 8, generator=generator)
    special[0, 0, 0], special[1, 4, 4], special[2] = float("-inf"), float("nan"), float("-inf")
    for scores in maps + [special]:
        for threshold in (0.0, 0.5, 1.0):
            window = torch.nn.functional.max_pool2d(scores[None], 3, stride=1, padding=1)[0]
            expected = torch.nonzero(((scores == window) & (scores >= threshold)).reshape(-1)).reshape(-1)
            values, flat = local_peaks(scores, threshold)
            assert sorted(flat.tolist()) == expected.tolist()
            assert torch.equal(values, scores.reshape(-1)[flat]) and bool((values[:-1] >= values[1:]).all())
    assert local_peaks(special, 0.0)[1].tolist().count(1 * 64 + 4 * 8 + 4) == 0


def test_decoding_a_hand_made_heatmap_gives_the_boxes():
    boxes = Boxes3D(
        centers=[[2.3, 1.1, 0.9], [-5.0, 4.4, 1.0], [6.1, -6.6, 0.4]],
        sizes=[[1.9, 4.5, 1.6], [0.6, 0.7, 1.8], [0.4, 0.4, 1.0]],
        yaws=[0.4, -2.5, 1.0],
        velocities=[[5.0, 0.5], [1.0, 1.0], [0.0, 0.0]],
        labels=[DETECTION_CLASSES.index("car"), DETECTION_CLASSES.index("pedestrian"),
                DETECTION_CLASSES.index("traffic_cone")],
        attributes=[ATTRIBUTES.index("vehicle.moving"), ATTRIBUTES.index("pedestrian.standing"), -1],
    )
    head = CenterHead(8, GRID, score_threshold=0.3)
    decoded = head.decode(_perfect_outputs(boxes))[0]
    assert len(decoded) == 3
    order = np.argsort(decoded.labels)  # car (0), pedestrian (5), traffic_cone (8)
    decoded = decoded[order]
    assert np.allclose(decoded.centers, boxes.centers, atol=1e-4)
    assert np.allclose(decoded.sizes, boxes.sizes, atol=1e-4)
    assert np.allclose(decoded.yaws, boxes.yaws, atol=1e-4)
    assert np.allclose(decoded.velocities, boxes.velocities, atol=1e-4)
    assert decoded.labels.tolist() == boxes.labels.tolist()
    assert decoded.attributes.tolist() == boxes.attributes.tolist()
    assert np.allclose(decoded.scores, 1 / (1 + math.exp(-10)))


def test_decoding_applies_threshold_and_circle_nms():
    head = CenterHead(8, GRID, score_threshold=0.3)
    ny, nx = GRID.shape
    heatmap = torch.full((1, 10, ny, nx), -10.0)
    heatmap[0, 0, 10, 10] = 3.0   # car, score 0.953
    heatmap[0, 0, 10, 12] = 2.0   # car 1 m away: inside the car radius (2 m) -> suppressed
    heatmap[0, 5, 10, 14] = 2.0   # pedestrian 2 m further: other class, kept
    heatmap[0, 5, 20, 20] = -2.0  # pedestrian with score 0.12 < 0.3 -> dropped
    outputs = dict(heatmap=heatmap, regression=torch.zeros(1, 10, ny, nx), attribute=torch.zeros(1, 8, ny, nx))
    decoded = head.decode(outputs)[0]
    assert decoded.labels.tolist() == [0, 5]
    assert np.allclose(decoded.centers[:, :2], [[10 * 0.5 - 8, 10 * 0.5 - 8], [14 * 0.5 - 8, 10 * 0.5 - 8]])
    # attributes are chosen among those the class may carry
    assert ATTRIBUTES[decoded.attributes[0]].startswith("vehicle.")
    assert ATTRIBUTES[decoded.attributes[1]].startswith("pedestrian.")


def test_decoding_reads_y_with_the_row_cell_size():
    """Cells of 0.5 m in x and 0.25 m in y over (-8, -4)..(8, 4): 32 x 32. A car's peak at row 20, column 20 with
    offsets (0.6, 0.4) decodes to x = 20.6 * 0.5 - 8 = 2.3, y = 20.4 * 0.25 - 4 = 1.1 (not 20.4 * 0.5 - 4 = 6.2);
    a pedestrian at row 2, column 6 with offsets (0.0, 0.8): x = 6 * 0.5 - 8 = -5.0, y = 2.8 * 0.25 - 4 = -3.3."""
    grid = BEVGrid((-8.0, -4.0, -3.0, 8.0, 4.0, 3.0), (0.5, 0.25))
    assert grid.shape == (32, 32)
    heatmap = torch.full((1, 10, 32, 32), -10.0)
    regression = torch.zeros(1, 10, 32, 32)
    heatmap[0, 0, 20, 20] = 5.0
    regression[0, :2, 20, 20] = torch.tensor([0.6, 0.4])
    heatmap[0, 5, 2, 6] = 4.0
    regression[0, :2, 2, 6] = torch.tensor([0.0, 0.8])
    decoded = CenterHead(8, grid, score_threshold=0.3).decode(
        dict(heatmap=heatmap, regression=regression, attribute=torch.zeros(1, 8, 32, 32)))[0]
    assert decoded.labels.tolist() == [0, 5]
    np.testing.assert_allclose(decoded.centers[:, :2], [[2.3, 1.1], [-5.0, -3.3]], atol=1e-5)


def test_decoding_sorts_by_score_across_classes_and_keeps_the_best_max_boxes():
    """Peaks far apart (no suppression): car 0.50 (logit 0), pedestrian 0.95 (logit 3), traffic_cone 0.82 (1.5),
    barrier 0.73 (1.0). All four come back by descending score (5, 8, 9, 0), whatever the class order; with
    max_boxes 3 the car, the lowest, is the one left out."""
    ny, nx = GRID.shape
    heatmap = torch.full((1, 10, ny, nx), -10.0)
    peaks = {0: ((5, 5), 0.0), 5: ((20, 20), 3.0), 8: ((10, 25), 1.5), 9: ((28, 3), 1.0)}
    for label, ((row, col), logit) in peaks.items():
        heatmap[0, label, row, col] = logit
    outputs = dict(heatmap=heatmap, regression=torch.zeros(1, 10, ny, nx), attribute=torch.zeros(1, 8, ny, nx))
    every = CenterHead(8, GRID, score_threshold=0.3).decode(outputs)[0]
    assert every.labels.tolist() == [5, 8, 9, 0]
    np.testing.assert_allclose(every.scores, 1 / (1 + np.exp(-np.array([3.0, 1.5, 1.0, 0.0]))), rtol=1e-6)
    capped = CenterHead(8, GRID, score_threshold=0.3, max_boxes=3).decode(outputs)[0]
    assert capped.labels.tolist() == [5, 8, 9]
    np.testing.assert_allclose(capped.centers[:, :2], [[20 * 0.5 - 8, 20 * 0.5 - 8], [25 * 0.5 - 8, 10 * 0.5 - 8],
                                                       [3 * 0.5 - 8, 28 * 0.5 - 8]])


@pytest.mark.parametrize("setting, named", [
    (dict(max_boxes=-1), "max_boxes"),  # a slice end: of the four boxes above, the car was left out
    (dict(max_boxes=0), "max_boxes"),  # no box
    (dict(top_k=0), "top_k"),  # no box
    (dict(score_threshold=1.5), "score_threshold"),  # no sigmoid score reaches it: no box
    (dict(score_threshold=-0.1), "score_threshold"),
    (dict(score_threshold=float("nan")), "score_threshold"),
    (dict(nms_radius_m=(2.0, 3.5, 3.2, 1.0, 1.0, -0.5, 0.9, 0.5, 0.5, 1.0)), "nms_radius_m"),  # circle_nms refused it
])
def test_head_refuses_decoding_settings_that_leave_no_box_or_fail_later(setting, named):
    with pytest.raises(ValueError, match=f"CenterHead: .*got {named} "):
        CenterHead(8, GRID, **setting)


def test_head_takes_the_edges_of_its_decoding_settings():
    """top_k and max_boxes 1, scores from 0 to 1 (a sigmoid's range), a radius of 0 (no suppression) all build."""
    for setting in (dict(top_k=1, max_boxes=1), dict(score_threshold=0.0), dict(score_threshold=1.0),
                    dict(nms_radius_m=(0.0,) * len(DETECTION_CLASSES))):
        CenterHead(8, GRID, **setting)


def test_decoding_clamps_the_log_size_at_5_not_lower():
    """Sizes decode as exp(log size), the log clamped at 5 (exp(5) = 148.41 m, against overflow): a log length of
    3.2 is a 24.53 m box (exp(3.2) = 24.5325; a clamp at 3 would give exp(3) = 20.0855 m), a log width of 6.0 is
    clamped to 148.41 m (exp(6) = 403.4 unclamped), a log height of 0.5 is 1.6487 m."""
    ny, nx = GRID.shape
    heatmap = torch.full((1, 10, ny, nx), -10.0)
    heatmap[0, DETECTION_CLASSES.index("bus"), 16, 16] = 5.0
    regression = torch.zeros(1, 10, ny, nx)
    regression[0, 3:6, 16, 16] = torch.tensor([6.0, 3.2, 0.5])  # log width, log length, log height
    decoded = CenterHead(8, GRID, score_threshold=0.3).decode(
        dict(heatmap=heatmap, regression=regression, attribute=torch.zeros(1, 8, ny, nx)))[0]
    assert len(decoded) == 1
    np.testing.assert_allclose(decoded.sizes[0], [148.41316, 24.53253, 1.64872], rtol=1e-5)


def test_circle_nms_uses_each_classes_own_radius():
    """The default per-class radii (nms_radius_m, DETECTION_CLASSES order): car 2.0, truck 3.5, bus 3.2, trailer 1.0,
    construction_vehicle 1.0, pedestrian 0.5, motorcycle 0.9, bicycle 0.5, traffic_cone 0.5, barrier 1.0 m.
    (CenterPoint's nuScenes test_cfg min_radius [4, 12, 10, 1, 0.85, 0.175] compares squared distances per task:
    car 2.0, truck / construction_vehicle 3.46, bus / trailer 3.16, barrier 1.0, motorcycle / bicycle 0.92,
    pedestrian / traffic_cone 0.42 m; the two cases below hold with either.)
    Two pedestrians 1 m apart (2 cells of 0.5 m): 1 m > 0.5 m, both kept (the car's 2 m would drop one). Two trucks
    3 m apart (6 cells): 3 m <= 3.5 m, the weaker dropped (the car's 2 m would keep both)."""
    pedestrian, truck = DETECTION_CLASSES.index("pedestrian"), DETECTION_CLASSES.index("truck")
    head = CenterHead(8, GRID, score_threshold=0.3)
    radius = head.nms_radius_m.tolist()  # the scenario's premises: pedestrian < 1 m < car < 3 m <= truck
    assert radius[pedestrian] < 1.0 < radius[0] < 3.0 <= radius[truck]
    ny, nx = GRID.shape
    heatmap = torch.full((1, 10, ny, nx), -10.0)
    heatmap[0, pedestrian, 5, 10] = 3.0   # (-3.0, -5.5)
    heatmap[0, pedestrian, 5, 12] = 2.0   # (-2.0, -5.5): 1 m away
    heatmap[0, truck, 25, 20] = 3.0       # (2.0, 4.5)
    heatmap[0, truck, 25, 26] = 2.0       # (5.0, 4.5): 3 m away
    decoded = head.decode(dict(heatmap=heatmap, regression=torch.zeros(1, 10, ny, nx),
                               attribute=torch.zeros(1, 8, ny, nx)))[0]
    kept = sorted(zip(decoded.labels.tolist(), decoded.centers[:, 0].tolist()))
    assert kept == [(truck, 2.0), (pedestrian, -3.0), (pedestrian, -2.0)]


def test_decoding_keeps_only_the_top_k_peaks():
    """Three peaks of one class far apart (no suppression), scores sigmoid(3) 0.953, sigmoid(2) 0.881, sigmoid(1)
    0.731: top_k 2 keeps the two best, the third never reaches NMS; the default (300) keeps all three."""
    ny, nx = GRID.shape
    heatmap = torch.full((1, 10, ny, nx), -10.0)
    heatmap[0, 0, 5, 5], heatmap[0, 0, 25, 25], heatmap[0, 0, 5, 25] = 2.0, 3.0, 1.0
    outputs = dict(heatmap=heatmap, regression=torch.zeros(1, 10, ny, nx), attribute=torch.zeros(1, 8, ny, nx))
    assert len(CenterHead(8, GRID, score_threshold=0.3).decode(outputs)[0]) == 3
    top = CenterHead(8, GRID, score_threshold=0.3, top_k=2).decode(outputs)[0]
    assert len(top) == 2
    np.testing.assert_allclose(top.centers[:, :2], [[25 * 0.5 - 8, 25 * 0.5 - 8], [5 * 0.5 - 8, 5 * 0.5 - 8]])
    np.testing.assert_allclose(top.scores, 1 / (1 + np.exp(-np.array([3.0, 2.0]))), rtol=1e-6)


def test_loss_is_small_for_perfect_outputs_and_large_for_wrong_ones():
    boxes = Boxes3D(centers=[[2.3, 1.1, 0.9]], sizes=[[1.9, 4.5, 1.6]], yaws=[0.4], labels=[0], attributes=[4])
    head = CenterHead(8, GRID, min_radius=0)
    perfect = _perfect_outputs(boxes)
    targets = build_targets([boxes], GRID, min_radius=0)
    perfect["heatmap"] = torch.logit(targets.heatmap.clamp(1e-4, 1 - 1e-4))
    good = head.loss(perfect, [boxes])
    assert float(good["loss_regression"]) < 1e-6
    wrong = dict(perfect, regression=perfect["regression"] + 1.0, heatmap=-perfect["heatmap"])
    bad = head.loss(wrong, [boxes])
    assert float(bad["loss_regression"]) > 0.1 and float(bad["loss_heatmap"]) > 10 * float(good["loss_heatmap"])


def test_loss_weights_the_regression_channels_averages_over_objects_and_scores_attribute_zero():
    """Three objects: a moving pedestrian (attribute 0, pedestrian.moving) at row 18, column 20; a moving car
    (attribute 5) at row 9, column 8; a traffic cone (no attribute) at row 3, column 26. The outputs encode them
    exactly but for z + 0.5 m and vx + 1 m/s at every cell, and the pedestrian's attribute logits all 0.
    Regression: per object 1 x 0.5 (z) + 0.2 x 1 (vx, its default weight) = 0.7; over 3 objects 0.7; x 0.25
    = 0.175 (unweighted channels: 0.375; summed, not averaged: 0.525). Attribute: cross-entropy over the two
    objects with one, the pedestrian's ln 8 (8 equal logits) and the car's ln(1 + 7 e^-5) (its logit 5, seven 0),
    mean x 0.2 = 0.21255 (without attribute 0: 0.2 x ln(1 + 7 e^-5) = 0.00922)."""
    pedestrian, car, cone = (DETECTION_CLASSES.index(name) for name in ("pedestrian", "car", "traffic_cone"))
    boxes = Boxes3D(centers=[[2.3, 1.1, 0.9], [-4.0, -3.4, 0.8], [5.1, -6.2, 0.4]],
                    sizes=[[0.6, 0.7, 1.8], [1.9, 4.5, 1.6], [0.4, 0.4, 1.0]], yaws=[0.4, -2.5, 1.0],
                    velocities=[[1.0, 0.5], [5.0, 0.0], [0.0, 0.0]], labels=[pedestrian, car, cone],
                    attributes=[ATTRIBUTES.index("pedestrian.moving"), ATTRIBUTES.index("vehicle.moving"), -1])
    assert ATTRIBUTES.index("pedestrian.moving") == 0
    outputs = _perfect_outputs(boxes)
    shift = torch.zeros(1, len(REGRESSION_CHANNELS), 1, 1)
    shift[0, REGRESSION_CHANNELS.index("z")] = 0.5
    shift[0, REGRESSION_CHANNELS.index("vx")] = 1.0
    outputs["regression"] = outputs["regression"] + shift
    assert outputs["attribute"][0, 0, 18, 20] == 5.0 and outputs["attribute"][0, 5, 9, 8] == 5.0
    outputs["attribute"][0, :, 18, 20] = 0.0
    losses = CenterHead(8, GRID, min_radius=0).loss(outputs, [boxes])
    assert float(losses["loss_regression"]) == pytest.approx(0.175, rel=1e-5)
    expected_attribute = 0.2 * (math.log(8.0) + math.log(1.0 + 7.0 * math.exp(-5.0))) / 2
    assert float(losses["loss_attribute"]) == pytest.approx(expected_attribute, rel=1e-5)


def test_a_batch_without_boxes_has_finite_losses_by_hand():
    """No box in the grid (a frame with nothing around, or none in range): the focal loss is divided by at least
    one peak and the regression and yaw-axis losses by at least one object, not by 0. Heatmap logits 0 (p = 0.5)
    at the 10 x 32 x 32 cells of each of two frames, targets 0: each cell -ln(1 - 0.5) x 0.5^2 x 1^4, a frame
    10240 x 0.25 x ln 2 = 2560 ln 2 = 1774.457, the batch twice that; regression, attribute and yaw-axis losses 0."""
    ny, nx = GRID.shape
    outputs = dict(heatmap=torch.zeros(2, 10, ny, nx), regression=torch.zeros(2, 10, ny, nx),
                   attribute=torch.zeros(2, 8, ny, nx))
    losses = CenterHead(8, GRID, axis_weight=0.5).loss(outputs, [Boxes3D.empty(), Boxes3D.empty()])
    assert float(losses["loss_heatmap"]) == pytest.approx(2 * 2560 * math.log(2.0), rel=1e-5)
    for name in ("loss_regression", "loss_attribute", "loss_yaw_axis"):
        assert float(losses[name]) == 0.0, name


def _sin_cos(*yaws_deg):
    return torch.tensor([[[math.sin(math.radians(y)), math.cos(math.radians(y))] for y in yaws_deg]])


def test_yaw_axis_loss_by_hand():
    mask = torch.tensor([[True, True, True, True, False]])
    # predicted 90 deg (any length), 45 deg; targets 90, -90 (its opposite), 0, 0; the masked pair is ignored
    predicted = torch.tensor([[[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [0.3, 0.3], [0.0, 1.0]]])
    target = _sin_cos(90, -90, 0, 0, 90)
    expected = (0.0 + 0.0 + 1.0 + math.sin(math.radians(45))) / 4
    assert float(yaw_axis_loss(predicted, target, mask)) == pytest.approx(expected, abs=1e-6)


def test_yaw_axis_term_learns_the_axis_that_front_back_ambiguity_hides_from_the_l1():
    """Cars standing across the ego's heading, half facing +90 deg and half -90 deg, seen alike: one shared (sin,
    cos) prediction. The L1 alone settles near (0, 0), whose angle is noise; with the axis term it settles across
    (|sin| ~ 1, cos ~ 0)."""
    target = _sin_cos(90, -90, 90, -90)
    mask = torch.ones(1, 4, dtype=torch.bool)

    def fitted(axis_weight):
        pair = torch.tensor([0.05, 0.3], requires_grad=True)  # starts nearly along the ego's heading
        optimizer = torch.optim.SGD([pair], lr=0.01)
        for _ in range(2000):
            predicted = pair.expand(1, 4, 2)
            loss = (predicted - target).abs().sum(-1).mean() + axis_weight * yaw_axis_loss(predicted, target, mask)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return pair.detach()

    plain, with_axis = fitted(0.0), fitted(1.0)
    assert float(plain.norm()) < 0.1
    assert abs(float(with_axis[1])) < 0.05 and abs(float(with_axis[0])) > 5 * abs(float(with_axis[1]))


def test_head_adds_the_axis_loss_only_with_a_weight():
    boxes = Boxes3D(centers=[[2.3, 1.1, 0.9]], sizes=[[1.9, 4.5, 1.6]], yaws=[0.4], labels=[0], attributes=[4])
    outputs = _perfect_outputs(boxes)
    assert "loss_yaw_axis" not in CenterHead(8, GRID).loss(outputs, [boxes])
    with pytest.raises(ValueError, match="must not be negative.*'axis': -0.25"):
        CenterHead(8, GRID, axis_weight=-0.25)
    reversed_heading = dict(outputs, regression=outputs["regression"] * torch.tensor(
        [1, 1, 1, 1, 1, 1, -1, -1, 1, 1], dtype=torch.float32)[None, :, None, None])
    head = CenterHead(8, GRID, axis_weight=0.5)
    assert float(head.loss(outputs, [boxes])["loss_yaw_axis"]) < 1e-6
    assert float(head.loss(reversed_heading, [boxes])["loss_yaw_axis"]) < 1e-6  # the axis is right
    across = dict(outputs, regression=outputs["regression"].clone())
    across["regression"][:, 6:8] = torch.stack([outputs["regression"][:, 7], -outputs["regression"][:, 6]], 1)
    assert float(head.loss(across, [boxes])["loss_yaw_axis"]) == pytest.approx(0.5, abs=1e-5)
