"""The bootstrap over keyframes against nuscenes-devkit's own DetectionEval run and hand-worked APs."""
import numpy as np
import pytest
from nuscenes.eval.common.config import config_factory
from nuscenes.eval.common.data_classes import EvalBoxes
from nuscenes.eval.detection.algo import accumulate, calc_ap
from nuscenes.eval.detection.data_classes import DetectionBox

from perception.datasets.splits import split_sample_tokens
from perception.eval.detection import EVAL_CONFIG, Evaluation, run_detection_eval
from perception.eval import resampling
from perception.eval.resampling import (
    drawn_metrics, keyframe_draws, percentile_interval, resampled_comparison, resampled_nd_scores,
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


def test_a_keyframe_drawn_twice_is_two_keyframes():
    """Keyframe a: one car and two detections of it at the same score (a duplicate). Drawn (a, a), it must score
    as the devkit scores two keyframes x and y of that content (accumulate / calc_ap): each copy's detections match
    only their own car, one TP and one FP per copy. Under one name the duplicate of one copy would take the other
    copy's car (two TPs ranked first, a higher AP)."""
    gt, pred = EvalBoxes(), EvalBoxes()
    gt.add_boxes("a", [_car("a", 10.0)])
    pred.add_boxes("a", [_car("a", 10.0, 0.6), _car("a", 10.2, 0.6)])
    config = config_factory(EVAL_CONFIG)
    two_gt, two_pred = EvalBoxes(), EvalBoxes()
    for token in ("x", "y"):
        two_gt.add_boxes(token, [_car(token, 10.0)])
        two_pred.add_boxes(token, [_car(token, 10.0, 0.6), _car(token, 10.2, 0.6)])
    expected = np.mean([calc_ap(accumulate(two_gt, two_pred, "car", config.dist_fcn_callable, threshold),
                                config.min_recall, config.min_precision) for threshold in config.dist_ths])
    assert expected < 0.99  # the FPs ranked between the TPs cost AP
    assert drawn_metrics(config, gt, pred, ["a"], [0, 0]).mean_dist_aps["car"] == pytest.approx(expected)


def test_difference_interval_and_share_on_paired_draws_hand_worked(nusc_synthetic, tmp_path, monkeypatch):
    """The per-draw NDS stubbed on 4 draws: first 0.5, 0.6, 0.7, 0.8, second 0.5, 0.65, 0.65, 0.9. Paired
    differences 0, 0.05, -0.05, 0.1: the second is not below the first on 3 of 4 draws (a tie counts), and the
    central half of the differences (sorted -0.05, 0, 0.05, 0.1; numpy's linear percentiles at positions 0.75 and
    2.25) is -0.05 + 0.75 x 0.05 = -0.0125 .. 0.05 + 0.25 x 0.05 = 0.0625. Scored for real, the same submission
    twice differs by exactly 0 on every draw (the draws are paired), so it is never below: share 1, interval 0 .. 0."""
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
    first = imperfect_evaluation(nusc_synthetic, "synth_val", tmp_path / "first")
    second_evaluation = imperfect_evaluation(nusc_synthetic, "synth_val", tmp_path / "second", seed=1)
    paths = [str(tmp_path / name / "results_nusc.json") for name in ("first", "second")]
    scores = np.array([[0.5, 0.6, 0.7, 0.8], [0.5, 0.65, 0.65, 0.9]])

    def stub(evaluations, draws, progress=False):
        assert len(evaluations) == 2 and draws.shape == (4, 4)
        return scores

    monkeypatch.setattr(resampling, "resampled_nd_scores", stub)
    _, second = resampled_comparison(nusc_synthetic, "synth_val", paths, ["first", "second"], 4, level=0.5)
    assert second["share_not_below_first"] == 0.75
    assert second["difference_interval"] == pytest.approx((-0.0125, 0.0625))
    # the difference itself is the devkit's NDS on every keyframe, second's minus first's, not a mean of the draws'
    full_difference = second_evaluation.metrics.nd_score - first.metrics.nd_score
    assert second["difference"] == full_difference and abs(full_difference - 0.025) > 1e-3
    monkeypatch.undo()
    _, again = resampled_comparison(nusc_synthetic, "synth_val", [paths[0], paths[0]], ["first", "again"], 4)
    assert again["difference"] == 0.0 and again["share_not_below_first"] == 1.0
    assert again["difference_interval"] == (0.0, 0.0)
    assert again["NDS"] == first.metrics.nd_score
    assert again["NDS_interval"][0] < again["NDS_interval"][1]  # the draws differ, their differences do not
