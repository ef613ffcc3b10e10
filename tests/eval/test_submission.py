"""Boxes3D (ego) -> global submission boxes, hand-worked, and the format checks with their error messages."""
import json
import math

import numpy as np
import pytest
from nuscenes.eval.common.config import config_factory
from nuscenes.eval.common.data_classes import EvalBoxes
from nuscenes.eval.common.loaders import load_prediction
from nuscenes.eval.detection.constants import ATTRIBUTE_NAMES
from nuscenes.eval.detection.data_classes import DetectionBox
from nuscenes.eval.detection.utils import detection_name_to_rel_attributes

from perception.classes import ATTRIBUTES, DETECTION_CLASSES
from perception.eval.submission import (
    DEFAULT_ATTRIBUTES,
    MAX_BOXES_PER_SAMPLE,
    boxes_to_submission,
    check_submission,
    make_submission,
    submission_meta,
    write_submission,
)
from perception.geometry import Boxes3D, EgoPose, RigidTransform


def _pose_yaw90() -> EgoPose:
    """Ego at (10, 20, 0) in the global frame, heading north (+y)."""
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    return EgoPose(0, RigidTransform.from_rotation_translation(rotation, [10.0, 20.0, 0.0]))


def _boxes(labels, attributes=None, scores=None) -> Boxes3D:
    n = len(labels)
    return Boxes3D(centers=np.tile([1.0, 0.0, 0.5], (n, 1)), sizes=np.tile([2.0, 4.0, 1.5], (n, 1)),
                   yaws=np.zeros(n), velocities=np.tile([2.0, 0.0], (n, 1)), labels=labels,
                   scores=np.full(n, 0.5) if scores is None else scores,
                   attributes=np.full(n, -1) if attributes is None else attributes)


def test_ego_box_lands_where_hand_worked_in_the_global_frame():
    car = DETECTION_CLASSES.index("car")
    (box,) = boxes_to_submission("s0", _boxes([car], [ATTRIBUTES.index("vehicle.moving")]), _pose_yaw90())
    # 1 m ahead of an ego heading north from (10, 20): (10, 21); heading and velocity turn by +90 degrees.
    assert box["translation"] == pytest.approx([10.0, 21.0, 0.5])
    assert box["rotation"] == pytest.approx([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)])
    assert box["velocity"] == pytest.approx([0.0, 2.0], abs=1e-12)
    assert box["size"] == [2.0, 4.0, 1.5]
    assert (box["detection_name"], box["detection_score"], box["attribute_name"]) == ("car", 0.5, "vehicle.moving")
    assert box["sample_token"] == "s0"


def test_default_attributes_are_the_devkits_relevant_ones():
    assert set(DEFAULT_ATTRIBUTES) == set(DETECTION_CLASSES)
    for name, attribute in DEFAULT_ATTRIBUTES.items():
        relevant = detection_name_to_rel_attributes(name)
        assert attribute in relevant if relevant else attribute == ""
    labels = [DETECTION_CLASSES.index(n) for n in ("car", "pedestrian", "barrier", "traffic_cone")]
    written = [b["attribute_name"] for b in boxes_to_submission("s", _boxes(labels), _pose_yaw90())]
    assert written == ["vehicle.parked", "pedestrian.moving", "", ""]


# mmdetection3d's NuScenesDataset.DefaultAttribute (mmdet3d/datasets/nuscenes_dataset.py), the attribute its nuScenes
# writer gives a box the model gave none, written out here as published, in its order.
MMDET3D_DEFAULT_ATTRIBUTE = {
    "car": "vehicle.parked",
    "pedestrian": "pedestrian.moving",
    "trailer": "vehicle.parked",
    "truck": "vehicle.parked",
    "bus": "vehicle.moving",
    "motorcycle": "cycle.without_rider",
    "construction_vehicle": "vehicle.parked",
    "bicycle": "cycle.without_rider",
    "barrier": "",
    "traffic_cone": "",
}


