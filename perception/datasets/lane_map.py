"""The lanes of a scene's map: each lane's centre line, for the labels that ask which lane the ego drove in
(perception.datasets.maneuver_labels) and for the lanes the decisions assume (perception.decision.lanes).

The synthetic world writes them beside its tables, ``<version>/lane_centres.json``: {log token: {"lane_width_m": w,
"lanes": [[[x, y], ...], ...]}}, each lane's centre line in global xy [m] in its driving direction. Real nuScenes
keyframes carry none here (the fixtures have no map expansion): ``keyframe_lanes`` returns None, the labels use
the ego's poses alone and the decisions straight lanes.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np
from nuscenes.nuscenes import NuScenes

from perception.geometry import RigidTransform, frenet_coordinates

LANES_FILE = "lane_centres.json"


@dataclass(frozen=True)
class LaneCentres:
    """A map's lanes: ``lines`` one (P >= 2, 2) [m] centre line per lane in its driving direction, all lanes
    ``width_m`` wide."""

    lines: Tuple[np.ndarray, ...]
    width_m: float

    def transformed(self, transform: RigidTransform) -> "LaneCentres":
        """The same lanes in another frame (``transform`` maps this frame to that one; x, y of points at z = 0)."""
        return LaneCentres(tuple(transform.apply(np.c_[line, np.zeros(len(line))])[:, :2] for line in self.lines),
                           self.width_m)

    def offsets(self, xy: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """For points xy (K, 2) [m]: across (L, K) [m], each point's distance from each lane's centre line (+ left
        of its driving direction; the lines extended straight at their ends), and that line's heading there (L, K)
        [rad]."""
        across, heading = [], []
        for line in self.lines:
            _, side, tangent = frenet_coordinates(line, xy, *end_headings(line))
            across.append(side)
            heading.append(tangent)
        return np.array(across).reshape(len(self.lines), -1), np.array(heading).reshape(len(self.lines), -1)

    def lane_of(self, xy: np.ndarray, yaw: np.ndarray) -> np.ndarray:
        """(K,) the lane each pose (xy (K, 2) [m], yaw (K,) [rad]) drives in: the nearest centre line among the lanes
        heading within 90 degrees of it, -1 where none is within a lane width (off the mapped lanes)."""
        return self.lane_from_offsets(*self.offsets(xy), yaw)

    def lane_from_offsets(self, across: np.ndarray, heading: np.ndarray, yaw: np.ndarray) -> np.ndarray:
        """lane_of from the poses' ``offsets`` (across, heading (L, K)) already computed and their yaw (K,) [rad]."""
        distance = np.where(np.cos(heading - np.asarray(yaw)[None]) > 0, np.abs(across), np.inf)
        lane = np.argmin(distance, axis=0)
        return np.where(distance[lane, np.arange(len(lane))] <= self.width_m, lane, -1)


def end_headings(line: np.ndarray) -> Tuple[float, float]:
    """The headings [rad] a centre line (P >= 2, 2) [m] is extended along beyond its last and before its first
    vertex (its last and first segments'), as frenet_coordinates takes them."""
    first, last = line[1] - line[0], line[-1] - line[-2]
    return math.atan2(last[1], last[0]), math.atan2(first[1], first[0])


def write_lane_centres(table_dir: Union[str, Path], maps: Dict[str, LaneCentres]) -> Path:
    """Writes ``<table_dir>/lane_centres.json`` ({log token: lanes}, cm precision, sorted keys: byte-stable)."""
    path = Path(table_dir) / LANES_FILE
    content = {token: {"lane_width_m": lanes.width_m,
                       "lanes": [np.round(line, 2).tolist() for line in lanes.lines]} for token, lanes in maps.items()}
    path.write_text(json.dumps(content, sort_keys=True, separators=(",", ":")))
    return path


def read_lane_centres(table_dir: Union[str, Path]) -> Optional[Dict[str, LaneCentres]]:
    """The lanes beside a world's tables by log token, a point repeated in a row along a line read once; None when
    the world has none; a ValueError naming the file and the log when it is unreadable, a log has no lane, a lane
    width is not finite and positive, or a lane is not a list of [x, y] points, has a point that is not finite or
    fewer than two distinct points (naming the lane's index too).
    Read once per version of the file."""
    path = Path(table_dir) / LANES_FILE
    if not path.exists():
        return None
    return _read_lane_file(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_lane_file(path: str, modified_ns: int) -> Dict[str, LaneCentres]:
    """read_lane_centres' reading, cached by the file's path and modification time."""
    try:
        raw = json.loads(Path(path).read_text())
        entries = {str(token): (list(entry["lanes"]), float(entry["lane_width_m"])) for token, entry in raw.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: unreadable lane centre lines ({error})") from None
    maps = {}
    for token, (raw_lines, width_m) in entries.items():
        if not raw_lines:
            raise ValueError(f"{path}: log {token} has no lane")
        if not (math.isfinite(width_m) and width_m > 0):
            raise ValueError(f"{path}: log {token}: lane width {width_m} must be finite and > 0")
        lines = tuple(_lane_line(path, token, index, line) for index, line in enumerate(raw_lines))
        maps[token] = LaneCentres(lines, width_m)
    return maps


def _lane_line(path: str, token: str, index: int, raw_line: object) -> np.ndarray:
    """Lane ``index`` of log ``token`` as read from the file: (P >= 2, 2) [m], a point repeated in a row dropped;
    ValueError naming the file, the log and the lane when it is not that."""
    try:
        line = np.asarray(raw_line, dtype=np.float64)
    except (ValueError, TypeError):  # ragged, or not numbers
        line = np.empty(0)
    if line.ndim != 2 or line.shape[1] != 2:
        raise ValueError(f"{path}: log {token}: lane {index} is not a list of [x, y] points (P >= 2 of them)")
    if not np.isfinite(line).all():
        raise ValueError(f"{path}: log {token}: lane {index} has a point that is not finite")
    line = line[np.r_[True, np.any(np.diff(line, axis=0) != 0, axis=1)]]
    if len(line) < 2:
        raise ValueError(f"{path}: log {token}: lane {index} needs at least two distinct points")
    return line


def log_lanes(nusc: NuScenes, log_token: str) -> Optional[LaneCentres]:
    """The lanes of the map of a log, global frame; None when the data has no lane centre lines."""
    maps = read_lane_centres(Path(nusc.dataroot) / nusc.version)
    if maps is None:
        return None
    if log_token not in maps:
        raise ValueError(f"{Path(nusc.dataroot) / nusc.version / LANES_FILE}: no lanes of log {log_token}")
    return maps[log_token]


def keyframe_lanes(nusc: NuScenes, sample_token: str, global_to_frame: RigidTransform) -> Optional[LaneCentres]:
    """The lanes of the map of the keyframe's log in the frame ``global_to_frame`` maps to; None when the data
    has no lane centre lines."""
    lanes = log_lanes(nusc, nusc.get("scene", nusc.get("sample", sample_token)["scene_token"])["log_token"])
    return None if lanes is None else lanes.transformed(global_to_frame)
