"""Sensor encoders: each turns its sensor's part of a ``FusionBatch`` into features on the shared BEVGrid."""
from perception.models.encoders.camera import CameraEncoder
from perception.models.encoders.lidar import LidarEncoder
from perception.models.encoders.pillars import PillarFeatureNet
from perception.models.encoders.radar import RadarEncoder

__all__ = ["CameraEncoder", "LidarEncoder", "PillarFeatureNet", "RadarEncoder"]
