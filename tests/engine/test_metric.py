"""NuScenesDetectionMetric, the validation metric inside training, against nuscenes-devkit's DetectionEval run
directly on the same submission boxes."""
import json

import numpy as np
import pytest
from nuscenes.eval.common.config import config_factory
from nuscenes.eval.detection.evaluate import DetectionEval

from perception.datasets.splits import split_sample_tokens
from perception.engine.metric import NuScenesDetectionMetric
from perception.eval.submission import boxes_to_submission, make_submission, submission_meta, write_submission
from perception.geometry import Boxes3D
from tests.conftest import TINY_WORLD
from tests.eval.devkit_truth import devkit_ground_truth

SIZE_FACTOR = 1.2
"""Every predicted box 1.2x the true one in each dimension, centred alike: the devkit's scale error is
1 - IoU = 1 - 1 / 1.2^3 = 1 - 1 / 1.728 = 0.4213, while the centres still match (AP unhurt by it)."""


def _imperfect_predictions(nusc, tokens):
    """Per sample: (devkit ground truth in the ego frame, grown by SIZE_FACTOR, every other box of the first sample
    dropped, so recall and with it mAP fall below 1), and the ego pose."""
    predictions = {}
    for index, token in enumerate(tokens):
        truth, pose = devkit_ground_truth(nusc, token)
        keep = np.arange(len(truth)) % 2 == 1 if index == 0 else np.ones(len(truth), dtype=bool)
        boxes = Boxes3D(truth.centers, truth.sizes * SIZE_FACTOR, truth.yaws, truth.velocities, truth.labels,
                        np.ones(len(truth)), truth.attributes)[keep]
        predictions[token] = (boxes, pose)
    return predictions


def test_the_metric_reports_the_devkits_nds_and_map_each_under_its_own_name(nusc_synthetic, synthetic_root,
                                                                             tmp_path):
    tokens = split_sample_tokens(nusc_synthetic, "synth_val")
    predictions = _imperfect_predictions(nusc_synthetic, tokens)
    assert len(predictions[tokens[0]][0]) < len(devkit_ground_truth(nusc_synthetic, tokens[0])[0])  # some dropped

    # the metric as mmengine drives it: process() per batch (one sample each), then evaluate() over the results
    out_dir = tmp_path / "metric"
    metric = NuScenesDetectionMetric(str(synthetic_root), TINY_WORLD["version"], "synth_val", out_dir=str(out_dir))
    for token in tokens:
        boxes, pose = predictions[token]
        metric.process(None, [dict(sample_token=token, ego_pose=pose, boxes=boxes, sensors=["lidar"])])
    reported = metric.evaluate(len(tokens))

    # the oracle: the same boxes as a submission file, scored by the devkit's DetectionEval itself
    path = str(tmp_path / "oracle" / "results_nusc.json")
    (tmp_path / "oracle").mkdir()
    results = {token: boxes_to_submission(token, *predictions[token]) for token in tokens}
    write_submission(path, make_submission(results, submission_meta(["lidar"])), tokens)
    truth, _ = DetectionEval(nusc_synthetic, config_factory("detection_cvpr_2019"), path, "synth_val",
                             output_dir=str(tmp_path / "oracle"), verbose=False).evaluate()

    # the two differ here (0 < mAP < 1 from the drops; NDS also pays the 0.42 scale error: a swap shows)
    assert 0 < truth.mean_ap < 1 and abs(truth.nd_score - truth.mean_ap) > 0.01
    assert truth.tp_errors["scale_err"] == pytest.approx(1 - 1 / SIZE_FACTOR ** 3, abs=1e-6)
    assert reported["nuscenes/NDS"] == pytest.approx(truth.nd_score, abs=1e-9)
    assert reported["nuscenes/mAP"] == pytest.approx(truth.mean_ap, abs=1e-9)
    for devkit_name, name in (("trans_err", "mATE"), ("scale_err", "mASE"), ("orient_err", "mAOE"),
                              ("vel_err", "mAVE"), ("attr_err", "mAAE")):
        assert reported[f"nuscenes/{name}"] == pytest.approx(truth.tp_errors[devkit_name], abs=1e-9, nan_ok=True)

    # out_dir keeps the submission, its meta naming the sensors the predictions were made with, and the devkit's
    # summary beside it
    with open(out_dir / "submission.json") as handle:
        assert json.load(handle)["meta"] == {"use_camera": False, "use_lidar": True, "use_radar": False,
                                             "use_map": False, "use_external": False}
    with open(out_dir / "metrics_summary.json") as handle:
        assert json.load(handle)["nd_score"] == pytest.approx(truth.nd_score, abs=1e-9)


