"""Records a scene: casts every sensor frame (sweeps and keyframes), writes the files and builds the scene's
rows of the nuScenes tables (log, map, scene, sample, sample_data, ego_pose, instance, sample_annotation)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np

from perception.datasets.lane_map import LaneCentres
from perception.datasets.maneuver_labels import ManeuverLabelConfig
from perception.datasets.synthetic import camera, lidar, radar
from perception.datasets.synthetic.actors import Actor
from perception.datasets.synthetic.layout import drives_down_aisle
from perception.datasets.synthetic.rig import (
    CAMERA_PERIOD_US, FRAME_OFFSET_US, KEYFRAME_PERIOD_US, LIDAR_PERIOD_US, RADAR_PERIOD_US, camera_matrix,
)
from perception.datasets.synthetic.scene import LEAD_IN_S, MAP_MARGIN_M, SceneModel
from perception.datasets.synthetic.tables import calibrated_sensor_token, make_token, visibility_token
from perception.geometry import Boxes3D, rotation_about_z, yaw_quaternion_wxyz
from perception.maneuvers import Maneuver
from perception.sensors import ALL_CHANNELS, modality_of

FIRST_TIMESTAMP_US = 1_700_000_000_000_000
SCENE_SPACING_US = 1_000_000_000
"""Scene i starts at FIRST_TIMESTAMP_US + i * SCENE_SPACING_US (microseconds)."""
ANNOTATION_RANGE_M = 75.0
"""Objects whose centre comes within this distance of the ego at some keyframe are annotated [m]."""
MAP_RESOLUTION_M = 0.1
"""The devkit's MapMask reads map images at 0.1 m per pixel."""


@dataclass(frozen=True)
class SensorFrame:
    """One sample_data to record: ``offset_us`` from the scene's first keyframe, ``sample_index`` of the keyframe
    it belongs to (the nearest one), ``is_key_frame``, and ``sequence`` (its index in the channel's own series)."""

    channel: str
    offset_us: int
    sample_index: int
    is_key_frame: bool
    sequence: int


