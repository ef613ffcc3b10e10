"""Hand-made frames and tiny models for the model tests (no dataset needed)."""
from __future__ import annotations

import numpy as np

from perception.datasets.frame import CameraView, Frame, LidarSweeps, RadarSweeps
from perception.geometry import Boxes3D, CameraIntrinsics, EgoPose, RigidTransform
from perception.models import BEVFusionDetector
from perception.sensors import CAMERA_CHANNELS

TINY_RANGE = [-8.0, -8.0, -3.0, 8.0, 8.0, 3.0]
TINY_CELL = [1.0, 1.0]
IMAGE_W, IMAGE_H = 64, 32

CAMERA_AXES_IN_EGO = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
"""Columns: the camera's x (right), y (down), z (forward) axes in the ego frame of a camera looking along +x."""


def camera_to_ego(yaw: float, height: float = 1.5) -> RigidTransform:
    """A camera at (0, 0, height) looking horizontally along ego yaw ``yaw``."""
    c, s = np.cos(yaw), np.sin(yaw)
    matrix = np.eye(4)
    matrix[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ CAMERA_AXES_IN_EGO
    matrix[:3, 3] = [0.0, 0.0, height]
    return RigidTransform(matrix)


def make_frame(seed: int, cameras: bool = True, token: str = "") -> Frame:
    """A frame with two cars and a pedestrian, LiDAR points sampled on their boxes plus ground, radar returns
    at the boxes carrying their velocities, and six random-texture 64 x 32 cameras."""
    rng = np.random.default_rng(seed)
    boxes = Boxes3D(
        centers=np.array([[3.2 + seed, 2.6, 0.8], [-4.4, -3.3 + seed, 0.8], [1.5, -5.2, 0.9]]),
        sizes=np.array([[1.9, 4.4, 1.6], [1.9, 4.2, 1.5], [0.7, 0.7, 1.8]]),
        yaws=np.array([0.3, -1.2 + seed, 2.0]),
        velocities=np.array([[4.0, 1.0], [0.0, 0.0], [1.0, -0.5]]),
        labels=np.array([0, 0, 5]),
        attributes=np.array([4, 5, 1]),  # vehicle.moving, vehicle.parked, pedestrian.moving
    )
    lidar = [np.c_[rng.uniform(-8, 8, (400, 2)), np.full(400, -0.1)]]
    radar = []
    for center, size, velocity in zip(boxes.centers, boxes.sizes, boxes.velocities):
        lidar.append(center + rng.uniform(-0.5, 0.5, (80, 3)) * size[[1, 0, 2]])
        radar.append(np.c_[center + rng.uniform(-0.3, 0.3, (4, 3)), np.full(4, 5.0), np.tile(velocity, (4, 1)),
                           np.zeros(4)])
    lidar = np.concatenate(lidar)
    lidar = np.c_[lidar, rng.uniform(0, 255, len(lidar)), np.zeros(len(lidar))].astype(np.float32)
    views = {}
    if cameras:
        intrinsics = CameraIntrinsics(40.0, 40.0, IMAGE_W / 2, IMAGE_H / 2, IMAGE_W, IMAGE_H)
        for index, channel in enumerate(CAMERA_CHANNELS):
            views[channel] = CameraView(channel, rng.integers(0, 255, (IMAGE_H, IMAGE_W, 3), dtype=np.uint8),
                                        intrinsics, camera_to_ego(index * np.pi / 3), 0)
    return Frame(sample_token=token or f"sample-{seed}", scene_token="scene", timestamp_us=0,
                 ego_pose=EgoPose(0, RigidTransform.identity()),
                 lidar=LidarSweeps(lidar, 1), radar=RadarSweeps(np.concatenate(radar).astype(np.float32), 1),
                 cameras=views, gt_boxes=boxes, missing=frozenset() if cameras else frozenset({"camera"}))


def tiny_model_config(sensors=("lidar", "radar", "camera"), modality_dropout: float = 0.0) -> dict:
    encoders = dict(
        lidar=dict(type="LidarEncoder", out_channels=8, max_points_per_pillar=16, max_pillars=400),
        radar=dict(type="RadarEncoder", out_channels=4, max_points_per_pillar=4, max_pillars=100),
        camera=dict(type="CameraEncoder", image_size=[IMAGE_W, IMAGE_H], out_channels=8, backbone_widths=[4, 8, 8, 8],
                    fpn_channels=8, depth_range=[1.0, 13.0], depth_bins=12, depth_loss_weight=0.5),
    )
    return dict(
        grid=dict(point_cloud_range=TINY_RANGE, cell_size=TINY_CELL),
        encoders={sensor: encoders[sensor] for sensor in sensors},
        fuser=dict(out_channels=16, modality_dropout=modality_dropout),
        decoder=dict(channels=[16, 16], blocks=[1, 1], out_channels=16),
        head=dict(head_channels=16, min_radius=1, score_threshold=0.1),
    )


def tiny_model(sensors=("lidar", "radar", "camera"), modality_dropout: float = 0.0) -> BEVFusionDetector:
    return BEVFusionDetector(**tiny_model_config(sensors, modality_dropout))
