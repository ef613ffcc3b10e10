"""Geometry core: frames, rigid transforms, calibration, projection, 3D boxes and paths (Frenet coordinates).

Conventions (written once here; every other module follows them):

Frames
    global  nuScenes map frame (x east, y north, z up), metres.
    ego     vehicle frame at the rear axle: x forward, y left, z up. The network works in the ego frame
            of the keyframe's LiDAR timestamp.
    sensor  as the nuScenes ``calibrated_sensor`` table gives it (sensor -> ego).
    camera  x right, y down, z forward (optical axis); pixels (u, v) with u along x, v along y, origin at the
            top-left pixel's corner as in the nuScenes devkit's ``view_points``.

Rigid transforms
    4x4 homogeneous matrices ``T_dst_from_src`` that map column points of frame ``src`` into ``dst``:
    ``p_dst = R @ p_src + t``. Composition reads right to left: ``T_a_from_c = T_a_from_b @ T_b_from_c``.
    nuScenes stores rotations as quaternions ``[w, x, y, z]`` (scalar first).

Boxes
    centre of the box (not the bottom), size as nuScenes orders it ``(width, length, height)``: width along
    the box's y axis, length along its x axis; yaw about +z, counter-clockwise, 0 along +x; velocity
    ``(vx, vy)`` in m/s in the same frame as the centre.

Voxel coordinates
    integer cells with columns ``(z, y, x)``, after a leading ``batch`` column where batched; every signature
    that returns them says which.

Units
    metres, seconds, radians; timestamps in microseconds (int) as nuScenes stores them.
"""
from perception.geometry.boxes import Boxes3D, footprints_overlap
from perception.geometry.camera import CameraIntrinsics, Projection, project_points, resize_image
from perception.geometry.paths import frenet_coordinates, path_points
from perception.geometry.transforms import (
    EgoPose,
    RigidTransform,
    SensorCalibration,
    interpolate_pose,
    quaternion_to_matrix,
    rotation_about_z,
    rotation_from_vector,
    yaw_from_matrix,
    yaw_quaternion_wxyz,
)

__all__ = [
    "Boxes3D",
    "CameraIntrinsics",
    "EgoPose",
    "Projection",
    "RigidTransform",
    "SensorCalibration",
    "footprints_overlap",
    "frenet_coordinates",
    "interpolate_pose",
    "path_points",
    "project_points",
    "quaternion_to_matrix",
    "rotation_about_z",
    "rotation_from_vector",
    "resize_image",
    "yaw_from_matrix",
    "yaw_quaternion_wxyz",
]
