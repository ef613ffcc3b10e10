"""Ground truth through our conversion scored by nuscenes-devkit's unmodified DetectionEval, and the distance
breakdown against hand-worked cases."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
from nuscenes.eval.common.config import config_factory
from nuscenes.eval.common.data_classes import EvalBoxes
from nuscenes.eval.common.loaders import load_prediction
from nuscenes.eval.detection.data_classes import DetectionBox, DetectionMetrics
from nuscenes.eval.detection.evaluate import DetectionEval

from perception.datasets.loader import NuScenesFrames
from perception.datasets.splits import split_sample_tokens
from perception.detector import OracleDetector
from perception.eval.detection import (
    EVAL_CONFIG, Evaluation, NoDetectionsError, check_lidar_keyframes, confident_boxes, distance_breakdown,
    evaluate_submission, metrics_record, nd_score_by_class, run_detection_eval,
)
from perception.eval.runner import predict
from perception.geometry import Boxes3D
from perception.eval.submission import boxes_to_submission, make_submission, submission_meta, write_submission
from perception.sensors import SENSOR_GROUPS
from tests.eval.devkit_truth import devkit_ground_truth

ANGLE_TOLERANCE_RAD = 5e-4
VELOCITY_TOLERANCE_M_S = 5e-3
"""On real poses: Boxes3D keeps yaw and (vx, vy) in the ego frame, which real ego poses tilt by ~0.01 rad (roll,
pitch); the vertical components dropped there come back as < 1e-4 rad of heading and < 2e-3 m/s of velocity
on the real fixture (the annotations' vertical velocity leaks through the tilt). A frame-conversion bug costs
far more (tenths of a radian, metres per second). The synthetic world's level poses round-trip to 1e-9."""

TP_METRIC_ORDER = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")


def _devkit_results(nusc, tokens, pose_of=None) -> dict:
    """Each sample's devkit ground truth (ego frame) through boxes_to_submission. ``pose_of(token, true_pose)``
    replaces the ego pose used for ego -> global (to plant a bug)."""
    results = {}
    for token in tokens:
        boxes, pose = devkit_ground_truth(nusc, token)
        results[token] = boxes_to_submission(token, boxes, pose if pose_of is None else pose_of(token, pose))
    return results


def _loader_results(nusc, split) -> dict:
    """Our loader's frames (ground truth only: every sensor dropped) through the oracle and boxes_to_submission."""
    frames = NuScenesFrames(nusc.dataroot, nusc.version, split, lidar_sweeps=1, radar_sweeps=1,
                            drop=SENSOR_GROUPS, nusc=nusc, cache_dir=None, progress=False)
    batches = ([frames[i]] for i in range(len(frames)))
    return predict(OracleDetector(), batches, len(frames), progress=False).results


def _evaluate(nusc, split, results, out_dir) -> Evaluation:
    path = str(out_dir / "results_nusc.json")
    tokens = split_sample_tokens(nusc, split)
    write_submission(path, make_submission(results, submission_meta(["lidar"])), tokens)
    return run_detection_eval(nusc, path, split, str(out_dir))


def _ground_truth_results(source, nusc, split) -> dict:
    if source == "loader":
        return _loader_results(nusc, split)
    return _devkit_results(nusc, split_sample_tokens(nusc, split))


def _assert_perfect(evaluation: Evaluation, angle_tolerance: float, velocity_tolerance: float) -> None:
    present = [name for name, count in evaluation.num_gt().items() if count]
    assert present, "no ground truth scored"
    for name in present:
        assert evaluation.metrics.mean_dist_aps[name] == pytest.approx(1.0, abs=1e-9), name
        errors = {metric: evaluation.metrics.get_label_tp(name, metric) for metric in
                  ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")}
        assert errors["trans_err"] < 1e-9 and errors["scale_err"] < 1e-9, (name, errors)
        assert np.isnan(errors["orient_err"]) or errors["orient_err"] < angle_tolerance, (name, errors)
        assert np.isnan(errors["vel_err"]) or errors["vel_err"] < velocity_tolerance, (name, errors)
        assert np.isnan(errors["attr_err"]) or errors["attr_err"] == 0.0, (name, errors)


@pytest.mark.parametrize("source", ["devkit", "loader"])
def test_real_fixture_ground_truth_scores_ap_one(source, nusc_real, tmp_path):
    evaluation = _evaluate(nusc_real, "mini_val", _ground_truth_results(source, nusc_real, "mini_val"), tmp_path)
    assert sorted(evaluation.gt_boxes.sample_tokens) == sorted(s["token"] for s in nusc_real.sample)
    assert evaluation.num_gt()["car"] > 0 and evaluation.num_gt()["pedestrian"] > 0
    _assert_perfect(evaluation, ANGLE_TOLERANCE_RAD, VELOCITY_TOLERANCE_M_S)


@pytest.mark.parametrize("source", ["devkit", "loader"])
def test_synthetic_ground_truth_scores_ap_one(source, nusc_synthetic, tmp_path):
    results = _ground_truth_results(source, nusc_synthetic, "synth_val")
    _assert_perfect(_evaluate(nusc_synthetic, "synth_val", results, tmp_path), 1e-9, 1e-9)  # level ego poses


def test_a_wrong_frame_conversion_is_caught(nusc_real, tmp_path):
    """The check above can fail: boxes moved to the global frame with the pose of the next keyframe (an
    off-by-one timestamp, ~2 m and ~10 degrees away) lose most of their AP."""
    tokens = split_sample_tokens(nusc_real, "mini_val")
    poses = {token: devkit_ground_truth(nusc_real, token)[1] for token in tokens}
    shifted = {token: poses[tokens[(i + 1) % len(tokens)]] for i, token in enumerate(tokens)}
    results = _devkit_results(nusc_real, tokens, lambda token, pose: shifted[token])
    evaluation = _evaluate(nusc_real, "mini_val", results, tmp_path)
    assert evaluation.metrics.mean_dist_aps["car"] < 0.3 and evaluation.metrics.mean_dist_aps["pedestrian"] < 0.3
    # the classes' parts of NDS add up to the devkit's own NDS on these imperfect metrics
    assert sum(nd_score_by_class(evaluation.metrics).values()) == pytest.approx(evaluation.metrics.nd_score, abs=1e-12)


def test_a_keyframe_without_lidar_is_named_before_any_detection(nusc_synthetic, monkeypatch):
    """The devkit's DetectionEval reads each keyframe's LIDAR_TOP pose: a split with a keyframe without one is refused
    up front (it failed with a KeyError inside the devkit after the whole detection pass)."""
    check_lidar_keyframes(nusc_synthetic, "synth_val")
    sample = nusc_synthetic.get("sample", split_sample_tokens(nusc_synthetic, "synth_val")[3])
    monkeypatch.setitem(sample, "data", {k: v for k, v in sample["data"].items() if k != "LIDAR_TOP"})
    with pytest.raises(ValueError, match=f"split 'synth_val' of .*: 1 keyframes have no LIDAR_TOP record \\(e.g. "
                                         f"sample {sample['token']}\\)"):
        check_lidar_keyframes(nusc_synthetic, "synth_val")


def test_nd_score_by_class_hand_worked():
    """Cars AP 0.5 with errors (ATE, ASE, AOE, AVE, AAE) 0.2 / 0.1 / 0.4 / 0.3 / 0.1, trucks AP 0.1 with 0.6 / 0.3 /
    1.6 / 0.5 / 0.3, no other class scored. mAP (0.5 + 0.1) / 10 = 0.06; mean errors 0.4 / 0.2 / 1.0 / 0.4 / 0.2,
    scores 0.6 / 0.8 / 0 / 0.6 / 0.8; NDS (5 x 0.06 + 2.8) / 10 = 0.31. Cars: (5 x 0.5 / 10 + (0.8 + 0.9 + 0.7 +
    0.9) / 2) / 10 = 0.19, trucks (5 x 0.1 / 10 + (0.4 + 0.7 + 0.5 + 0.7) / 2) / 10 = 0.12: the orientation
    error, whose mean reaches 1, scores 0 and gives neither anything."""
    config = config_factory(EVAL_CONFIG)
    metrics = DetectionMetrics(config)
    errors = {"car": (0.2, 0.1, 0.4, 0.3, 0.1), "truck": (0.6, 0.3, 1.6, 0.5, 0.3)}
    for name in config.class_names:
        for threshold in config.dist_ths:
            metrics.add_label_ap(name, threshold, {"car": 0.5, "truck": 0.1}.get(name, 0.0))
        for metric, value in zip(("trans_err", "scale_err", "orient_err", "vel_err", "attr_err"),
                                 errors.get(name, (np.nan,) * 5)):
            metrics.add_label_tp(name, metric, value)
    assert metrics.nd_score == pytest.approx(0.31)
    parts = nd_score_by_class(metrics)
    assert parts["car"] == pytest.approx(0.19) and parts["truck"] == pytest.approx(0.12)
    assert all(parts[name] == 0.0 for name in config.class_names if name not in errors)


def _box(token, name, x, y, score=-1.0) -> DetectionBox:
    return DetectionBox(sample_token=token, translation=(x, y, 0.0), size=(2.0, 4.0, 1.5), rotation=(1, 0, 0, 0),
                        ego_translation=(x, y, 0.0), detection_name=name, detection_score=score)


def test_distance_breakdown_hand_worked():
    """Two samples; cars at 10 m, 25 m and 40 m, a pedestrian at 5 m. Predicted: the 10 m car, the 40 m car
    (and a false positive at 45 m with a higher score), the pedestrian. Bin 0-20: car AP 1, pedestrian AP 1;
    bin 20-30: car AP 0 (missed); bin 30-50: a false positive ranked above the true one: (recall, precision) goes
    (0, 0) -> (1, 1/2), which the devkit interpolates linearly, precision r/2 at recall r; its AP is the mean over
    r = 0.11 .. 1.00 of max(r/2 - 0.1, 0) / 0.9 = (0.5 * 48.4 - 0.1 * 80) / 90 / 0.9 = 0.2 at every threshold."""
    gt, pred = EvalBoxes(), EvalBoxes()
    gt.add_boxes("s1", [_box("s1", "car", 10.0, 0.0), _box("s1", "pedestrian", 0.0, 5.0)])
    gt.add_boxes("s2", [_box("s2", "car", 0.0, -25.0), _box("s2", "car", 40.0, 0.0)])
    pred.add_boxes("s1", [_box("s1", "car", 10.0, 0.0, 0.9), _box("s1", "pedestrian", 0.0, 5.0, 0.8)])
    pred.add_boxes("s2", [_box("s2", "car", 40.0, 0.0, 0.5), _box("s2", "car", -45.0, 0.0, 0.7)])
    evaluation = Evaluation(config_factory(EVAL_CONFIG), None, None, gt, pred, "")
    near, middle, far = distance_breakdown(evaluation)
    assert near["range_m"] == [0.0, 20.0] and near["num_gt"]["car"] == 1 and near["num_gt"]["pedestrian"] == 1
    assert near["class_ap"]["car"] == pytest.approx(1.0) and near["class_ap"]["pedestrian"] == pytest.approx(1.0)
    assert near["class_ap"]["bus"] is None and near["mean_ap"] == pytest.approx(1.0)
    assert middle["class_ap"]["car"] == 0.0 and middle["class_ap"]["pedestrian"] is None
    assert far["class_ap"]["car"] == pytest.approx(0.2) and far["mean_ap"] == pytest.approx(0.2)


def test_confident_boxes_hand_worked():
    """Two frames, three annotated objects; predictions scoring 0.9, 0.3 (counts: >=), 0.29 and 0.1: 2 confident
    boxes over 2 frames = 1 per frame, against 1.5 objects per frame."""
    gt, pred = EvalBoxes(), EvalBoxes()
    gt.add_boxes("s1", [_box("s1", "car", 10.0, 0.0), _box("s1", "pedestrian", 0.0, 5.0)])
    gt.add_boxes("s2", [_box("s2", "car", 0.0, -25.0)])
    pred.add_boxes("s1", [_box("s1", "car", 10.0, 0.0, 0.9), _box("s1", "car", 5.0, 0.0, 0.29)])
    pred.add_boxes("s2", [_box("s2", "car", 0.0, -25.0, 0.3), _box("s2", "bus", 9.0, 9.0, 0.1)])
    evaluation = Evaluation(config_factory(EVAL_CONFIG), None, None, gt, pred, "")
    assert confident_boxes(evaluation) == {"score_threshold": 0.3, "predicted_per_frame": 1.0,
                                           "ground_truth_per_frame": 1.5}
    assert confident_boxes(evaluation, 0.05)["predicted_per_frame"] == 2.0


def test_a_box_on_a_bin_edge_goes_to_the_bin_above():
    """DISTANCE_BINS include their lower bound and exclude their upper one: a car exactly 20 m away, found, is in
    the 20-30 m bin (AP 1) and not in the 0-20 m one (no ground truth there)."""
    gt, pred = EvalBoxes(), EvalBoxes()
    gt.add_boxes("s1", [_box("s1", "car", 20.0, 0.0)])
    pred.add_boxes("s1", [_box("s1", "car", 20.0, 0.0, 0.9)])
    near, middle, _ = distance_breakdown(Evaluation(config_factory(EVAL_CONFIG), None, None, gt, pred, ""))
    assert near["num_gt"]["car"] == 0 and near["class_ap"]["car"] is None and near["mean_ap"] is None
    assert middle["num_gt"]["car"] == 1 and middle["class_ap"]["car"] == pytest.approx(1.0)


def test_bin_ap_is_the_mean_over_the_matching_thresholds():
    """A car predicted 1.5 m off its ground truth: a true positive within the 2 m and 4 m thresholds (AP 1), a false
    positive within 0.5 m and 1 m (AP 0): AP (0 + 0 + 1 + 1) / 4 = 0.5 in its bin, as the devkit's DetectionEval
    gives for the car on these boxes."""
    gt, pred = EvalBoxes(), EvalBoxes()
    gt.add_boxes("s1", [_box("s1", "car", 10.0, 0.0)])
    pred.add_boxes("s1", [_box("s1", "car", 11.5, 0.0, 0.9)])
    config = config_factory(EVAL_CONFIG)
    near = distance_breakdown(Evaluation(config, None, None, gt, pred, ""))[0]
    assert near["class_ap"]["car"] == pytest.approx(0.5) and near["mean_ap"] == pytest.approx(0.5)
    devkit, _ = DetectionEval.evaluate(SimpleNamespace(cfg=config, gt_boxes=gt, pred_boxes=pred, verbose=False))
    assert devkit.mean_dist_aps["car"] == pytest.approx(0.5)


def test_the_distance_bins_are_0_20_30_50_m():
    """Cars found exactly 29.9 m and 30 m away: the first is in the 20-30 m bin, the second in the 30-50 m one."""
    gt, pred = EvalBoxes(), EvalBoxes()
    gt.add_boxes("s1", [_box("s1", "car", 29.9, 0.0), _box("s1", "car", 0.0, 30.0)])
    pred.add_boxes("s1", [_box("s1", "car", 29.9, 0.0, 0.9), _box("s1", "car", 0.0, 30.0, 0.8)])
    rows = distance_breakdown(Evaluation(config_factory(EVAL_CONFIG), None, None, gt, pred, ""))
    assert [row["range_m"] for row in rows] == [[0.0, 20.0], [20.0, 30.0], [30.0, 50.0]]
    assert [row["num_gt"]["car"] for row in rows] == [0, 1, 1]
    assert [row["class_ap"]["car"] for row in rows] == [None, pytest.approx(1.0), pytest.approx(1.0)]


def test_a_bin_scores_only_the_predictions_within_it():
    """One car at 10 m, found; a car predicted at 25 m with a higher score, where there is none: within 0-20 m the
    only prediction is the true one (AP 1); the false one counts in 20-30 m only, which has no ground truth."""
    gt, pred = EvalBoxes(), EvalBoxes()
    gt.add_boxes("s1", [_box("s1", "car", 10.0, 0.0)])
    pred.add_boxes("s1", [_box("s1", "car", 10.0, 0.0, 0.5), _box("s1", "car", 25.0, 0.0, 0.9)])
    near, middle, _ = distance_breakdown(Evaluation(config_factory(EVAL_CONFIG), None, None, gt, pred, ""))
    assert near["class_ap"]["car"] == pytest.approx(1.0) and middle["class_ap"]["car"] is None


def test_keyframes_without_lidar_are_looked_for_only_where_they_matter(nusc_synthetic, monkeypatch):
    """A keyframe of another split without LIDAR_TOP is not this split's problem; nor is one of a version without
    annotations (nothing is evaluated there)."""
    sample = nusc_synthetic.get("sample", split_sample_tokens(nusc_synthetic, "synth_train")[0])
    monkeypatch.setitem(sample, "data", {k: v for k, v in sample["data"].items() if k != "LIDAR_TOP"})
    check_lidar_keyframes(nusc_synthetic, "synth_val")
    with pytest.raises(ValueError, match="split 'synth_train' .*: 1 keyframes have no LIDAR_TOP record"):
        check_lidar_keyframes(nusc_synthetic, "synth_train")
    monkeypatch.setattr(nusc_synthetic, "sample_annotation", [])
    check_lidar_keyframes(nusc_synthetic, "synth_train")


def test_metrics_record_hand_worked():
    """The metrics of test_nd_score_by_class_hand_worked with two samples of boxes: the mean errors 0.4 / 0.2 / 1.0 /
    0.4 / 0.2 under the papers' names, each class's own (None where the devkit leaves them undefined), AP per
    threshold keyed by its printed value, the counts of the boxes scored."""
    config = config_factory(EVAL_CONFIG)
    metrics = DetectionMetrics(config)
    errors = {"car": (0.2, 0.1, 0.4, 0.3, 0.1), "truck": (0.6, 0.3, 1.6, 0.5, 0.3)}
    for name in config.class_names:
        for threshold, ap in zip(config.dist_ths, (0.25, 0.5, 0.75, 1.0) if name == "car" else (0.0,) * 4):
            metrics.add_label_ap(name, threshold, ap)
        for metric, value in zip(TP_METRIC_ORDER, errors.get(name, (np.nan,) * 5)):
            metrics.add_label_tp(name, metric, value)
    gt, pred = EvalBoxes(), EvalBoxes()
    gt.add_boxes("s1", [_box("s1", "car", 10.0, 0.0), _box("s1", "truck", 0.0, 5.0)])
    gt.add_boxes("s2", [_box("s2", "car", 0.0, -25.0)])
    pred.add_boxes("s1", [_box("s1", "car", 10.0, 0.0, 0.9)])
    pred.add_boxes("s2", [])
    record = metrics_record(Evaluation(config, metrics, None, gt, pred, ""), 2, 0.25, extra={"run": {"x": 1}})
    assert record["tp_errors"] == pytest.approx({"mATE": 0.4, "mASE": 0.2, "mAOE": 1.0, "mAVE": 0.4, "mAAE": 0.2})
    assert record["class_tp_errors"]["car"] == pytest.approx(dict(zip(TP_METRIC_ORDER, errors["car"])))
    assert record["class_tp_errors"]["bus"] == dict.fromkeys(TP_METRIC_ORDER)
    assert record["class_ap"]["car"] == pytest.approx(0.625)
    assert record["class_ap_by_threshold"]["car"] == {"0.5": 0.25, "1.0": 0.5, "2.0": 0.75, "4.0": 1.0}
    assert record["num_gt"]["car"] == 2 and record["num_gt"]["truck"] == 1 and record["num_predictions_evaluated"] == 1
    assert (record["frames_evaluated"], record["seconds_per_frame"], record["eval_config"]) == (2, 0.25, EVAL_CONFIG)
    assert record["run"] == {"x": 1} and record["confident_boxes"]["predicted_per_frame"] == 0.5
    json.dumps(record, allow_nan=False)  # strict JSON: no NaN left


def _synthetic_submission(nusc, tmp_path, split="synth_val"):
    """The synthetic world's ground truth through boxes_to_submission, and where evaluate_submission writes it."""
    return _devkit_results(nusc, split_sample_tokens(nusc, split)), str(tmp_path / "results_nusc.json")


def test_the_summary_files_are_the_devkits_own(nusc_synthetic, tmp_path):
    """metrics_summary.json and metrics_details.json as nuscenes-devkit's DetectionEval.main writes them for the same
    submission (its evaluation time aside)."""
    results, path = _synthetic_submission(nusc_synthetic, tmp_path)
    evaluate_submission(nusc_synthetic, "synth_val", results, ["lidar"], path)
    devkit_dir = tmp_path / "devkit"
    DetectionEval(nusc_synthetic, config_factory(EVAL_CONFIG), path, "synth_val", output_dir=str(devkit_dir),
                  verbose=False).main(plot_examples=0, render_curves=False)
    for name in ("metrics_summary.json", "metrics_details.json"):
        ours, devkit = (json.loads((folder / name).read_text()) for folder in (tmp_path, devkit_dir))
        if name == "metrics_summary.json":
            assert ours.pop("eval_time") > 0 and devkit.pop("eval_time") > 0
            assert ours["meta"] == {"use_camera": False, "use_lidar": True, "use_radar": False, "use_map": False,
                                    "use_external": False}
        assert ours == devkit, name


def test_evaluate_submission_names_the_samples_not_predicted(nusc_synthetic, tmp_path):
    results, path = _synthetic_submission(nusc_synthetic, tmp_path)
    tokens = split_sample_tokens(nusc_synthetic, "synth_val")
    del results[tokens[2]]
    with pytest.raises(ValueError, match=f"results_nusc.json: 1 of the 4 samples of the split missing \\(predict "
                                         f"the whole split; .*\\), e.g. {tokens[2]}$"):
        evaluate_submission(nusc_synthetic, "synth_val", results, ["lidar"], path)


def test_evaluate_submission_writes_the_splits_samples_only(nusc_synthetic, tmp_path):
    """Predictions of samples outside the split (the whole dataset predicted) are left out of its submission."""
    results, path = _synthetic_submission(nusc_synthetic, tmp_path)
    extra = split_sample_tokens(nusc_synthetic, "synth_train")[0]
    evaluation = evaluate_submission(nusc_synthetic, "synth_val", {**results, extra: []}, ["lidar"], path)
    boxes, _ = load_prediction(path, 500, DetectionBox)
    assert sorted(boxes.sample_tokens) == sorted(split_sample_tokens(nusc_synthetic, "synth_val"))
    assert evaluation.metrics.mean_ap > 0


def test_evaluate_submission_without_annotations_writes_the_file_only(nusc_synthetic, tmp_path, monkeypatch):
    """A version without annotations (the test split): the submission is written for the server, nothing scored."""
    results, path = _synthetic_submission(nusc_synthetic, tmp_path)
    monkeypatch.setattr(nusc_synthetic, "sample_annotation", [])
    assert evaluate_submission(nusc_synthetic, "synth_val", results, ["radar"], path) is None
    boxes, meta = load_prediction(path, 500, DetectionBox)
    assert len(boxes.all) == sum(len(b) for b in results.values()) > 0 and meta["use_radar"]
    assert not (tmp_path / "metrics_summary.json").exists()


def test_ground_truth_without_points_is_nothing_to_score(nusc_synthetic, tmp_path, monkeypatch):
    """The devkit drops ground truth with no LiDAR or radar point: an empty submission on a split whose annotations
    all have none is named as one with nothing to score, not as a submission without detections."""
    tokens = split_sample_tokens(nusc_synthetic, "synth_val")
    empty = {token: [] for token in tokens}
    with pytest.raises(NoDetectionsError, match="no predicted box"):
        evaluate_submission(nusc_synthetic, "synth_val", empty, ["lidar"], str(tmp_path / "a.json"))
    for token in tokens:
        for annotation in nusc_synthetic.get("sample", token)["anns"]:
            record = nusc_synthetic.get("sample_annotation", annotation)
            monkeypatch.setitem(record, "num_lidar_pts", 0)
            monkeypatch.setitem(record, "num_radar_pts", 0)
    with pytest.raises(ValueError, match="split 'synth_val' of .* holds no annotated object .* nothing to score"):
        evaluate_submission(nusc_synthetic, "synth_val", empty, ["lidar"], str(tmp_path / "b.json"))
    # with a predicted box in every frame too (it scored NDS 0 against no ground truth)
    car = Boxes3D([[10.0, 0.0, 1.0]], [[1.9, 4.5, 1.6]], [0.0], scores=[0.9], labels=[0])
    one_car = {token: boxes_to_submission(token, car, devkit_ground_truth(nusc_synthetic, token)[1])
               for token in tokens}
    with pytest.raises(ValueError, match="split 'synth_val' of .* holds no annotated object .* nothing to score"):
        evaluate_submission(nusc_synthetic, "synth_val", one_car, ["lidar"], str(tmp_path / "c.json"))


def test_boxes_all_outside_their_class_range_are_scored_ap_0(nusc_synthetic, tmp_path):
    """A car 100 m ahead in every frame, past the car's 50 m range: the devkit drops every prediction and scores
    the split's ground truth against none (AP 0 in every class), not an error."""
    tokens = split_sample_tokens(nusc_synthetic, "synth_val")
    far = Boxes3D([[100.0, 0.0, 1.0]], [[1.9, 4.5, 1.6]], [0.0], scores=[0.9], labels=[0])
    results = {token: boxes_to_submission(token, far, devkit_ground_truth(nusc_synthetic, token)[1])
               for token in tokens}
    evaluation = evaluate_submission(nusc_synthetic, "synth_val", results, ["lidar"], str(tmp_path / "r.json"))
    assert len(evaluation.pred_boxes.all) == 0 and len(evaluation.gt_boxes.all) > 0
    assert evaluation.metrics.mean_ap == 0.0
