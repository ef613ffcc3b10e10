"""The official nuScenes detection metrics: nuscenes-devkit's ``DetectionEval`` run unmodified on a submission
file, its plots as PNG, the AP per ego-distance bin from the devkit's own accumulate/calc_ap, and one JSON-ready
summary (metrics.json)."""
from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from nuscenes.eval.common.config import config_factory
from nuscenes.eval.common.data_classes import EvalBoxes
from nuscenes.eval.common.loaders import add_center_dist, load_gt_of_sample_tokens
from nuscenes.eval.detection.algo import accumulate, calc_ap
from nuscenes.eval.detection.constants import TP_METRICS
from nuscenes.eval.detection.data_classes import (
    DetectionBox,
    DetectionConfig,
    DetectionMetricDataList,
    DetectionMetrics,
)
from nuscenes.eval.detection.evaluate import DetectionEval
from nuscenes.nuscenes import NuScenes

from perception.datasets.splits import split_sample_tokens
from perception.eval.submission import make_submission, submission_meta, write_submission
from perception.plotting import pyplot
from perception.sensors import LIDAR_CHANNEL

EVAL_CONFIG = "detection_cvpr_2019"
"""The devkit's detection configuration every evaluation here uses (the leaderboard's)."""

DEVKIT_SUMMARY_FILE = "metrics_summary.json"
DEVKIT_DETAILS_FILE = "metrics_details.json"
PLOTS_FOLDER = "plots"
"""The devkit's plot folder under its output folder (DetectionEval.plot_dir), where render_plots draws."""

DISTANCE_BINS: Tuple[Tuple[float, float], ...] = ((0.0, 20.0), (20.0, 30.0), (30.0, 50.0))
"""Ego-distance bins [m] of the breakdown: lower bound included, upper excluded, distance as the devkit's
``ego_dist`` (xy distance from the keyframe's ego position to the box centre)."""

CONFIDENT_SCORE = 0.3
"""Score from which a prediction counts as a confident box (the false-positive check of confident_boxes)."""

TP_ERROR_NAMES = {"trans_err": "mATE", "scale_err": "mASE", "orient_err": "mAOE", "vel_err": "mAVE",
                  "attr_err": "mAAE"}
"""The devkit's TP metric names -> the names papers print."""


@dataclass
class Evaluation:
    """One run of the devkit's ``DetectionEval``: its configuration, metrics and per-class/threshold metric data,
    and the boxes it scored (after its class-range, zero-point and bike-rack filters; ``ego_translation`` set)."""

    config: DetectionConfig
    metrics: DetectionMetrics
    metric_data: DetectionMetricDataList
    gt_boxes: EvalBoxes
    pred_boxes: EvalBoxes
    plot_dir: str

    def num_gt(self, boxes: Optional[EvalBoxes] = None) -> Dict[str, int]:
        """Ground-truth boxes per class (of ``boxes``, default: all evaluated ground truth)."""
        boxes = self.gt_boxes if boxes is None else boxes
        counts = {name: 0 for name in self.config.class_names}
        for box in boxes.all:
            counts[box.detection_name] += 1
        return counts


class NoDetectionsError(ValueError):
    """The submission holds no box that DetectionEval can score (nuscenes-devkit 1.2.0 cannot evaluate an empty
    prediction set: it fails with "Invalid box type: None")."""


def devkit_metrics(config: DetectionConfig, gt_boxes: EvalBoxes, pred_boxes: EvalBoxes) -> DetectionMetrics:
    """nuscenes-devkit's own ``DetectionEval.evaluate`` on boxes as DetectionEval filtered them (``ego_translation``
    set)."""
    devkit_state = SimpleNamespace(cfg=config, gt_boxes=gt_boxes, pred_boxes=pred_boxes, verbose=False)
    return DetectionEval.evaluate(devkit_state)[0]


def empty_prediction_metrics() -> DetectionMetrics:
    """What the devkit's ``DetectionEval.evaluate`` (config EVAL_CONFIG) scores a prediction set without a box, which
    its loading cannot take (NoDetectionsError): its ``accumulate`` gives every class and threshold
    ``DetectionMetricData.no_predictions()`` whatever the ground truth, hence mAP 0, every TP error 1 and NDS 0."""
    return devkit_metrics(config_factory(EVAL_CONFIG), EvalBoxes(), EvalBoxes())


