"""Parts of the synthetic world generator checked on their own: radar PCD files against the devkit's reader,
the sensor schedule, meshes inside their boxes, the ego's manoeuvres, splits, argument checks and determinism."""
import filecmp
import json
import math
import os

import numpy as np
import pytest
from nuscenes.utils.data_classes import RadarPointCloud
from nuscenes.utils.map_mask import MapMask

from perception.datasets.io import DEVKIT_RADAR_FILTERS, radar_filter_mask
from perception.datasets.synthetic import generate_world, scenes_by_split
from perception.datasets.synthetic.class_specs import CLASS_SPECS, sample_size
from perception.datasets.synthetic.ego import MANOEUVRES, EgoPlan, Phase, plan_ego
from perception.datasets.synthetic.layout import Road, build_static_world
from perception.datasets.synthetic.meshes import BOX_MARGIN_M, _wheels, build_mesh
from perception.datasets.synthetic.radar import PCD_DTYPE, encode_pcd
from perception.datasets.synthetic.rig import camera_matrix
from perception.datasets.synthetic.scene import build_scene
from perception.datasets.synthetic.tables import calibrated_sensor_token, fixed_tables
from perception.datasets.synthetic.writer import sensor_schedule, write_map
from perception.sensors import ALL_CHANNELS, modality_of


def _random_radar_points(rng, count):
    points = np.zeros(count, PCD_DTYPE)
    for name in PCD_DTYPE.names:
        if PCD_DTYPE[name].kind == "f":
            points[name] = rng.normal(0, 20, count)
        else:
            points[name] = rng.integers(0, 18, count)
    points["invalid_state"] = rng.integers(0, 2, count)  # so that some points pass the default filters
    points["ambig_state"] = rng.integers(2, 4, count)
    points["dyn_prop"] = rng.integers(0, 8, count)
    return points


def test_radar_pcd_reads_back_through_the_devkit(tmp_path):
    rng = np.random.default_rng(1)
    points = _random_radar_points(rng, 200)
    path = tmp_path / "frame.pcd"
    path.write_bytes(encode_pcd(points))
    everything = RadarPointCloud.from_file(str(path), invalid_states=range(18), dynprop_states=range(18),
                                           ambig_states=range(18)).points
    assert everything.shape == (18, 200)
    for row, name in enumerate(PCD_DTYPE.names):
        np.testing.assert_array_equal(everything[row], points[name].astype(np.float64))
    default = RadarPointCloud.from_file(str(path)).points
    kept = radar_filter_mask(points, DEVKIT_RADAR_FILTERS)
    np.testing.assert_array_equal(default[0], points["x"][kept].astype(np.float64))
    assert 0 < default.shape[1] < 200


def test_empty_radar_frame_reads_as_no_points(tmp_path):
    path = tmp_path / "empty.pcd"
    path.write_bytes(encode_pcd(np.zeros(0, PCD_DTYPE)))
    assert RadarPointCloud.from_file(str(path)).points.shape == (18, 0)


def test_sensor_schedule_rates_and_one_keyframe_per_sample():
    samples = 5
    frames = sensor_schedule(samples)
    for channel in ALL_CHANNELS:
        own = [f for f in frames if f.channel == channel]
        keys = [f for f in own if f.is_key_frame]
        assert [f.sample_index for f in keys] == list(range(samples))
        times = np.array([f.offset_us for f in own])
        assert np.all(np.diff(times) > 0) and times[0] < -400_000 and times[-1] <= 2_000_000 + 40_000
        period = {"lidar": 50_000, "camera": 83_333, "radar": 77_000}[modality_of(channel)]
        assert np.all(np.abs(np.diff(times) - period) <= 1)
        for key in keys:
            if modality_of(channel) == "radar":  # the radar frame nearest the sample's LiDAR timestamp
                assert np.argmin(np.abs(times - key.sample_index * 500_000)) == own.index(key)
                # of a 77 ms series, even after the last keyframe: within half a period of it
                assert abs(key.offset_us - key.sample_index * 500_000) <= 77_000 // 2
            else:  # cameras fire as the LiDAR sweeps past them: within one LiDAR period (as in nuScenes)
                assert abs(key.offset_us - key.sample_index * 500_000) < 50_000
        assert [f.sequence for f in own] == list(range(len(own)))


