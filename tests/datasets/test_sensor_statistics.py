"""The statistics of benchmarks/compare_real_synthetic.py on hand-made clouds: beams at known elevations, counts
worked by hand."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pyquaternion import Quaternion

from perception.classes import DETECTION_CLASSES
from perception.geometry import Boxes3D
from perception.sensors import (LIDAR_BEAM_COUNT, LIDAR_BEAM_ELEVATION_RANGE_DEG, LIDAR_MOUNT_M,
                                LIDAR_MOUNT_ROTATION_WXYZ)

_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "compare_real_synthetic.py"
_spec = importlib.util.spec_from_file_location("compare_real_synthetic", _SCRIPT)
stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stats)

LOWEST, HIGHEST = LIDAR_BEAM_ELEVATION_RANGE_DEG
SPACING = (HIGHEST - LOWEST) / (LIDAR_BEAM_COUNT - 1)


SENSOR_TO_EGO = Quaternion(*LIDAR_MOUNT_ROTATION_WXYZ).rotation_matrix  # pyquaternion's, beside the script's own


def point_at(elevation_deg: float, horizontal_m: float = 10.0, azimuth_deg: float = 30.0) -> list:
    """A point at this elevation and azimuth in the LiDAR's own frame, ``horizontal_m`` away, in the ego frame."""
    azimuth = math.radians(azimuth_deg)
    in_sensor = [horizontal_m * math.cos(azimuth), horizontal_m * math.sin(azimuth),
                 horizontal_m * math.tan(math.radians(elevation_deg))]
    return list(np.asarray(LIDAR_MOUNT_M) + SENSOR_TO_EGO @ in_sensor)


def test_points_per_beam_counts_each_beam_and_leaves_out_points_off_the_fan_and_near_the_sensor():
    points = np.array([point_at(LOWEST)] * 3 + [point_at(HIGHEST)] * 2 + [point_at(LOWEST + 7 * SPACING)]
                      + [point_at(80.0)] + [point_at(LOWEST + 7 * SPACING, stats.NEAR_SENSOR_M * 0.9)])
    expected = np.zeros(LIDAR_BEAM_COUNT, np.int64)
    expected[[0, 31, 7]] = [3, 2, 1]
    np.testing.assert_array_equal(stats.points_per_beam(points), expected)


def test_ground_fraction_counts_points_below_the_band():
    points = np.zeros((5, 3))
    points[:, 2] = [-0.1, 0.2, 0.29, 0.31, 2.0]
    assert stats.ground_fraction(points) == pytest.approx(3 / 5)
    assert stats.ground_fraction(points, ground_z_m=0.1) == pytest.approx(4 / 5)
    assert math.isnan(stats.ground_fraction(np.zeros((0, 3))))


def test_summarize_matches_hand_worked_percentiles():
    row = stats.summarize([10, 1, 2, 3, 4, 5, 6, 7, 8, 9, float("nan")])
    # numpy's linear percentile of 1..10: p10 = 1 + 0.9 * 1 = 1.9, p90 = 9 + 0.1 * 1 = 9.1.
    assert row == {"count": 10, "mean": 5.5, "median": 5.5, "p10": pytest.approx(1.9), "p90": pytest.approx(9.1)}
    assert stats.summarize([])["count"] == 0