def check_lidar_keyframes(nusc: NuScenes, split: str) -> None:
    """ValueError naming the samples of ``split`` without a LIDAR_TOP record when the tables hold annotations: the
    devkit's DetectionEval measures each box's distance from that record's pose (it failed with a KeyError deep
    inside, after the whole detection pass)."""
    if not nusc.sample_annotation:
        return
    without = [token for token in split_sample_tokens(nusc, split)
               if LIDAR_CHANNEL not in nusc.get("sample", token)["data"]]
    if without:
        raise ValueError(f"split {split!r} of {nusc.dataroot}: {len(without)} keyframes have no LIDAR_TOP record "
                         f"(e.g. sample {without[0]}); nuscenes-devkit's evaluation measures distances from it")


def run_detection_eval(nusc: NuScenes, result_path: str, eval_set: str, output_dir: str,
                       verbose: bool = False) -> Evaluation:
    """Runs nuscenes-devkit's ``DetectionEval`` (config EVAL_CONFIG) on the submission at ``result_path``.

    Writes, like the devkit's ``main``: ``output_dir/metrics_summary.json`` and ``metrics_details.json``
    (render_plots draws the devkit's plots into its ``output_dir/plots``; removed here: an earlier run's plots would
    stay beside these metrics, and the devkit makes it empty whether or not plots are drawn). Raises
    NoDetectionsError, naming the file, when the submission holds no predicted box at all (boxes all outside their
    class's range are scored: every AP 0), and ValueError when the split keeps no ground-truth box to score (none
    with LiDAR or radar points within its class's range).
    """
    config = config_factory(EVAL_CONFIG)
    nothing_to_score = (f"split {eval_set!r} of {nusc.dataroot} holds no annotated object of the detection classes "
                        f"with LiDAR or radar points within its class's range: nothing to score {result_path} against")
    try:
        devkit_eval = DetectionEval(nusc, config, result_path, eval_set, output_dir=output_dir, verbose=verbose)
    except Exception as error:
        if "Invalid box type: None" not in str(error):
            raise
        if not _scored_ground_truth(nusc, eval_set, config):
            raise ValueError(nothing_to_score) from error
        raise NoDetectionsError(f"{result_path}: no predicted box on split {eval_set!r}; nuscenes-devkit cannot "
                                f"score an empty set (every AP would be 0)") from error
    finally:
        shutil.rmtree(os.path.join(output_dir, PLOTS_FOLDER), ignore_errors=True)
    if not devkit_eval.gt_boxes.all:  # the devkit's filters (class range, no points) left nothing
        raise ValueError(nothing_to_score)
    metrics, metric_data = devkit_eval.evaluate()
    evaluation = Evaluation(config, metrics, metric_data, devkit_eval.gt_boxes, devkit_eval.pred_boxes,
                            devkit_eval.plot_dir)
    summary = metrics.serialize()
    summary["meta"] = dict(devkit_eval.meta)
    with open(os.path.join(output_dir, DEVKIT_SUMMARY_FILE), "w") as handle:
        json.dump(summary, handle, indent=2)
    with open(os.path.join(output_dir, DEVKIT_DETAILS_FILE), "w") as handle:
        json.dump(metric_data.serialize(), handle, indent=2)
    return evaluation


def _scored_ground_truth(nusc: NuScenes, eval_set: str, config: DetectionConfig) -> bool:
    """Whether the devkit keeps any ground-truth box of ``eval_set`` (its class-range and zero-point filters)."""
    ground_truth = add_center_dist(nusc, load_gt_of_sample_tokens(nusc, split_sample_tokens(nusc, eval_set),
                                                                  DetectionBox))
    return any(box.num_pts > 0 and box.ego_dist < config.class_range[box.detection_name]
               for box in ground_truth.all)