def test_intrinsics_scale_with_each_axis_of_the_image_by_hand():
    """nuScenes' CAM_FRONT intrinsics belong to 1600 x 900 images: at 800 x 600, x scales by 0.5 and y by 2/3 (the
    calibrated_sensor table holds the same matrix)."""
    focal, centre_u, centre_v = 1266.417203046554, 816.2670197447984, 491.50706579294757
    expected = [[0.5 * focal, 0.0, 0.5 * centre_u], [0.0, focal * 2 / 3, centre_v * 2 / 3], [0.0, 0.0, 1.0]]
    assert camera_matrix("CAM_FRONT", (800, 600)) == pytest.approx(np.array(expected), abs=1e-9)
    rows = fixed_tables("ns", (800, 600))["calibrated_sensor"]
    front = next(row for row in rows if row["token"] == calibrated_sensor_token("ns", "CAM_FRONT"))
    assert np.array(front["camera_intrinsic"]) == pytest.approx(np.array(expected), abs=1e-9)


@pytest.mark.parametrize("name", sorted(CLASS_SPECS))
def test_meshes_fit_inside_their_boxes(name):
    rng = np.random.default_rng(0)
    for with_rider in (False, True):
        size = sample_size(name, rng, with_rider)
        mesh = build_mesh(name, size, rng, with_rider)
        half_extent = 0.5 * np.array([size[1], size[0], size[2]])  # x: length, y: width, z: height
        assert np.all(np.abs(mesh.vertices) <= half_extent - BOX_MARGIN_M + 1e-9)
        assert np.allclose(np.abs(mesh.vertices).max(axis=0), half_extent - BOX_MARGIN_M)
        assert len(mesh.colours) == len(mesh.reflectivity) == len(mesh.triangles)


def test_ego_drives_every_manoeuvre_and_stops():
    times_s = np.round(np.arange(-1.5, 20.5, 0.01), 6)  # a 40-keyframe scene's grid
    seen = set()
    for index in range(len(MANOEUVRES)):
        road = build_static_world(np.random.default_rng([0, index, 1]), 600.0, 60.0).road
        plan = plan_ego(np.random.default_rng([0, index, 2]), road, index, times_s, 80.0)
        seen |= {p.manoeuvre for p in plan.phases if p.start_s < times_s[-1] - 1.0}
        speed = np.gradient(plan.s, times_s)
        assert np.all(speed >= -1e-9) and speed.max() < 15.0
        for phase in (p for p in plan.phases if p.manoeuvre == "stopped"):
            inside = (times_s > phase.start_s + 0.05) & (times_s < phase.end_s - 0.05)
            assert np.all(speed[inside] < 1e-6)
        for phase in (p for p in plan.phases if p.manoeuvre == "lane_change" and p.end_s <= times_s[-1]):
            before = np.interp(phase.start_s, times_s, plan.d)  # a lane change moves the ego by one lane width
            after = np.interp(phase.end_s, times_s, plan.d)
            assert abs(after - before) == pytest.approx(3.5, abs=1e-3)
    assert seen == set(MANOEUVRES)


def test_one_lead_vehicle_from_follow_to_drive_off():
    """Follow, brake to a stop, wait and drive off in a row are one lead block (one lead car, in the lane the ego
    has where the block starts); a cruise between two such runs makes two."""
    times_s = np.round(np.arange(0.0, 30.0, 0.01), 6)
    lane = np.where(times_s < 1.0, 0, 1)  # a lane change to lane 1 at 1 s
    phases = [Phase("lane_change", 0.0, 2.0), Phase("follow", 2.0, 5.5), Phase("brake_to_stop", 5.5, 8.0),
              Phase("stopped", 8.0, 10.5), Phase("drive_off", 10.5, 14.5), Phase("cruise", 14.5, 17.0),
              Phase("follow", 17.0, 20.0)]
    plan = EgoPlan(times_s, np.zeros_like(times_s), np.zeros_like(times_s), lane, phases)
    assert plan.lead_blocks() == [(2.0, 14.5, 1), (17.0, 20.0, 1)]


