"""Five Continental ARS408-like radars: sparse detections with Doppler, RCS and the ARS408 cluster states,
written as the binary PCD v0.7 files (18 fields) that nuscenes-devkit's ``RadarPointCloud.from_file`` reads.

Detections lie in the sensor's horizontal plane (z = 0 in the sensor frame, as the ARS408 reports them).
Velocities are radial: ``vx, vy`` relative to the moving sensor, ``vx_comp, vy_comp`` with the sensor's own
motion removed (the object's radial velocity over ground), both in the sensor frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import numpy as np

from perception.classes import MOTOR_VEHICLE_CLASSES
from perception.datasets.io import RADAR_PCD_FIELDS
from perception.datasets.synthetic.actors import STOPPED_SPEED_M_S, Actor
from perception.datasets.synthetic.class_specs import CLASS_SPECS, LITERATURE_RCS_DBSM
from perception.datasets.synthetic.layout import Material
from perception.datasets.synthetic.raycast import OBJECT_MATERIAL, Snapshot
from perception.geometry import RigidTransform

PCD_FIELDS = tuple(zip(RADAR_PCD_FIELDS, ("<f4", "<f4", "<f4", "i1", "<i2", "<f4", "<f4", "<f4", "<f4", "<f4", "i1",
                                          "i1", "i1", "i1", "i1", "i1", "i1", "i1")))
"""The 18 fields of a nuScenes radar PCD, in file order, with their binary types (43 bytes per point)."""
PCD_DTYPE = np.dtype(list(PCD_FIELDS))

DYN_PROP = {"moving": 0, "stationary": 1, "oncoming": 2, "crossing_moving": 6, "stopped": 7}
"""ARS408 dynamic property codes (the devkit's default filters, DEVKIT_RADAR_FILTERS, drop 'stopped' clusters)."""
AMBIG_UNAMBIGUOUS = 3
INVALID_STATE_VALID = 0

AZIMUTH_STEP_DEG = 0.5
ELEVATIONS_DEG = (-1.5, 0.0, 1.5)


@dataclass(frozen=True)
class CrossSections:
    """Mean radar cross-sections [dBsm]: ``objects`` by detection class, ``static`` by static Material."""

    objects: Dict[str, float]
    static: Dict[int, float]


CROSS_SECTIONS = {
    "default": CrossSections({name: spec.rcs_dbsm for name, spec in CLASS_SPECS.items()},
                             {Material.BUILDING: 18.0, Material.WALL: 10.0, Material.POLE: 5.0}),
    "nuscenes": CrossSections(LITERATURE_RCS_DBSM, {Material.BUILDING: 5.0, Material.WALL: 3.0, Material.POLE: 0.0,
                                                    Material.TRUNK: 0.0, Material.FOLIAGE: -8.0, Material.SIGN: 3.0}),
}
"""By population (scene.build_scene); the radar sees the static materials named here. The default's static values
are whole-facade reflections; a radar cluster is one resolution cell of a facade, and in the ``nuscenes``
population the static returns take the objects' scale (building 5, wall 3, lamp post, bollard and trunk 0, a sign
plate 3, foliage -8 dBsm, a pedestrian's value: assumptions, not measurements; checked against scene-0916's
real_finetune keyframes, README)."""
RANGE_NOISE_STD_M, AZIMUTH_NOISE_STD_RAD, VELOCITY_NOISE_STD_M_S = 0.15, np.deg2rad(0.3), 0.08
FALSE_ALARMS_PER_FRAME = 3.0


def max_range_m(azimuth_rad: np.ndarray) -> np.ndarray:
    """ARS408 coverage: far beam (+-9 deg) to 250 m, near beam to 70 m at +-45 deg and 40 m at +-60 deg."""
    az = np.abs(np.rad2deg(azimuth_rad))
    return np.where(az <= 9.0, 250.0, np.where(az <= 45.0, 70.0, np.where(az <= 60.0, 40.0, 0.0)))


def detection_probability(rcs_dbsm: np.ndarray, range_m: np.ndarray) -> np.ndarray:
    """A radar-equation-shaped probability of detecting a reflector of ``rcs_dbsm`` at ``range_m``."""
    snr_db = rcs_dbsm - 40.0 * np.log10(np.maximum(range_m, 1.0) / 10.0) + 35.0
    return np.clip(snr_db / 20.0, 0.05, 0.97)


def simulate_frame(snapshot: Snapshot, actors: list, sensor_to_global: RigidTransform,
                   sensor_velocity_global: np.ndarray, rng: np.random.Generator,
                   cross_sections: CrossSections = CROSS_SECTIONS["default"]) -> np.ndarray:
    """One radar frame: a structured array of PCD_DTYPE (x, y in the sensor frame [m], z = 0)."""
    azimuth = np.deg2rad(np.arange(-60.0, 60.0 + 1e-9, AZIMUTH_STEP_DEG))
    az, el = np.meshgrid(azimuth, np.deg2rad(ELEVATIONS_DEG))
    az, el = az.reshape(-1), el.reshape(-1)
    directions = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)
    hits = snapshot.cast(sensor_to_global.translation, sensor_to_global.apply_rotation(directions))
    usable = hits.hit & (hits.distance < max_range_m(az)) & np.isin(
        hits.material, [OBJECT_MATERIAL, *cross_sections.static])
    rows = []
    # objects: a few detections each, more for large vehicles
    for owner in np.unique(hits.owner[usable & (hits.owner >= 0)]):
        actor: Actor = actors[owner]
        rays = np.flatnonzero(usable & (hits.owner == owner))
        rcs = cross_sections.objects[actor.detection_name]
        if rng.random() > detection_probability(rcs, float(hits.distance[rays].min())):
            continue
        large = actor.detection_name in MOTOR_VEHICLE_CLASSES
        count = 1 + (int(rng.binomial(min(len(rays) - 1, 4), 0.5)) if large else 0)
        speed = float(np.linalg.norm(actor.track.velocity(snapshot.t_s)))
        for ray in rng.choice(rays, size=count, replace=False):
            rows.append((az[ray], hits.distance[ray], rcs + rng.normal(0, 2.0), owner, speed))
    # static structures: thinned returns
    static_rays = np.flatnonzero(usable & (hits.owner < 0))
    for ray in static_rays[rng.random(len(static_rays)) < 0.08]:
        rcs = cross_sections.static[int(hits.material[ray])] + rng.normal(0, 3.0)
        if rng.random() < detection_probability(rcs, hits.distance[ray]):
            rows.append((az[ray], hits.distance[ray], rcs, -1, 0.0))

    points = np.zeros(len(rows), PCD_DTYPE)
    if rows:
        azimuths = np.array([r[0] for r in rows]) + rng.normal(0, AZIMUTH_NOISE_STD_RAD, len(rows))
        ranges = np.array([r[1] for r in rows]) + rng.normal(0, RANGE_NOISE_STD_M, len(rows))
        radial = np.stack([np.cos(azimuths), np.sin(azimuths)], axis=1)
        to_sensor = sensor_to_global.inverse()
        sensor_velocity = to_sensor.apply_rotation(sensor_velocity_global)[:2]
        object_velocity = np.zeros((len(rows), 2))
        for i, row in enumerate(rows):
            if row[3] >= 0:
                v = actors[row[3]].track.velocity(snapshot.t_s)
                object_velocity[i] = to_sensor.apply_rotation(np.array([v[0], v[1], 0.0]))[:2]
        noise = rng.normal(0, VELOCITY_NOISE_STD_M_S, len(rows))
        radial_over_ground = np.einsum("nd,nd->n", object_velocity, radial) + noise
        radial_relative = radial_over_ground - radial @ sensor_velocity
        points["x"], points["y"] = ranges * radial[:, 0], ranges * radial[:, 1]
        points["rcs"] = [r[2] for r in rows]
        points["vx"], points["vy"] = radial_relative * radial[:, 0], radial_relative * radial[:, 1]
        points["vx_comp"], points["vy_comp"] = radial_over_ground * radial[:, 0], radial_over_ground * radial[:, 1]
        points["dyn_prop"] = [_dyn_prop(r[3], r[4], actors, v) for r, v in zip(rows, radial_over_ground)]
        points["ambig_state"] = AMBIG_UNAMBIGUOUS
        points["invalid_state"] = INVALID_STATE_VALID
        points["pdh0"] = 1
    points = np.concatenate([points, _false_alarms(rng, sensor_to_global, sensor_velocity_global)])
    points["id"] = np.arange(len(points))
    points["is_quality_valid"] = 1
    points["x_rms"], points["y_rms"] = rng.integers(2, 8, len(points)), rng.integers(2, 8, len(points))
    points["vx_rms"], points["vy_rms"] = rng.integers(2, 6, len(points)), rng.integers(2, 6, len(points))
    return points


