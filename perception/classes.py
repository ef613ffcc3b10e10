"""The nuScenes detection classes and attributes, as indices used everywhere in the project.

Class order and names are the devkit's own (``nuscenes.eval.detection.constants``), so a label index means the
same thing in the loader, the network heads and the submission writer.
"""
from nuscenes.eval.detection.constants import ATTRIBUTE_NAMES, DETECTION_NAMES
from nuscenes.eval.detection.utils import category_to_detection_name

DETECTION_CLASSES: tuple = tuple(DETECTION_NAMES)
"""The 10 detection classes; a box label is an index into this tuple."""

MOTOR_VEHICLE_CLASSES = ("car", "truck", "bus", "trailer", "construction_vehicle")
"""The detection classes of four or more wheels (large painted bodies, several radar clusters each)."""

ATTRIBUTES: tuple = tuple(ATTRIBUTE_NAMES)
"""The 8 nuScenes attributes; an attribute label is an index into this tuple, -1 for none."""

__all__ = ["ATTRIBUTES", "DETECTION_CLASSES", "MOTOR_VEHICLE_CLASSES", "category_to_detection_name"]