def test_drive_off_reaches_the_cruise_speed_in_four_seconds_at_constant_acceleration():
    road = Road.from_pieces((0.0, 0.0), 0.0, [(500.0, 0.0)], 2)
    times_s = np.round(np.arange(0.0, 8.0001, 0.05), 6)
    index = MANOEUVRES.index("drive_off")  # 6: the scene starts standing and drives off
    plan = plan_ego(np.random.default_rng(0), road, index, times_s, 0.0)
    v = np.random.default_rng(0).uniform(7.0, 11.0)  # the scene's cruise speed, the first draw: 9.5478 m/s
    assert plan.phases[0].manoeuvre == "drive_off" and plan.phases[0].end_s == pytest.approx(4.0)
    # a = v / 4 s from standstill: s(t) = a t^2 / 2, so s(2) = v / 2 = 4.774 m and s(4) = 2 v = 19.096 m
    assert plan.s[40] == pytest.approx(v / 2, rel=1e-9) and plan.s[80] == pytest.approx(2 * v, rel=1e-9)
    # then it cruises at v: 0.05 s further on it has gone v x 0.05 = 0.477 m more
    assert (plan.s[81] - plan.s[80]) / 0.05 == pytest.approx(v, rel=1e-9)


def test_past_its_ends_a_road_goes_on_straight_by_hand():
    road = Road.from_pieces((100.0, 50.0), 0.3, [(50.0, 0.0), (40.0, 1 / 100)], 2)
    assert road.heading[-1] == pytest.approx(0.7)
    xy, heading = road.to_global(np.array([-10.0, road.length + 5.0]), np.array([0.0, 2.0]))
    assert xy[0] == pytest.approx([100.0 - 10.0 * math.cos(0.3), 50.0 - 10.0 * math.sin(0.3)])
    end = road.centre[-1] + 5.0 * np.array([math.cos(0.7), math.sin(0.7)]) + 2.0 * np.array([-math.sin(0.7),
                                                                                               math.cos(0.7)])
    assert xy[1] == pytest.approx(end) and heading == pytest.approx([0.3, 0.7])
    inside = np.linspace(0.0, road.length, 7)  # on the road: the sampled centre line, linear between samples
    for axis in (0, 1):
        assert road.to_global(inside, np.zeros(7))[0][:, axis] == pytest.approx(
            np.interp(inside, road.arc_length, road.centre[:, axis]), abs=1e-9)


def test_frenet_coordinates_are_the_nearest_point_of_the_centre_line_by_hand():
    # Samples (0, 0), (0.5, 0), (1, 0) heading 0, then one 0.5 m step turning 90 degrees: the last segment runs
    # along 45 degrees to (1 + 0.5 / sqrt 2, 0.5 / sqrt 2). The point 0.2 m along it and 0.2 m to its left,
    # (1 + 0.2 / sqrt 2 - 0.2 / sqrt 2, 0.2 / sqrt 2 + 0.2 / sqrt 2) = (1, 0.2828), lies at s = 1.2 m, d = 0.2 m
    # (its nearest sample, (1, 0) with heading 0, would say s = 1.0, d = 0.283).
    road = Road.from_pieces((0.0, 0.0), 0.0, [(1.0, 0.0), (0.5, math.pi)], 1)
    s, d = road.to_frenet(np.array([[1.0, 0.4 / math.sqrt(2)]]))
    assert s == pytest.approx([1.2], abs=1e-12) and d == pytest.approx([0.2], abs=1e-12)


@pytest.mark.parametrize("seed, index, population", [(2026, 0, "default"), (7, 2, "nuscenes")])
def test_the_devkits_ego_centric_map_lies_within_the_map(tmp_path, seed, index, population):
    """NuScenes.render_ego_centric_map (the map under render_sample_data's LiDAR and radar views) slices the mask
    40 m * sqrt(2) around the ego without a bounds check: cut short past the image's edges, its map was shifted or
    empty (the demo's scene 0 at every keyframe, the car park aisle's 2 m past the top)."""
    model = build_scene(seed=seed, index=index, samples_per_scene=10, population=population)
    write_map(tmp_path / "map.png", model)
    mask = MapMask(str(tmp_path / "map.png"), resolution=0.1)
    height, width = mask.mask().shape
    crop = int(40 / mask.resolution * math.sqrt(2))  # render_ego_centric_map's axes_limit 40 m, in pixels
    for t_s in model.times_s[::20]:
        column, row = mask.to_pixel_coords(*model.ego_to_global(t_s).translation[:2])
        assert crop <= column <= width - crop and crop <= row <= height - crop, t_s


