"""Sensor files the readers (perception.datasets.io) must reject with an error naming the file, not read into
something else: a radar header whose POINTS or x, y, z types disagree with its data, a .jpg that is no JPEG, a
LiDAR sweep without a single finite point."""
import warnings

import cv2
import numpy as np
import pytest

from perception.datasets.io import CorruptFileError, NonFinitePointsWarning, read_image, read_lidar_bin, read_radar_pcd
from perception.datasets.synthetic.radar import PCD_DTYPE, encode_pcd
from perception.paths import REAL_FIXTURE_ROOT


def _radar_file(path, header_edits=()) -> str:
    """A radar .pcd of 12 valid returns at x = 1..12 [m], its header (DATA line included) edited by (old, new)
    replacements."""
    points = np.zeros(12, PCD_DTYPE)
    points["ambig_state"], points["x"] = 3, np.arange(1.0, 13.0)
    encoded = encode_pcd(points)
    data_start = encoded.index(b"DATA binary\n") + len(b"DATA binary\n")
    header = encoded[:data_start]
    for old, new in header_edits:
        assert old in header
        header = header.replace(old, new)
    path.write_bytes(header + encoded[data_start:])
    return str(path)


def test_a_radar_header_whose_points_are_not_its_width_is_corrupt(tmp_path):
    # WIDTH 10 of the 12 points the file holds (POINTS 12) read 10 points silently.
    assert read_radar_pcd(_radar_file(tmp_path / "whole.pcd"))[:, 0].tolist() == list(range(1, 13))
    path = _radar_file(tmp_path / "width.pcd", [(b"WIDTH 12\n", b"WIDTH 10\n")])
    with pytest.raises(CorruptFileError, match=f"{tmp_path / 'width.pcd'}: PCD header says POINTS 12, not WIDTH x "
                                               f"HEIGHT = 10 x 1"):
        read_radar_pcd(path)


@pytest.mark.parametrize("field, edit", [
    ("x", (b"SIZE 4 4 4 ", b"SIZE 8 4 4 ")),
    ("z", (b"SIZE 4 4 4 ", b"SIZE 4 4 2 ")),
    ("y", (b"TYPE F F F ", b"TYPE F I F ")),
], ids=["x of 8 bytes", "z of 2 bytes", "y an integer"])
def test_a_radar_header_whose_x_y_z_are_not_4_byte_floats_is_corrupt(tmp_path, field, edit):
    # With WIDTH and POINTS 10 of the 12 points the data holds enough bytes for an 8-byte x: it was read as
    # garbage without a word.
    path = _radar_file(tmp_path / "types.pcd", [edit, (b"WIDTH 12\n", b"WIDTH 10\n"), (b"POINTS 12\n", b"POINTS 10\n")])
    with pytest.raises(CorruptFileError, match=f"{tmp_path / 'types.pcd'}: radar PCD fields \\['{field}'\\] are not "
                                               f"4-byte floats"):
        read_radar_pcd(path)


@pytest.mark.skipif(not (REAL_FIXTURE_ROOT / "samples" / "RADAR_FRONT").is_dir(), reason="real fixture absent")
def test_every_real_radar_file_still_reads():
    paths = sorted((REAL_FIXTURE_ROOT / "samples").glob("RADAR_*/*.pcd"))
    assert paths
    for path in paths:
        assert read_radar_pcd(str(path)).shape[1] == 18


@pytest.mark.parametrize("content", [
    cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes(),
    b"<html>404 Not Found</html>\n",
    b"",
], ids=["a png", "text", "empty"])
def test_a_jpg_that_is_no_jpeg_is_named_so_not_truncated(tmp_path, content):
    # It was reported as a truncated JPEG (no end-of-image marker).
    path = tmp_path / "front.jpg"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError, match=f"{path}: not a JPEG: it does not start with the start-of-image "
                                               f"marker FF D8"):
        read_image(str(path))


