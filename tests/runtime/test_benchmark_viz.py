"""The benchmark on a tiny run (every stage key, kernels per backend, the sweeps curve, the command line) and the
replay pictures (bird's-eye view arithmetic, boxes projected into a camera, video)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from perception.cli.benchmark import main as benchmark_main
from perception.datasets.io import read_lidar_bin
from perception.datasets.loader import load_frame
from perception.detector import OracleDetector
from perception.geometry import Boxes3D
from perception.paths import REPO_ROOT
from perception.runtime.benchmark import (
    PIPELINE_STAGES, BenchmarkOptions, format_table, parse_sweep_counts, run_benchmark, stage_composition,
)
from perception.runtime.replay_outputs import video_frames_held
from perception.timing import STAGES
from perception.sensors import LIDAR_CHANNEL
from perception.viz.bev import BevView, class_colour, draw_bev
from perception.viz.video import camera_mosaic, draw_boxes_on_camera, write_video
from tests.runtime.helpers import StagedNoBoxes

TINY = BenchmarkOptions(iters=2, warmup=1, sweep_counts=(1, 3), curve_iters=1, kernel_iters=1)
MODEL_STAGES = [name for name in STAGES if name not in PIPELINE_STAGES]


def _tokens(nusc, count=2):
    return [sample["token"] for sample in nusc.sample[:count]]


def test_every_stage_of_a_timed_model_is_reported(nusc_synthetic):
    result = run_benchmark(nusc_synthetic, _tokens(nusc_synthetic), {"staged": StagedNoBoxes(MODEL_STAGES)}, TINY,
                           progress=False)
    staged = result["backends"]["staged"]
    assert list(staged["stages_ms"]) == list(STAGES)
    assert all(stats["count"] == TINY.iters for stats in staged["stages_ms"].values())
    assert staged["throughput_fps"] > 0 and result["peak_rss_mib"] > 0
    assert result["threads"]["torch_threads"] >= 1 and result["timer"] == "perf_counter"
    json.dumps(result)  # JSON-able as it is


def test_sweeps_curve_counts_the_points_of_each_sweep_count(nusc_synthetic):
    token = _tokens(nusc_synthetic, 1)[0]
    result = run_benchmark(nusc_synthetic, [token], {"oracle": OracleDetector()}, TINY, progress=False)
    curve = {row["lidar_sweeps"]: row for row in result["backends"]["oracle"]["sweeps_curve"]}
    assert set(curve) == {1, 3}
    keyframe_file = nusc_synthetic.get_sample_data_path(nusc_synthetic.get("sample", token)["data"][LIDAR_CHANNEL])
    assert curve[1]["lidar_points_mean"] == len(read_lidar_bin(keyframe_file))  # 1 sweep: the file's points
    assert curve[3]["lidar_points_mean"] == len(load_frame(nusc_synthetic, token, lidar_sweeps=3,
                                                           cameras=False).lidar.points)
    assert curve[3]["lidar_points_mean"] > curve[1]["lidar_points_mean"]
    assert all(f"{name}_p50_ms" in row for row in curve.values() for name in PIPELINE_STAGES)


def test_model_kernels_timed_per_backend_and_the_command_line(nusc_synthetic, synthetic_root, tmp_path, capsys):
    """The fusion_tiny model (initial weights) through the command line: all pipeline stages, its pillar
    voxelization on the reference and Numba backends with the config's settings, a table printed."""
    out = tmp_path / "bench.json"
    result = benchmark_main([str(REPO_ROOT / "configs" / "fusion_tiny.py"), "--json", str(out), "--dataroot",
                             str(synthetic_root), "--version", nusc_synthetic.version, "--iters", "1", "--warmup",
                             "0", "--sweeps", "1", "--curve-iters", "1", "--kernel-iters", "1", "--frames", "1",
                             "--quiet"])
    stages = result["backends"]["torch"]["stages_ms"]
    assert json.loads(out.read_text())["backends"]["torch"]["stages_ms"].keys() == stages.keys()
    assert set(PIPELINE_STAGES) <= set(stages)
    lidar = result["kernels"]["hard_voxelize_lidar"]
    assert {"reference", "numba"} <= set(lidar) and lidar["settings"]["max_points"] >= 1
    assert result["sensors"] == ["camera", "lidar", "radar"]
    printed = capsys.readouterr().out
    assert "end_to_end" in printed and "hard_voxelize_lidar" in printed and format_table(result) in printed
    picture = cv2.imread(str(tmp_path / "bench.png"))
    assert picture is not None and picture.shape[0] > 200 and picture.shape[1] > 600
    assert f"picture: {tmp_path / 'bench.png'}" in printed