def test_splits_hold_the_last_fifth_for_validation():
    assert scenes_by_split(2) == {"synth_train": ["synth-0000"], "synth_val": ["synth-0001"]}
    splits = scenes_by_split(10)
    assert splits["synth_val"] == ["synth-0008", "synth-0009"] and len(splits["synth_train"]) == 8
    assert scenes_by_split(1) == {"synth_train": [], "synth_val": ["synth-0000"]}
    assert scenes_by_split(8)["synth_val"] == ["synth-0006", "synth-0007"]  # a fifth of 8 is 1.6: rounded to 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_scenes=0), "num_scenes"), (dict(samples_per_scene=0), "samples_per_scene"),
    (dict(image_size=(8, 8)), "image_size"), (dict(version=""), "version"), (dict(workers=0), "workers"),
    # "..": the tables would go beside the dataroot, "." into it; scene_records is removed once the tables are written
    (dict(version=".."), "version"), (dict(version="."), "version"), (dict(version="scene_records"), "version"),
    (dict(version="v1.0/synth"), "version"), (dict(version="../v1.0-synth"), "version"),
])
def test_bad_arguments_are_refused(tmp_path, kwargs, message):
    arguments = dict(num_scenes=1, samples_per_scene=1, seed=0, image_size=(64, 36), progress=False)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        generate_world(tmp_path / "out", **arguments)
    assert list(tmp_path.iterdir()) == []  # refused before anything is written