def test_a_lidar_sweep_without_a_finite_point_is_corrupt_as_an_empty_one_is(tmp_path):
    points = np.full((3, 5), np.nan, np.float32)
    points[0, :3], points[1, 3] = 1.0, 1.0  # finite x, y, z of one point, finite intensity of another: no whole point
    path = tmp_path / "nan.pcd.bin"
    points.tofile(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFinitePointsWarning)  # an error, not a warning and 0 points
        with pytest.raises(CorruptFileError, match=f"{path}: none of its 3 points has a finite x, y, z and intensity"):
            read_lidar_bin(str(path))
    points[2, :4] = 2.0  # one whole point (its ring index NaN: not used): read, the other two dropped with a warning
    points.tofile(path)
    with pytest.warns(NonFinitePointsWarning, match="nan.pcd.bin: dropped 2 of 3 points"):
        read = read_lidar_bin(str(path))
    np.testing.assert_array_equal(read[:, :4], [[2.0, 2.0, 2.0, 2.0]])


@pytest.mark.parametrize("edits, problem", [
    ([(b"DATA binary\n", b"DATA ascii\n")], "only binary PCD data is supported, got DATA \\['ascii'\\]"),
    ([(b"HEIGHT 1\n", b"HEIGHT 2\n")], "only unorganised PCD \\(HEIGHT 1, COUNT 1\\) is supported"),
    ([(b"COUNT 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n", b"COUNT 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 2\n")],
     "only unorganised PCD \\(HEIGHT 1, COUNT 1\\) is supported"),
    ([(b"WIDTH 12\n", b"WIDTH 0\n"), (b"POINTS 12\n", b"POINTS 0\n")],
     "PCD header declares 0 points \\(nuScenes marks an empty sweep with one NaN point, never with none\\)"),
], ids=["ascii data", "height 2", "a count of 2", "no point"])
def test_a_radar_header_the_reader_cannot_follow_is_corrupt(tmp_path, edits, problem):
    # Past each of these headers the binary reader went on: 12 points read as if binary and unorganised without a
    # word, or for no point an IndexError naming no file.
    path = _radar_file(tmp_path / "header.pcd", edits)
    with pytest.raises(CorruptFileError, match=f"{tmp_path / 'header.pcd'}: {problem}"):
        read_radar_pcd(path)


def _jpeg() -> bytes:
    image = np.random.default_rng(0).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


@pytest.mark.parametrize("name", ["FRONT.JPG", "front.jpeg", "front.JPEG"])
def test_a_jpeg_cut_short_is_corrupt_whatever_its_extension_is_spelt(tmp_path, name):
    # OpenCV alone decodes the cut JPEG, its missing rows grey, whatever the file is called.
    path = tmp_path / name
    encoded = _jpeg()
    path.write_bytes(encoded[:len(encoded) // 3])
    assert cv2.imread(str(path)) is not None
    with pytest.raises(CorruptFileError, match=f"{path}: truncated JPEG"):
        read_image(str(path))


def test_a_jpeg_padded_with_whitespace_after_its_end_marker_is_whole(tmp_path):
    # Padding of spaces, tabs, CR and LF (and zeros) after the end-of-image marker: the image OpenCV decodes from
    # the unpadded bytes.
    encoded = _jpeg()
    path = tmp_path / "padded.jpg"
    path.write_bytes(encoded + b" \t\r\n\x00 \t")
    whole = cv2.cvtColor(cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(read_image(str(path)), whole)


def test_a_radar_filter_on_no_field_of_the_file_is_named_before_any_file_is_read(tmp_path):
    # "invalid_states" (the devkit's class attribute's name) for the field invalid_state was numpy's "no field of
    # name invalid_states" at the first file read; the check comes first, here on a file that does not exist
    with pytest.raises(ValueError, match="^filters: no radar PCD field named 'invalid_states' \\(the fields: x, y, z, "
                                         "dyn_prop, id, rcs, vx, vy, vx_comp, vy_comp, is_quality_valid, ambig_state, "
                                         "x_rms, y_rms, invalid_state, pdh0, vx_rms, vy_rms\\)$"):
        read_radar_pcd(str(tmp_path / "absent.pcd"), {"invalid_states": (0,), "ambig_state": (3,)})
    kept = read_radar_pcd(_radar_file(tmp_path / "whole.pcd"), {"ambig_state": (3,), "id": (0,)})
    assert kept[:, 0].tolist() == list(range(1, 13))  # every field of the file may be filtered on