def sensor_schedule(samples_per_scene: int) -> List[SensorFrame]:
    """Every sensor frame of a scene, sorted by time then channel: LiDAR at 20 Hz, cameras at 12 Hz, radars at
    13 Hz, from LEAD_IN_S before the first keyframe to the last keyframe."""
    last_us = (samples_per_scene - 1) * KEYFRAME_PERIOD_US
    lead_in_us = int(round(LEAD_IN_S * 1e6))
    frames: List[SensorFrame] = []

    def nearest_sample(offset_us: int) -> int:
        return int(np.clip(np.round(offset_us / KEYFRAME_PERIOD_US), 0, samples_per_scene - 1))

    for channel in ALL_CHANNELS:
        offset = FRAME_OFFSET_US[channel]
        kind = modality_of(channel)
        if kind == "lidar" or kind == "camera":
            per_key = KEYFRAME_PERIOD_US // (LIDAR_PERIOD_US if kind == "lidar" else CAMERA_PERIOD_US)
            first = -lead_in_us // KEYFRAME_PERIOD_US * per_key
            for j in range(first, (samples_per_scene - 1) * per_key + 1):
                key, phase = divmod(j, per_key)
                t = offset + key * KEYFRAME_PERIOD_US + (phase * KEYFRAME_PERIOD_US) // per_key
                frames.append(SensorFrame(channel, t, nearest_sample(t), phase == 0 and key >= 0, j - first))
        else:
            times = offset + RADAR_PERIOD_US * np.arange(-(lead_in_us // RADAR_PERIOD_US) - 1,
                                                         last_us // RADAR_PERIOD_US + 2)
            times = times[(times >= -lead_in_us) & (times <= last_us + RADAR_PERIOD_US // 2)]
            keys = {int(np.argmin(np.abs(times - k * KEYFRAME_PERIOD_US))): k for k in range(samples_per_scene)}
            for j, t in enumerate(times):
                sample = keys.get(j, nearest_sample(int(t)))
                frames.append(SensorFrame(channel, int(t), sample, j in keys, j))
    return sorted(frames, key=lambda f: (f.offset_us, ALL_CHANNELS.index(f.channel)))


def visible_fraction(snapshot, actor_index: int, actor: Actor, t_s: float, viewpoint: np.ndarray) -> float:
    """Fraction of 15 points of the object's box (centre, 6 face centres, 8 corners, pulled 20% inwards) whose
    line of sight from ``viewpoint`` (3,) [m] first meets this object."""
    centre, yaw = actor.box_centre(t_s)
    unit = np.array([[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]]
                    + [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    local = 0.4 * unit * np.array([actor.size_wlh[1], actor.size_wlh[0], actor.size_wlh[2]])
    targets = centre + local @ rotation_about_z(yaw).T
    directions = targets - viewpoint
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return float(np.mean(snapshot.cast(viewpoint, directions).owner == actor_index))


def annotated_actors(model: SceneModel, samples_per_scene: int) -> List[int]:
    """Indices of the objects annotated in a scene: those within ANNOTATION_RANGE_M of the ego at some keyframe.
    ``annotated_keyframes`` says at which keyframes."""
    key_times = [k * KEYFRAME_PERIOD_US * 1e-6 for k in range(samples_per_scene)]
    ego_xy = [model.ego_to_global(t).translation[:2] for t in key_times]
    return [index for index, actor in enumerate(model.actors)
            if min(np.linalg.norm(actor.track.pose(t)[0] - xy) for t, xy in zip(key_times, ego_xy))
            <= ANNOTATION_RANGE_M]


ANNOTATE_IN_RANGE_ONLY = {"default": False, "nuscenes": True}
"""By population: annotate an object only at the keyframes where it is within ANNOTATION_RANGE_M of the ego, and
one keyframe before and after (so every instance keeps a velocity), as nuScenes annotates what its sensors see;
False: at every keyframe (``annotated_actors``)."""


def annotated_keyframes(model: SceneModel, samples_per_scene: int) -> Dict[int, range]:
    """{object index: the keyframes it is annotated at} for ``annotated_actors``: every keyframe (so every instance
    has a velocity: the devkit needs two annotations), or where the population annotates in range only
    (ANNOTATE_IN_RANGE_ONLY), the keyframes from one before it first comes within ANNOTATION_RANGE_M of the ego to
    one after it last is."""
    actors = annotated_actors(model, samples_per_scene)
    if not ANNOTATE_IN_RANGE_ONLY[model.population]:
        return {index: range(samples_per_scene) for index in actors}
    key_times = [k * KEYFRAME_PERIOD_US * 1e-6 for k in range(samples_per_scene)]
    ego_xy = np.array([model.ego_to_global(t).translation[:2] for t in key_times])
    spans = {}
    for index in actors:
        xy = np.array([model.actors[index].track.pose(t)[0] for t in key_times])
        near = np.flatnonzero(np.linalg.norm(xy - ego_xy, axis=1) <= ANNOTATION_RANGE_M)
        spans[index] = range(max(0, near[0] - 1), min(samples_per_scene, near[-1] + 2))
    return spans


def instance_token(namespace: str, scene: str, actor_index: int) -> str:
    """The instance token of object ``actor_index`` of a scene (tests map rendered objects to annotations)."""
    return make_token(namespace, scene, "instance", actor_index)


def write_map(path: Path, model: SceneModel) -> None:
    """The scene's semantic prior (road and sidewalks = 255) as the devkit's MapMask expects it: 0.1 m per
    pixel, pixel row 0 at the top (largest y), the image's bottom-left corner at global (0, 0), MAP_MARGIN_M past
    the road on every side."""
    road = model.world.road
    outer = road.outer_half_width
    left, _ = road.to_global(road.arc_length, np.full(len(road.arc_length), outer))
    right, _ = road.to_global(road.arc_length, np.full(len(road.arc_length), -outer))
    polygon = np.concatenate([left, right[::-1]])
    size = np.ceil((np.concatenate([left, right]).max(axis=0) + MAP_MARGIN_M) / MAP_RESOLUTION_M).astype(int)
    mask = np.zeros((size[1], size[0]), np.uint8)
    pixels = np.stack([polygon[:, 0] / MAP_RESOLUTION_M, size[1] - polygon[:, 1] / MAP_RESOLUTION_M], axis=1)
    cv2.fillPoly(mask, [np.round(pixels).astype(np.int32)], 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", mask)
    if not ok:
        raise ValueError(f"OpenCV failed to encode the map image {path}")
    path.write_bytes(data.tobytes())


class SceneRecorder:
    """Records one scene under ``dataroot`` and returns its table rows (``record``)."""

    def __init__(self, model: SceneModel, dataroot: Path, namespace: str, seed: int, samples_per_scene: int,
                 image_size: Tuple[int, int], num_threads: int = 0) -> None:
        self.model = model
        self.dataroot = dataroot
        self.namespace = namespace
        self.seed = seed
        self.samples_per_scene = samples_per_scene
        self.image_size = image_size
        self.num_threads = num_threads
        self.start_us = FIRST_TIMESTAMP_US + model.index * SCENE_SPACING_US
        self.camera_rays = {c: camera.pixel_rays(camera_matrix(c, image_size), image_size)
                            for c in ALL_CHANNELS if modality_of(c) == "camera"}
        self.key_lidar: Dict[int, np.ndarray] = {}
        self.key_radar: Dict[int, List[np.ndarray]] = {}
        self.annotations: Dict[int, List[dict]] = {}
        self.annotated_keyframes = annotated_keyframes(model, samples_per_scene)

    def token(self, *parts: object) -> str:
        return make_token(self.namespace, self.model.name, *parts)

    def description(self) -> str:
        """The scene's description: the ego's manoeuvres, then the population if it is not the default one, then
        "; car park aisle" for a drive down one (layout.drives_down_aisle)."""
        text = self.model.plan.description()
        if self.model.population != "default":
            text += f"; population={self.model.population}"
        return text + ("; car park aisle" if drives_down_aisle(self.model.population, self.model.index) else "")

    def scripted_maneuvers(self) -> Dict[str, Maneuver]:
        """{sample token: the ego's scripted maneuver at that keyframe over the label horizon}."""
        horizon_s = ManeuverLabelConfig().horizon_s
        return {self.token("sample", k): self.model.plan.scripted_maneuver(k * KEYFRAME_PERIOD_US * 1e-6, horizon_s)
                for k in range(self.samples_per_scene)}

    def lane_centres(self) -> Dict[str, LaneCentres]:
        """{log token: the scene's lane map} (every scene has its own log and map)."""
        return {self.token("log"): self.model.world.road.lane_centres()}

    def record(self, on_frame: Optional[Callable[[SensorFrame], None]] = None) -> Dict[str, List[dict]]:
        """Casts and writes every sensor frame (calling ``on_frame`` after each) and returns the scene's rows of
        log, map, scene, sample, sample_data, ego_pose, instance and sample_annotation."""
        schedule = sensor_schedule(self.samples_per_scene)
        tables: Dict[str, List[dict]] = {name: [] for name in (
            "log", "map", "scene", "sample", "sample_data", "ego_pose", "instance", "sample_annotation")}
        log_token = self.token("log")
        map_token = self.token("map")
        map_file = f"maps/{map_token}.png"
        write_map(self.dataroot / map_file, self.model)
        tables["log"].append({"token": log_token, "logfile": self.model.name, "vehicle": "synth-ego",
                              "date_captured": "2023-11-14", "location": f"synthetic-town-{self.model.index:04d}"})
        tables["map"].append({"token": map_token, "category": "semantic_prior", "filename": map_file,
                              "log_tokens": [log_token]})
        sample_tokens = [self.token("sample", k) for k in range(self.samples_per_scene)]
        for k, token in enumerate(sample_tokens):
            tables["sample"].append({
                "token": token, "timestamp": self.start_us + k * KEYFRAME_PERIOD_US,
                "prev": sample_tokens[k - 1] if k > 0 else "",
                "next": sample_tokens[k + 1] if k + 1 < len(sample_tokens) else "",
                "scene_token": self.token("scene")})
        tables["scene"].append({
            "token": self.token("scene"), "log_token": log_token, "nbr_samples": self.samples_per_scene,
            "first_sample_token": sample_tokens[0], "last_sample_token": sample_tokens[-1], "name": self.model.name,
            "description": self.description()})

        by_channel: Dict[str, List[dict]] = {c: [] for c in ALL_CHANNELS}
        for frame in schedule:
            sd = self._record_frame(frame, sample_tokens)
            by_channel[frame.channel].append(sd)
            tables["ego_pose"].append(self._ego_pose(sd["token"], frame))
            if on_frame is not None:
                on_frame(frame)
        for channel in ALL_CHANNELS:
            chain = by_channel[channel]
            for i, sd in enumerate(chain):
                sd["prev"] = chain[i - 1]["token"] if i > 0 else ""
                sd["next"] = chain[i + 1]["token"] if i + 1 < len(chain) else ""
            tables["sample_data"] += chain
        self._count_radar_points()
        instances, annotations = self._link_annotations(sample_tokens)
        tables["instance"] = instances
        tables["sample_annotation"] = annotations
        return tables

    def _ego_pose(self, token: str, frame: SensorFrame) -> dict:
        pose = self.model.ego_to_global(frame.offset_us * 1e-6)
        return {"token": token, "timestamp": self.start_us + frame.offset_us,
                "rotation": [float(v) for v in pose.rotation_wxyz], "translation": [float(v) for v in pose.translation]}

    def _record_frame(self, frame: SensorFrame, sample_tokens: List[str]) -> dict:
        t_s = frame.offset_us * 1e-6
        timestamp = self.start_us + frame.offset_us
        kind = modality_of(frame.channel)
        folder = "samples" if frame.is_key_frame else "sweeps"
        extension = {"lidar": "pcd.bin", "radar": "pcd", "camera": "jpg"}[kind]
        filename = f"{folder}/{frame.channel}/{self.model.name}__{frame.channel}__{timestamp}.{extension}"
        rng = np.random.default_rng([self.seed, self.model.index, ALL_CHANNELS.index(frame.channel), frame.sequence])
        snapshot = self.model.snapshot(t_s, self.num_threads)
        sensor_to_global = self.model.sensor_to_global(frame.channel, t_s)
        if kind == "lidar":
            points = lidar.simulate_sweep(snapshot, sensor_to_global, self.model.frenet, rng,
                                          lidar.LIDAR_MODELS[self.model.population])
            data = points.tobytes()
            if frame.is_key_frame:
                self.key_lidar[frame.sample_index] = sensor_to_global.apply(points[:, :3].astype(np.float64))
                self._annotate(frame.sample_index, snapshot, sensor_to_global.translation)
        elif kind == "radar":
            points = radar.simulate_frame(snapshot, self.model.actors, sensor_to_global,
                                          self.model.sensor_velocity(frame.channel, t_s), rng,
                                          radar.CROSS_SECTIONS[self.model.population])
            data = radar.encode_pcd(points)
            if frame.is_key_frame:
                xyz = np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float64)
                self.key_radar.setdefault(frame.sample_index, []).append(sensor_to_global.apply(xyz))
        else:
            image, _ = camera.render(snapshot, sensor_to_global, self.camera_rays[frame.channel], self.image_size,
                                     self.model.sun_direction, self.model.frenet, rng)
            data = camera.encode_jpeg(image)
        path = self.dataroot / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        token = self.token("sample_data", frame.channel, frame.sequence)
        width, height = self.image_size if kind == "camera" else (0, 0)
        return {"token": token, "sample_token": sample_tokens[frame.sample_index], "ego_pose_token": token,
                "calibrated_sensor_token": calibrated_sensor_token(self.namespace, frame.channel),
                "timestamp": timestamp, "fileformat": "jpg" if kind == "camera" else "pcd",
                "is_key_frame": frame.is_key_frame, "height": height, "width": width, "filename": filename,
                "prev": "", "next": ""}

    def _annotate(self, sample_index: int, snapshot, lidar_origin: np.ndarray) -> None:
        """Boxes of the annotated objects at a keyframe, with LiDAR point counts and visibility."""
        t_s = sample_index * KEYFRAME_PERIOD_US * 1e-6
        indices = [index for index, keyframes in self.annotated_keyframes.items() if sample_index in keyframes]
        actors = [self.model.actors[index] for index in indices]
        poses = [actor.box_centre(t_s) for actor in actors]
        boxes = Boxes3D([centre for centre, _ in poses], [actor.size_wlh for actor in actors],
                        [yaw for _, yaw in poses])
        lidar_counts = boxes.contains(self.key_lidar[sample_index]).sum(axis=1)
        rows = []
        for index, actor, (centre, yaw), num_lidar_points in zip(indices, actors, poses, lidar_counts):
            rows.append({"actor": index, "translation": [float(v) for v in centre], "yaw": yaw,
                         "size": [float(v) for v in actor.size_wlh], "rotation": yaw_quaternion_wxyz(yaw),
                         "num_lidar_pts": int(num_lidar_points),
                         "visibility_token": visibility_token(visible_fraction(snapshot, index, actor, t_s,
                                                                               lidar_origin)),
                         "attribute": actor.attribute(t_s)})
        self.annotations[sample_index] = rows

    def _count_radar_points(self) -> None:
        for sample_index, rows in self.annotations.items():
            radar_points = np.concatenate(self.key_radar.get(sample_index, [np.zeros((0, 3))]))
            boxes = Boxes3D([row["translation"] for row in rows],
                            [self.model.actors[row["actor"]].size_wlh for row in rows], [row["yaw"] for row in rows])
            for row, num_radar_points in zip(rows, boxes.contains(radar_points).sum(axis=1)):
                row["num_radar_pts"] = int(num_radar_points)

    def _link_annotations(self, sample_tokens: List[str]) -> Tuple[List[dict], List[dict]]:
        """sample_annotation rows chained per object over consecutive keyframes, and the instance rows."""
        attribute_token = {name: make_token(self.namespace, "attribute", name) for name in (
            "vehicle.moving", "vehicle.stopped", "vehicle.parked", "cycle.with_rider", "cycle.without_rider",
            "pedestrian.standing", "pedestrian.moving")}
        per_actor: Dict[int, List[dict]] = {}
        for sample_index in sorted(self.annotations):
            for row in self.annotations[sample_index]:
                per_actor.setdefault(row["actor"], []).append({
                    "token": self.token("sample_annotation", row["actor"], sample_index),
                    "sample_token": sample_tokens[sample_index],
                    "instance_token": instance_token(self.namespace, self.model.name, row["actor"]),
                    "visibility_token": row["visibility_token"],
                    "attribute_tokens": [] if row["attribute"] is None else [attribute_token[row["attribute"]]],
                    "translation": row["translation"], "size": row["size"], "rotation": row["rotation"],
                    "prev": "", "next": "", "num_lidar_pts": row["num_lidar_pts"],
                    "num_radar_pts": row["num_radar_pts"]})
        instances, annotations = [], []
        for actor_index in sorted(per_actor):
            chain = per_actor[actor_index]
            for i, ann in enumerate(chain):
                ann["prev"] = chain[i - 1]["token"] if i > 0 else ""
                ann["next"] = chain[i + 1]["token"] if i + 1 < len(chain) else ""
            annotations += chain
            actor = self.model.actors[actor_index]
            instances.append({"token": instance_token(self.namespace, self.model.name, actor_index),
                              "category_token": make_token(self.namespace, "category", actor.category),
                              "nbr_annotations": len(chain), "first_annotation_token": chain[0]["token"],
                              "last_annotation_token": chain[-1]["token"]})
        return instances, annotations
