"""The MCAP recorder on one hand-made frame, read back: the camera transforms in Foxglove's quaternion order, the
point clouds' own timestamps, and the plan's line strip from the ego origin."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from foxglove_schemas_protobuf.SceneEntityDeletion_pb2 import SceneEntityDeletion

from perception.datasets.frame import LIDAR_COLUMNS, CameraView, Frame, LidarSweeps
from perception.geometry import Boxes3D, CameraIntrinsics, EgoPose, RigidTransform
from perception.runtime.mcap_writer import PARTIAL_SUFFIX, McapRecorder
from tests.runtime.helpers import read_mcap

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


def _boxes() -> Boxes3D:
    """Three hand-made boxes (label, centre, [w, l, h], yaw, velocity): a car driving along +y at 3 m/s, a truck
    at exactly the arrow threshold 0.1 m/s, a pedestrian slower than it."""
    return Boxes3D(centers=[[10.0, 2.0, 1.0], [-5.0, 0.0, 1.5], [3.0, -4.0, 0.9]],
                   sizes=[[2.0, 4.5, 1.6], [2.5, 10.0, 3.0], [0.6, 0.7, 1.8]],
                   yaws=[math.pi / 2, 0.0, 0.0], velocities=[[0.0, 3.0], [0.0, 0.1], [0.05, 0.0]],
                   labels=[0, 1, 5], scores=[0.875, 0.5, 0.25])


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """A frame at a translated, turned ego pose (100, 200, 0) m, yaw 90 degrees, with _boxes() and no plan (a
    decision whose trajectory is empty), and several sensors missing; read back by topic."""
    path = str(tmp_path_factory.mktemp("mcap") / "drawn.mcap")
    pose = RigidTransform.from_nuscenes([100.0, 200.0, 0.0], [math.sqrt(0.5), 0.0, 0.0, math.sqrt(0.5)])
    frame = dataclasses.replace(_frame(), ego_pose=EgoPose(TIMESTAMP_US, pose),
                                missing=frozenset({"radar", "CAM_FRONT_LEFT", "CAM_BACK", "RADAR_FRONT", "camera"}))
    with McapRecorder(path) as recorder:
        recorder.write_frame(frame, _boxes(), {"trajectory": []})
    return {topic: decoded for topic, _, decoded in read_mcap(path)}


def test_box_cubes_arrows_and_labels_by_hand(drawn):
    """One entity per box (ids box-0..2) after one 'delete all': a cube at the centre turned by the yaw (Foxglove's
    x, y, z, w: yaw 90 degrees is (0, 0, sin 45, cos 45)), sized [length, width, height], in the class colour
    (BGR -> RGB, alpha 0.5); a velocity arrow from 0.1 m/s on (shaft = speed, pointing along the velocity:
    atan2(3, 0) = 90 degrees), none below; a label 'class score' half the height and 0.5 m above the centre."""
    update = drawn["/detections"]
    assert [d.type for d in update.deletions] == [SceneEntityDeletion.ALL]
    assert update.deletions[0].timestamp.ToNanoseconds() == TIMESTAMP_US * 1000
    assert [e.id for e in update.entities] == ["box-0", "box-1", "box-2"]
    car, truck, pedestrian = update.entities
    (cube,) = car.cubes
    half = math.sqrt(0.5)
    assert [cube.pose.orientation.x, cube.pose.orientation.y, cube.pose.orientation.z,
            cube.pose.orientation.w] == pytest.approx([0.0, 0.0, half, half])
    assert [cube.size.x, cube.size.y, cube.size.z] == pytest.approx([4.5, 2.0, 1.6])
    # the car's BGR (0, 255, 255) is yellow: r = g = 1, b = 0
    assert [cube.color.r, cube.color.g, cube.color.b, cube.color.a] == pytest.approx([1.0, 1.0, 0.0, 0.5])
    (arrow,) = car.arrows
    assert arrow.shaft_length == pytest.approx(3.0)
    assert [arrow.pose.orientation.z, arrow.pose.orientation.w] == pytest.approx([half, half])
    assert [arrow.color.r, arrow.color.g, arrow.color.b, arrow.color.a] == pytest.approx([1.0, 1.0, 0.0, 1.0])
    assert len(truck.arrows) == 1 and truck.arrows[0].shaft_length == pytest.approx(0.1)
    assert len(pedestrian.arrows) == 0
    # the truck's BGR (255, 128, 32): r = 32 / 255, b = 1
    assert [truck.cubes[0].color.r, truck.cubes[0].color.b] == pytest.approx([32 / 255, 1.0])
    assert [e.texts[0].text for e in update.entities] == ["car 0.88", "truck 0.50", "pedestrian 0.25"]
    position = car.texts[0].pose.position
    assert [position.x, position.y, position.z] == pytest.approx([10.0, 2.0, 1.0 + 0.8 + 0.5])


def test_ego_pose_transform_calibration_and_cloud_layout_by_hand(drawn):
    """/tf: global -> ego is the ego pose itself (ego -> global: translation (100, 200, 0), yaw 90 degrees);
    the camera's calibration: K the intrinsics row by row, P = [K | 0], R the identity, five zero distortion
    coefficients; the LiDAR cloud: five float32 fields 4 bytes apart, a 20-byte stride, the identity pose."""
    (ego,) = [t for t in drawn["/tf"].transforms if t.child_frame_id == "ego"]
    assert ego.parent_frame_id == "global"
    assert [ego.translation.x, ego.translation.y, ego.translation.z] == pytest.approx([100.0, 200.0, 0.0])
    assert [ego.rotation.z, ego.rotation.w] == pytest.approx([math.sqrt(0.5), math.sqrt(0.5)])
    calibration = drawn["/CAM_FRONT/calibration"]
    assert (calibration.width, calibration.height, calibration.distortion_model) == (16, 8, "plumb_bob")
    assert list(calibration.K) == [10.0, 0.0, 8.0, 0.0, 10.0, 4.0, 0.0, 0.0, 1.0]
    assert list(calibration.P) == [10.0, 0.0, 8.0, 0.0, 0.0, 10.0, 4.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert list(calibration.R) == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0] and list(calibration.D) == [0.0] * 5
    cloud = drawn["/LIDAR_TOP"]
    assert [(f.name, f.offset) for f in cloud.fields] == [(n, 4 * i) for i, n in enumerate(LIDAR_COLUMNS)]
    assert cloud.point_stride == 20 and cloud.pose.orientation.w == 1.0


def test_no_plan_entity_without_a_trajectory_and_the_missing_sensors_sorted(drawn):
    """An empty trajectory draws no line strip (only the deletion of the previous plan); /decision lists the
    missing sensors sorted (Frame.missing is a set)."""
    plan = drawn["/plan"]
    assert len(plan.entities) == 0 and len(plan.deletions) == 1
    assert drawn["/decision"]["missing"] == ["CAM_BACK", "CAM_FRONT_LEFT", "RADAR_FRONT", "camera", "radar"]


def test_read_back_in_log_time_order_and_closing_twice_is_harmless(tmp_path):
    """Frames written out of time order (a later one first) read back earliest first; a second close (the
    context manager's after an explicit one) leaves the file whole."""
    path = str(tmp_path / "two.mcap")
    later = dataclasses.replace(_frame(), timestamp_us=TIMESTAMP_US + 500_000)
    with McapRecorder(path) as recorder:
        recorder.write_frame(later, Boxes3D.empty(), None)
        recorder.write_frame(_frame(), Boxes3D.empty(), None)
        recorder.close()
    times = [log_time for topic, log_time, _ in read_mcap(path) if topic == "/decision"]
    assert times == [TIMESTAMP_US * 1000, (TIMESTAMP_US + 500_000) * 1000]


def test_a_proposal_the_safety_layer_changed_is_a_second_thinner_line_strip(tmp_path):
    """The issue's 'the MCAP shows the learned plan, the vetoes and the rationale': beside the plan decided, the
    head's proposal where the decision is vetoed; a proposal kept as proposed is the plan itself (no second line)."""
    proposal = {"maneuver": "KEEP_LANE", "plan_maneuver": "KEEP_LANE", "trajectory": [[5.0, 0.0], [10.0, 0.0],
                                                                                       [15.0, 0.0]],
                "lane_change_feasible": [0.5, 0.5]}
    path = str(tmp_path / "vetoed.mcap")
    with McapRecorder(path) as recorder:
        recorder.write_frame(_frame(), Boxes3D.empty(), {"trajectory": [[2.0, 0.0], [3.0, 0.0], [3.5, 0.0]],
                                                         "vetoed": True}, proposal)
        recorder.write_frame(dataclasses.replace(_frame(), timestamp_us=TIMESTAMP_US + 500_000), Boxes3D.empty(),
                             {"trajectory": proposal["trajectory"], "vetoed": False}, proposal)
    vetoed, kept = [decoded for topic, _, decoded in read_mcap(path) if topic == "/plan"]
    plan, drawn = vetoed.entities
    assert (plan.id, drawn.id) == ("plan", "proposal") and drawn.lines[0].thickness < plan.lines[0].thickness
    assert [(p.x, p.y) for p in drawn.lines[0].points] == [(0.0, 0.0), (5.0, 0.0), (10.0, 0.0), (15.0, 0.0)]
    assert [entity.id for entity in kept.entities] == ["plan"]
