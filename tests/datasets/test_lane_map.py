"""A map's lane centre lines (perception.datasets.lane_map): which lane a pose drives in and the lines' straight
extensions, on hand-drawn lanes with the answers worked by hand."""
import json

import numpy as np
import pytest

from perception.datasets.lane_map import LaneCentres, end_headings
from perception.geometry import RigidTransform, rotation_from_vector


def test_a_pose_drives_in_the_nearest_lane_heading_its_way():
    # Lane 0 along y = 0 heading +x, lane 1 along y = 3.5 heading -x (the oncoming lane), 3.5 m wide. A car at
    # y = 2.5 heading +x is 1.0 m from lane 1's centre but drives against it: its lane is 0 (2.5 m <= 3.5 m). The
    # same car heading -x is in lane 1. Heading -x at y = 6.9 it is 3.4 m from lane 1 (within), at y = 8.0 4.5 m
    # (off the lanes); heading +x at y = 8.0 it is 8.0 m from lane 0 (off the lanes: the oncoming lane is not its).
    lanes = LaneCentres((np.array([[-50.0, 0.0], [50.0, 0.0]]), np.array([[50.0, 3.5], [-50.0, 3.5]])), 3.5)
    at = np.array([[0.0, 2.5]])
    assert lanes.lane_of(at, [0.0]).tolist() == [0]
    # Turned 0.1 rad left it still heads within 90 deg of lane 0 (cos 0.1 > 0), not of lane 1 (cos(pi - 0.1) < 0);
    # turned pi / 2 + 0.1 it heads within 90 deg of lane 1 only (cos(pi / 2 - 0.1) > 0 > cos(pi / 2 + 0.1)).
    assert lanes.lane_of(np.vstack([at, at]), [0.1, np.pi / 2 + 0.1]).tolist() == [0, 1]
    assert lanes.lane_of(at, [np.pi]).tolist() == [1]
    assert lanes.lane_of(np.array([[0.0, 6.9], [0.0, 8.0]]), [np.pi, np.pi]).tolist() == [1, -1]
    assert lanes.lane_of(np.array([[0.0, 8.0]]), [0.0]).tolist() == [-1]


def test_a_line_goes_on_straight_along_its_last_and_before_its_first_segment():
    # An L: first segment (0, 0) -> (10, 0) heading +x, last (10, 0) -> (10, 10) heading +y. end_headings gives
    # (last, first) = (pi / 2, 0). Beyond the end, (10, 20) lies on the extension along +y (across 0, heading pi / 2)
    # and (9, 20) 1 m to its left; before the start, (-5, 1) lies 1 m left of the extension along +x (heading 0).
    line = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    assert end_headings(line) == pytest.approx((np.pi / 2, 0.0))
    across, heading = LaneCentres((line,), 3.5).offsets(np.array([[10.0, 20.0], [9.0, 20.0], [-5.0, 1.0]]))
    assert across[0] == pytest.approx([0.0, 1.0, 1.0], abs=1e-9)
    assert heading[0] == pytest.approx([np.pi / 2, np.pi / 2, 0.0], abs=1e-9)


def test_lanes_in_another_frame_by_hand():
    # The ego at global (100, 50) heading +y: global -> ego is its inverse; the global line (100, 60) -> (100, 70)
    # lies 10 to 20 m straight ahead, (10, 0) -> (20, 0).
    ego_to_global = RigidTransform.from_rotation_translation(rotation_from_vector(np.array([0.0, 0.0, np.pi / 2])),
                                                             [100.0, 50.0, 0.0])
    lanes = LaneCentres((np.array([[100.0, 60.0], [100.0, 70.0]]),), 3.5).transformed(ego_to_global.inverse())
    assert np.allclose(lanes.lines[0], [[10.0, 0.0], [20.0, 0.0]], atol=1e-9) and lanes.width_m == 3.5


@pytest.mark.parametrize("bad_lane, problem", [
    ([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [20.0, 0.0, 0.0], [30.0, 0.0, 0.0]], "is not a list of \\[x, y\\] points"),
    ([], "is not a list of \\[x, y\\] points"),
    ([[0.0, 0.0], [10.0]], "is not a list of \\[x, y\\] points"),
    ([[5.0, 5.0], [5.0, 5.0]], "needs at least two distinct points"),
], ids=["xyz points", "empty", "ragged", "one distinct point"])
def test_a_lane_that_is_not_two_or_more_xy_points_names_the_file_the_log_and_the_lane(tmp_path, bad_lane, problem):
    # [x, y, z] points were once read as 2-D points (x0, y0), (z0, x1), ...; an empty lane raised an IndexError.
    from perception.datasets.lane_map import read_lane_centres

    good = [[0.0, 0.0], [10.0, 0.0]]
    (tmp_path / "lane_centres.json").write_text(json.dumps({"log-a": {"lane_width_m": 3.5, "lanes": [good]},
                                                            "log-b": {"lane_width_m": 3.5, "lanes": [good, bad_lane]}}))
    with pytest.raises(ValueError, match=f"{tmp_path / 'lane_centres.json'}: log log-b: lane 1 {problem}"):
        read_lane_centres(tmp_path)
