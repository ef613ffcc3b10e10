"""The catalogue of the 10 nuScenes detection classes as the synthetic world draws them: nuScenes category,
typical size and spread, radar cross-section, LiDAR reflectivity."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np


@dataclass(frozen=True)
class ClassSpec:
    """What the generator knows about a detection class: the nuScenes category it is annotated as, mean size
    (width, length, height) [m] and its spread, radar cross-section [dBsm] and LiDAR reflectivity of its body."""

    category: str
    mean_wlh: Tuple[float, float, float]
    std_wlh: Tuple[float, float, float]
    rcs_dbsm: float
    reflectivity: float


CLASS_SPECS: Dict[str, ClassSpec] = {
    "car": ClassSpec("vehicle.car", (1.95, 4.6, 1.7), (0.1, 0.3, 0.12), 8.0, 0.55),
    "truck": ClassSpec("vehicle.truck", (2.5, 7.0, 3.0), (0.1, 0.8, 0.25), 15.0, 0.5),
    "bus": ClassSpec("vehicle.bus.rigid", (2.9, 11.2, 3.4), (0.05, 0.6, 0.1), 18.0, 0.5),
    "trailer": ClassSpec("vehicle.trailer", (2.9, 10.5, 3.6), (0.05, 1.2, 0.15), 15.0, 0.45),
    "construction_vehicle": ClassSpec("vehicle.construction", (2.8, 6.4, 3.2), (0.15, 0.6, 0.25), 15.0, 0.5),
    "pedestrian": ClassSpec("human.pedestrian.adult", (0.67, 0.72, 1.75), (0.06, 0.08, 0.08), -5.0, 0.3),
    "motorcycle": ClassSpec("vehicle.motorcycle", (0.8, 2.1, 1.5), (0.06, 0.12, 0.08), 3.0, 0.5),
    "bicycle": ClassSpec("vehicle.bicycle", (0.62, 1.75, 1.7), (0.05, 0.08, 0.08), 0.0, 0.4),
    "barrier": ClassSpec("movable_object.barrier", (2.5, 0.5, 1.0), (0.15, 0.05, 0.05), 2.0, 0.6),
    "traffic_cone": ClassSpec("movable_object.trafficcone", (0.42, 0.42, 1.05), (0.03, 0.03, 0.05), -8.0, 0.8),
}
"""Keyed by detection class name. Bicycles and motorcycles with a rider: the box holds the rider (nuScenes)."""

NUSCENES_TRAIN_ANNOTATIONS: Dict[str, int] = {
    "car": 413318, "pedestrian": 185847, "barrier": 125095, "traffic_cone": 82362, "truck": 72815,
    "trailer": 20701, "bus": 13163, "construction_vehicle": 11993, "motorcycle": 10109, "bicycle": 9478,
}
"""Annotations per detection class in the nuScenes v1.0 train split (28,130 keyframes, 944,881 boxes, 33.6 a
keyframe), as mmdetection3d (v1.1+) tabulates them ("category | number") when its ``NuScenesDataset`` loads
``nuscenes_infos_train.pkl``. The ``nuscenes`` population draws its classes in these shares."""

LITERATURE_RCS_DBSM: Dict[str, float] = {
    "car": 5.0, "truck": 13.0, "bus": 15.0, "trailer": 13.0, "construction_vehicle": 13.0, "pedestrian": -8.0,
    "motorcycle": 0.0, "bicycle": -3.0, "barrier": 0.0, "traffic_cone": -10.0,
}
"""Radar cross-section [dBsm] per class at 77 GHz in the ``nuscenes`` population, inside the measured ranges:
passenger cars 0-10 dBsm over aspect (Silberling et al., "Radar measurements of representative small light
passenger vehicles", Dynamic Research Inc. DRI-TM-14-70-1, 2014), adult pedestrians -10 to -5 dBsm
(Fortuny-Guasch and Chareau, "Radar cross section measurements of pedestrian dummies and humans in the 24/77 GHz
frequency bands", JRC report EUR 25762 EN, 2013), trucks and buses 10-20 dBsm; two-wheelers with rider between
pedestrian and car, a plastic cone and barrier low. The default world keeps ``ClassSpec.rcs_dbsm``."""

CATEGORY_INDEX = {
    "human.pedestrian.adult": 2, "movable_object.barrier": 9, "movable_object.trafficcone": 12,
    "vehicle.bicycle": 14, "vehicle.bus.rigid": 16, "vehicle.car": 17, "vehicle.construction": 18,
    "vehicle.motorcycle": 21, "vehicle.trailer": 22, "vehicle.truck": 23,
}
"""nuScenes' own category indices (the lidarseg numbering)."""


def sample_size(detection_name: str, rng: np.random.Generator, with_rider: Optional[bool] = None) -> np.ndarray:
    """(3,) (width, length, height) [m] drawn around the class mean (a cycle without rider is lower)."""
    spec = CLASS_SPECS[detection_name]
    size = np.asarray(spec.mean_wlh) + np.asarray(spec.std_wlh) * np.clip(rng.standard_normal(3), -2, 2)
    if detection_name in ("bicycle", "motorcycle") and not with_rider:
        size[2] *= 0.65
    return np.round(size, 3)