def _tree(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_same_arguments_give_byte_identical_worlds_with_or_without_worker_processes(tmp_path, monkeypatch):
    """... and with or without them each scene is recorded in SCENE_RECORDS as it ends (what a resume reads back),
    the folder removed once the tables are written."""
    from perception.datasets.synthetic import SCENE_RECORDS, world

    recorded_when_the_tables_are_written = []

    def write_tables(table_dir, tables, splits):
        recorded_when_the_tables_are_written.append(sorted(os.listdir(table_dir.parent / SCENE_RECORDS)))
        return original_write_tables(table_dir, tables, splits)

    original_write_tables = world.write_tables
    monkeypatch.setattr(world, "write_tables", write_tables)
    arguments = dict(num_scenes=2, samples_per_scene=2, seed=7, image_size=(64, 36), progress=False)
    environment = dict(os.environ)
    first = generate_world(tmp_path / "a", **arguments)
    second = generate_world(tmp_path / "b", workers=2, **arguments)
    assert dict(os.environ) == environment  # the workers' thread limits are not left behind
    assert recorded_when_the_tables_are_written == [["scene_0.json", "scene_1.json", "world.json"]] * 2
    assert not (first / SCENE_RECORDS).exists() and not (second / SCENE_RECORDS).exists()
    files = _tree(first)
    assert files == _tree(second) and len(files) > 100
    _, mismatch, errors = filecmp.cmpfiles(first, second, [str(f) for f in files], shallow=False)
    assert mismatch == [] and errors == []
    other = generate_world(tmp_path / "c", **dict(arguments, seed=8))
    assert (other / "v1.0-synth" / "sample.json").read_bytes() != (first / "v1.0-synth" / "sample.json").read_bytes()


def test_a_world_stopped_midway_resumes_to_the_uninterrupted_one(tmp_path, monkeypatch):
    """Stopped while recording its second scene (that scene's files half written), a world resumed records only
    the scenes it lacks and comes out byte-identical to one generated without a stop; a resume with other
    arguments is refused."""
    from perception.datasets.synthetic import SCENE_RECORDS
    from perception.datasets.synthetic.writer import SceneRecorder

    arguments = dict(num_scenes=3, samples_per_scene=2, seed=7, image_size=(64, 36), progress=False)
    whole = generate_world(tmp_path / "whole", **arguments)
    recorded, original = [], SceneRecorder.record

    def stopped_in_the_second(self, on_frame=None):
        if len(recorded) == 1:  # three of its sensor frames written, then the stop
            written = []
            return original(self, lambda frame: written.append(frame) or len(written) < 3 or _stop())
        recorded.append(self)
        return original(self, on_frame)

    def _stop():
        raise KeyboardInterrupt

    monkeypatch.setattr(SceneRecorder, "record", stopped_in_the_second)
    with pytest.raises(KeyboardInterrupt):
        generate_world(tmp_path / "stopped", **arguments)
    assert sorted(p.name for p in (tmp_path / "stopped" / SCENE_RECORDS).iterdir()) == ["scene_0.json", "world.json"]
    with pytest.raises(ValueError, match="world.json: the scenes recorded there are of a run with another seed;"):
        generate_world(tmp_path / "stopped", resume=True, **dict(arguments, seed=8))
    world = tmp_path / "stopped" / SCENE_RECORDS / "world.json"
    kept = world.read_text()
    world.write_text("[]")
    with pytest.raises(ValueError, match=r"world.json: the record of the run is a JSON list, not an object"):
        generate_world(tmp_path / "stopped", resume=True, **arguments)
    world.write_text(kept)
    recorded.clear()
    monkeypatch.setattr(SceneRecorder, "record", lambda self, on_frame=None: recorded.append(self) or original(
        self, on_frame))
    resumed = generate_world(tmp_path / "stopped", resume=True, **arguments)
    assert len(recorded) == 2  # scenes 1 and 2
    files = _tree(whole)
    assert files == _tree(resumed)
    _, mismatch, errors = filecmp.cmpfiles(whole, resumed, [str(f) for f in files], shallow=False)
    assert mismatch == [] and errors == []


def test_a_run_without_resume_starts_anew_over_an_unfinished_world(tmp_path, monkeypatch):
    """Without resume, an unfinished world in the folder (its SCENE_RECORDS, another run's) is neither checked nor
    read back: the folder is made anew for this run, which records every scene."""
    from perception.datasets.synthetic import SCENE_RECORDS
    from perception.datasets.synthetic.writer import SceneRecorder

    records = tmp_path / SCENE_RECORDS
    records.mkdir()
    (records / "world.json").write_text(json.dumps({"num_scenes": 1, "seed": 8}))
    (records / "scene_0.json").write_text("{}")

    def stop(self, on_frame=None):
        raise KeyboardInterrupt  # before any sensor frame of the first scene

    monkeypatch.setattr(SceneRecorder, "record", stop)
    with pytest.raises(KeyboardInterrupt):
        generate_world(tmp_path, num_scenes=1, samples_per_scene=1, seed=7, image_size=(64, 36), progress=False)
    assert os.listdir(records) == ["world.json"]
    assert json.loads((records / "world.json").read_text())["seed"] == 7


def test_lane_paint_and_ground_colours_by_hand():
    from perception.datasets.synthetic.shading import (
        ASPHALT, GRASS, NO_PAINT, WHITE, WHITE_PAINT, YELLOW_PAINT, ground_rgb, paint_at,
    )

    lanes, length = 2, 100.0
    assert paint_at(10.0, 0.15, lanes, length) == YELLOW_PAINT  # double yellow at |d| = 0.15
    assert paint_at(10.0, -0.15, lanes, length) == YELLOW_PAINT
    assert paint_at(1.0, -3.5, lanes, length) == WHITE_PAINT  # divider dash: s mod 9 < 3
    assert paint_at(5.0, -3.5, lanes, length) == NO_PAINT  # gap between dashes
    assert paint_at(5.0, 7.0, lanes, length) == WHITE_PAINT  # solid edge line at 2 lanes x 3.5 m
    assert paint_at(5.0, -1.75, lanes, length) == NO_PAINT  # lane centre
    assert paint_at(-5.0, 0.15, lanes, length) == NO_PAINT  # before the road starts
    assert ground_rgb(5.0, -1.75, lanes, 9.5, length) == ASPHALT
    assert ground_rgb(5.0, 7.0, lanes, 9.5, length) == WHITE
    assert ground_rgb(5.0, 12.0, lanes, 9.5, length) == GRASS


def test_camera_shading_by_hand():
    """Two rays: one hits an upward triangle of colour c at 10 m under a sun overhead (light 1, haze
    1 - exp(-10/350)); one misses, looking straight up (the zenith colour). BGR, within the pixel noise."""
    from perception.datasets.synthetic.raycast import MISSED_TRIANGLE
    from perception.datasets.synthetic.shading import (
        HAZE_DISTANCE_M, NOISE_LEVELS, SKY_HORIZON, SKY_ZENITH, shade_pixels,
    )

    colour = np.array([[0.2, 0.5, 0.8]], np.float32)
    directions = np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]], np.float32)
    pixels = shade_pixels(np.array([10.0, np.inf], np.float32), np.array([0, MISSED_TRIANGLE], np.uint32), directions,
                          np.zeros(3), colour,
                          np.array([[0.0, 0.0, 1.0]], np.float32), np.array([3], np.int8), np.zeros((2, 2, 2)),
                          0.0, 0.0, 1.0, 2, 9.5, 100.0, np.array([0.0, 0.0, 1.0]), np.uint64(1))
    haze = 1.0 - np.exp(-10.0 / HAZE_DISTANCE_M)
    hit = 255.0 * (colour[0] * (1.0 - haze) + np.array(SKY_HORIZON) * haze)
    assert np.all(np.abs(pixels[0].astype(float) - hit[::-1]) <= NOISE_LEVELS + 0.5)
    assert np.all(np.abs(pixels[1].astype(float) - 255.0 * np.array(SKY_ZENITH)[::-1]) <= NOISE_LEVELS + 0.5)


