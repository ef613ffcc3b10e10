"""The MCAP recorder on one hand-made frame, read back: the camera transforms in Foxglove's quaternion order, the
point clouds' own timestamps, and the plan's line strip from the ego origin."""
from __future__ import annotations

import numpy as np
import pytest

from perception.datasets.frame import LIDAR_COLUMNS, CameraView, Frame, LidarSweeps
from perception.geometry import Boxes3D, CameraIntrinsics, EgoPose, RigidTransform
from perception.runtime.mcap_writer import PARTIAL_SUFFIX, McapRecorder, read_mcap

TIMESTAMP_US = 1_532_402_927_647_951  # a nuScenes-like timestamp; its nanoseconds are x 1000
CAMERA_WXYZ = (0.5, -0.5, 0.5, -0.5)  # about a nuScenes front camera's calibrated_sensor.rotation [w, x, y, z]


def _frame() -> Frame:
    camera = CameraView("CAM_FRONT", np.full((8, 16, 3), 128, dtype=np.uint8),
                        CameraIntrinsics(10.0, 10.0, 8.0, 4.0, width=16, height=8, channel="CAM_FRONT"),
                        RigidTransform.from_nuscenes([1.7, 0.0, 1.5], CAMERA_WXYZ), TIMESTAMP_US)
    lidar = LidarSweeps(np.array([[1.0, 2.0, 0.5, 10.0, 0.0], [3.0, -1.0, 0.2, 20.0, 0.05]], dtype=np.float32), 1)
    return Frame("sample", "scene", TIMESTAMP_US, EgoPose(TIMESTAMP_US, RigidTransform.identity()), lidar, None,
                 {"CAM_FRONT": camera})


@pytest.fixture(scope="module")
def messages(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("mcap") / "one.mcap")
    decision = {"trajectory": [[2.0, 0.0], [4.0, 0.5], [6.0, 1.5]]}
    with McapRecorder(path) as recorder:
        recorder.write_frame(_frame(), Boxes3D.empty(), decision)
    return {topic: decoded for topic, _, decoded in read_mcap(path)}


def test_camera_transform_is_the_devkits_wxyz_rotation_in_foxglove_xyzw_order(messages):
    (camera,) = [t for t in messages["/tf"].transforms if t.child_frame_id == "CAM_FRONT"]
    assert camera.parent_frame_id == "ego"
    xyzw = np.array([camera.rotation.x, camera.rotation.y, camera.rotation.z, camera.rotation.w])
    # [w, x, y, z] = (0.5, -0.5, 0.5, -0.5) -> [x, y, z, w] = (-0.5, 0.5, -0.5, 0.5), up to the sign of q
    expected = np.array([-0.5, 0.5, -0.5, 0.5])
    assert np.allclose(xyzw, expected, atol=1e-9) or np.allclose(xyzw, -expected, atol=1e-9)
    assert [camera.translation.x, camera.translation.y, camera.translation.z] == pytest.approx([1.7, 0.0, 1.5])


def test_point_clouds_carry_the_frames_timestamp_in_nanoseconds(messages):
    for topic in ("/LIDAR_TOP", "/RADAR"):
        assert messages[topic].timestamp.ToNanoseconds() == 1_532_402_927_647_951_000  # TIMESTAMP_US x 1000
    lidar = np.frombuffer(messages["/LIDAR_TOP"].data, dtype=np.float32).reshape(-1, len(LIDAR_COLUMNS))
    assert lidar[:, 0].tolist() == [1.0, 3.0] and len(messages["/RADAR"].data) == 0  # no radar: an empty cloud


def test_plan_line_strip_starts_at_the_ego_origin_then_follows_the_trajectory(messages):
    (entity,) = messages["/plan"].entities
    (line,) = entity.lines
    # T = 3 points of the trajectory after the ego's own (0, 0): 4 points
    assert [(p.x, p.y) for p in line.points] == [(0.0, 0.0), (2.0, 0.0), (4.0, 0.5), (6.0, 1.5)]


def test_an_mcap_not_closed_is_left_under_its_partial_name(tmp_path):
    """A job killed before close leaves PATH.partial, never a PATH without its index and footer (which readers
    refuse); closed, the file takes its name and reads back whole."""
    path = tmp_path / "replay.mcap"
    recorder = McapRecorder(str(path))
    recorder.write_frame(_frame(), Boxes3D.empty(), None)
    assert not path.exists() and (tmp_path / f"replay.mcap{PARTIAL_SUFFIX}").is_file()
    recorder.close()
    assert [name.name for name in tmp_path.iterdir()] == ["replay.mcap"]
    assert any(topic == "/LIDAR_TOP" for topic, _, _ in read_mcap(str(path)))
