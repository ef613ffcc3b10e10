"""The nuScenes tables of a generated world: deterministic tokens, the fixed tables (category, attribute,
visibility, sensor, calibrated_sensor) and writing all 13 tables plus splits.json as stable JSON."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, List, Tuple

from perception.datasets.synthetic.class_specs import CATEGORY_INDEX, CLASS_SPECS
from perception.datasets.synthetic.rig import CALIBRATION, camera_matrix
from perception.datasets.records import SPLITS_FILE, TABLE_NAMES
from perception.sensors import ALL_CHANNELS, modality_of


ATTRIBUTE_DESCRIPTIONS = {
    "vehicle.moving": "Vehicle is moving.",
    "vehicle.stopped": "Vehicle, with a driver/rider in/on it, is currently stationary but has an intent to move.",
    "vehicle.parked": "Vehicle is stationary (usually for longer duration) with no immediate intent to move.",
    "cycle.with_rider": "There is a rider on the bicycle or motorcycle.",
    "cycle.without_rider": "There is NO rider on the bicycle or motorcycle.",
    "pedestrian.sitting_lying_down": "The human is sitting or lying down.",
    "pedestrian.standing": "The human is standing.",
    "pedestrian.moving": "The human is moving.",
}

VISIBILITY_LEVELS = (("1", "v0-40", 0.4), ("2", "v40-60", 0.6), ("3", "v60-80", 0.8), ("4", "v80-100", 1.0))
"""(token, level, upper bound of the visible fraction), as nuScenes defines them."""


def make_token(*parts: object) -> str:
    """A 32-hex-digit token determined by ``parts`` (md5 of their '/'-joined text)."""
    return hashlib.md5("/".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def visibility_token(visible_fraction: float) -> str:
    """The visibility token of an object of which ``visible_fraction`` (0-1) is visible."""
    for token, _, upper in VISIBILITY_LEVELS:
        if visible_fraction <= upper:
            return token
    return VISIBILITY_LEVELS[-1][0]


def fixed_tables(namespace: str, image_size: Tuple[int, int]) -> Dict[str, List[dict]]:
    """category, attribute, visibility, sensor and calibrated_sensor (one calibration per channel, intrinsics
    scaled to ``image_size`` = (width, height))."""
    categories = sorted({spec.category for spec in CLASS_SPECS.values()}, key=lambda c: CATEGORY_INDEX[c])
    tables: Dict[str, List[dict]] = {
        "category": [{"token": make_token(namespace, "category", c), "name": c,
                      "description": f"Synthetic {c}.", "index": CATEGORY_INDEX[c]} for c in categories],
        "attribute": [{"token": make_token(namespace, "attribute", a), "name": a, "description": d}
                      for a, d in ATTRIBUTE_DESCRIPTIONS.items()],
        "visibility": [{"token": token, "level": level,
                        "description": f"visibility of whole object is between {level[1:].replace('-', ' and ')}%"}
                       for token, level, _ in VISIBILITY_LEVELS],
        "sensor": [], "calibrated_sensor": [],
    }
    for channel in ALL_CHANNELS:
        sensor_token = make_token(namespace, "sensor", channel)
        tables["sensor"].append({"token": sensor_token, "channel": channel, "modality": modality_of(channel)})
        translation, rotation, intrinsic = CALIBRATION[channel]
        tables["calibrated_sensor"].append({
            "token": calibrated_sensor_token(namespace, channel), "sensor_token": sensor_token,
            "translation": list(translation), "rotation": list(rotation),
            "camera_intrinsic": [] if intrinsic is None else camera_matrix(channel, image_size).tolist(),
        })
    return tables


def calibrated_sensor_token(namespace: str, channel: str) -> str:
    return make_token(namespace, "calibrated_sensor", channel)


def write_tables(table_dir: Path, tables: Dict[str, List[dict]], splits: Dict[str, List[str]]) -> None:
    """Writes ``<table>.json`` for all TABLE_NAMES and splits.json (sorted keys, no whitespace: byte-stable)."""
    table_dir.mkdir(parents=True, exist_ok=True)
    missing = [name for name in TABLE_NAMES if name not in tables]
    if missing:
        raise ValueError(f"cannot write {table_dir}: tables {missing} are missing")
    for name in TABLE_NAMES:
        (table_dir / f"{name}.json").write_text(json.dumps(tables[name], sort_keys=True, separators=(",", ":")))
    (table_dir / SPLITS_FILE).write_text(json.dumps(splits, sort_keys=True, indent=1))
