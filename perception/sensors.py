"""The nuScenes sensor channels, in the order used everywhere in the project (cameras in mosaic order), the
sensor groups, the group (modality) of each channel, and their nominal periods."""

SENSOR_GROUPS = ("lidar", "radar", "camera")
"""The three sensor groups a frame can carry or miss; the names used by --drop, the fuser and the reports."""

LIDAR_CHANNEL = "LIDAR_TOP"
CAMERA_CHANNELS = (
    "CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT",
    "CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT",
)
RADAR_CHANNELS = ("RADAR_FRONT", "RADAR_FRONT_LEFT", "RADAR_FRONT_RIGHT", "RADAR_BACK_LEFT", "RADAR_BACK_RIGHT")
LIDAR_BEAM_COUNT = 32
LIDAR_BEAM_ELEVATION_RANGE_DEG = (-30.67, 10.67)
"""LIDAR_TOP is a Velodyne HDL-32E: 32 beams evenly spaced over this elevation range (lowest, highest) [deg]."""
LIDAR_MOUNT_M = (0.943713, 0.0, 1.84023)
"""LIDAR_TOP's position in the ego frame [m]: nuScenes' calibrated_sensor translation (one real log's value)."""
LIDAR_MOUNT_ROTATION_WXYZ = (0.7077955119163518, -0.006492242056004365, 0.010646214713995808, -0.7063073142877817)
"""LIDAR_TOP's rotation, sensor to ego, as a quaternion [w, x, y, z]: the same log's calibrated_sensor rotation (a
quarter turn about z and a tilt of about a degree; its beams' elevations are the sensor's own)."""
NOMINAL_PERIOD_S = {"lidar": 1 / 20, "radar": 1 / 13, "camera": 1 / 12}
"""nuScenes' sensor periods per group [s]: LIDAR_TOP at 20 Hz, the ARS408 radars at about 13 Hz, the cameras at
12 Hz."""
KEYFRAME_PERIOD_S = 0.5
"""Keyframes (samples) at 2 Hz, on every 10th LiDAR sweep."""
DEFAULT_LIDAR_SWEEPS = 10
DEFAULT_RADAR_SWEEPS = 6
"""The sweeps a keyframe is read with unless a config or option says otherwise, its own included: 10 LiDAR sweeps
(0.5 s at 20 Hz) and 6 sweeps of each radar (0.46 s at 13 Hz), about a keyframe period of each."""
ALL_CHANNELS = (LIDAR_CHANNEL, *RADAR_CHANNELS, *CAMERA_CHANNELS)
"""Every channel: LiDAR, radars, cameras. Tables, sweeps and streams are indexed in this order, and messages with
equal timestamps are ordered by it."""

_MODALITY = {LIDAR_CHANNEL: "lidar", **{c: "radar" for c in RADAR_CHANNELS}, **{c: "camera" for c in CAMERA_CHANNELS}}


def modality_of(channel: str) -> str:
    """The sensor group (one of SENSOR_GROUPS) of a channel; a ValueError naming it when the channel is unknown."""
    try:
        return _MODALITY[channel]
    except KeyError:
        raise ValueError(f"unknown sensor channel {channel!r}; known: {ALL_CHANNELS}") from None
