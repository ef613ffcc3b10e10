"""Hard / dynamic voxelization: identical to spconv's PointToVoxel (CPU), identical across backends."""
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from perception.ops import dynamic_voxelize, hard_voxelize, hard_voxelize_batch
from tests.ops.inputs import POINT_RANGE, VOXEL_SIZE, adversarial_clouds, random_cloud

spconv_utils = pytest.importorskip("spconv.pytorch.utils")

CPU_BACKENDS = ("reference", "numba")
LIMITS = [(5, 1000), (3, 7), (1, 1), (40, 2)]
"""(max_points, max_voxels): generous, both limits hit, a single point, few voxels with room for many points."""


def spconv_voxelize(points: np.ndarray, max_points: int, max_voxels: int):
    generator = spconv_utils.PointToVoxel(list(VOXEL_SIZE), list(POINT_RANGE), points.shape[1], max_voxels,
                                          max_points)
    voxels, coords_zyx, num_points = (t.numpy() for t in generator(torch.from_numpy(points)))
    return voxels, coords_zyx, num_points


def assert_same_as_spconv(result, points, max_points, max_voxels):
    voxels, coords, num_points = result
    expected_voxels, expected_zyx, expected_num = spconv_voxelize(points, max_points, max_voxels)
    np.testing.assert_array_equal(coords[:, 1:], expected_zyx)
    np.testing.assert_array_equal(coords[:, 0], 0)
    np.testing.assert_array_equal(num_points, expected_num)
    np.testing.assert_array_equal(voxels, expected_voxels)
    assert voxels.dtype == np.float32 and coords.dtype == np.int32 and num_points.dtype == np.int32


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("max_points,max_voxels", LIMITS)
@pytest.mark.parametrize("case", list(adversarial_clouds(np.random.default_rng(0))))
def test_hard_voxelize_matches_spconv(backend, case, max_points, max_voxels):
    points = adversarial_clouds(np.random.default_rng(0))[case]
    result = hard_voxelize(points, VOXEL_SIZE, POINT_RANGE, max_points, max_voxels, backend=backend)
    assert_same_as_spconv(result, points, max_points, max_voxels)


@settings(max_examples=40, deadline=None)
@given(
    cells=st.lists(st.tuples(*(st.integers(-2, 10),) * 3), min_size=0, max_size=60),
    offsets=st.sampled_from([0.0, 0.5, 1.0 - 2.0**-20]),
    max_points=st.integers(1, 6),
    max_voxels=st.integers(1, 30),
)
def test_hard_voxelize_matches_spconv_on_lattices(cells, offsets, max_points, max_voxels):
    """Points on (or a hair inside) cell boundaries, many sharing voxels: every backend equals spconv."""
    size = np.float32(VOXEL_SIZE)
    points = np.zeros((len(cells), 4), np.float32)
    points[:, :3] = (np.array(cells, np.float32).reshape(-1, 3) + np.float32(offsets)) * size + np.float32(
        POINT_RANGE[:3])
    points[:, 3] = np.arange(len(cells))
    for backend in CPU_BACKENDS:
        result = hard_voxelize(points, VOXEL_SIZE, POINT_RANGE, max_points, max_voxels, backend=backend)
        assert_same_as_spconv(result, points, max_points, max_voxels)


def test_grid_beyond_32_bit_keys_uses_64_bit_keys_and_agrees_with_the_reference():
    """A 1 mm grid over 80 x 80 x 8 m has 5.1e13 cells: keys no longer fit int32; Numba equals the reference."""
    from perception.ops._grid import Grid3D

    point_range, voxel_size = (-40.0, -40.0, -4.0, 40.0, 40.0, 4.0), (0.001, 0.001, 0.001)
    assert Grid3D.from_range(voxel_size, point_range).key_dtype == np.int64
    assert Grid3D.from_range(VOXEL_SIZE, POINT_RANGE).key_dtype == np.int32
    rng = np.random.default_rng(3)
    points = rng.uniform([-45, -45, -4.5, 0], [45, 45, 4.5, 1], (3000, 4)).astype(np.float32)  # some outside
    points[1000:2000] = points[:1000] + np.float32(1e-5)  # many points share a 1 mm voxel with an earlier one
    expected = hard_voxelize(points, voxel_size, point_range, 3, 1000, backend="reference")
    for got, want in zip(hard_voxelize(points, voxel_size, point_range, 3, 1000, backend="numba"), expected):
        np.testing.assert_array_equal(got, want)
    assert expected[2].max() > 1 and len(expected[2]) == 1000


