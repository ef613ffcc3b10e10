"""A replayed drive as an MCAP file that Foxglove opens: point clouds, images, boxes, the plan and the decision.

Channels (Foxglove's own protobuf schemas, from the foxglove-schemas-protobuf package, written with mcap and
mcap-protobuf-support; log and publish times are the frame's timestamp in nanoseconds: its trigger's, the LiDAR's
or the watchdog's message's):

  /tf                      foxglove.FrameTransforms  global -> ego (the ego pose), ego -> each camera
  /LIDAR_TOP               foxglove.PointCloud       frame "ego", float32 fields LIDAR_COLUMNS (empty when the frame
                                                     has none, so that a viewer does not keep an outage's last cloud)
  /RADAR                   foxglove.PointCloud       frame "ego", float32 fields RADAR_COLUMNS (all 5 radars; empty
                                                     likewise)
  /<CAMERA>/image          foxglove.CompressedImage  frame "<CAMERA>", JPEG of the image the model saw (none for a
                                                     camera the frame lacks: /decision's "missing" names it)
  /<CAMERA>/calibration    foxglove.CameraCalibration (so that Foxglove projects the boxes into the image)
  /detections              foxglove.SceneUpdate      one cube per box (class colour), velocity arrow, label text
  /plan                    foxglove.SceneUpdate      the planned ego trajectory as a line strip ("plan"), and the
                                                     learned proposal the safety layer changed ("proposal")
  /decision                JSON (jsonschema DECISION_JSON_SCHEMA): the frame's Decision.to_json(), or null, the
                           planning head's proposal before the safety layer (PLAN_RECORD), or null, and the
                           sensors the frame lacks (Frame.missing)
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, Optional, Sequence

import cv2
import numpy as np
from foxglove_schemas_protobuf.CameraCalibration_pb2 import CameraCalibration
from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
from foxglove_schemas_protobuf.FrameTransforms_pb2 import FrameTransforms
from foxglove_schemas_protobuf.LinePrimitive_pb2 import LinePrimitive
from foxglove_schemas_protobuf.PackedElementField_pb2 import PackedElementField
from foxglove_schemas_protobuf.PointCloud_pb2 import PointCloud
from foxglove_schemas_protobuf.SceneEntityDeletion_pb2 import SceneEntityDeletion
from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
from mcap.well_known import MessageEncoding, SchemaEncoding
from mcap.writer import CompressionType, Writer
from mcap_protobuf.schema import register_schema

from perception.classes import DETECTION_CLASSES
from perception.datasets.frame import LIDAR_COLUMNS, RADAR_COLUMNS, Frame
from perception.geometry import Boxes3D, RigidTransform, yaw_quaternion_wxyz
from perception.runtime.records import changed_proposal
from perception.viz.bev import PLAN_COLOUR_BGR, PROPOSAL_COLOUR_BGR, class_colour

EGO_FRAME_ID = "ego"
GLOBAL_FRAME_ID = "global"

DECISION_JSON_SCHEMA: Dict[str, Any] = {
    "title": "perception.Decision",
    "type": "object",
    "properties": {
        "timestamp_us": {"type": "integer"},
        "decision": {
            "type": ["object", "null"],
            "properties": {
                "maneuver": {"type": "string"},
                "target_speed_mps": {"type": "number"},
                "ttc_s": {"type": ["number", "null"]},
                "critical_object": {"type": "integer"},
                "lane_change_left_ok": {"type": "boolean"},
                "lane_change_right_ok": {"type": "boolean"},
                "trajectory": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                "reason": {"type": "string"},
                "vetoed": {"type": "boolean"},
            },
        },
        "plan": {
            "type": ["object", "null"],
            "properties": {
                "maneuver": {"type": "string"},
                "plan_maneuver": {"type": "string"},
                "trajectory": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                "lane_change_feasible": {"type": "array", "items": {"type": "number"}},
            },
        },
        "missing": {"type": "array", "items": {"type": "string"}},
    },
}
"""The JSON schema of the /decision channel (the layouts of perception.decision.Decision.to_json() and of
perception.runtime.records.PLAN_RECORD)."""


def _set_time(message: Any, timestamp_ns: int) -> None:
    message.timestamp.FromNanoseconds(int(timestamp_ns))


def _set_pose(pose: Any, translation: Sequence[float], yaw: float) -> None:
    """A Foxglove pose: ``translation`` [m] and the rotation by ``yaw`` [rad] about +z (its quaternion x, y, z, w)."""
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in translation)
    w, x, y, z = yaw_quaternion_wxyz(yaw)
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = x, y, z, w


def _set_colour(colour: Any, bgr: Sequence[int], alpha: float) -> None:
    colour.r, colour.g, colour.b, colour.a = bgr[2] / 255.0, bgr[1] / 255.0, bgr[0] / 255.0, alpha


def point_cloud_message(points: np.ndarray, columns: Sequence[str], timestamp_ns: int,
                        frame_id: str = EGO_FRAME_ID) -> PointCloud:
    """(N, len(columns)) points -> foxglove.PointCloud with one float32 field per column (identity pose)."""
    points = np.ascontiguousarray(points, dtype=np.float32).reshape(-1, len(columns))
    message = PointCloud(frame_id=frame_id, point_stride=4 * len(columns), data=points.tobytes())
    _set_time(message, timestamp_ns)
    message.pose.orientation.w = 1.0
    for index, name in enumerate(columns):
        message.fields.add(name=name, offset=4 * index, type=PackedElementField.FLOAT32)
    return message


def boxes_scene_update(boxes: Boxes3D, timestamp_ns: int, frame_id: str = EGO_FRAME_ID) -> SceneUpdate:
    """Boxes in ``frame_id`` -> foxglove.SceneUpdate: deletes the previous frame's entities, then one entity per
    box with a cube (size x = length, y = width, z = height), its velocity as an arrow (when >= 0.1 m/s) and a
    text 'class score'."""
    update = SceneUpdate()
    deletion = update.deletions.add(type=SceneEntityDeletion.ALL)
    _set_time(deletion, timestamp_ns)
    for index in range(len(boxes)):
        label = int(boxes.labels[index])
        entity = update.entities.add(frame_id=frame_id, id=f"box-{index}")
        _set_time(entity, timestamp_ns)
        yaw = float(boxes.yaws[index])
        cube = entity.cubes.add()
        _set_pose(cube.pose, boxes.centers[index], yaw)
        width, length, height = (float(v) for v in boxes.sizes[index])
        cube.size.x, cube.size.y, cube.size.z = length, width, height
        _set_colour(cube.color, class_colour(label), 0.5)
        velocity = boxes.velocities[index]
        speed = float(np.hypot(*velocity))
        if speed >= 0.1:
            arrow = entity.arrows.add(shaft_length=speed, shaft_diameter=0.1, head_length=0.4, head_diameter=0.3)
            _set_pose(arrow.pose, boxes.centers[index], math.atan2(velocity[1], velocity[0]))
            _set_colour(arrow.color, class_colour(label), 1.0)
        text = entity.texts.add(billboard=True, font_size=14.0, scale_invariant=True,
                                text=f"{DETECTION_CLASSES[label]} {float(boxes.scores[index]):.2f}")
        _set_pose(text.pose, boxes.centers[index] + np.array([0.0, 0.0, height / 2 + 0.5]), 0.0)
        _set_colour(text.color, (255, 255, 255), 1.0)
    return update


def plan_scene_update(trajectory: Optional[np.ndarray], timestamp_ns: int,
                      proposal: Optional[np.ndarray] = None) -> SceneUpdate:
    """The planned ego trajectory (T, 2) [x, y] in the ego frame as a line strip from the ego origin (entity
    "plan"), and a learned ``proposal`` (T, 2) the safety layer changed (entity "proposal", thinner, in the
    picture's PROPOSAL_COLOUR_BGR); the previous ones deleted, no entity for a path not given."""
    update = SceneUpdate()
    deletion = update.deletions.add(type=SceneEntityDeletion.ALL)
    _set_time(deletion, timestamp_ns)
    for name, path, colour, thickness in (("plan", trajectory, PLAN_COLOUR_BGR, 0.3),
                                          ("proposal", proposal, PROPOSAL_COLOUR_BGR, 0.15)):
        if path is None or not len(path):
            continue
        entity = update.entities.add(frame_id=EGO_FRAME_ID, id=name)
        _set_time(entity, timestamp_ns)
        line = entity.lines.add(type=LinePrimitive.LINE_STRIP, thickness=thickness)
        line.pose.orientation.w = 1.0
        for x, y in np.concatenate([np.zeros((1, 2)), np.asarray(path, dtype=np.float64)[:, :2]]):
            line.points.add(x=float(x), y=float(y), z=0.0)
        _set_colour(line.color, colour, 1.0)
    return update


PARTIAL_SUFFIX = ".partial"
"""An MCAP file is written under its name with this suffix until it is closed: a job killed before leaves that file
(its messages readable by a stream reader), never one under the final name without its index and footer."""


class McapRecorder:
    """Writes frames to an MCAP file (see the module docstring for the channels); use as a context manager or
    call ``close()`` (which writes the index and footer and gives the file its name: PARTIAL_SUFFIX)."""

    def __init__(self, path: str, jpeg_quality: int = 90) -> None:
        self.path = path
        self.jpeg_quality = jpeg_quality
        self._file = open(path + PARTIAL_SUFFIX, "wb")
        self._writer = Writer(self._file, compression=CompressionType.ZSTD)
        self._writer.start(profile="", library="perception")
        self._schemas: Dict[str, int] = {}
        self._channels: Dict[str, int] = {}

    def _channel(self, topic: str, message_class: Any) -> int:
        if topic not in self._channels:
            name = message_class.DESCRIPTOR.full_name
            if name not in self._schemas:
                self._schemas[name] = register_schema(self._writer, message_class)
            self._channels[topic] = self._writer.register_channel(topic, MessageEncoding.Protobuf,
                                                                  self._schemas[name])
        return self._channels[topic]

    def _write(self, topic: str, message: Any, timestamp_ns: int) -> None:
        self._writer.add_message(self._channel(topic, type(message)), log_time=timestamp_ns,
                                 data=message.SerializeToString(), publish_time=timestamp_ns)

    def _write_json(self, topic: str, payload: Dict[str, Any], timestamp_ns: int) -> None:
        if topic not in self._channels:
            schema = self._writer.register_schema(DECISION_JSON_SCHEMA["title"], SchemaEncoding.JSONSchema,
                                                  json.dumps(DECISION_JSON_SCHEMA).encode())
            self._channels[topic] = self._writer.register_channel(topic, MessageEncoding.JSON, schema)
        self._writer.add_message(self._channels[topic], log_time=timestamp_ns,
                                 data=json.dumps(payload).encode(), publish_time=timestamp_ns)

    def write_frame(self, frame: Frame, boxes: Boxes3D, decision: Optional[Dict[str, Any]],
                    plan: Optional[Dict[str, Any]] = None) -> None:
        """One frame: its sensors (module docstring), ``boxes`` (ego frame), ``decision`` (Decision.to_json() or
        None) and the planning head's proposal ``plan`` (a PLAN_RECORD dict or None)."""
        time_ns = int(frame.timestamp_us) * 1000
        transforms = FrameTransforms()
        self._add_transform(transforms, GLOBAL_FRAME_ID, EGO_FRAME_ID, frame.ego_pose.ego_to_global, time_ns)
        for channel, view in frame.cameras.items():
            self._add_transform(transforms, EGO_FRAME_ID, channel, view.camera_to_ego, time_ns)
        self._write("/tf", transforms, time_ns)
        for topic, sweeps, columns in (("/LIDAR_TOP", frame.lidar, LIDAR_COLUMNS),
                                       ("/RADAR", frame.radar, RADAR_COLUMNS)):
            points = np.zeros((0, len(columns))) if sweeps is None else sweeps.points
            self._write(topic, point_cloud_message(points, columns, time_ns), time_ns)
        for channel, view in frame.cameras.items():
            ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(view.image, cv2.COLOR_RGB2BGR),
                                    [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise ValueError(f"{self.path}: OpenCV could not encode the {channel} image as JPEG")
            image = CompressedImage(frame_id=channel, data=jpeg.tobytes(), format="jpeg")
            _set_time(image, time_ns)
            self._write(f"/{channel}/image", image, time_ns)
            intrinsics = view.intrinsics
            calibration = CameraCalibration(frame_id=channel, width=int(intrinsics.width),
                                            height=int(intrinsics.height), distortion_model="plumb_bob")
            _set_time(calibration, time_ns)
            calibration.D.extend([0.0] * 5)
            calibration.K.extend(intrinsics.matrix.reshape(-1).tolist())
            calibration.R.extend(np.eye(3).reshape(-1).tolist())
            calibration.P.extend(np.concatenate([intrinsics.matrix, np.zeros((3, 1))], axis=1).reshape(-1).tolist())
            self._write(f"/{channel}/calibration", calibration, time_ns)
        self._write("/detections", boxes_scene_update(boxes, time_ns), time_ns)
        trajectory = None if decision is None else np.asarray(decision["trajectory"], dtype=np.float64)
        proposal = changed_proposal({"decision": decision, "plan": plan})
        self._write("/plan", plan_scene_update(trajectory, time_ns, proposal), time_ns)
        self._write_json("/decision", {"timestamp_us": int(frame.timestamp_us), "decision": decision, "plan": plan,
                                       "missing": sorted(frame.missing)}, time_ns)

    @staticmethod
    def _add_transform(transforms: FrameTransforms, parent: str, child: str, child_to_parent: RigidTransform,
                       timestamp_ns: int) -> None:
        transform = transforms.transforms.add(parent_frame_id=parent, child_frame_id=child)
        _set_time(transform, timestamp_ns)
        w, x, y, z = (float(v) for v in child_to_parent.rotation_wxyz)
        (transform.translation.x, transform.translation.y,
         transform.translation.z) = (float(v) for v in child_to_parent.translation)
        transform.rotation.x, transform.rotation.y, transform.rotation.z, transform.rotation.w = x, y, z, w

    def close(self) -> None:
        if not self._file.closed:
            self._writer.finish()
            self._file.close()
            os.replace(self._file.name, self.path)

    def __enter__(self) -> "McapRecorder":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