def _dyn_prop(owner: int, speed: float, actors: list, radial_over_ground: float) -> int:
    if owner < 0:
        return DYN_PROP["stationary"]
    if speed <= STOPPED_SPEED_M_S:
        return DYN_PROP["stopped"] if actors[owner].behaviour == "driving" else DYN_PROP["stationary"]
    if abs(radial_over_ground) < 0.3 * speed:
        return DYN_PROP["crossing_moving"]
    return DYN_PROP["oncoming"] if radial_over_ground < 0 else DYN_PROP["moving"]


def _false_alarms(rng: np.random.Generator, sensor_to_global: RigidTransform,
                  sensor_velocity_global: np.ndarray) -> np.ndarray:
    """Clutter: a few spurious clusters per frame; 7 in 8 carry states the devkit's default filters drop (only
    invalid_state 0, 1 draw in 4, with ambig_state 3, 1 in 2, passes them)."""
    count = int(rng.poisson(FALSE_ALARMS_PER_FRAME))
    points = np.zeros(count, PCD_DTYPE)
    azimuth = rng.uniform(-np.deg2rad(45), np.deg2rad(45), count)
    ranges = rng.uniform(2.0, 70.0, count)
    points["x"], points["y"] = ranges * np.cos(azimuth), ranges * np.sin(azimuth)
    points["rcs"] = rng.uniform(-10.0, 5.0, count)
    sensor_velocity = sensor_to_global.inverse().apply_rotation(sensor_velocity_global)[:2]
    radial = np.stack([np.cos(azimuth), np.sin(azimuth)], axis=1)
    relative = -(radial @ sensor_velocity)  # a stationary ghost: zero velocity over ground
    points["vx"], points["vy"] = relative * radial[:, 0], relative * radial[:, 1]
    points["dyn_prop"] = rng.choice([1, 3, 4], count)
    points["ambig_state"] = rng.choice([1, 2, 3, 3], count)
    points["invalid_state"] = rng.choice([0, 1, 4, 16], count)
    points["pdh0"] = rng.integers(3, 8, count)
    return points