def test_a_range_of_fractional_cells_rounds_its_cell_count_as_spconv():
    """(-51.2, 51.2) in 0.6 m cells: 102.4 / 0.6 = 170.67 in float32 -> 171 cells in x and y (spconv rounds; the
    last cell reaches 51.4 m), 8 m in one 8 m cell in z. Points in cell 170 (x or y from 50.8 up to 51.4) are kept
    as spconv keeps them; x = 51.5 (cell 171.2) is dropped."""
    from perception.ops._grid import Grid3D

    voxel_size, point_range = (0.6, 0.6, 8.0), (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)
    generator = spconv_utils.PointToVoxel(list(voxel_size), list(point_range), 4, 100, 3)
    assert Grid3D.from_range(voxel_size, point_range).shape_xyz == tuple(generator.grid_size[::-1]) == (171, 171, 1)
    points = np.array([[51.0, 51.0, 0.0, 1], [51.3, 0.1, 0.0, 2], [0.1, 50.9, 0.0, 3], [-51.2, -51.2, -5.0, 4],
                       [51.5, 0.1, 0.0, 5], [0.1, 0.1, 0.0, 6]], np.float32)
    expected_voxels, expected_zyx, expected_num = (t.numpy() for t in generator(torch.from_numpy(points)))
    np.testing.assert_array_equal(expected_zyx, [[0, 170, 170], [0, 85, 170], [0, 170, 85], [0, 0, 0], [0, 85, 85]])
    for backend in CPU_BACKENDS:
        voxels, coords, num_points = hard_voxelize(points, voxel_size, point_range, 3, 100, backend=backend)
        np.testing.assert_array_equal(coords[:, 1:], expected_zyx)
        np.testing.assert_array_equal(num_points, expected_num)
        np.testing.assert_array_equal(voxels, expected_voxels)


def test_hard_voxelize_on_a_cloud_large_enough_for_every_thread_matches_the_reference():
    """Above PARALLEL_MIN_POINTS the Numba kernel runs on all threads (chunked grouping and merge): still the
    reference's output, with both limits hit."""
    from perception.ops._backend import PARALLEL_MIN_POINTS

    rng = np.random.default_rng(4)
    points = rng.uniform(-1.2, 1.2, (PARALLEL_MIN_POINTS + 5000, 4)).astype(np.float32)
    points[::3] = points[::3].round(1)  # many points share voxels with points far before them
    fine_voxels = (0.05, 0.05, 0.05)
    for max_points, max_voxels in [(6, 40000), (2, 5000)]:
        expected = hard_voxelize(points, fine_voxels, POINT_RANGE, max_points, max_voxels, backend="reference")
        got = hard_voxelize(points, fine_voxels, POINT_RANGE, max_points, max_voxels, backend="numba")
        for got_array, want in zip(got, expected):
            np.testing.assert_array_equal(got_array, want)
        assert expected[2].max() == max_points
    assert len(expected[2]) == 5000


def test_hard_voxelize_hand_worked():
    """Three points: two share voxel (z=4, y=3, x=4) (first appearance), one sits at the range max (dropped)."""
    points = np.array([[0.1, 0.1, 0.1, 7], [2.0, 0.0, 0.0, 8], [0.2, 0.3, 0.2, 9], [-2.0, -1.5, -1.0, 1]],
                      np.float32)
    for backend in CPU_BACKENDS:
        voxels, coords, num_points = hard_voxelize(points, VOXEL_SIZE, POINT_RANGE, 2, 10, backend=backend)
        np.testing.assert_array_equal(coords, [[0, 4, 3, 4], [0, 0, 0, 0]])
        np.testing.assert_array_equal(num_points, [2, 1])
        np.testing.assert_array_equal(voxels[0], points[[0, 2]])
        np.testing.assert_array_equal(voxels[1], [points[3], [0, 0, 0, 0]])


def test_hard_voxelize_torch_in_torch_out():
    points = random_cloud(np.random.default_rng(1), 300)
    expected = hard_voxelize(points, VOXEL_SIZE, POINT_RANGE, 4, 50)
    result = hard_voxelize(torch.from_numpy(points), VOXEL_SIZE, POINT_RANGE, 4, 50)
    assert all(isinstance(r, torch.Tensor) for r in result)
    for got, want in zip(result, expected):
        np.testing.assert_array_equal(got.numpy(), want)