def test_stage_composition_adds_up_to_the_mean_frame_by_hand():
    def stats(mean_ms):
        return {"mean_ms": mean_ms, "p50_ms": mean_ms}

    # A frame of 50 ms: load 10, detector 35 (lidar_encoder 12 with voxelize 5 inside, fuser 8, head 9: 6 ms of
    # the detect call outside its stages), decision 3, and 2 ms of the step outside its three stages.
    stages = {"load": stats(10.0), "lidar_encoder": stats(12.0), "voxelize": stats(5.0), "fuser": stats(8.0),
              "head": stats(9.0), "detector": stats(35.0), "decision": stats(3.0), "end_to_end": stats(50.0)}
    assert stage_composition(stages) == [("load", 10.0), ("lidar_encoder", 12.0), ("fuser", 8.0), ("head", 9.0),
                                         ("detector, rest", 6.0), ("decision", 3.0), ("rest", 2.0)]


def test_sweep_counts_parse():
    assert parse_sweep_counts("1..4") == (1, 2, 3, 4)
    assert parse_sweep_counts("1,5,10") == (1, 5, 10)
    for bad in ("0..3", "a", ""):
        with pytest.raises(ValueError):
            parse_sweep_counts(bad)
    with pytest.raises(ValueError, match="the range '3..1' is empty"):
        parse_sweep_counts("3..1")


def test_bev_pixels_by_hand():
    view = BevView(range_m=50.0, pixels_per_m=6.0)
    assert view.size_px == 600
    # x forward is up, y left is left: (10, 0) is 60 px above the centre, (0, 5) 30 px left of it.
    np.testing.assert_allclose(view.to_pixels([[10.0, 0.0], [0.0, 5.0]]), [[300.0, 240.0], [270.0, 300.0]])
    car = Boxes3D([[20.0, 0.0, 0.0]], [[2.0, 4.0, 1.5]], [0.0], velocities=[[0.0, 0.0]], labels=[0])
    picture = draw_bev(view, boxes=car)
    # The box's front edge (x = 22 m, y from -1 to +1) is drawn thick in the car colour at v = 300 - 132 = 168.
    assert tuple(picture[168, 300]) == class_colour(0)
    assert picture[100, 300].sum() == 0  # nothing where nothing is
    # a proposal the safety layer changed, straight to the left (y = 10 m: 60 px left), under the plan straight ahead
    from perception.viz.bev import PLAN_COLOUR_BGR, PROPOSAL_COLOUR_BGR
    both = draw_bev(view, trajectory=[[5.0, 0.0], [10.0, 0.0]], proposal=[[5.0, 5.0], [10.0, 10.0]])
    assert tuple(both[240, 300]) == PLAN_COLOUR_BGR and tuple(both[240, 240]) == PROPOSAL_COLOUR_BGR


def _devkit_corner_pixels(nusc, sample: dict, channel: str, center, size_wlh, yaw: float) -> np.ndarray:
    """(8, 2) pixels of a box given in the keyframe's ego frame (its LiDAR's ego pose), projected by the devkit alone:
    Box in the ego frame -> global (the LiDAR record's ego pose) -> the camera record's ego pose -> the camera
    (calibrated_sensor) -> view_points with the camera's intrinsics."""
    from nuscenes.utils.data_classes import Box
    from nuscenes.utils.geometry_utils import view_points
    from pyquaternion import Quaternion

    box = Box(list(center), list(size_wlh), Quaternion(axis=[0.0, 0.0, 1.0], angle=yaw))
    lidar_pose = nusc.get("ego_pose", nusc.get("sample_data", sample["data"][LIDAR_CHANNEL])["ego_pose_token"])
    box.rotate(Quaternion(lidar_pose["rotation"]))
    box.translate(np.array(lidar_pose["translation"]))
    camera_record = nusc.get("sample_data", sample["data"][channel])
    camera_pose = nusc.get("ego_pose", camera_record["ego_pose_token"])
    box.translate(-np.array(camera_pose["translation"]))
    box.rotate(Quaternion(camera_pose["rotation"]).inverse)
    calibration = nusc.get("calibrated_sensor", camera_record["calibrated_sensor_token"])
    box.translate(-np.array(calibration["translation"]))
    box.rotate(Quaternion(calibration["rotation"]).inverse)
    return view_points(box.corners(), np.array(calibration["camera_intrinsic"]), normalize=True)[:2].T