def test_source_statistics_histograms_and_per_frame_counts():
    lidar = np.zeros((4, 5), np.float32)
    lidar[:, :3] = [point_at(LOWEST), point_at(LOWEST), point_at(HIGHEST), [0.0, 0.0, 0.1]]
    lidar[:, 3] = [0.0, 7.9, 8.0, 255.0]
    radar = np.zeros((2, 7), np.float32)
    radar[:, 3] = [-5.0, 12.0]
    radar[:, 4:6] = [[3.0, 4.0], [0.0, 0.5]]
    labels = [DETECTION_CLASSES.index("car"), DETECTION_CLASSES.index("car"), DETECTION_CLASSES.index("pedestrian")]
    frame = SimpleNamespace(lidar=SimpleNamespace(points=lidar), radar=SimpleNamespace(points=radar),
                            gt_boxes=Boxes3D(np.array([[5.0, 3.0, 0.0], [10.0, -7.5, 0.0], [0.0, 0.0, 0.0]]),
                                             np.ones((3, 3)), np.array([0.2, -2.0, 1.5]), labels=np.array(labels)),
                            gt_num_lidar_points=np.array([0, 12, 3]))
    empty = SimpleNamespace(lidar=None, radar=None, gt_boxes=None, gt_num_lidar_points=None)
    result = stats.source_statistics([frame, empty])

    assert result["frames"] == 2
    assert result["summary"]["lidar_points"]["mean"] == 2.0   # (4 + 0) / 2
    assert result["summary"]["radar_points"]["mean"] == 1.0
    assert result["summary"]["ground_fraction"]["count"] == 1  # the empty frame has no fraction
    # The two lowest-beam points hit z = 1.84 - 10 tan(30.67 deg) = -4.09 m, the last one lies at 0.1 m.
    assert result["summary"]["ground_fraction"]["mean"] == pytest.approx(3 / 4)
    intensity = result["histograms"]["lidar_intensity"]["counts"]
    assert intensity[0] == 2 and intensity[1] == 1 and intensity[-1] == 1 and sum(intensity) == 4
    speed = result["histograms"]["radar_speed_mps"]["counts"]
    assert speed[0] == 1 and speed[5] == 1 and sum(speed) == 2   # |(0, 0.5)| = 0.5, |(3, 4)| = 5
    rcs = result["histograms"]["radar_rcs_dbsm"]["counts"]
    assert rcs[7] == 1 and rcs[16] == 1 and sum(rcs) == 2        # 2-dB bins from -20: -5 -> 7, 12 -> 16
    beams = result["mean_points_per_beam"]
    assert beams[0] == 1.0 and beams[-1] == 0.5 and sum(beams) == 1.5   # (2 + 1) points over 2 frames
    assert result["objects_per_frame_by_class"]["car"] == 1.0
    assert result["objects_per_frame_by_class"]["pedestrian"] == 0.5
    assert result["median_lidar_points_per_box_by_class"] == {"car": 6.0, "pedestrian": 3.0}
    assert result["histograms"]["box_lidar_points"]["counts"][0] == 1   # the box without points
    # the cars' yaws 0.2 and -2.0 rad: 11.46 and 180 - 114.59 = 65.41 degrees off the ego's axis, 10-degree bins
    heading = result["histograms"]["car_heading_to_ego_deg"]["counts"]
    assert heading[1] == 1 and heading[6] == 1 and sum(heading) == 2
    # only the second car stands across (65 >= 45 degrees), 7.5 m to the right: the 2-m bin [6, 8)
    across = result["histograms"]["across_car_side_offset_m"]["counts"]
    assert across[3] == 1 and sum(across) == 1
    assert result["summary"]["cars_across"]["mean"] == 0.5   # (1 + 0) / 2 frames
    # the cars stand |(5, 3)| = 5.83 m (no points) and |(10, -7.5)| = 12.5 m (12 points) from the ego
    by_range = result["car_lidar_points_by_range"]
    assert by_range["0-10"] == {"count": 1, "median": 0.0, "zero_fraction": 1.0}
    assert by_range["10-20"] == {"count": 1, "median": 12.0, "zero_fraction": 0.0}
    assert by_range["20-30"]["count"] == 0 and math.isnan(by_range["20-30"]["median"])


def test_heading_to_ego_folds_the_direction_of_travel_away():
    yaws = np.radians([0.0, 180.0, -180.0, 90.0, -90.0, 30.0, 150.0, -30.0, -150.0, 390.0])
    np.testing.assert_allclose(stats.heading_to_ego_deg(yaws), [0, 0, 0, 90, 90, 30, 30, 30, 30, 30], atol=1e-9)


def test_the_plot_names_its_data_and_labels_every_axis_it_draws(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    closed = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda figure: (closed.append(figure), close(figure)))
    lidar = np.zeros((2, 5), np.float32)
    lidar[:, :3] = [point_at(LOWEST), point_at(HIGHEST)]
    frame = SimpleNamespace(lidar=SimpleNamespace(points=lidar), radar=None,
                            gt_boxes=Boxes3D(np.array([[5.0, 3.0, 0.0]]), np.ones((1, 3)), np.zeros(1),
                                             labels=np.array([DETECTION_CLASSES.index("car")])),
                            gt_num_lidar_points=np.array([4]))
    statistics = {"real": stats.source_statistics([frame]), "synthetic": stats.source_statistics([frame])}
    sources = {"real": "../shared/fixtures/nuscenes-scene0916 v1.0-mini real_finetune real_val",
               "synthetic": "datasets/synthetic v1.0-synth synth_val"}
    stats.write_plot(str(tmp_path / "sensor_statistics.png"), statistics, sources)
    figure = closed[0]
    assert all(data in figure._suptitle.get_text() for data in sources.values())
    drawn = [axes for axes in figure.axes if axes.axison]
    assert len(drawn) == len(stats.HISTOGRAM_EDGES) + 4
    assert all(axes.get_xlabel() and axes.get_ylabel() for axes in drawn)
    for axes in drawn:  # a symlog axis says where it is linear, and is linear where it says
        for axis, label in ((axes.xaxis, axes.get_xlabel()), (axes.yaxis, axes.get_ylabel())):
            if axis.get_scale() == "symlog":
                assert f"linear 0-{axis.get_transform().linthresh:g}, log above" in label