def test_hard_voxelize_float64_points_are_converted():
    points = random_cloud(np.random.default_rng(2), 100)
    a = hard_voxelize(points.astype(np.float64), VOXEL_SIZE, POINT_RANGE, 3, 20)
    b = hard_voxelize(points, VOXEL_SIZE, POINT_RANGE, 3, 20)
    for got, want in zip(a, b):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_hard_voxelize_batch_marks_batch_and_limits_per_cloud(backend):
    rng = np.random.default_rng(3)
    clouds = [random_cloud(rng, 150), np.zeros((0, 4), np.float32), random_cloud(rng, 90)]
    voxels, coords, num_points = hard_voxelize_batch(clouds, VOXEL_SIZE, POINT_RANGE, 3, 25, backend=backend)
    start = 0
    for b, cloud in enumerate(clouds):
        v, c, n = hard_voxelize(cloud, VOXEL_SIZE, POINT_RANGE, 3, 25, backend=backend)
        stop = start + len(v)
        np.testing.assert_array_equal(coords[start:stop, 0], b)
        np.testing.assert_array_equal(coords[start:stop, 1:], c[:, 1:])
        np.testing.assert_array_equal(voxels[start:stop], v)
        np.testing.assert_array_equal(num_points[start:stop], n)
        start = stop
    assert start == len(voxels) and len(voxels) <= 50
    torch_result = hard_voxelize_batch([torch.from_numpy(c) for c in clouds], VOXEL_SIZE, POINT_RANGE, 3, 25,
                                       backend=backend)
    np.testing.assert_array_equal(torch_result[1].numpy(), coords)


def test_hard_voxelize_batch_refuses_no_clouds_and_clouds_of_mixed_kinds():
    with pytest.raises(ValueError, match="^hard_voxelize_batch needs at least one cloud$"):  # was an IndexError
        hard_voxelize_batch([], VOXEL_SIZE, POINT_RANGE, 2, 4)
    cloud = np.zeros((2, 4), np.float32)
    for other in (np.zeros((2, 5), np.float32), torch.zeros(2, 4)):
        with pytest.raises(ValueError, match="hard_voxelize_batch: the clouds must all be numpy or all torch"):
            hard_voxelize_batch([cloud, other], VOXEL_SIZE, POINT_RANGE, 2, 4)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(points=np.zeros((4, 2), np.float32)),
         r"hard_voxelize: points must be \(N, C>=3\) with columns x, y, z first; got shape \(4, 2\)"),
        (dict(points=np.zeros((4, 3), np.int32)), "hard_voxelize: points must be float32 or float64; got int32"),
        (dict(voxel_size=(0.5, 0.5)), "3 values"),
        (dict(voxel_size=(0.5, 0.0, 0.5)), "> 0"),
        (dict(point_cloud_range=(0, 0, 0, 0, 1, 1)), "no whole cell"),
        (dict(max_points=0), "max_points"),
        (dict(max_points=2.7), "max_points must be a whole number >= 1; got 2.7"),  # was truncated to 2
        (dict(max_voxels="3"), "max_voxels must be a whole number >= 1; got '3'"),
        (dict(backend="gpu"), "backend"),
    ],
)
def test_hard_voxelize_rejects_bad_input(kwargs, message):
    call = dict(points=np.zeros((4, 3), np.float32), voxel_size=VOXEL_SIZE, point_cloud_range=POINT_RANGE,
                max_points=2, max_voxels=4)
    call.update(kwargs)
    with pytest.raises(ValueError, match=message):
        hard_voxelize(**call)


@pytest.mark.parametrize("case", list(adversarial_clouds(np.random.default_rng(0))))
def test_dynamic_voxelize_matches_hard_voxel_cells(case):
    """Each kept point's cell is its spconv voxel's cell (spconv's point-to-voxel ids); dropped points are -1."""
    points = adversarial_clouds(np.random.default_rng(0))[case]
    generator = spconv_utils.PointToVoxel(list(VOXEL_SIZE), list(POINT_RANGE), 4, len(points) + 1, 1)
    _, coords_zyx, _, point_voxel = (t.numpy() for t in generator.generate_voxel_with_id(torch.from_numpy(points)))
    expected = np.full((len(points), 3), -1, np.int32)
    expected[point_voxel >= 0] = coords_zyx[point_voxel[point_voxel >= 0]]
    for backend in CPU_BACKENDS:
        cells = dynamic_voxelize(points, VOXEL_SIZE, POINT_RANGE, backend=backend)
        assert cells.dtype == np.int32 and cells.shape == (len(points), 3)
        np.testing.assert_array_equal(cells, expected)


