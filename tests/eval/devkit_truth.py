"""The independent oracle of these tests: a sample's ground truth read with nuscenes-devkit alone (annotation
records, ``box_velocity``, attribute table) and moved to the keyframe's ego frame."""
from typing import Tuple

import numpy as np
from nuscenes.eval.detection.utils import category_to_detection_name
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import Box
from pyquaternion import Quaternion

from perception.classes import ATTRIBUTES
from perception.datasets.records import sample_data_calibration
from perception.geometry import Boxes3D, EgoPose


def devkit_ground_truth(nusc: NuScenes, sample_token: str) -> Tuple[Boxes3D, EgoPose]:
    """(boxes in the ego frame of the keyframe's LiDAR, that ego pose); only annotations the devkit scores:
    a detection class and at least one LiDAR or radar point."""
    sample = nusc.get("sample", sample_token)
    _, pose = sample_data_calibration(nusc, sample["data"]["LIDAR_TOP"])
    boxes, attributes = [], []
    for token in sample["anns"]:
        record = nusc.get("sample_annotation", token)
        name = category_to_detection_name(record["category_name"])
        if name is None or record["num_lidar_pts"] + record["num_radar_pts"] == 0:
            continue
        boxes.append(Box(record["translation"], record["size"], Quaternion(record["rotation"]),
                         velocity=tuple(nusc.box_velocity(token)), name=name))
        names = [nusc.get("attribute", a)["name"] for a in record["attribute_tokens"]]
        attributes.append(ATTRIBUTES.index(names[0]) if names else -1)
    global_boxes = Boxes3D.from_devkit(boxes)
    global_boxes = Boxes3D(global_boxes.centers, global_boxes.sizes, global_boxes.yaws, global_boxes.velocities,
                           global_boxes.labels, global_boxes.scores, np.asarray(attributes, dtype=np.int64))
    return global_boxes.transform(pose.ego_to_global.inverse()), pose


def devkit_centres_in_ego(nusc: NuScenes, sample_token: str, ego_pose_record: dict) -> dict:
    """{instance token: centre (3,)} of the sample's annotations of the detection classes (whatever their point
    counts), moved into the ego frame of ``ego_pose_record`` by the devkit's Box."""
    translation = np.array(ego_pose_record["translation"])
    rotation = Quaternion(ego_pose_record["rotation"]).inverse
    centres = {}
    for token in nusc.get("sample", sample_token)["anns"]:
        record = nusc.get("sample_annotation", token)
        if category_to_detection_name(record["category_name"]) is None:
            continue
        box = nusc.get_box(token)
        box.translate(-translation)
        box.rotate(rotation)
        centres[record["instance_token"]] = box.center
    return centres
