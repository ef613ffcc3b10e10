"""What the loader does with absent sensors, dropped sensors, bad files, and its metadata cache."""
import json
import os
import pickle
import re
import shutil

import cv2
import numpy as np
import pytest
from nuscenes.nuscenes import NuScenes

from perception.datasets import metadata
from perception.datasets.io import (
    CorruptFileError, MissingFileError, NonFinitePointsWarning, read_image, read_lidar_bin, read_radar_pcd,
)
from perception.datasets.loader import NuScenesFrames, load_frame
from perception.paths import REAL_FIXTURE_ROOT
from tests.datasets.helpers import REAL_SPLIT, REAL_VERSION, real_fixture_copy

needs_real = pytest.mark.skipif(not (REAL_FIXTURE_ROOT / REAL_VERSION).is_dir(),
                                reason=f"real nuScenes fixture absent at {REAL_FIXTURE_ROOT}")


def _lidar_file(path, points: np.ndarray) -> str:
    np.asarray(points, dtype=np.float32).tofile(path)
    return str(path)


# ---- file readers ----------------------------------------------------------------------------------------------

def test_lidar_bin_of_wrong_size_names_the_file(tmp_path):
    path = tmp_path / "cut.pcd.bin"
    path.write_bytes(b"\0" * 47)
    with pytest.raises(CorruptFileError, match="cut.pcd.bin: 47 bytes is not a multiple of 20") as error:
        read_lidar_bin(str(path))
    assert isinstance(error.value, ValueError) and error.value.path == str(path)


def test_lidar_non_finite_points_are_dropped_with_a_count(tmp_path):
    points = np.arange(25, dtype=np.float32).reshape(5, 5)
    points[1, 0], points[3, 3] = np.nan, np.inf
    points[4, 4] = np.nan  # the ring index is not used: kept
    with pytest.warns(NonFinitePointsWarning, match="nan.pcd.bin: dropped 2 of 5 points"):
        read = read_lidar_bin(_lidar_file(tmp_path / "nan.pcd.bin", points))
    np.testing.assert_array_equal(read[:, :4], points[[0, 2, 4], :4])


def test_missing_files_name_the_path(tmp_path):
    for reader, name in ((read_lidar_bin, "a.pcd.bin"), (read_radar_pcd, "b.pcd"), (read_image, "c.jpg")):
        with pytest.raises(FileNotFoundError, match=f"{name}: file not found") as error:
            reader(str(tmp_path / name))
        assert isinstance(error.value, MissingFileError) and isinstance(error.value, CorruptFileError)
        assert error.value.path == str(tmp_path / name)


def test_corrupt_file_errors_survive_pickling_with_their_path():
    """As they do when a DataLoader worker hands them to the main process."""
    for error in (CorruptFileError("/data/a.jpg", "cannot decode"), MissingFileError("/data/b.pcd", "file not found")):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and again.path == error.path and str(again) == str(error)


def test_undecodable_image_names_the_file(tmp_path):
    path = tmp_path / "garbage.jpg"
    path.write_bytes(b"\xff\xd8 not really a jpeg" * 10 + b"\xff\xd9")
    with pytest.raises(CorruptFileError, match="garbage.jpg: cannot decode") as error:
        read_image(str(path))
    assert error.value.path == str(path)