@pytest.mark.parametrize("num_chunks", [1, 2, 3, 7])
def test_point_keys_match_the_reference_across_blocks_and_chunks(num_chunks):
    """The keys kernel reads POINT_BLOCK points at a time per chunk: every split of blocks and chunks (partial last
    blocks, chunks shorter than a block, empty chunks) against Grid3D.keys_reference, adversarial points included."""
    from perception.ops._grid import POINT_BLOCK, Grid3D, point_keys_cpu

    grid = Grid3D.from_range(VOXEL_SIZE, POINT_RANGE)
    rng = np.random.default_rng(8)
    adversarial = np.concatenate(list(adversarial_clouds(rng).values()))
    for n in (0, 1, POINT_BLOCK - 1, POINT_BLOCK, POINT_BLOCK + 1, 3 * POINT_BLOCK + 17, len(adversarial)):
        points = adversarial[rng.permutation(len(adversarial))[:n]]
        for key_dtype in (np.int32, np.int64):
            keys = point_keys_cpu(points, grid.low, grid.size, grid.counts, np.empty(n, key_dtype), num_chunks)
            np.testing.assert_array_equal(keys, grid.keys_reference(points[:, :3]))


def _group_keys_by_loop(keys, max_groups, max_members):
    """Plain-Python oracle of group_points_cpu: one pass in input order with a dict."""
    group_of, sizes, group_keys = {}, [], []
    point_group, point_slot = np.full(len(keys), -1, np.int32), np.full(len(keys), -1, np.int32)
    for i, key in enumerate(keys.tolist()):
        if key < 0:
            continue
        if key not in group_of:
            if len(group_keys) == max_groups:
                continue
            group_of[key] = len(group_keys)
            group_keys.append(key)
            sizes.append(0)
        group = group_of[key]
        if sizes[group] < max_members:
            point_group[i], point_slot[i] = group, sizes[group]
            sizes[group] += 1
    return point_group, point_slot, np.array(group_keys, np.int64), np.array(sizes, np.int32)


def test_grouping_reference_matches_a_loop():
    from perception.ops._grouping import group_keys_reference

    rng = np.random.default_rng(7)
    for keys in (rng.integers(-1, 40, size=500), np.arange(0, dtype=np.int64), np.full(7, -1, np.int64),
                 np.array([5, -1, 3, 5, 9, 3, -2, 9, 5])):
        want_group, _, want_keys, _ = _group_keys_by_loop(keys, len(keys) + 1, len(keys) + 1)
        point_group, group_keys = group_keys_reference(keys)
        np.testing.assert_array_equal(point_group, want_group)
        np.testing.assert_array_equal(group_keys, want_keys)


@pytest.mark.parametrize("num_chunks", [1, 2, 3, 7, 600])
def test_grouping_matches_a_loop_for_any_number_of_chunks(num_chunks):
    from perception.ops._grouping import group_points_cpu

    rng = np.random.default_rng(6)
    for keys in (rng.integers(-1, 40, size=500), rng.integers(-1, 400, size=500), np.arange(0, dtype=np.int64),
                 np.full(7, -1, np.int64), np.repeat(rng.integers(0, 5, size=50), 7)):
        for (max_groups, max_members), key_dtype in itertools.product([(1000, 1000), (10, 3), (1, 1)],
                                                                      (np.int32, np.int64)):
            expected = _group_keys_by_loop(keys, max_groups, max_members)
            got = group_points_cpu(keys.astype(key_dtype), max_groups, max_members, num_chunks)
            assert got[2].dtype == key_dtype
            for got_array, want in zip(got, expected):
                np.testing.assert_array_equal(got_array, want)


def test_the_hash_table_holds_twice_the_keys_and_every_slot_lies_in_it():
    """The open-addressing table is the smallest power of two >= 2 n slots (worked by hand: 1 key 2 slots, 2 keys 4,
    3 keys 8, 1000 keys 2048), so probing always finds a free slot (a full table probes for ever); a key's hashed
    slot lies in [0, 2**bits) for every key, the largest int64 too (one outside would write past the table)."""
    from perception.ops._grouping import SLOT_MULTIPLIER, hash_bits_cpu, table_bits_cpu

    assert [table_bits_cpu(n) for n in (1, 2, 3, 4, 5, 1000, 1024, 1025)] == [1, 2, 3, 3, 4, 11, 11, 12]
    keys = np.r_[np.random.default_rng(5).integers(0, 2**62, size=2000), 0, 1, 2**31 - 1, 2**32, 2**63 - 1]
    for bits in (1, 7, 20, 32):
        slots = [hash_bits_cpu(np.int64(key), SLOT_MULTIPLIER, bits) for key in keys]
        assert 0 <= min(slots) and max(slots) < 2**bits