def test_boxes_land_where_their_corners_project(nusc_synthetic):
    """Each corner of a drawn box is at the pixel the devkit projects it to (an independent chain of its own
    Box, poses and view_points)."""
    sample = nusc_synthetic.sample[0]
    frame = load_frame(nusc_synthetic, sample["token"])
    view = frame.cameras["CAM_FRONT"]
    box = Boxes3D([[12.0, 0.0, 1.0]], [[2.0, 4.0, 1.5]], [0.0], labels=[1])
    blank = np.zeros_like(view.image)
    drawn = draw_boxes_on_camera(blank, view, box)
    corners = _devkit_corner_pixels(nusc_synthetic, sample, "CAM_FRONT", (12.0, 0.0, 1.0), (2.0, 4.0, 1.5), 0.0)
    height, width = drawn.shape[:2]
    assert ((corners >= 0) & (corners < [width, height])).all()
    for u, v in np.round(corners).astype(int):
        assert tuple(drawn[v, u]) == class_colour(1)
    assert drawn.any(axis=2).sum() < 0.2 * drawn.shape[0] * drawn.shape[1]  # lines, not a filled area
    behind = Boxes3D([[-12.0, 0.0, 1.0]], [[2.0, 4.0, 1.5]], [0.0])
    assert not draw_boxes_on_camera(blank, view, behind).any()
    tiles = camera_mosaic(frame.cameras, box, tile_width_px=160)
    assert tiles.shape[1] == 3 * 160


def test_video_has_every_picture(tmp_path):
    paths = []
    for index in range(3):
        path = str(tmp_path / f"{index}.png")
        cv2.imwrite(path, np.full((64, 96, 3), 60 * index, np.uint8))
        paths.append(path)
    video_path = write_video(paths, str(tmp_path / "out.mp4"), fps=2.0)
    capture = cv2.VideoCapture(video_path)
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(2.0)
    capture.release()
    with pytest.raises(ValueError, match="no images"):
        write_video([], str(tmp_path / "none.mp4"), fps=2.0)
    held = write_video(paths, str(tmp_path / "held.mp4"), fps=2.0, repeats=[1, 3, 2])
    capture = cv2.VideoCapture(held)
    shades = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        shades.append(int(round(image.mean() / 60)))
    capture.release()
    assert shades == [0, 1, 1, 1, 2, 2]
    for repeats in ([1, 0, 1], [1, 1]):
        with pytest.raises(ValueError, match="repeat count"):
            write_video(paths, str(tmp_path / "bad.mp4"), fps=2.0, repeats=repeats)


def test_a_replay_picture_is_held_until_the_next_frames_time():
    # 2 fps: pictures at 0, 1, 2.5, 3.5, 4, 6.2 video frames, rounded half up 0, 1, 3, 4, 4 -> 5 (one frame each
    # at least), 6; the last one 1. Each gap rounded alone gave 1, 2, 1, 1, 2: 3.5 s of video for 3.1 s of log
    times_us = [0, 500_000, 1_250_000, 1_750_000, 2_000_000, 3_100_000]
    assert video_frames_held(times_us, fps=2.0) == [1, 2, 1, 1, 1, 1]
    assert video_frames_held([7], fps=2.0) == [1]


def test_after_an_outage_every_picture_starts_at_its_own_time():
    # keyframes every 0.5 s, the LiDAR out after 1.0 s: watchdog frames at 1.75 and 2.25 s (1.5 periods, then each
    # period), the LiDAR back at 2.5 s. At 2 fps 2.25 and 2.5 s took one slot and every later picture played 0.5 s
    # late; at 4 fps each starts at its time x 4
    times_s = [0.0, 0.5, 1.0, 1.75, 2.25, 2.5, 3.0, 3.5]
    held = video_frames_held([int(t * 1e6) for t in times_s], fps=4.0, last_held=2)
    assert list(np.cumsum([0] + held[:-1])) == [t * 4 for t in times_s] and held[-1] == 2


def test_the_preview_draws_a_real_keyframe_whose_annotations_include_a_class_outside_the_ten(nusc_real):
    from perception.classes import category_to_detection_name
    from perception.viz.preview import render_preview

    sample = nusc_real.sample[0]
    categories = [nusc_real.get("sample_annotation", token)["category_name"] for token in sample["anns"]]
    assert None in [category_to_detection_name(name) for name in categories]  # e.g. a bicycle rack
    picture = render_preview(nusc_real, sample["token"])
    assert picture.ndim == 3 and picture.shape[2] == 3 and picture.shape[1] > picture.shape[0]