def test_packed_object_poses_equal_each_tracks_own_interpolation():
    model = build_scene(seed=0, index=1, samples_per_scene=2)
    for t_s in (-0.5, 0.0, 0.1234567, 0.5, 99.0):  # 99 s: past the grid, clamped like Track.pose
        expected = [np.r_[centre, yaw] for centre, yaw in (a.box_centre(t_s) for a in model.actors)]
        np.testing.assert_allclose(model.geometry.poses(t_s), np.array(expected), atol=1e-9)


def test_radar_dynamic_property_by_hand():
    """ARS408 dyn_prop codes: 7 'stopped' for traffic standing (which the devkit's default filters drop), 1
    'stationary' for a parked car or a static structure, 6 'crossing' below 0.3 of the speed on the line of sight,
    else 2 'oncoming' approaching, 0 'moving' receding."""
    from types import SimpleNamespace

    from perception.datasets.synthetic.radar import _dyn_prop

    actors = [SimpleNamespace(behaviour="driving"), SimpleNamespace(behaviour="parked")]
    assert _dyn_prop(0, 0.0, actors, 0.0) == 7 and _dyn_prop(1, 0.0, actors, 0.0) == 1
    assert _dyn_prop(-1, 0.0, actors, 0.0) == 1
    assert _dyn_prop(0, 10.0, actors, -2.9) == 6 and _dyn_prop(0, 10.0, actors, 2.9) == 6  # |2.9| < 0.3 x 10
    assert _dyn_prop(0, 10.0, actors, -3.1) == 2 and _dyn_prop(0, 10.0, actors, 3.1) == 0
    assert 7 not in DEVKIT_RADAR_FILTERS["dyn_prop"] and 1 in DEVKIT_RADAR_FILTERS["dyn_prop"]


def test_camera_rays_pass_through_the_pixel_centres_by_hand():
    from perception.datasets.synthetic.camera import pixel_rays

    # fx 2, fy 4, principal point (2, 1) on a 4 x 2 image: pixel (column 1, row 0) has its centre at (1.5, 0.5),
    # the ray (x, y, z) ~ ((1.5 - 2) / 2, (0.5 - 1) / 4, 1) = (-0.25, -0.125, 1); pixel (3, 1): (0.75, 0.125, 1)
    intrinsic = np.array([[2.0, 0.0, 2.0], [0.0, 4.0, 1.0], [0.0, 0.0, 1.0]])
    rays = pixel_rays(intrinsic, (4, 2))
    assert rays.shape == (8, 3)
    for index, ray in ((1, [-0.25, -0.125, 1.0]), (7, [0.75, 0.125, 1.0])):  # row-major: index = row * 4 + column
        np.testing.assert_allclose(rays[index], np.array(ray) / np.linalg.norm(ray), rtol=0, atol=1e-6)


