"""File readers for nuScenes sensor data, with validation: each bad file raises an error that names it.

- LiDAR ``.pcd.bin``: float32 records of 5 values (x, y, z, intensity, ring index), 20 bytes per point.
- Radar ``.pcd``: binary PCD v0.7 with the 18 fields of ``RADAR_PCD_FIELDS`` (x, y, z 4-byte floats); the same
  parse and the same default state filters as ``nuscenes.utils.data_classes.RadarPointCloud.from_file``
  (vectorised here: the devkit decodes the file value by value with ``struct``).
- Camera ``.jpg`` / ``.png``: decoded with OpenCV into (H, W, 3) uint8 RGB.

Degradation, documented once: points with a NaN or Inf coordinate are dropped and a ``NonFinitePointsWarning``
names the file and the count (one bad return must not cost the whole sweep; a LiDAR sweep of no finite point is
corrupt, as an empty one is); everything else that is wrong with a file (truncated, wrong size, undecodable,
malformed header) raises a ``CorruptFileError`` (a ValueError), an absent file a ``MissingFileError`` (a
CorruptFileError and a FileNotFoundError): both carry the file's ``path``, and their message starts with it. Catch
CorruptFileError to survive any bad sensor file (the streaming state does).
"""
from __future__ import annotations

import functools
import os
import warnings
from typing import Dict, Sequence, Tuple

import cv2
import numpy as np

LIDAR_BIN_VALUES = 5
"""float32 values per LiDAR point in a .pcd.bin: x, y, z [m] in the sensor frame, intensity (0-255), ring index."""
LIDAR_BIN_RECORD_BYTES = 4 * LIDAR_BIN_VALUES

RADAR_PCD_FIELDS = (
    "x", "y", "z", "dyn_prop", "id", "rcs", "vx", "vy", "vx_comp", "vy_comp", "is_quality_valid", "ambig_state",
    "x_rms", "y_rms", "invalid_state", "pdh0", "vx_rms", "vy_rms",
)
"""The fields of a nuScenes radar .pcd, in file order (the devkit's RadarPointCloud rows)."""

DEVKIT_RADAR_FILTERS: Dict[str, Tuple[int, ...]] = {
    "invalid_state": (0,),
    "dyn_prop": tuple(range(7)),
    "ambig_state": (3,),
}
"""The states RadarPointCloud.from_file keeps by default (its class attributes invalid_states, dynprop_states,
ambig_states): valid clusters, every dynamic property but 'stopped' (7), unambiguous Doppler only."""


def check_radar_filters(filters: Dict[str, Sequence[int]], argument: str = "filters") -> None:
    """ValueError naming ``argument`` when a key of radar state ``filters`` (field -> states kept) is not one of
    RADAR_PCD_FIELDS."""
    unknown = sorted(set(filters) - set(RADAR_PCD_FIELDS))
    if unknown:
        raise ValueError(f"{argument}: no radar PCD field named {', '.join(map(repr, unknown))} (the fields: "
                         f"{', '.join(RADAR_PCD_FIELDS)})")


