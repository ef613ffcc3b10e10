"""perception: camera + radar + LiDAR sensor fusion for autonomous driving, on nuScenes-format data."""
__version__ = "0.1.0"