def test_grid_of_2_to_62_cells_or_more_is_refused_just_below_is_not():
    """Linear keys must fit int64 with room: 2**21 x 2**21 x 2**20 one-metre cells are 2**62 cells, refused (by
    Grid3D and so by every op); one z cell less is 2**62 - 2**42 cells, accepted, its last key 2**62 - 2**42 - 1."""
    from perception.ops._grid import Grid3D

    with pytest.raises(ValueError, match="too many cells for 64-bit keys"):
        Grid3D.from_range((1.0, 1.0, 1.0), (0.0, 0.0, 0.0, 2.0**21, 2.0**21, 2.0**20))
    with pytest.raises(ValueError, match="too many cells for 64-bit keys"):
        dynamic_voxelize(np.zeros((1, 3), np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0, 2.0**21, 2.0**21, 2.0**20))
    grid = Grid3D.from_range((1.0, 1.0, 1.0), (0.0, 0.0, 0.0, 2.0**21, 2.0**21, 2.0**20 - 1))
    assert grid.shape_xyz == (2**21, 2**21, 2**20 - 1) and grid.key_dtype == np.int64


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_grid_of_2_to_32_cells_keeps_its_last_cell(backend):
    """65536 x 65536 x 1 one-metre cells: the last cell's key, (0 * 65536 + 65535) * 65536 + 65535 = 2**32 - 1,
    does not fit int32 (it wrapped to -1: the point was dropped). By hand: x, y = 65535.5 m -> cell 65535."""
    voxel_size, point_range = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0, 65536.0, 65536.0, 1.0)
    points = np.float32([[65535.5, 65535.5, 0.5, 1.0], [0.5, 65535.5, 0.5, 2.0], [65535.5, 0.5, 0.5, 3.0]])
    expected = [[0, 65535, 65535], [0, 65535, 0], [0, 0, 65535]]
    np.testing.assert_array_equal(dynamic_voxelize(points, voxel_size, point_range, backend=backend), expected)
    voxels, coords, num_points = hard_voxelize(points, voxel_size, point_range, 2, 10, backend=backend)
    np.testing.assert_array_equal(coords[:, 1:], expected)
    np.testing.assert_array_equal(num_points, [1, 1, 1])
    np.testing.assert_array_equal(voxels[:, 0], points)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_an_axis_of_more_than_2_to_31_cells_is_refused_one_of_2_to_31_keeps_its_last_cell(backend):
    """Cell coordinates are int32. 1 nm cells over 4 m are 4e9 x cells: x = 3 m, cell 3e9, came out as 3e9 - 2**32 =
    -1294967296 (the total, 4e9 cells, was within the 2**62 check); refused, naming the grid. 2**31 cells of
    2**-31 m over [0, 1 m): by hand, x = 1 - 2**-24 m (float32's largest below 1) is in cell 2**31 - 2**7 =
    2147483520, int32's range."""
    point = np.float32([[3.0, 0.5, 0.5]])
    message = r"^voxel grid \[4000000000\.0, 1\.0, 1\.0\] has an axis of more than 2\*\*31 cells"
    with pytest.raises(ValueError, match=message):
        dynamic_voxelize(point, (1e-9, 1, 1), (0, 0, 0, 4, 1, 1), backend=backend)
    with pytest.raises(ValueError, match=message):
        hard_voxelize(point, (1e-9, 1, 1), (0, 0, 0, 4, 1, 1), 1, 1, backend=backend)
    points = np.float32([[1 - 2**-24, 0.5, 0.5], [0.0, 0.5, 0.5]])
    voxel_size, point_range = (2.0**-31, 1, 1), (0, 0, 0, 1, 1, 1)
    np.testing.assert_array_equal(dynamic_voxelize(points, voxel_size, point_range, backend=backend),
                                  [[0, 0, 2147483520], [0, 0, 0]])
    _, coords, _ = hard_voxelize(points, voxel_size, point_range, 1, 2, backend=backend)
    np.testing.assert_array_equal(coords, [[0, 0, 0, 2147483520], [0, 0, 0, 0]])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_voxel_budget_beyond_int64_keeps_every_voxel_and_max_points_beyond_int32_is_refused(backend):
    """Two points in 1 m cells (0, 0, 0) and (0, 0, 1): any max_voxels >= 2 keeps both, one point each (by hand).
    max_voxels 2**63, 2**64, 1e30 kept them on the reference but failed in Numba (TypingError). max_points sets the
    voxels' shape and bounds the int32 num_points: 2**31 failed allocating 48 GiB, 2**63 with numpy's ValueError on
    the reference and an OverflowError in Numba; refused, naming it."""
    points = np.float32([[0.1, 0.1, 0.1], [1.2, 0.2, 0.2]])
    for max_voxels in (2**63, 2**64, 1e30, np.uint64(2**64 - 1)):
        voxels, coords, num_points = hard_voxelize(points, (1, 1, 1), (0, 0, 0, 2, 2, 2), 2, max_voxels,
                                                   backend=backend)
        assert coords.tolist() == [[0, 0, 0, 0], [0, 0, 0, 1]] and num_points.tolist() == [1, 1], max_voxels
        np.testing.assert_array_equal(voxels, [[points[0], [0, 0, 0]], [points[1], [0, 0, 0]]])
    for max_points in (2**31, 2**63):
        with pytest.raises(ValueError, match=rf"^hard_voxelize: max_points must be at most 2\*\*31 - 1 \(num_points "
                                             rf"are int32\); got {max_points}$"):
            hard_voxelize(points, (1, 1, 1), (0, 0, 0, 2, 2, 2), max_points, 2, backend=backend)