def test_a_box_without_attribute_gets_mmdetection3ds_default_for_its_class():
    """All 10 classes with attribute -1, one box each in DETECTION_CLASSES order: each is written with
    mmdetection3d's default (bus vehicle.moving, the other motor vehicles vehicle.parked, ...)."""
    assert DEFAULT_ATTRIBUTES == MMDET3D_DEFAULT_ATTRIBUTE
    written = boxes_to_submission("s", _boxes(list(range(len(DETECTION_CLASSES)))), _pose_yaw90())
    assert {b["detection_name"]: b["attribute_name"] for b in written} == MMDET3D_DEFAULT_ATTRIBUTE


@pytest.mark.parametrize("problem, match", [
    ("attribute of another class", "pedestrian with attribute 'vehicle.parked'"),
    ("NaN centre", "centers contain NaN"),
    ("score above 1", r"scores must lie in \[0, 1\]"),
    ("label out of range", "labels must index DETECTION_CLASSES"),
    ("too many boxes", f"at most {MAX_BOXES_PER_SAMPLE}"),
])
def test_bad_boxes_get_an_error_naming_the_sample(problem, match):
    pedestrian = DETECTION_CLASSES.index("pedestrian")
    boxes = {
        "attribute of another class": _boxes([pedestrian], [ATTRIBUTES.index("vehicle.parked")]),
        "NaN centre": Boxes3D([[np.nan, 0, 0]], [[1, 1, 1]], [0.0]),
        "score above 1": _boxes([0], scores=[1.5]),
        "label out of range": _boxes([len(DETECTION_CLASSES)]),
        "too many boxes": _boxes([0] * (MAX_BOXES_PER_SAMPLE + 1)),
    }[problem]
    with pytest.raises(ValueError, match=f"sample tok-7.*{match}"):
        boxes_to_submission("tok-7", boxes, _pose_yaw90())


def test_meta_follows_the_sensors():
    assert submission_meta(["lidar", "radar"]) == {"use_camera": False, "use_lidar": True, "use_radar": True,
                                                   "use_map": False, "use_external": False}
    assert submission_meta(["lidar"])["use_radar"] is False  # a LiDAR-only model
    assert submission_meta(["radar"]) == {"use_camera": False, "use_lidar": False, "use_radar": True,
                                          "use_map": False, "use_external": False}
    with pytest.raises(ValueError, match="sonar"):
        submission_meta(["sonar"])


def _submission(tokens) -> dict:
    results = {t: boxes_to_submission(t, _boxes([0, 5, 8]), _pose_yaw90()) for t in tokens}
    return make_submission(results, submission_meta(["camera", "lidar", "radar"]))


def test_written_submission_passes_the_devkits_loader(tmp_path):
    path = str(tmp_path / "results_nusc.json")
    write_submission(path, _submission(["a", "b"]), ["a", "b"])
    boxes, meta = load_prediction(path, MAX_BOXES_PER_SAMPLE, DetectionBox)
    assert set(boxes.sample_tokens) == {"a", "b"} and len(boxes.all) == 6
    assert meta["use_camera"] and meta["use_radar"] and not meta["use_map"]
    with open(path) as handle:
        assert EvalBoxes.deserialize(json.load(handle)["results"], DetectionBox) == boxes
    assert {b.attribute_name for b in boxes.all} <= set(ATTRIBUTE_NAMES) | {""}


def test_missing_and_unexpected_samples_are_named():
    with pytest.raises(ValueError, match=r"1 of the 3 samples of the split missing \(.*\), e.g. c$") as error:
        check_submission(_submission(["a", "b"]), ["a", "b", "c"])
    assert "not in the split" not in str(error.value)
    with pytest.raises(ValueError, match=r"samples not in the split \(1\), e.g. zz$"):
        check_submission(_submission(["a", "zz"]), ["a"])
    with pytest.raises(ValueError, match="5 of the 6 samples of the split missing .*, e.g. b, c, d$"):
        check_submission(_submission(["a"]), ["a", "f", "e", "d", "c", "b"])


