"""A picture of one keyframe of a nuScenes-format dataset (make_synthetic's --preview) as nuscenes-devkit reads it:
the six cameras with the annotated boxes projected (devkit ``get_sample_data`` + ``view_points``) beside a
bird's-eye view of the LiDAR sweep, radar points and boxes in the ego frame."""
from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import LidarPointCloud, RadarPointCloud
from nuscenes.utils.geometry_utils import BoxVisibility, view_points

from perception.classes import DETECTION_CLASSES, category_to_detection_name
from perception.datasets.ego_log import keyframe_lidar_pose
from perception.datasets.ground_truth import sample_ground_truth
from perception.geometry import Boxes3D, EgoPose, RigidTransform, SensorCalibration
from perception.sensors import CAMERA_CHANNELS, LIDAR_CHANNEL, RADAR_CHANNELS
from perception.viz.bev import BevView, bev_legend, class_colour, draw_bev, with_caption
from perception.viz.camera import BOX_EDGES, mosaic


def _label(nusc: NuScenes, annotation_token: str) -> Optional[int]:
    """The annotation's index in DETECTION_CLASSES; None for a category outside them (an animal, debris ...)."""
    name = category_to_detection_name(nusc.get("sample_annotation", annotation_token)["category_name"])
    return None if name is None else DETECTION_CLASSES.index(name)


def camera_with_boxes(nusc: NuScenes, camera_token: str) -> np.ndarray:
    """The camera's JPEG (BGR) with every annotated box of a detection class at least partly in view drawn as a
    wireframe."""
    path, boxes, intrinsic = nusc.get_sample_data(camera_token, box_vis_level=BoxVisibility.ANY)
    image = cv2.imread(path)
    for box in boxes:
        label = _label(nusc, box.token)
        if label is None:
            continue
        corners = view_points(box.corners(), np.asarray(intrinsic), normalize=True)[:2].T
        colour = class_colour(label)
        for a, b in BOX_EDGES:
            cv2.line(image, tuple(int(v) for v in np.round(corners[a])), tuple(int(v) for v in np.round(corners[b])),
                     colour, 1, cv2.LINE_AA)
    return image


def _to_ego(nusc: NuScenes, sample_data_token: str, lidar_pose: EgoPose) -> RigidTransform:
    """sensor (at its own timestamp) -> ego at the LiDAR keyframe."""
    record = nusc.get("sample_data", sample_data_token)
    calibration = SensorCalibration.from_record(record["channel"],
                                                nusc.get("calibrated_sensor", record["calibrated_sensor_token"]))
    pose = EgoPose.from_record(nusc.get("ego_pose", record["ego_pose_token"]))
    return lidar_pose.ego_to_global.inverse() @ calibration.sensor_to_global(pose)


def keyframe_in_ego(nusc: NuScenes, sample_token: str) -> Tuple[np.ndarray, np.ndarray, Boxes3D]:
    """The keyframe's LiDAR sweep (N, 3) [x, y, z], the five radars' points (M, 6) [x, y, z, rcs, vx, vy] and the
    annotated boxes of the detection classes, in the ego frame at the LiDAR keyframe."""
    sample = nusc.get("sample", sample_token)
    lidar_token = sample["data"][LIDAR_CHANNEL]
    lidar_pose = keyframe_lidar_pose(nusc, sample_token)
    lidar = LidarPointCloud.from_file(nusc.get_sample_data_path(lidar_token)).points.T
    lidar_ego = _to_ego(nusc, lidar_token, lidar_pose).apply(lidar[:, :3])
    radar_rows = []
    for channel in RADAR_CHANNELS:
        token = sample["data"][channel]
        points = RadarPointCloud.from_file(nusc.get_sample_data_path(token)).points.T
        transform = _to_ego(nusc, token, lidar_pose)
        velocity = transform.apply_rotation(np.c_[points[:, 8:10], np.zeros(len(points))])
        radar_rows.append(np.c_[transform.apply(points[:, :3]), points[:, 5], velocity[:, :2]])
    boxes = sample_ground_truth(nusc, sample_token, lidar_pose.ego_to_global).boxes
    return lidar_ego, np.concatenate(radar_rows), boxes


def render_preview(nusc: NuScenes, sample_token: str, range_m: float = 50.0) -> np.ndarray:
    """(H, W, 3) BGR: the camera mosaic (3 x 2) with the boxes, the bird's-eye view (``range_m`` around the ego)
    of the keyframe_in_ego to its right, and under them the scene, the counts and the legend of the colours."""
    sample = nusc.get("sample", sample_token)
    cameras = mosaic({c: camera_with_boxes(nusc, sample["data"][c]) for c in CAMERA_CHANNELS}, CAMERA_CHANNELS,
                     tile_width_px=480)
    lidar, radar, boxes = keyframe_in_ego(nusc, sample_token)
    bev = draw_bev(BevView(range_m=range_m, pixels_per_m=7.2), lidar_points=lidar, radar_points=radar, boxes=boxes)
    bev = cv2.resize(bev, (cameras.shape[0], cameras.shape[0]), interpolation=cv2.INTER_AREA)
    lines = [f"{nusc.get('scene', sample['scene_token'])['name']}, {len(lidar)} LiDAR points, {len(radar)} radar "
             f"points, {len(boxes)} annotated boxes"]
    return with_caption(np.concatenate([cameras, bev], axis=1), lines, bev_legend(lidar, radar, boxes))