STALL_REASON = ("watchdog: no LiDAR keyframe for 2.29 s, frame at CAM_FRONT_LEFT; CHANGE_LANE_RIGHT: slowed the "
                "proposed CHANGE_LANE_RIGHT plan along its path, braking at 0.5 m/s^2: traffic_cone #1 at 0.0 m/s, "
                "27.0 m ahead leaves 5.4 m of the 5.4 m braking margin at 3.0 s")
"""A replay record's rationale (the LiDAR stalled): 4 lines when cut at 70 characters, the last one dropped."""


def _stall_record():
    """A frames.jsonl record as the stalled replay wrote it: the head's class KEEP_LANE, the plan (named by its
    path) CHANGE_LANE_RIGHT, slowed by the safety layer."""
    return {"scene": "synth-0000", "timestamp_us": 1_700_000_002_830_000, "is_key_frame": False,
            "trigger": "watchdog", "missing": ["lidar", "LIDAR_TOP"],
            "plan": {"maneuver": "KEEP_LANE", "plan_maneuver": "CHANGE_LANE_RIGHT", "trajectory": [[1.0, 0.0]] * 6,
                     "lane_change_feasible": [0.1, 0.9]},
            "decision": {"maneuver": "CHANGE_LANE_RIGHT", "target_speed_mps": 5.9, "ttc_s": None,
                         "trajectory": [[1.0, 0.0]] * 6, "reason": STALL_REASON, "vetoed": True}}


def test_a_replay_header_names_the_head_s_class_as_such_and_what_t_counts_from():
    from perception.runtime.replay_outputs import header_lines

    lines = header_lines(_stall_record(), scene_start_us=1_700_000_000_000_000, boxes_shown=24,
                         display_min_score=0.3)
    # 2.83 s after the scene's first sensor message (1_700_000_000_000_000 us)
    assert "t=2.83 s since the scene's first sensor message" in lines[0] and "watchdog" in lines[0]
    assert lines[1].startswith("decision CHANGE_LANE_RIGHT,") and "safety layer changed the plan" in lines[1]
    head = [line for line in lines if "KEEP_LANE" in line]
    assert head == ["learned plan CHANGE_LANE_RIGHT, by its path (the planning head's own most likely class: "
                    "KEEP_LANE)"]
    agreeing = _stall_record()
    agreeing["plan"]["maneuver"] = "CHANGE_LANE_RIGHT"
    assert "learned plan CHANGE_LANE_RIGHT, by its path" in header_lines(agreeing, 1_700_000_000_000_000, 24, 0.3)
    assert STALL_REASON in lines and "missing: LIDAR_TOP, lidar" in lines  # whole, not cut at 70 characters


def test_the_caption_fits_the_picture_loses_no_word_and_covers_nothing_of_the_scene():
    from perception.viz.bev import bev_legend, wrap_to_width, with_caption

    view = BevView()  # 600 px, as the replay draws it
    car = Boxes3D([[40.0, 0.0, 0.0]], [[2.0, 4.0, 1.5]], [0.0], velocities=[[0.0, 0.0]], labels=[0])
    scene = draw_bev(view, boxes=car)
    picture = with_caption(scene, [STALL_REASON], bev_legend(boxes=car))
    assert picture.shape[1] == view.size_px and picture.shape[0] > view.size_px
    np.testing.assert_array_equal(picture[:view.size_px], scene)  # the scene as drawn, no text over it
    assert picture[view.size_px + 1:].any()  # the caption is drawn below it
    width = view.size_px - 2 * 8  # 8-px margins either side
    wrapped = wrap_to_width(STALL_REASON, width)
    assert len(wrapped) >= 4
    assert all(cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0] <= width for line in wrapped)
    assert " ".join(wrapped) == STALL_REASON


def test_the_colours_are_far_apart_and_apart_from_the_lidar_greys():
    import itertools

    from perception.viz.bev import CLASS_COLOURS_BGR, EGO_COLOUR_BGR, LIDAR_GREYS, RADAR_COLOUR_BGR

    colours = np.array(CLASS_COLOURS_BGR + (RADAR_COLOUR_BGR, EGO_COLOUR_BGR), dtype=np.float64)
    assert len(colours) == 12
    lab = cv2.cvtColor((colours[None] / 255.0).astype(np.float32), cv2.COLOR_BGR2Lab)[0]
    for i, j in itertools.combinations(range(len(colours)), 2):
        assert np.linalg.norm(colours[i] - colours[j]) >= 70.0, (i, j)   # RGB, 0-255
        assert np.linalg.norm(lab[i] - lab[j]) >= 45.0, (i, j)           # CIELAB delta E (CIE76)
    greys = np.linspace(*LIDAR_GREYS, 64)[:, None] * np.ones(3)
    greys_lab = cv2.cvtColor((greys[None] / 255.0).astype(np.float32), cv2.COLOR_BGR2Lab)[0]
    assert np.linalg.norm(lab[:, None] - greys_lab[None], axis=2).min() >= 45.0