def test_format_problems_are_named_with_their_sample():
    submission = _submission(["a", "b"])
    submission["results"]["b"][1]["detection_name"] = "unicorn"
    with pytest.raises(ValueError, match="sample b: box 1 breaks the submission format.*unicorn"):
        check_submission(submission, ["a", "b"])
    submission = _submission(["a", "b"])
    submission["results"]["a"][0]["sample_token"] = "b"
    with pytest.raises(ValueError, match="sample a: box 0 names sample 'b'"):
        check_submission(submission, ["a", "b"])
    submission = _submission(["a"])
    submission["results"]["a"][2]["velocity"] = [float("nan"), 0.0]
    with pytest.raises(ValueError, match="sample a: box 2 .*velocity"):
        check_submission(submission, ["a"])
    submission = _submission(["a"])
    submission["meta"]["use_lidar"] = "yes"
    with pytest.raises(ValueError, match="'meta' must hold booleans"):
        check_submission(submission, ["a"])


def test_the_box_limit_is_the_devkits_own(tmp_path):
    """detection_cvpr_2019 allows 500 boxes a sample: 500 are written and read back by the devkit's loader, 501 are
    refused by both the conversion and the check."""
    config = config_factory("detection_cvpr_2019")
    assert MAX_BOXES_PER_SAMPLE == config.max_boxes_per_sample == 500
    results = {"a": boxes_to_submission("a", _boxes([0] * 500), _pose_yaw90())}
    path = str(tmp_path / "results_nusc.json")
    write_submission(path, make_submission(results, submission_meta(["lidar"])), ["a"])
    assert len(load_prediction(path, config.max_boxes_per_sample, DetectionBox)[0]["a"]) == 500
    results["a"].append(dict(results["a"][0]))
    with pytest.raises(ValueError, match="sample a: 501 boxes, at most 500 allowed"):
        check_submission(make_submission(results, submission_meta(["lidar"])), ["a"])


def test_scores_on_the_bounds_of_zero_to_one_are_kept_exactly():
    """0 and 1 are scores; a score is written as the detector gave it (the devkit ranks by it), not rounded."""
    (low, high, fine) = boxes_to_submission("s", _boxes([0, 0, 0], scores=[0.0, 1.0, 0.123456789]), _pose_yaw90())
    assert (low["detection_score"], high["detection_score"], fine["detection_score"]) == (0.0, 1.0, 0.123456789)
    assert DetectionBox.deserialize(fine).detection_score == 0.123456789


@pytest.mark.parametrize("labels, attributes, match", [
    ([-1], None, r"labels must index DETECTION_CLASSES \(0..9\), got \[-1\]"),
    ([0], [len(ATTRIBUTES)], "attributes must index ATTRIBUTES or be -1, got \\[8\\]"),
    ([0], [-2], "attributes must index ATTRIBUTES or be -1, got \\[-2\\]"),
    ([0], [ATTRIBUTES.index("pedestrian.moving")], "car with attribute 'pedestrian.moving'"),  # index 0 is an attribute
])
def test_labels_and_attributes_out_of_range_are_refused(labels, attributes, match):
    with pytest.raises(ValueError, match=f"sample tok-3: .*{match}"):
        boxes_to_submission("tok-3", _boxes(labels, attributes), _pose_yaw90())


def test_every_meta_key_and_the_results_type_are_checked():
    for key in ("use_external", "use_map"):
        submission = _submission(["a"])
        del submission["meta"][key]
        with pytest.raises(ValueError, match="'meta' must hold booleans"):
            check_submission(submission, ["a"])
    submission = _submission(["a"])
    submission["results"] = [submission["results"]["a"]]
    with pytest.raises(ValueError, match="'results' must map sample tokens to lists of boxes"):
        check_submission(submission, ["a"])


@pytest.mark.parametrize("change, match", [
    (dict(velocity=[math.inf, 0.0]), "velocity must be finite numbers"),  # the devkit accepts an infinite one
    (dict(velocity=None), "TypeError"),
    (dict(translation=[0.0, -math.inf, 0.0]), "translation must be finite numbers"),  # and these
    (dict(size=[1.0, 2.0, math.inf]), "size must be finite numbers"),
    (dict(detection_score=7.5), r"detection_score must lie in \[0, 1\], got 7.5"),
    (dict(detection_score=-0.25), r"detection_score must lie in \[0, 1\], got -0.25"),
    (dict(size=None), "TypeError"),  # the devkit's tuple(None)
    (dict(detection_name=None), "detection_name"),
])
def test_a_box_the_devkit_cannot_read_is_named_with_its_sample(change, match):
    submission = _submission(["a"])
    submission["results"]["a"][1].update(change)
    with pytest.raises(ValueError, match=f"sample a: box 1 breaks the submission format: .*{match}"):
        check_submission(submission, ["a"])


