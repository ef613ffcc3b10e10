"""The sensor rig: nuScenes calibration values (one real log's numbers, embedded) and sensor timing.

Calibration: translation [m] and rotation [w, x, y, z] of sensor -> ego, camera intrinsics for the 1600x900
images nuScenes records (scaled to the generated image size by ``camera_matrix``). Timing: offsets of each
sensor's frames from the LiDAR keyframe, as measured in the same log.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from perception.sensors import KEYFRAME_PERIOD_S, LIDAR_MOUNT_M, LIDAR_MOUNT_ROTATION_WXYZ, NOMINAL_PERIOD_S

REAL_IMAGE_SIZE = (1600, 900)
"""(width, height) of the images the embedded intrinsics belong to."""

# channel -> (translation [m], rotation [w, x, y, z], intrinsic matrix at REAL_IMAGE_SIZE or None)
CALIBRATION: Dict[str, Tuple[tuple, tuple, Optional[tuple]]] = {
    "RADAR_FRONT": ((3.412, 0.0, 0.5), (0.9999984769132877, 0.0, 0.0, 0.0017453283658983088), None),
    "RADAR_FRONT_LEFT": ((2.422, 0.8, 0.78), (0.7171539204983457, 0.0, 0.0, 0.6969148113750004), None),
    "RADAR_FRONT_RIGHT": ((2.422, -0.8, 0.77), (0.7010337393110511, 0.0, 0.0, -0.7131281065471795), None),
    "RADAR_BACK_LEFT": ((-0.562, 0.628, 0.53), (0.04876260733128922, 0.0, 0.0, 0.9988103964848657), None),
    "RADAR_BACK_RIGHT": ((-0.562, -0.618, 0.53), (0.0339401344459428, 0.0, 0.0, -0.9994238676726663), None),
    "LIDAR_TOP": (LIDAR_MOUNT_M, LIDAR_MOUNT_ROTATION_WXYZ, None),
    "CAM_FRONT": ((1.70079118954, 0.0159456324149, 1.51095763913),
                  (0.4998015430569128, -0.5030316162024876, 0.4997798114386805, -0.49737083824542755),
                  ((1266.417203046554, 0.0, 816.2670197447984), (0.0, 1266.417203046554, 491.50706579294757),
                   (0.0, 0.0, 1.0))),
    "CAM_FRONT_RIGHT": ((1.5508477543, -0.493404796419, 1.49574800619),
                        (0.2060347966337182, -0.2026940577919598, 0.6824507824531167, -0.6713610884174485),
                        ((1260.8474446004698, 0.0, 807.968244525554), (0.0, 1260.8474446004698, 495.3344268742088),
                         (0.0, 0.0, 1.0))),
    "CAM_BACK_RIGHT": ((1.0148780988, -0.480568219723, 1.56239545128),
                       (0.12280980120078765, -0.132400842670559, -0.7004305821388234, 0.690496031265798),
                       ((1259.5137405846733, 0.0, 807.2529053838625), (0.0, 1259.5137405846733, 501.19579884916527),
                        (0.0, 0.0, 1.0))),
    "CAM_BACK": ((0.0283260309358, 0.00345136761476, 1.57910346144),
                 (0.5037872666382278, -0.49740249788611096, -0.4941850223835201, 0.5045496097725578),
                 ((809.2209905677063, 0.0, 829.2196003259838), (0.0, 809.2209905677063, 481.77842384512485),
                  (0.0, 0.0, 1.0))),
    "CAM_BACK_LEFT": ((1.03569100218, 0.484795032713, 1.59097014818),
                      (0.6924185592174665, -0.7031619420114925, -0.11648342771943819, 0.11203317912370753),
                      ((1256.7414812095406, 0.0, 792.1125740759628), (0.0, 1256.7414812095406, 492.7757465151356),
                       (0.0, 0.0, 1.0))),
    "CAM_FRONT_LEFT": ((1.52387798135, 0.494631336551, 1.50932822144),
                       (0.6757265034669446, -0.6736266522251881, 0.21214015046209478, -0.21122827103904068),
                       ((1272.5979470598488, 0.0, 826.6154927353808), (0.0, 1272.5979470598488, 479.75165386361925),
                        (0.0, 0.0, 1.0))),
}


EGO_BODY_BOXES_M = (
    ((-0.657, -0.865, 0.0), (3.427, 0.865, 0.80)),
    ((0.20, -0.40, 0.0), (1.40, 0.40, 1.562)),
)
"""The ego car as two boxes (min corner, max corner) in the ego frame [m], the body up to its bonnet and the cabin
up to its roof, off which LIDAR_TOP's low beams return. nuScenes drives a Renault ZOE (Caesar et al., "nuScenes:
A multimodal dataset for autonomous driving", CVPR 2020, sec. 3); Renault's specifications of the ZOE (2012):
length 4.084 m, width 1.730 m, height 1.562 m, wheelbase 2.588 m, front overhang 0.839 m, so with the rear axle at
x = 0 the body spans x = -0.657 .. 3.427 m. The cabin's footprint (x 0.20 .. 1.40 m, |y| < 0.40 m) and the bonnet
height (0.80 m) are fitted to where scene-0916's real_finetune keyframes return from the ego (beams 0-8, 0.4-2 m from
the sensor)."""

KEYFRAME_PERIOD_US = round(KEYFRAME_PERIOD_S * 1e6)
LIDAR_PERIOD_US = round(NOMINAL_PERIOD_S["lidar"] * 1e6)
CAMERA_PERIOD_US = KEYFRAME_PERIOD_US // 6
"""Cameras at 12 Hz: 6 frames per keyframe period, the first one the camera's keyframe."""
RADAR_PERIOD_US = 77_000
"""The radars at about 13 Hz (a whole number of milliseconds); the radar keyframe is the frame nearest the LiDAR
keyframe."""

FRAME_OFFSET_US: Dict[str, int] = {
    "LIDAR_TOP": 0,
    "CAM_FRONT_LEFT": -42_415, "CAM_FRONT": -34_789, "CAM_FRONT_RIGHT": -26_920,
    "CAM_BACK_RIGHT": -19_366, "CAM_BACK": -9_734, "CAM_BACK_LEFT": 164,
    "RADAR_FRONT": 13_575, "RADAR_FRONT_LEFT": 12_695, "RADAR_FRONT_RIGHT": 33_719,
    "RADAR_BACK_LEFT": 21_259, "RADAR_BACK_RIGHT": 2_808,
}
"""Offset of each sensor's frames from the LiDAR keyframe timestamp (cameras fire as the LiDAR sweeps past
their field of view), as measured in the real log the calibration comes from."""


def camera_matrix(channel: str, image_size: Tuple[int, int]) -> np.ndarray:
    """(3, 3) intrinsic matrix of camera ``channel`` for images of ``image_size`` = (width, height) pixels."""
    intrinsic = CALIBRATION[channel][2]
    if intrinsic is None:
        raise ValueError(f"{channel} is not a camera")
    width, height = image_size
    scale = np.diag([width / REAL_IMAGE_SIZE[0], height / REAL_IMAGE_SIZE[1], 1.0])
    return scale @ np.asarray(intrinsic, dtype=np.float64)