def test_the_legend_names_each_class_drawn_and_the_sensors():
    from perception.classes import DETECTION_CLASSES
    from perception.viz.bev import EGO_COLOUR_BGR, PROPOSAL_COLOUR_BGR, RADAR_COLOUR_BGR, bev_legend, caption_band

    truck, motorcycle = DETECTION_CLASSES.index("truck"), DETECTION_CLASSES.index("motorcycle")
    boxes = Boxes3D([[10.0, 0.0, 0.0], [20.0, 3.0, 0.0], [-8.0, 0.0, 0.0]], np.ones((3, 3)), np.zeros(3),
                    labels=[motorcycle, truck, truck])
    lidar, radar = np.zeros((5, 3)), np.zeros((2, 6))
    legend = bev_legend(lidar, radar, boxes, trajectory=np.ones((6, 2)))
    named = [name for _, name in legend]
    assert [name for name in named if name in DETECTION_CLASSES] == ["truck", "motorcycle"]
    assert (class_colour(truck), "truck") in legend and (class_colour(motorcycle), "motorcycle") in legend
    assert (RADAR_COLOUR_BGR, "radar") in legend and (EGO_COLOUR_BGR, "ego and its plan") in legend
    assert any(name.startswith("LiDAR") for name in named) and any("rings every 10 m" in name for name in named)
    assert [name for _, name in bev_legend(boxes=boxes[:1])][:1] == ["motorcycle"]
    assert not any(name.startswith(("LiDAR", "radar")) for _, name in bev_legend(boxes=boxes))
    assert (PROPOSAL_COLOUR_BGR, "learned plan as proposed, changed by the safety layer") in bev_legend(
        trajectory=np.ones((6, 2)), proposal=np.ones((6, 2)))
    assert all(colour != PROPOSAL_COLOUR_BGR for colour, _ in legend)
    band = caption_band([], legend, 600)
    for colour, _ in legend:  # each entry's swatch is drawn
        if colour is not None:
            assert (band == colour).all(axis=2).any(), colour


def test_lidar_points_on_a_camera_come_with_their_depth_scale():
    from perception.viz.camera import draw_points

    image = np.full((144, 256, 3), 90, np.uint8)
    drawn = draw_points(image, np.array([[100.0, 50.0]]), np.array([0.0]), max_depth_m=50.0)
    assert drawn.shape[0] > image.shape[0] and drawn.shape[1] == image.shape[1]
    # the point at 0 m in JET's red end; OpenCV's own map of 255 (near) and 0 (far)
    near, far = cv2.applyColorMap(np.array([[255], [0]], np.uint8), cv2.COLORMAP_JET)[:, 0]
    assert tuple(drawn[50, 100]) == tuple(near)
    key = drawn[image.shape[0]:]
    bar = [(row, columns) for row in range(len(key))
           for columns in [np.flatnonzero((key[row] == near).all(axis=1))] if len(columns)]
    assert bar, "no bar in the key"
    row, near_columns = bar[len(bar) // 2]
    far_columns = np.flatnonzero((key[row] == far).all(axis=1))
    assert len(far_columns) and far_columns.min() > near_columns.max()  # near on the left, far on the right


def test_a_taller_picture_is_fitted_into_the_video_not_stretched(tmp_path):
    paths = [str(tmp_path / "short.png"), str(tmp_path / "tall.png")]
    cv2.imwrite(paths[0], np.full((64, 96, 3), 200, np.uint8))
    cv2.imwrite(paths[1], np.full((80, 96, 3), 200, np.uint8))
    video = write_video(paths, str(tmp_path / "out.mp4"), fps=2.0, size_px=(96, 80))
    capture = cv2.VideoCapture(video)
    frames = [capture.read()[1] for _ in range(2)]
    capture.release()
    assert frames[0].shape[:2] == (80, 96)
    # the short one padded with black below its 64 rows, not stretched over 80
    assert frames[0][:56].mean() > 180 and frames[0][70:].mean() < 20 and frames[1].mean() > 180