def test_a_box_without_a_key_is_named_with_its_sample():
    submission = _submission(["a"])
    del submission["results"]["a"][0]["attribute_name"]
    with pytest.raises(ValueError, match="sample a: box 0 breaks the submission format: KeyError: 'attribute_name'"):
        check_submission(submission, ["a"])


def test_an_infinite_value_is_never_written(tmp_path):
    """The devkit's DetectionBox checks for NaN only, and Python's JSON would write Infinity, which is not JSON: an
    infinite translation is refused, not written."""
    submission = _submission(["a"])
    submission["results"]["a"][0]["translation"][0] = math.inf
    path = tmp_path / "results_nusc.json"
    with pytest.raises(ValueError, match=f"{path}: sample a: box 0 .*translation must be finite"):
        write_submission(str(path), submission, ["a"])
    assert not path.exists()  # (the JSON writer had stopped midway through the file)


@pytest.mark.parametrize("size", [[1.9, 0.0, 1.6], [1.9, 4.5, -1.6]], ids=["a zero length", "a negative height"])
def test_a_size_the_devkit_cannot_score_is_named_with_its_file_sample_and_box(tmp_path, size):
    """The devkit's scale error asserts every size > 0 (AssertionError naming no file, from a resampled comparison
    of the file) and its format check lets such a box through."""
    from nuscenes.eval.common.utils import scale_iou

    submission = _submission(["a"])
    submission["results"]["a"][2]["size"] = size
    box = DetectionBox.deserialize(submission["results"]["a"][2])  # the devkit reads it
    with pytest.raises(AssertionError, match="sample_result sizes must be >0"):
        scale_iou(DetectionBox.deserialize(submission["results"]["a"][0]), box)
    path = tmp_path / "results_nusc.json"
    with pytest.raises(ValueError, match=f"{path}: sample a: box 2 breaks the submission format: .*size must be > 0"):
        write_submission(str(path), submission, ["a"])


def test_a_zero_quaternion_is_named_with_its_file_sample_and_box(tmp_path):
    """pyquaternion, which the devkit reads rotations with, cannot normalise [0, 0, 0, 0]: the devkit scored it as
    yaw 0, silently."""
    from nuscenes.eval.common.utils import quaternion_yaw
    from pyquaternion import Quaternion

    assert quaternion_yaw(Quaternion([0.0, 0.0, 0.0, 0.0])) == 0.0
    submission = _submission(["a"])
    submission["results"]["a"][1]["rotation"] = [0.0, 0.0, 0.0, 0.0]
    path = tmp_path / "results_nusc.json"
    with pytest.raises(ValueError, match=rf"{path}: sample a: box 1 breaks the submission format: .*rotation must be "
                                         rf"a quaternion \[w, x, y, z\] of norm > 0"):
        write_submission(str(path), submission, ["a"])
    submission["results"]["a"][1]["rotation"] = [0.0, 0.0, 0.0, 2.0]  # not unit: the devkit normalises it
    write_submission(str(path), submission, ["a"])


def test_a_box_of_width_zero_is_refused_before_the_submission():
    boxes = Boxes3D(centers=[[1.0, 0.0, 0.5]] * 3, sizes=[[2.0, 4.0, 1.5], [0.0, 4.0, 1.5], [0.0, 0.0, 1.5]],
                    yaws=[0.0] * 3)
    with pytest.raises(ValueError, match=r"sample tok-7: box 1 has size \[0.0, 4.0, 1.5\] \(2 boxes with a size <= "
                                         r"0\); width, length and height must be > 0"):
        boxes_to_submission("tok-7", boxes, _pose_yaw90())