def test_limits_take_numpy_whole_numbers_and_refuse_bools():
    """max_points / max_voxels may be numpy integers or whole floats (a config read with numpy); a bool is not a
    count."""
    points = np.float32([[0.1, 0.1, 0.1, 1.0], [0.2, 0.2, 0.2, 2.0], [1.1, 0.1, 0.1, 3.0]])
    expected = hard_voxelize(points, VOXEL_SIZE, POINT_RANGE, 1, 1)
    assert len(expected[0]) == 1 and expected[0].shape[1] == 1
    for max_points, max_voxels in ((np.int64(1), np.int32(1)), (np.float64(1.0), np.uint8(1))):
        for got, want in zip(hard_voxelize(points, VOXEL_SIZE, POINT_RANGE, max_points, max_voxels), expected):
            np.testing.assert_array_equal(got, want)
    for bad in (True, np.bool_(True)):
        with pytest.raises(ValueError, match="max_points must be a whole number >= 1"):
            hard_voxelize(points, VOXEL_SIZE, POINT_RANGE, bad, 2)


def test_cell_counts_round_the_float32_extent_as_spconv():
    """0.1 m cells over 0.25 / 0.35 / 0.45 m: in float32 the extents are exactly 2.5 / 3.5 / 4.5 -> 3 x 4 x 5 cells
    (spconv rounds half away from zero); in float64 they are 2.49999996 / 3.4999999 / 4.4999998 -> 2 x 3 x 4, which
    would drop the points of the last cells, e.g. x = 0.26 m (float32 cell 2.6 -> 2), kept by spconv."""
    from perception.ops._grid import Grid3D

    voxel_size, point_range = (0.1, 0.1, 0.1), (0.0, 0.0, 0.0, 0.25, 0.35, 0.45)
    generator = spconv_utils.PointToVoxel(list(voxel_size), list(point_range), 4, 100, 3)
    assert Grid3D.from_range(voxel_size, point_range).shape_xyz == tuple(generator.grid_size[::-1]) == (3, 4, 5)
    points = np.float32([[0.22, 0.32, 0.42, 1], [0.05, 0.05, 0.05, 2], [0.26, 0.05, 0.05, 3], [0.31, 0.05, 0.05, 4]])
    _, expected_zyx, _ = (t.numpy() for t in generator(torch.from_numpy(points)))
    np.testing.assert_array_equal(expected_zyx, [[4, 3, 2], [0, 0, 0], [0, 0, 2]])
    for backend in CPU_BACKENDS:
        _, coords, _ = hard_voxelize(points, voxel_size, point_range, 3, 100, backend=backend)
        np.testing.assert_array_equal(coords[:, 1:], expected_zyx)