_PCD_TYPES = {("F", 2): "f2", ("F", 4): "f4", ("F", 8): "f8", ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4",
              ("I", 8): "i8", ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8"}
_PCD_HEADER_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")


class CorruptFileError(ValueError):
    """A sensor file the readers reject; ``path`` names it, ``problem`` says what is wrong."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem

    def __reduce__(self):  # pickles (e.g. out of a DataLoader worker) with both arguments
        return type(self), (self.path, self.problem)


class MissingFileError(CorruptFileError, FileNotFoundError):
    """A sensor file that is absent: a CorruptFileError, and a FileNotFoundError for callers that catch that."""


class NonFinitePointsWarning(UserWarning):
    """Points with NaN or Inf values were dropped from a file (the message names the file and the count)."""


def _require_file(path: str) -> None:
    if not os.path.isfile(path):
        raise MissingFileError(path, "file not found")


def _drop_non_finite(points: np.ndarray, columns: Sequence[int], path: str) -> np.ndarray:
    finite = np.all(np.isfinite(points[:, columns]), axis=1)
    dropped = int(len(points) - finite.sum())
    if dropped:
        warnings.warn(f"{path}: dropped {dropped} of {len(points)} points with NaN or Inf values",
                      NonFinitePointsWarning, stacklevel=3)
        points = points[finite]
    return points


def read_lidar_bin(path: str) -> np.ndarray:
    """A nuScenes LiDAR .pcd.bin -> (N, 5) float32 [x, y, z, intensity, ring] in the sensor frame.

    Raises MissingFileError when absent, CorruptFileError when empty or without a single point of finite x, y, z
    and intensity (a spinning LiDAR always sees the ground) or when the size is not a multiple of 20 bytes. Other
    points with a non-finite x, y, z or intensity are dropped with a NonFinitePointsWarning.
    """
    _require_file(path)
    size = os.path.getsize(path)
    if size == 0:
        raise CorruptFileError(path, "empty: a LiDAR sweep without a single return")
    if size % LIDAR_BIN_RECORD_BYTES:
        raise CorruptFileError(path, f"{size} bytes is not a multiple of {LIDAR_BIN_RECORD_BYTES} "
                                     f"({LIDAR_BIN_VALUES} float32 per point): truncated or not a nuScenes .pcd.bin")
    points = np.fromfile(path, dtype=np.float32).reshape(-1, LIDAR_BIN_VALUES)
    if not np.all(np.isfinite(points[:, :4]), axis=1).any():
        raise CorruptFileError(path, f"none of its {len(points)} points has a finite x, y, z and intensity: a LiDAR "
                                     f"sweep without a single return")
    return _drop_non_finite(points, [0, 1, 2, 3], path)


def _parse_pcd_header(path: str, lines: Sequence[str]) -> Dict[str, list]:
    header = {}
    for line in lines:
        if line.startswith("#") or not line:
            continue
        key, *values = line.split()
        header[key] = values
    missing = [key for key in _PCD_HEADER_KEYS if key not in header]
    if missing:
        raise CorruptFileError(path, f"not a PCD file, header lacks {missing}")
    if header["FIELDS"] != list(RADAR_PCD_FIELDS):
        raise CorruptFileError(path, f"radar PCD fields {header['FIELDS']} differ from nuScenes' "
                                     f"{list(RADAR_PCD_FIELDS)}")
    if header["DATA"] != ["binary"]:
        raise CorruptFileError(path, f"only binary PCD data is supported, got DATA {header['DATA']}")
    if header["HEIGHT"] != ["1"] or any(c != "1" for c in header["COUNT"]):
        raise CorruptFileError(path, "only unorganised PCD (HEIGHT 1, COUNT 1) is supported")
    lengths = {key: len(header[key]) for key in ("SIZE", "TYPE", "COUNT")}
    if set(lengths.values()) != {len(RADAR_PCD_FIELDS)}:
        raise CorruptFileError(path, f"PCD header gives {lengths} entries for its {len(RADAR_PCD_FIELDS)} fields")
    not_float32 = [name for name, kind, size in zip(RADAR_PCD_FIELDS[:3], header["TYPE"], header["SIZE"])
                   if (kind, size) != ("F", "4")]
    if not_float32:
        raise CorruptFileError(path, f"radar PCD fields {not_float32} are not 4-byte floats (TYPE F, SIZE 4), as "
                                     f"nuScenes' x, y, z are")
    return header


def read_radar_pcd(path: str, filters: Dict[str, Sequence[int]] = DEVKIT_RADAR_FILTERS) -> np.ndarray:
    """A nuScenes radar .pcd -> (M, 18) float64 with columns RADAR_PCD_FIELDS in the sensor frame.

    Same result as ``RadarPointCloud.from_file(path).points.T`` for the same ``filters`` (the devkit's defaults:
    DEVKIT_RADAR_FILTERS); a NaN in the first point means an empty sweep, as in the devkit. Other points with a
    non-finite x, y, z, rcs, vx_comp or vy_comp are dropped with a NonFinitePointsWarning. Raises
    MissingFileError / CorruptFileError for a missing, malformed (POINTS not WIDTH x HEIGHT, say, or x, y, z not
    4-byte floats) or truncated file, ValueError for ``filters`` of a field the file has not (check_radar_filters).
    """
    check_radar_filters(filters)
    _require_file(path)
    with open(path, "rb") as f:
        blob = f.read()
    marker = blob.find(b"\nDATA")
    end_of_header = blob.find(b"\n", marker + 1) if marker >= 0 else -1
    if end_of_header < 0:
        raise CorruptFileError(path, "not a PCD file (no DATA line in the header)")
    try:
        lines = blob[:end_of_header].decode("ascii").splitlines()
    except UnicodeDecodeError as error:
        raise CorruptFileError(path, f"PCD header is not ASCII ({error})") from None
    header = _parse_pcd_header(path, [line.strip() for line in lines])
    try:
        dtype = _pcd_record_dtype(tuple(header["TYPE"]), tuple(header["SIZE"]))
        width, points = int(header["WIDTH"][0]), int(header["POINTS"][0])
    except (KeyError, ValueError, IndexError) as error:
        raise CorruptFileError(path, f"unsupported PCD TYPE/SIZE/WIDTH/POINTS ({error})") from None
    if points != width:
        raise CorruptFileError(path, f"PCD header says POINTS {points}, not WIDTH x HEIGHT = {width} x 1")
    data = blob[end_of_header + 1:]
    if width <= 0:
        raise CorruptFileError(path, f"PCD header declares {width} points (nuScenes marks an empty sweep with one "
                                     f"NaN point, never with none)")
    if len(data) < width * dtype.itemsize:
        raise CorruptFileError(path, f"truncated: header says {width} points of {dtype.itemsize} bytes, "
                                     f"file holds {len(data)} bytes of data")
    records = np.frombuffer(data, dtype=dtype, count=width)
    if np.any(np.isnan(np.asarray(records[0].tolist(), dtype=np.float64))):
        return np.zeros((0, len(RADAR_PCD_FIELDS)))
    keep = radar_filter_mask(records, filters)
    value_columns = [RADAR_PCD_FIELDS.index(name) for name in ("x", "y", "z", "rcs", "vx_comp", "vy_comp")]
    return _drop_non_finite(_as_float64(records[keep]), value_columns, path)


def radar_filter_mask(records: np.ndarray, filters: Dict[str, Sequence[int]]) -> np.ndarray:
    """(N,) bool: the radar points (a record array with RADAR_PCD_FIELDS' names) whose every filtered field holds
    one of its kept states (``filters``: field -> states), tested on the raw values, as the devkit does on their
    float64 copies."""
    keep = np.ones(len(records), bool)
    for field_name, states in filters.items():
        keep &= (records[field_name][:, None] == np.asarray(states)).any(axis=1)
    return keep


@functools.lru_cache(maxsize=None)
def _pcd_record_dtype(types: Tuple[str, ...], sizes: Tuple[str, ...]) -> np.dtype:
    """The numpy record type of a radar PCD's points from its header's TYPE and SIZE (KeyError / ValueError for
    one it cannot read); cached, every radar file of a dataset having the same."""
    return np.dtype([(name, "<" + _PCD_TYPES[(kind, int(size))])
                     for name, kind, size in zip(RADAR_PCD_FIELDS, types, sizes)])


def _as_float64(records: np.ndarray) -> np.ndarray:
    """(M,) PCD records -> (M, 18) float64, columns RADAR_PCD_FIELDS."""
    points = np.empty((len(records), len(RADAR_PCD_FIELDS)))
    for column, name in enumerate(RADAR_PCD_FIELDS):
        points[:, column] = records[name]
    return points


JPEG_START_OF_IMAGE = b"\xff\xd8"
"""The marker every JPEG starts with (SOI)."""
JPEG_END_OF_IMAGE = b"\xff\xd9"
"""The marker every complete JPEG ends with (EOI), before the padding some encoders append (zeros, whitespace)."""
JPEG_TAIL_BYTES = 4096
"""How much of a JPEG's end is searched for JPEG_END_OF_IMAGE behind such padding."""
_REDUCED_DECODE = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                   8: cv2.IMREAD_REDUCED_COLOR_8}


def read_image(path: str, reduction: int = 1) -> np.ndarray:
    """A camera image -> (H, W, 3) uint8 RGB, decoded at 1/``reduction`` of its size (1, 2, 4 or 8; JPEG
    decodes that much faster, scaling in the DCT). Raises MissingFileError / CorruptFileError for an absent or
    undecodable file, a .jpg that is no JPEG (no start-of-image marker) or a JPEG cut short (no end-of-image
    marker: the decoder would fill the rest grey), ValueError for a reduction it cannot decode at."""
    _require_file(path)
    if reduction not in _REDUCED_DECODE:
        raise ValueError(f"{path}: image reduction must be one of {sorted(_REDUCED_DECODE)}, got {reduction}")
    encoded = np.fromfile(path, dtype=np.uint8)  # read once: checked, then decoded
    if path.lower().endswith((".jpg", ".jpeg")):
        if encoded[:2].tobytes() != JPEG_START_OF_IMAGE:
            raise CorruptFileError(path, "not a JPEG: it does not start with the start-of-image marker FF D8")
        if not encoded[-JPEG_TAIL_BYTES:].tobytes().rstrip(b"\x00 \t\r\n").endswith(JPEG_END_OF_IMAGE):
            raise CorruptFileError(path, "truncated JPEG: it does not end with the end-of-image marker")
    bgr = cv2.imdecode(encoded, _REDUCED_DECODE[reduction]) if len(encoded) else None
    if bgr is None:
        raise CorruptFileError(path, "cannot decode the image (corrupt or not an image file)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_reduction(full_size: Tuple[int, int], target_size: Tuple[int, int]) -> int:
    """The largest of 8, 4, 2 that divides both sides of ``full_size`` (W, H) and still leaves the image at least
    ``target_size`` (W, H); 1 when none does. Dividing exactly keeps pixel corners aligned (u' = u / reduction)."""
    for reduction in (8, 4, 2):
        if all(full % reduction == 0 and full // reduction >= target
               for full, target in zip(full_size, target_size)):
            return reduction
    return 1