def evaluate_submission(nusc: NuScenes, split: str, boxes_by_sample: Mapping[str, List[dict]],
                        sensors: Iterable[str], result_path: str, verbose: bool = False) -> Optional[Evaluation]:
    """The one path from predictions to the devkit (tools/test.py's runner and validation in training): the
    submission of ``split`` from the submission boxes per sample token (boxes_to_submission) and the sensor groups
    used, checked and written to ``result_path`` (write_submission), then run_detection_eval on it with its outputs
    beside it; predictions of samples outside the split are left out. Returns None when the version has no
    annotations (the file is for the nuScenes server). Raises ValueError naming the file when a sample of the split
    was not predicted (write_submission's check; an empty list is a prediction)."""
    tokens = split_sample_tokens(nusc, split)
    predicted = {token: boxes_by_sample[token] for token in tokens if token in boxes_by_sample}
    submission = make_submission(predicted, submission_meta(sensors))
    write_submission(result_path, submission, tokens)
    if not nusc.sample_annotation:
        return None
    return run_detection_eval(nusc, result_path, split, os.path.dirname(os.path.abspath(result_path)), verbose)


def render_plots(evaluation: Evaluation) -> Dict[str, str]:
    """The devkit's plots as PNG files in ``evaluation.plot_dir`` (summary, PR curves per matching threshold,
    PR and TP curves of the classes with ground truth; the others would be empty axes); returns {name: path}.
    """
    plt = pyplot()  # before the devkit's render module imports pyplot: the Agg backend, files only
    from nuscenes.eval.detection.render import class_pr_curve, class_tp_curve, dist_pr_curve, summary_plot

    cfg, metrics, data = evaluation.config, evaluation.metrics, evaluation.metric_data
    os.makedirs(evaluation.plot_dir, exist_ok=True)
    paths = {}

    def path(name: str) -> str:
        paths[name] = os.path.join(evaluation.plot_dir, name + ".png")
        return paths[name]

    with warnings.catch_warnings():
        # A class whose TP errors are all 0 (the oracle) gets a zero-height axis, which matplotlib widens.
        warnings.filterwarnings("ignore", message="Attempting to set identical low and high ylims")
        summary_plot(data, metrics, min_precision=cfg.min_precision, min_recall=cfg.min_recall,
                     dist_th_tp=cfg.dist_th_tp, savepath=path("summary"))
        for dist_th in cfg.dist_ths:
            dist_pr_curve(data, metrics, dist_th, cfg.min_precision, cfg.min_recall,
                          savepath=path(f"dist_pr_{dist_th}"))
        for name, count in evaluation.num_gt().items():
            if count:
                class_pr_curve(data, metrics, name, cfg.min_precision, cfg.min_recall, savepath=path(f"{name}_pr"))
                class_tp_curve(data, metrics, name, cfg.min_recall, cfg.dist_th_tp, savepath=path(f"{name}_tp"))
    plt.close("all")
    return paths


def _within(boxes: EvalBoxes, low: float, high: float) -> EvalBoxes:
    """The boxes with ``low <= ego_dist < high``; every sample token kept (empty lists included)."""
    selected = EvalBoxes()
    for token in boxes.sample_tokens:
        selected.add_boxes(token, [box for box in boxes[token] if low <= box.ego_dist < high])
    return selected


def distance_breakdown(evaluation: Evaluation, bins: Sequence[Tuple[float, float]] = DISTANCE_BINS) -> List[dict]:
    """AP per class in each ego-distance bin: ground truth and predictions both restricted to the bin, then the
    devkit's ``accumulate`` and ``calc_ap`` averaged over its matching thresholds, as ``DetectionEval`` does.

    Returns one dict per bin: ``{"range_m": [low, high], "num_gt": {class: n}, "class_ap": {class: AP or None},
    "mean_ap": mean over the classes with ground truth in the bin (None when there are none)}``.
    """
    cfg = evaluation.config
    rows = []
    for low, high in bins:
        gt, pred = _within(evaluation.gt_boxes, low, high), _within(evaluation.pred_boxes, low, high)
        num_gt = evaluation.num_gt(gt)
        class_ap = {}
        for name in cfg.class_names:
            if num_gt[name] == 0:
                class_ap[name] = None
                continue
            aps = [calc_ap(accumulate(gt, pred, name, cfg.dist_fcn_callable, dist_th), cfg.min_recall,
                           cfg.min_precision) for dist_th in cfg.dist_ths]
            class_ap[name] = float(np.mean(aps))
        present = [ap for ap in class_ap.values() if ap is not None]
        rows.append({"range_m": [low, high], "num_gt": num_gt, "class_ap": class_ap,
                     "mean_ap": float(np.mean(present)) if present else None})
    return rows


