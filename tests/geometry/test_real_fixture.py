"""Our geometry against nuscenes-devkit on the three real keyframes (skipped when the fixture is absent)."""
import numpy as np
import pytest
from nuscenes.nuscenes import NuScenesExplorer
from nuscenes.utils.data_classes import LidarPointCloud
from nuscenes.utils.geometry_utils import transform_matrix
from pyquaternion import Quaternion

from perception.datasets.records import project_point_sensor_to_camera, sample_data_calibration, sample_data_path
from perception.geometry import Boxes3D
from perception.sensors import CAMERA_CHANNELS, LIDAR_CHANNEL, RADAR_CHANNELS


def test_lidar_to_camera_projection_equals_devkit(nusc_real, monkeypatch):
    # The devkit moves points in float32 arrays (about 0.02 px of rounding at global coordinates of ~2 km); the
    # oracle here is its chain in float64: the same code, fed the file's points as float64.
    read_float32 = LidarPointCloud.from_file
    monkeypatch.setattr(LidarPointCloud, "from_file", classmethod(
        lambda cls, path: LidarPointCloud(read_float32(path).points.astype(np.float64))))
    explorer = NuScenesExplorer(nusc_real)
    compared = 0
    for sample in nusc_real.sample:
        lidar_token = sample["data"][LIDAR_CHANNEL]
        points = LidarPointCloud.from_file(sample_data_path(nusc_real, lidar_token)).points[:3].T
        for channel in CAMERA_CHANNELS:
            camera_token = sample["data"][channel]
            devkit_pixels, devkit_depth, _ = explorer.map_pointcloud_to_image(lidar_token, camera_token)
            ours = project_point_sensor_to_camera(nusc_real, lidar_token, camera_token, points)
            visible = ours.visible
            assert visible.sum() == devkit_pixels.shape[1] > 100
            np.testing.assert_allclose(ours.pixels[visible], devkit_pixels[:2].T, atol=1e-3)
            np.testing.assert_allclose(ours.depth[visible], devkit_depth, atol=1e-6)
            compared += 1
    assert compared == 3 * 6


def test_frame_chains_equal_devkit_transform_matrix(nusc_real):
    # The devkit's chain as its from_file_multisweep / map_pointcloud_to_image write it: global <- ego <- sensor by
    # transform_matrix of the ego_pose and calibrated_sensor records, and its inverse=True matrices the other way.
    # (A round trip global_to_sensor(sensor_to_global(p)) == p passed with the two factors swapped.)
    for sample in nusc_real.sample:
        for channel in (LIDAR_CHANNEL, *RADAR_CHANNELS, *CAMERA_CHANNELS):
            record = nusc_real.get("sample_data", sample["data"][channel])
            pose_record = nusc_real.get("ego_pose", record["ego_pose_token"])
            sensor_record = nusc_real.get("calibrated_sensor", record["calibrated_sensor_token"])
            global_from_ego, ego_from_sensor = (transform_matrix(r["translation"], Quaternion(r["rotation"]))
                                                for r in (pose_record, sensor_record))
            ego_from_global, sensor_from_ego = (transform_matrix(r["translation"], Quaternion(r["rotation"]),
                                                                 inverse=True) for r in (pose_record, sensor_record))
            calibration, pose = sample_data_calibration(nusc_real, record["token"])
            np.testing.assert_allclose(calibration.sensor_to_global(pose).matrix, global_from_ego @ ego_from_sensor,
                                       rtol=0, atol=1e-9)
            np.testing.assert_allclose(calibration.global_to_sensor(pose).matrix, sensor_from_ego @ ego_from_global,
                                       rtol=0, atol=1e-9)


def test_annotation_corners_equal_devkit(nusc_real):
    for sample in nusc_real.sample:
        devkit_boxes = nusc_real.get_boxes(sample["data"][LIDAR_CHANNEL])
        ours = Boxes3D.from_devkit(devkit_boxes, labels=np.zeros(len(devkit_boxes), int))
        assert len(ours) > 10
        for i, box in enumerate(devkit_boxes):
            # Annotations are not exactly upright (small roll/pitch): corners agree to the centimetre level.
            np.testing.assert_allclose(ours.corners()[i], box.corners().T, atol=0.05)
        np.testing.assert_allclose(ours.centers, [b.center for b in devkit_boxes], atol=1e-9)


@pytest.mark.parametrize("channel", CAMERA_CHANNELS)
def test_camera_calibration_loads_with_image_size(nusc_real, channel):
    calibration, _ = sample_data_calibration(nusc_real, nusc_real.sample[0]["data"][channel])
    assert (calibration.intrinsics.width, calibration.intrinsics.height) == (1600, 900)