def test_the_metric_refuses_a_world_without_annotations(nusc_synthetic, synthetic_root, tmp_path):
    # the tiny world's tables with every annotation removed: the devkit has nothing to score
    from tests.engine.test_finetune import annotation_free_copy

    metric = NuScenesDetectionMetric(annotation_free_copy(synthetic_root, tmp_path), TINY_WORLD["version"],
                                     "synth_val")
    results = [dict(sample_token=token, sensors=["lidar"], boxes=[])
               for token in split_sample_tokens(nusc_synthetic, "synth_val")]
    with pytest.raises(ValueError, match=f"validation on synth_val: {TINY_WORLD['version']} at .* has no annotations"):
        metric.compute_metrics(results)


def test_a_model_that_predicts_no_box_scores_as_the_devkit_scores_an_empty_prediction_set(
        nusc_synthetic, synthetic_root, monkeypatch):
    # A model with no box at a validation stopped the training run with NoDetectionsError (with --time-budget-min
    # its export was never written).
    from types import SimpleNamespace

    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.common.loaders import add_center_dist, filter_eval_boxes, load_gt_of_sample_tokens
    from nuscenes.eval.detection.data_classes import DetectionBox

    import perception.engine.metric

    logged = []
    monkeypatch.setattr(perception.engine.metric, "print_log", lambda message, **kwargs: logged.append(message),
                        raising=False)
    tokens = split_sample_tokens(nusc_synthetic, "synth_val")
    metric = NuScenesDetectionMetric(str(synthetic_root), TINY_WORLD["version"], "synth_val")
    for token in tokens:
        _, pose = devkit_ground_truth(nusc_synthetic, token)
        metric.process(None, [dict(sample_token=token, ego_pose=pose, boxes=Boxes3D.empty(), sensors=["lidar"])])
    reported = metric.evaluate(len(tokens))
    assert logged == ["validation on synth_val: the model predicted no box; scored as nuscenes-devkit scores an "
                      "empty prediction set"]

    # the oracle: the devkit's DetectionEval.evaluate on the split's ground truth, filtered as DetectionEval does,
    # and no predicted box; by hand, AP 0 and no true positive: NDS 0, mAP 0, every TP error 1
    config = config_factory("detection_cvpr_2019")
    truth = filter_eval_boxes(nusc_synthetic, add_center_dist(nusc_synthetic, load_gt_of_sample_tokens(
        nusc_synthetic, tokens, DetectionBox)), config.class_range)
    assert truth.all  # ground truth to miss
    empty = EvalBoxes()
    for token in tokens:
        empty.add_boxes(token, [])
    devkit, _ = DetectionEval.evaluate(SimpleNamespace(cfg=config, gt_boxes=truth, pred_boxes=empty, verbose=False))
    expected = {"NDS": devkit.nd_score, "mAP": devkit.mean_ap, "mATE": devkit.tp_errors["trans_err"],
                "mASE": devkit.tp_errors["scale_err"], "mAOE": devkit.tp_errors["orient_err"],
                "mAVE": devkit.tp_errors["vel_err"], "mAAE": devkit.tp_errors["attr_err"]}
    assert expected == {"NDS": 0.0, "mAP": 0.0, "mATE": 1.0, "mASE": 1.0, "mAOE": 1.0, "mAVE": 1.0, "mAAE": 1.0}
    assert reported == {f"nuscenes/{name}": value for name, value in expected.items()}