def test_a_jpeg_cut_short_is_corrupt_not_grey(tmp_path):
    """OpenCV decodes a JPEG cut short with a warning on stderr and fills the missing rows grey."""
    image = np.random.default_rng(0).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    encoded = cv2.imencode(".jpg", image)[1].tobytes()
    whole, cut = tmp_path / "whole.jpg", tmp_path / "cut.jpg"
    whole.write_bytes(encoded)
    cut.write_bytes(encoded[:len(encoded) // 3])
    assert read_image(str(whole)).shape == (90, 160, 3)
    padded = tmp_path / "padded.jpg"  # some encoders pad after the end-of-image marker: still whole
    padded.write_bytes(encoded + b"\x00" * 16 + b"\n")
    np.testing.assert_array_equal(read_image(str(padded)), read_image(str(whole)))
    assert cv2.imread(str(cut)) is not None  # what OpenCV alone would hand on
    with pytest.raises(CorruptFileError, match="cut.jpg: truncated JPEG"):
        read_image(str(cut))


@needs_real
def test_truncated_or_foreign_radar_file_names_the_file(tmp_path):
    source = sorted((REAL_FIXTURE_ROOT / "samples" / "RADAR_FRONT").iterdir())[0].read_bytes()
    truncated = tmp_path / "truncated.pcd"
    data_start = source.index(b"DATA binary\n") + len(b"DATA binary\n")
    truncated.write_bytes(source[:data_start + 10 * 43])  # 10 points of 43 bytes, the header says more
    with pytest.raises(CorruptFileError, match="truncated.pcd: truncated"):
        read_radar_pcd(str(truncated))
    foreign = tmp_path / "foreign.pcd"
    foreign.write_bytes(source.replace(b"FIELDS x y z dyn_prop", b"FIELDS x y z dynprop_"))
    with pytest.raises(ValueError, match="foreign.pcd: radar PCD fields"):
        read_radar_pcd(str(foreign))
    short_header = tmp_path / "short_header.pcd"
    header_end = source.index(b"DATA binary")
    header = source[:header_end].decode("ascii")
    sizes = next(line for line in header.splitlines() if line.startswith("SIZE"))
    short_header.write_bytes(header.replace(sizes, sizes.rsplit(" ", 1)[0]).encode() + source[header_end:])
    with pytest.raises(CorruptFileError, match="short_header.pcd: PCD header gives .*'SIZE': 17"):
        read_radar_pcd(str(short_header))
    with pytest.raises(ValueError, match="not a PCD file"):
        (tmp_path / "empty.pcd").write_bytes(b"")
        read_radar_pcd(str(tmp_path / "empty.pcd"))


# ---- absent and dropped sensors --------------------------------------------------------------------------------

def _remove_sample_data(dataroot, sample_token: str, channels) -> None:
    """Deletes the sample's sample_data records of these channels from the copied tables."""
    tables = dataroot / REAL_VERSION
    sensors = {s["token"]: s["channel"] for s in json.loads((tables / "sensor.json").read_text())}
    calibrated = {c["token"]: sensors[c["sensor_token"]]
                  for c in json.loads((tables / "calibrated_sensor.json").read_text())}
    records = json.loads((tables / "sample_data.json").read_text())
    kept = [r for r in records if not (r["sample_token"] == sample_token
                                       and calibrated[r["calibrated_sensor_token"]] in channels)]
    assert len(records) - len(kept) == len(channels)
    (tables / "sample_data.json").write_text(json.dumps(kept))


def test_radar_filters_on_no_radar_field_are_named_where_the_loader_is_made(nusc_synthetic, tmp_path):
    # numpy's "no field of name dyn_props" came at the first radar file read (a dataset made, its tables cached)
    message = "^radar_filters: no radar PCD field named 'dyn_props' \\(the fields: x, y, z, "
    with pytest.raises(ValueError, match=message):
        NuScenesFrames(str(tmp_path / "no_tables"), "v1.0-synth", "all", radar_filters={"dyn_props": (0,)},
                       cache_dir=None, progress=False)
    with pytest.raises(ValueError, match=message):
        load_frame(nusc_synthetic, "no such sample", radar_filters={"dyn_props": (0,)})


@needs_real
def test_absent_channels_are_recorded_and_the_rest_loads(tmp_path):
    root = real_fixture_copy(tmp_path)
    token = NuScenes(REAL_VERSION, str(REAL_FIXTURE_ROOT), verbose=False).sample[1]["token"]
    _remove_sample_data(root, token, ["RADAR_BACK_LEFT", "CAM_BACK"])
    nusc = NuScenes(REAL_VERSION, str(root), verbose=False)
    frame = load_frame(nusc, token, image_size=(160, 90))
    assert frame.missing == {"RADAR_BACK_LEFT", "CAM_BACK"}
    assert "CAM_BACK" not in frame.cameras and len(frame.cameras) == 5
    complete = load_frame(NuScenes(REAL_VERSION, str(REAL_FIXTURE_ROOT), verbose=False), token, cameras=False)
    assert len(frame.radar.points) < len(complete.radar.points) and frame.radar.num_sweeps == 1
    np.testing.assert_array_equal(frame.lidar.points, complete.lidar.points)


@needs_real
def test_a_sample_without_lidar_or_radar_gets_its_ego_pose_from_the_nearest_record(tmp_path):
    root = real_fixture_copy(tmp_path)
    token = NuScenes(REAL_VERSION, str(REAL_FIXTURE_ROOT), verbose=False).sample[0]["token"]
    radars = ["RADAR_FRONT", "RADAR_FRONT_LEFT", "RADAR_FRONT_RIGHT", "RADAR_BACK_LEFT", "RADAR_BACK_RIGHT"]
    _remove_sample_data(root, token, ["LIDAR_TOP", *radars])
    nusc = NuScenes(REAL_VERSION, str(root), verbose=False)
    frame = load_frame(nusc, token, cameras=False)
    assert frame.lidar is None and frame.radar is None
    assert frame.missing == {"lidar", "LIDAR_TOP", "radar", "camera", *radars}
    sample = nusc.get("sample", token)
    nearest = min((nusc.get("sample_data", t) for t in sample["data"].values()),
                  key=lambda r: abs(r["timestamp"] - sample["timestamp"]))
    assert frame.timestamp_us == nearest["timestamp"]
    np.testing.assert_allclose(frame.ego_pose.ego_to_global.translation,
                               nusc.get("ego_pose", nearest["ego_pose_token"])["translation"])
    assert len(frame.gt_boxes) > 30  # ground truth still there, in that pose's ego frame


@needs_real
@pytest.mark.parametrize("drop", [("lidar",), ("radar",), ("camera",), ("lidar", "radar", "camera")])
def test_dropped_groups_are_blank_and_recorded(nusc_real, drop, tmp_path):
    dataset = NuScenesFrames(REAL_FIXTURE_ROOT, REAL_VERSION, REAL_SPLIT, drop=drop, image_size=(160, 90),
                             nusc=nusc_real, cache_dir=tmp_path, progress=False)
    frame = dataset[0]
    assert frame.missing == set(drop)
    assert (frame.lidar is None) == ("lidar" in drop) and (frame.radar is None) == ("radar" in drop)
    assert (frame.cameras == {}) == ("camera" in drop)
    assert len(frame.gt_boxes) > 30
    with pytest.raises(ValueError, match="unknown sensor groups \\['sonar'\\]"):
        NuScenesFrames(REAL_FIXTURE_ROOT, REAL_VERSION, REAL_SPLIT, drop=("sonar",), nusc=nusc_real,
                       cache_dir=tmp_path, progress=False)


@needs_real
def test_an_empty_lidar_file_is_corrupt(tmp_path):
    """A spinning LiDAR always sees the ground: a file of no bytes was cut short, not a sweep without returns."""
    root = real_fixture_copy(tmp_path, copied_channels=("LIDAR_TOP",))
    nusc = NuScenes(REAL_VERSION, str(root), verbose=False)
    sample = nusc.sample[0]
    path = nusc.get_sample_data_path(sample["data"]["LIDAR_TOP"])
    open(path, "wb").close()
    with pytest.raises(CorruptFileError, match=re.escape(os.path.basename(path)) + ": empty") as error:
        load_frame(nusc, sample["token"], cameras=False)
    assert error.value.path == path


# ---- bad files through the dataset -------------------------------------------------------------------------------

@needs_real
def test_bad_files_in_a_split_raise_errors_naming_them(tmp_path):
    root = real_fixture_copy(tmp_path / "root", copied_channels=("LIDAR_TOP", "CAM_FRONT"))
    dataset = NuScenesFrames(root, REAL_VERSION, REAL_SPLIT, cache_dir=tmp_path / "cache", progress=False)
    lidar_path = dataset.nusc.get_sample_data_path(dataset.nusc.sample[0]["data"]["LIDAR_TOP"])
    with open(lidar_path, "r+b") as f:
        f.truncate(os.path.getsize(lidar_path) - 7)
    with pytest.raises(ValueError, match=re.escape(os.path.basename(lidar_path)) + ": .* not a multiple of 20"):
        dataset[0]
    camera_path = dataset.nusc.get_sample_data_path(dataset.nusc.sample[1]["data"]["CAM_FRONT"])
    os.remove(camera_path)
    with pytest.raises(FileNotFoundError, match=re.escape(os.path.basename(camera_path))):
        dataset[1]
    assert dataset[2].lidar is not None  # the other keyframes still load


# ---- metadata cache ------------------------------------------------------------------------------------------------

@needs_real
def test_cache_gives_the_same_frames_and_skips_the_devkit(nusc_real, tmp_path, monkeypatch):
    fresh = NuScenesFrames(REAL_FIXTURE_ROOT, REAL_VERSION, REAL_SPLIT, image_size=(160, 90), nusc=nusc_real,
                           cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.npz"))) == 1

    def no_devkit(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(metadata, "build_sample_table", no_devkit)
    cached = NuScenesFrames(REAL_FIXTURE_ROOT, REAL_VERSION, REAL_SPLIT, image_size=(160, 90), cache_dir=tmp_path,
                            progress=False)
    assert cached._nusc is None and cached.sample_tokens == fresh.sample_tokens
    for index in range(len(fresh)):
        a, b = fresh[index], cached[index]
        direct = load_frame(nusc_real, fresh.sample_tokens[index], image_size=(160, 90))
        for frame in (b, direct):
            np.testing.assert_array_equal(frame.lidar.points, a.lidar.points)
            np.testing.assert_array_equal(frame.radar.points, a.radar.points)
            np.testing.assert_array_equal(frame.gt_boxes.centers, a.gt_boxes.centers)
            np.testing.assert_array_equal(frame.ego_pose.ego_to_global.matrix, a.ego_pose.ego_to_global.matrix)
            for channel, view in frame.cameras.items():
                np.testing.assert_array_equal(view.camera_to_ego.matrix, a.cameras[channel].camera_to_ego.matrix)
                np.testing.assert_array_equal(view.image, a.cameras[channel].image)


@needs_real
def test_cache_is_rebuilt_when_a_table_changes(tmp_path, monkeypatch):
    root = real_fixture_copy(tmp_path / "root")
    builds = []
    build = metadata.build_sample_table
    monkeypatch.setattr(metadata, "build_sample_table", lambda *a, **k: builds.append(1) or build(*a, **k))
    options = dict(cache_dir=tmp_path / "cache", progress=False, cameras=False)
    NuScenesFrames(root, REAL_VERSION, REAL_SPLIT, **options)
    NuScenesFrames(root, REAL_VERSION, REAL_SPLIT, **options)
    assert len(builds) == 1
    annotations = root / REAL_VERSION / "sample_annotation.json"
    records = json.loads(annotations.read_text())
    records[0]["num_lidar_pts"] += 1000
    annotations.write_text(json.dumps(records))
    dataset = NuScenesFrames(root, REAL_VERSION, REAL_SPLIT, **options)
    assert len(builds) == 2 and len(list((tmp_path / "cache").glob("*.npz"))) == 1
    assert any(int(n) >= 1000 for n in dataset.table.gt_num_lidar_points)
    NuScenesFrames(root, REAL_VERSION, REAL_SPLIT, lidar_sweeps=3, **options)  # other settings, other file
    assert len(builds) == 3 and len(list((tmp_path / "cache").glob("*.npz"))) == 2
    # a cache file cut short or overwritten is built again (it raised BadZipFile / EOFError without its path)
    path = metadata.cache_path(tmp_path / "cache", root, REAL_VERSION, REAL_SPLIT, 10, 6)
    for content in (b"PK\x03\x04garbage", b""):
        with open(path, "wb") as handle:
            handle.write(content)
        rebuilt = NuScenesFrames(root, REAL_VERSION, REAL_SPLIT, **options)
        np.testing.assert_array_equal(rebuilt.table.gt_num_lidar_points, dataset.table.gt_num_lidar_points)
    assert len(builds) == 5


@needs_real
def test_split_without_scene_in_this_version_is_an_error(nusc_real, tmp_path):
    with pytest.raises(ValueError, match="split 'mini_train' has no scene in v1.0-mini"):
        NuScenesFrames(REAL_FIXTURE_ROOT, REAL_VERSION, "mini_train", nusc=nusc_real, cache_dir=tmp_path,
                       progress=False)


@needs_real
def test_an_official_split_of_another_version_is_refused_where_a_run_cached_it(tmp_path):
    # The fixture's scene-0916 is in 'val' as well as in 'mini_val': before splits followed the devkit's version
    # rule, 'val' on v1.0-mini was loaded and cached (the same keyframes); such a cache skipped the split's check.
    options = dict(cache_dir=tmp_path, progress=False, cameras=False)
    NuScenesFrames(REAL_FIXTURE_ROOT, REAL_VERSION, REAL_SPLIT, **options)
    shutil.copy(metadata.cache_path(tmp_path, REAL_FIXTURE_ROOT, REAL_VERSION, REAL_SPLIT, 10, 6),
                metadata.cache_path(tmp_path, REAL_FIXTURE_ROOT, REAL_VERSION, "val", 10, 6))
    with pytest.raises(ValueError, match="split 'val' is an official split of the nuScenes versions ending in "
                                         "'trainval', not of v1.0-mini"):
        NuScenesFrames(REAL_FIXTURE_ROOT, REAL_VERSION, "val", **options)


@needs_real
def test_caches_of_deleted_dataroots_are_pruned(tmp_path):
    cache = tmp_path / "cache"
    gone = real_fixture_copy(tmp_path / "gone")
    NuScenesFrames(gone, REAL_VERSION, REAL_SPLIT, cache_dir=cache, progress=False, cameras=False)
    shutil.rmtree(gone)
    (cache / "unrelated.txt").write_text("kept")
    kept = real_fixture_copy(tmp_path / "kept")
    NuScenesFrames(kept, REAL_VERSION, REAL_SPLIT, cache_dir=cache, progress=False, cameras=False)
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [metadata.cache_path(cache, kept, REAL_VERSION, REAL_SPLIT, 10, 6).split("/")[-1], "unrelated.txt"])


@needs_real
def test_image_of_another_size_than_its_record_names_the_file(tmp_path):
    root = real_fixture_copy(tmp_path, copied_channels=("CAM_BACK",))
    nusc = NuScenes(REAL_VERSION, str(root), verbose=False)
    sample = nusc.sample[0]
    path = nusc.get_sample_data_path(sample["data"]["CAM_BACK"])
    cv2.imwrite(path, np.zeros((450, 800, 3), np.uint8))
    with pytest.raises(CorruptFileError,
                       match=re.escape(os.path.basename(path)) + ": image is 800x450, .* says 1600x900"):
        load_frame(nusc, sample["token"], lidar_sweeps=1, radar_sweeps=1)


@needs_real
@pytest.mark.parametrize("problem, message", [
    (dict(camera_intrinsic=[]), "its camera's calibrated_sensor record has no camera_intrinsic"),
    (dict(width=0), "its camera record: CAM_BACK: image width must be positive, got 0")])
def test_camera_records_that_cannot_be_read_name_the_image(tmp_path, problem, message):
    # an empty intrinsic matrix raised AttributeError on None; a zero width named the channel only
    root = real_fixture_copy(tmp_path)
    tables = root / REAL_VERSION
    table = "calibrated_sensor" if "camera_intrinsic" in problem else "sample_data"
    records = json.loads((tables / f"{table}.json").read_text())
    nusc = NuScenes(REAL_VERSION, str(REAL_FIXTURE_ROOT), verbose=False)
    back = nusc.get("sample_data", nusc.sample[0]["data"]["CAM_BACK"])
    wanted = back["calibrated_sensor_token"] if table == "calibrated_sensor" else back["token"]
    for record in records:
        if record["token"] == wanted:
            record.update(problem)
    (tables / f"{table}.json").write_text(json.dumps(records))
    with pytest.raises(ValueError, match=re.escape(os.path.basename(back["filename"])) + ": " + re.escape(message)):
        load_frame(NuScenes(REAL_VERSION, str(root), verbose=False), nusc.sample[0]["token"], lidar_sweeps=1,
                   radar_sweeps=1)


def test_lidar_bin_of_whole_floats_but_a_partial_point_names_the_file(tmp_path):
    path = tmp_path / "partial.pcd.bin"
    path.write_bytes(b"\0" * 44)  # 11 float32: two points of 5 values and one value of a third
    with pytest.raises(CorruptFileError, match="partial.pcd.bin: 44 bytes is not a multiple of 20"):
        read_lidar_bin(str(path))


def test_radar_points_with_a_non_finite_rcs_or_velocity_are_dropped_with_a_count(tmp_path):
    from nuscenes.utils.data_classes import RadarPointCloud

    from perception.datasets.synthetic.radar import PCD_DTYPE, encode_pcd

    points = np.zeros(5, PCD_DTYPE)  # all valid, moving, unambiguous: the default filters keep every one
    points["ambig_state"] = 3
    points["x"] = [1.0, 2.0, 3.0, 4.0, 5.0]
    points["rcs"][1], points["vx_comp"][2], points["vy_comp"][3] = np.nan, np.inf, -np.inf
    path = tmp_path / "nan.pcd"
    path.write_bytes(encode_pcd(points))
    assert RadarPointCloud.from_file(str(path)).points.shape == (18, 5)  # the devkit keeps them
    with pytest.warns(NonFinitePointsWarning, match="nan.pcd: dropped 3 of 5 points"):
        read = read_radar_pcd(str(path))
    np.testing.assert_array_equal(read[:, 0], [1.0, 5.0])


def test_decode_reduction_is_the_largest_exact_divisor_that_keeps_the_target_size():
    from perception.datasets.io import decode_reduction

    # nuScenes' 1600 x 900: 900 / 8 = 112.5 is not whole, so 8 never applies; 1600 / 2 = 800 and 900 / 2 = 450 meet
    # an 800 x 450 target exactly; 1600 / 4 = 400 >= 400 and 900 / 4 = 225 >= 225
    assert decode_reduction((1600, 900), (800, 450)) == 2
    assert decode_reduction((1600, 900), (801, 450)) == 1
    assert decode_reduction((1600, 900), (400, 225)) == 4
    assert decode_reduction((1600, 900), (100, 50)) == 4
    assert decode_reduction((1600, 896), (200, 112)) == 8  # 896 / 8 = 112
    assert decode_reduction((1600, 896), (200, 113)) == 4


def test_a_nan_only_in_the_first_radar_point_means_an_empty_sweep(tmp_path):
    from nuscenes.utils.data_classes import RadarPointCloud

    from perception.datasets.synthetic.radar import PCD_DTYPE, encode_pcd

    points = np.zeros(3, PCD_DTYPE)
    points["ambig_state"], points["x"] = 3, [1.0, 2.0, 3.0]
    for nan_at, count in ((0, 0), (2, 3)):  # the devkit's rule: a NaN in point 0, and only there, = no points
        marked = points.copy()
        marked["vy"][nan_at] = np.nan  # vy: a column the reader does not check for NaN otherwise
        path = tmp_path / f"nan_at_{nan_at}.pcd"
        path.write_bytes(encode_pcd(marked))
        devkit = RadarPointCloud.from_file(str(path)).points
        assert devkit.shape[1] == count
        np.testing.assert_array_equal(read_radar_pcd(str(path)), devkit.T)


@needs_real
def test_a_sample_without_any_camera_record_misses_the_camera_group(tmp_path):
    """All six camera records absent (not dropped): the group and each channel are recorded missing, cameras {}."""
    from perception.sensors import CAMERA_CHANNELS

    root = real_fixture_copy(tmp_path)
    token = NuScenes(REAL_VERSION, str(REAL_FIXTURE_ROOT), verbose=False).sample[2]["token"]
    _remove_sample_data(root, token, list(CAMERA_CHANNELS))
    frame = load_frame(NuScenes(REAL_VERSION, str(root), verbose=False), token, image_size=(160, 90))
    assert frame.cameras == {} and frame.missing == {"camera", *CAMERA_CHANNELS}
    assert frame.lidar is not None and frame.radar is not None


# ---- the dataset's indexing and its devkit ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def blank_frames(synthetic_root, nusc_synthetic):
    """The tiny world's 8 keyframes with every sensor dropped (ground truth only)."""
    from tests.conftest import TINY_WORLD

    return NuScenesFrames(synthetic_root, TINY_WORLD["version"], "all", lidar_sweeps=1, radar_sweeps=1,
                          drop=("lidar", "radar", "camera"), nusc=nusc_synthetic, cache_dir=None, progress=False)


def test_negative_indices_count_from_the_end_as_a_sequence_does(blank_frames, nusc_synthetic):
    """frames[-k] is frames[len - k] down to -len, ground truth included (the devkit's annotations of that sample
    in the 10 classes); -len - 1 and len are out of range."""
    from perception.classes import category_to_detection_name

    count = len(blank_frames)
    assert count == 8
    for negative in (-1, -3, -count):
        frame = blank_frames[negative]
        assert frame.sample_token == blank_frames.sample_tokens[count + negative]
        annotations = nusc_synthetic.get("sample", frame.sample_token)["anns"]
        expected = [token for token in annotations if category_to_detection_name(
            nusc_synthetic.get("sample_annotation", token)["category_name"]) is not None]
        assert len(frame.gt_boxes) == len(expected) > 0
    for outside in (count, -count - 1):
        with pytest.raises(IndexError, match=f"index {outside} out of range for {count} frames"):
            blank_frames[outside]


def test_a_devkit_of_another_dataroot_or_version_is_refused(synthetic_root, nusc_synthetic, tmp_path):
    from tests.conftest import TINY_WORLD

    for dataroot, version in ((tmp_path, TINY_WORLD["version"]), (synthetic_root, "v1.0-mini")):
        with pytest.raises(ValueError, match=f"nusc is {TINY_WORLD['version']} at .*, the dataset asks for "
                                             f"{version} at {re.escape(str(dataroot))}"):
            NuScenesFrames(dataroot, version, "all", nusc=nusc_synthetic, cache_dir=None, progress=False)


def test_a_pickled_dataset_leaves_the_devkit_behind(blank_frames, nusc_synthetic):
    """What a DataLoader worker receives: the columnar table, not the devkit's tables (reloaded only on use)."""
    assert blank_frames.nusc is nusc_synthetic
    copy = pickle.loads(pickle.dumps(blank_frames))
    assert copy._nusc is None and blank_frames._nusc is nusc_synthetic
    assert copy[0].sample_token == blank_frames[0].sample_token


@needs_real
def test_skip_corrupt_files_hands_on_the_frame_as_unreadable(tmp_path):
    """With skip_corrupt_files a rejected file gives that keyframe's UnreadableFrame (its token, the path, the
    problem) and the other keyframes load; without it the error stops the read."""
    from perception.datasets.loader import UnreadableFrame

    root = real_fixture_copy(tmp_path / "root", copied_channels=("LIDAR_TOP",))
    nusc = NuScenes(REAL_VERSION, str(root), verbose=False)
    token = nusc.sample[1]["token"]
    path = nusc.get_sample_data_path(nusc.sample[1]["data"]["LIDAR_TOP"])
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 7)
    options = dict(cameras=False, nusc=nusc, cache_dir=None, progress=False)
    skipping = NuScenesFrames(root, REAL_VERSION, REAL_SPLIT, skip_corrupt_files=True, **options)
    index = skipping.sample_tokens.index(token)
    assert index > 0
    unreadable = skipping[index]
    assert isinstance(unreadable, UnreadableFrame) and unreadable.sample_token == token
    assert unreadable.path == path and "not a multiple of 20" in unreadable.problem
    assert all(skipping[i].lidar is not None for i in range(len(skipping)) if i != index)
    with pytest.raises(CorruptFileError, match=re.escape(os.path.basename(path))):
        NuScenesFrames(root, REAL_VERSION, REAL_SPLIT, **options)[index]
