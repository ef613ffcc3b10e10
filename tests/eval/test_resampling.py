"""The bootstrap over keyframes against nuscenes-devkit's own DetectionEval run and hand-worked APs."""
import numpy as np
import pytest
from nuscenes.eval.common.config import config_factory
from nuscenes.eval.common.data_classes import EvalBoxes
from nuscenes.eval.detection.data_classes import DetectionBox

from perception.datasets.splits import split_sample_tokens
from perception.eval.detection import EVAL_CONFIG, Evaluation, run_detection_eval
from perception.eval.resampling import (
    drawn_metrics, keyframe_draws, percentile_interval, resampled_nd_scores,
)
from perception.eval.submission import boxes_to_submission, make_submission, submission_meta, write_submission
from tests.eval.devkit_truth import devkit_ground_truth


def imperfect_evaluation(nusc, split, out_dir, seed=0) -> Evaluation:
    """The devkit's ground truth of ``split`` with every box moved up to 1.5 m and every third box left out,
    scored by the devkit: metrics neither perfect nor zero."""
    rng = np.random.default_rng(seed)
    results = {}
    tokens = split_sample_tokens(nusc, split)
    for token in tokens:
        boxes, pose = devkit_ground_truth(nusc, token)
        submitted = boxes_to_submission(token, boxes, pose)
        for box in submitted:
            box["translation"] = [box["translation"][0] + rng.uniform(-1.5, 1.5),
                                  box["translation"][1] + rng.uniform(-1.5, 1.5), box["translation"][2]]
            box["detection_score"] = float(rng.uniform(0.1, 1.0))
        results[token] = submitted[::3] + submitted[2::3]
    path = str(out_dir / "results_nusc.json")
    write_submission(path, make_submission(results, submission_meta(["lidar"])), tokens)
    return run_detection_eval(nusc, path, split, str(out_dir))


def test_each_keyframe_once_is_the_devkits_own_evaluation(nusc_synthetic, tmp_path):
    evaluation = imperfect_evaluation(nusc_synthetic, "synth_val", tmp_path)
    assert 0.1 < evaluation.metrics.nd_score < 0.9
    tokens = sorted(evaluation.gt_boxes.sample_tokens)
    metrics = drawn_metrics(evaluation.config, evaluation.gt_boxes, evaluation.pred_boxes, tokens,
                            np.arange(len(tokens)))
    assert metrics.nd_score == evaluation.metrics.nd_score
    assert metrics.mean_dist_aps == evaluation.metrics.mean_dist_aps
    np.testing.assert_array_equal(list(metrics.tp_errors.values()), list(evaluation.metrics.tp_errors.values()))


def _car(token, x, score=-1.0) -> DetectionBox:
    return DetectionBox(sample_token=token, translation=(x, 0.0, 0.0), size=(2.0, 4.0, 1.5), rotation=(1, 0, 0, 0),
                        ego_translation=(x, 0.0, 0.0), detection_name="car", detection_score=score)


def test_drawn_keyframes_hand_worked():
    """Keyframe a: one car, found. Keyframe b: one car, missed. Drawn (a, a): car AP 1; (b, b): 0; (a, b): recall
    reaches 1/2 at precision 1, which the devkit holds at 1 up to recall 0.5 and 0 beyond; its AP is the mean over
    r = 0.11 .. 1.00 of max(p(r) - 0.1, 0) / 0.9 = 40 x 0.9 / 90 / 0.9 = 4/9. A keyframe drawn twice counts its car
    twice and matches it only with its own copy: (a, a) is AP 1 with two cars found."""
    gt, pred = EvalBoxes(), EvalBoxes()
    gt.add_boxes("a", [_car("a", 10.0)])
    gt.add_boxes("b", [_car("b", 20.0)])
    pred.add_boxes("a", [_car("a", 10.0, 0.9)])
    pred.add_boxes("b", [])
    config = config_factory(EVAL_CONFIG)
    tokens = ["a", "b"]

    def car_ap(draw):
        return drawn_metrics(config, gt, pred, tokens, draw).mean_dist_aps["car"]

    assert car_ap([0, 0]) == pytest.approx(1.0)
    assert car_ap([1, 1]) == pytest.approx(0.0)
    assert car_ap([0, 1]) == pytest.approx(4.0 / 9.0)
    assert car_ap([1, 0]) == pytest.approx(4.0 / 9.0)


def test_paired_draws(nusc_synthetic, tmp_path):
    """The same evaluation twice: identical on every draw (differences exactly 0); a second, different one differs
    on some draw; the draws are seeded."""
    first = imperfect_evaluation(nusc_synthetic, "synth_val", tmp_path / "first")
    (tmp_path / "second").mkdir()
    second = imperfect_evaluation(nusc_synthetic, "synth_val", tmp_path / "second", seed=1)
    draws = keyframe_draws(len(first.gt_boxes.sample_tokens), 6, seed=3)
    np.testing.assert_array_equal(draws, keyframe_draws(len(first.gt_boxes.sample_tokens), 6, seed=3))
    scores = resampled_nd_scores([first, first, second], draws)
    assert scores.shape == (3, 6)
    np.testing.assert_array_equal(scores[0], scores[1])
    assert np.any(scores[2] != scores[0])


def test_evaluations_of_other_keyframes_are_refused(nusc_synthetic, tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    train = imperfect_evaluation(nusc_synthetic, "synth_train", tmp_path / "train")
    val = imperfect_evaluation(nusc_synthetic, "synth_val", tmp_path / "val")
    with pytest.raises(ValueError, match="different keyframes"):
        resampled_nd_scores([val, train], keyframe_draws(len(val.gt_boxes.sample_tokens), 2))
    with pytest.raises(ValueError, match="draws of 3 keyframes"):
        resampled_nd_scores([val], keyframe_draws(3, 2))


def test_keyframe_draws_and_intervals_hand_worked():
    draws = keyframe_draws(4, 1000, seed=0)
    assert draws.shape == (1000, 4) and draws.min() == 0 and draws.max() == 3
    assert percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))
    assert percentile_interval(np.arange(101.0), 0.5) == pytest.approx((25.0, 75.0))
    with pytest.raises(ValueError, match="level"):
        percentile_interval(np.arange(3.0), 1.0)
    with pytest.raises(ValueError, match="at least one keyframe"):
        keyframe_draws(0, 10)