def encode_pcd(points: np.ndarray) -> bytes:
    """Binary PCD v0.7 bytes of a PCD_DTYPE array; an empty frame is one NaN point (the devkit's empty cloud).

    A trailing newline follows the data: the devkit's reader needs one byte past the last point.
    """
    if len(points) == 0:
        points = np.zeros(1, PCD_DTYPE)
        for name in ("x", "y", "z", "rcs", "vx", "vy", "vx_comp", "vy_comp"):
            points[name] = np.nan
    header = "\n".join([
        "# .PCD v0.7 - Point Cloud Data file format",
        "VERSION 0.7",
        "FIELDS " + " ".join(name for name, _ in PCD_FIELDS),
        "SIZE " + " ".join(str(np.dtype(t).itemsize) for _, t in PCD_FIELDS),
        "TYPE " + " ".join("F" if t.endswith("f4") else "I" for _, t in PCD_FIELDS),
        "COUNT " + " ".join("1" for _ in PCD_FIELDS),
        f"WIDTH {len(points)}",
        "HEIGHT 1",
        "VIEWPOINT 0 0 0 1 0 0 0",
        f"POINTS {len(points)}",
        "DATA binary",
    ]) + "\n"
    return header.encode("ascii") + points.astype(PCD_DTYPE).tobytes() + b"\n"