def confident_boxes(evaluation: Evaluation, score_threshold: float = CONFIDENT_SCORE) -> dict:
    """Predictions scoring >= score_threshold per frame beside the annotated objects per frame, both as the
    devkit scored them (within their class's range; ground truth with at least one LiDAR or radar point): a
    detector that draws more confident boxes than there are objects to see makes false positives."""
    frames = max(len(evaluation.gt_boxes.sample_tokens), 1)
    confident = sum(box.detection_score >= score_threshold for box in evaluation.pred_boxes.all)
    return {"score_threshold": score_threshold, "predicted_per_frame": confident / frames,
            "ground_truth_per_frame": len(evaluation.gt_boxes.all) / frames}


def nd_score_by_class(metrics: DetectionMetrics) -> Dict[str, float]:
    """The devkit's NDS as the sum of what each class contributes. NDS = (w mAP + sum over the TP metrics of
    max(0, 1 - mean error)) / (w + 5), the mean over the classes whose error is defined; while a mean is below 1
    its score is linear in those errors, so class c contributes (w AP_c / C + sum over those metrics of
    (1 - error_c) / n) / (w + 5), n the classes with the error defined; a metric whose mean reaches 1 scores 0 and
    gives no class anything. On a split of few objects it shows which classes move NDS."""
    config = metrics.cfg
    names = config.class_names
    shares = {name: config.mean_ap_weight * metrics.mean_dist_aps[name] / len(names) for name in names}
    means = metrics.tp_errors
    for metric in TP_METRICS:
        errors = {name: metrics.get_label_tp(name, metric) for name in names}
        defined = [name for name in names if not np.isnan(errors[name])]
        if means[metric] < 1:
            for name in defined:
                shares[name] += (1.0 - errors[name]) / len(defined)
    return {name: float(share / (config.mean_ap_weight + len(TP_METRICS))) for name, share in shares.items()}


def _json_number(value: float) -> Optional[float]:
    """NaN (the devkit's 'not defined for this class') -> None, so metrics.json stays strict JSON."""
    value = float(value)
    return None if math.isnan(value) else value


def metrics_record(evaluation: Evaluation, frames_evaluated: int, seconds_per_frame: float,
                   extra: Optional[dict] = None) -> dict:
    """The metrics.json content: devkit mean_ap and nd_score (and nd_score_by_class), AP per class (mean over
    thresholds and per threshold), the five TP errors (mean and per class; None where the devkit leaves them
    undefined), ground truth per class and predictions after the devkit's filters, the distance breakdown,
    confident_boxes, frames evaluated, seconds per frame, plus ``extra`` (run description)."""
    metrics = evaluation.metrics
    summary = metrics.serialize()
    record = {
        "mean_ap": float(metrics.mean_ap),
        "nd_score": float(metrics.nd_score),
        "nd_score_by_class": nd_score_by_class(metrics),
        "class_ap": {name: float(ap) for name, ap in metrics.mean_dist_aps.items()},
        "class_ap_by_threshold": {name: {str(th): float(ap) for th, ap in aps.items()}
                                  for name, aps in summary["label_aps"].items()},
        "tp_errors": {TP_ERROR_NAMES[name]: _json_number(metrics.tp_errors[name]) for name in TP_METRICS},
        "class_tp_errors": {name: {metric: _json_number(value) for metric, value in errors.items()}
                            for name, errors in summary["label_tp_errors"].items()},
        "num_gt": evaluation.num_gt(),
        "num_predictions_evaluated": len(evaluation.pred_boxes.all),
        "distance_breakdown": distance_breakdown(evaluation),
        "confident_boxes": confident_boxes(evaluation),
        "frames_evaluated": int(frames_evaluated),
        "seconds_per_frame": float(seconds_per_frame),
        "eval_config": EVAL_CONFIG,
    }
    record.update(extra or {})
    return record
