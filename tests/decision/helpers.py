"""Hand-built agents for the decision tests (ego frame: x forward, y left; sizes [width, length, height])."""
import numpy as np

from perception.classes import DETECTION_CLASSES
from perception.geometry import Boxes3D

CAR_SIZE = (1.9, 4.6, 1.6)
TRUCK_SIZE = (2.5, 10.0, 3.5)
PEDESTRIAN_SIZE = (0.7, 0.7, 1.8)


def agents(*rows) -> Boxes3D:
    """rows: (class name, x, y, vx, vy[, size[, yaw]]) -> Boxes3D in the ego frame."""
    if not rows:
        return Boxes3D.empty()
    sizes = {"car": CAR_SIZE, "truck": TRUCK_SIZE, "pedestrian": PEDESTRIAN_SIZE}
    centers, dims, yaws, velocities, labels = [], [], [], [], []
    for row in rows:
        name, x, y, vx, vy = row[:5]
        centers.append((x, y, 0.9))
        dims.append(row[5] if len(row) > 5 else sizes[name])
        yaws.append(row[6] if len(row) > 6 else 0.0)
        velocities.append((vx, vy))
        labels.append(DETECTION_CLASSES.index(name))
    return Boxes3D(np.array(centers), np.array(dims), np.array(yaws), np.array(velocities), np.array(labels))