def test_visibility_bins_are_nuscenes_by_hand():
    from perception.datasets.synthetic.tables import visibility_token

    # nuScenes' visibility table: token 1 'v0-40', 2 'v40-60', 3 'v60-80', 4 'v80-100' (fraction visible, upper
    # bound included); 15 sight lines per box (writer.visible_fraction): 6 / 15 = 0.4, 9 / 15 = 0.6, 12 / 15 = 0.8
    fractions = [0.0, 6 / 15, 7 / 15, 9 / 15, 10 / 15, 12 / 15, 13 / 15, 1.0]
    assert [visibility_token(f) for f in fractions] == ["1", "1", "2", "2", "3", "3", "4", "4"]


def test_visible_fraction_casts_at_the_15_points_of_the_box_by_hand():
    from types import SimpleNamespace

    from perception.datasets.synthetic.actors import Actor, Track
    from perception.datasets.synthetic.writer import visible_fraction

    # A 2 m wide, 4 m long, 1.5 m high box centred at (10, 0, 0.75) turned 90 degrees (its +x along global +y): its
    # points pulled 20 % in lie 0.4 x (4, 2, 1.5) = (1.6, 0.8, 0.6) m from the centre along the box's axes, so the
    # front face's at (10, 1.6, 0.75), the front-left-top corner's at (10 - 0.8, 1.6, 0.75 + 0.6).
    times_s = np.array([0.0, 1.0])
    actor = Actor("car", np.array([2.0, 4.0, 1.5]), None,
                  Track(times_s, np.array([[10.0, 0.0], [10.0, 0.0]]), np.full(2, 0.5 * np.pi)), "parked")
    viewpoint = np.array([0.0, 0.0, 2.0])
    cast = []

    def owner_where_y_is_positive(origin, directions):  # this object owns the lines of sight to y > 0
        cast.append(directions)
        return SimpleNamespace(owner=np.where(directions[:, 1] > 1e-9, 3, -1))

    fraction = visible_fraction(SimpleNamespace(cast=owner_where_y_is_positive), 3, actor, 0.5, viewpoint)
    targets = np.array([[10.0, 0.0, 0.75], [10.0, 1.6, 0.75], [10.0, -1.6, 0.75], [9.2, 0.0, 0.75], [10.8, 0.0, 0.75],
                        [10.0, 0.0, 1.35], [10.0, 0.0, 0.15]]
                       + [[10.0 - y, x, 0.75 + z] for x in (-1.6, 1.6) for y in (-0.8, 0.8) for z in (-0.6, 0.6)])
    expected = (targets - viewpoint) / np.linalg.norm(targets - viewpoint, axis=1, keepdims=True)
    np.testing.assert_allclose(cast[0], expected, atol=1e-12)
    assert fraction == pytest.approx(5 / 15)  # the front face's point and the 4 front corners


def test_wheels_stand_on_their_axles_inside_the_body():
    # A body 2 m wide, tyres of radius 0.33 m on axles at x = 1.2 and -1.2 m: centres at y = +-(1.0 - 0.15) m and
    # z = 0.33 m (on the ground), each 0.66 m across in x and z and 0.25 m wide along y.
    wheels = _wheels(2.0, 0.33, (1.2, -1.2))
    assert len(wheels) == 4
    for wheel, (x, y) in zip(wheels, [(1.2, -0.85), (1.2, 0.85), (-1.2, -0.85), (-1.2, 0.85)]):
        low, high = wheel.vertices.min(axis=0), wheel.vertices.max(axis=0)
        np.testing.assert_allclose((low + high) / 2, [x, y, 0.33], atol=1e-9)
        np.testing.assert_allclose(high - low, [0.66, 0.25, 0.66], atol=1e-9)
