"""How much a detection score owes to the keyframes it was measured on: a bootstrap over keyframes.

Each draw takes as many keyframes as the split holds, with replacement, and scores the drawn keyframes with
nuscenes-devkit's own ``DetectionEval.evaluate`` on the boxes the devkit already filtered (a keyframe drawn k times
enters k times, under k names, so that its boxes match only its own ground truth). Every evaluation compared is
scored on the same draws, so differences between models are paired.

What the interval leaves out: keyframes of one drive share objects and are drawn here as if independent, so on
a split of consecutive keyframes the interval is narrower than the spread over other drives would be; nor does it
hold the spread between training runs. It is a lower bound on the uncertainty, not the uncertainty.
"""
from __future__ import annotations

import copy
import os
import tempfile
from typing import List, Sequence, Tuple

import numpy as np
from nuscenes.eval.common.data_classes import EvalBoxes
from nuscenes.eval.detection.data_classes import DetectionConfig, DetectionMetrics
from nuscenes.nuscenes import NuScenes
from tqdm import tqdm

from perception.datasets.splits import split_sample_tokens
from perception.eval.detection import Evaluation, devkit_metrics, run_detection_eval
from perception.eval.submission import check_submission
from perception.jsonfile import read_json

INTERVAL_LEVEL = 0.9
"""The central share of the draws an interval spans, unless a caller gives another."""


def keyframe_draws(num_keyframes: int, num_draws: int, seed: int = 0) -> np.ndarray:
    """(num_draws, num_keyframes) int: keyframe indices drawn uniformly with replacement, seeded."""
    if num_keyframes < 1 or num_draws < 1:
        raise ValueError(f"keyframe_draws: need at least one keyframe and one draw, got {num_keyframes} keyframes, "
                         f"{num_draws} draws")
    return np.random.default_rng(seed).integers(0, num_keyframes, size=(num_draws, num_keyframes))


def drawn_boxes(boxes: EvalBoxes, tokens: Sequence[str], draw: Sequence[int]) -> EvalBoxes:
    """The boxes of the keyframes ``tokens[i]`` for i in ``draw``, the k-th drawn under the name ``token#k``."""
    drawn = EvalBoxes()
    for position, index in enumerate(draw):
        name = f"{tokens[index]}#{position}"
        renamed = []
        for box in boxes[tokens[index]]:
            box = copy.copy(box)
            box.sample_token = name
            renamed.append(box)
        drawn.add_boxes(name, renamed)
    return drawn


def drawn_metrics(config: DetectionConfig, gt_boxes: EvalBoxes, pred_boxes: EvalBoxes, tokens: Sequence[str],
                  draw: Sequence[int]) -> DetectionMetrics:
    """The devkit's DetectionEval.evaluate on one draw of keyframes (boxes as DetectionEval filtered them)."""
    return devkit_metrics(config, drawn_boxes(gt_boxes, tokens, draw), drawn_boxes(pred_boxes, tokens, draw))


def resampled_nd_scores(evaluations: Sequence[Evaluation], draws: np.ndarray, progress: bool = False) -> np.ndarray:
    """(E, R) NDS of each evaluation on each draw (R, N) of ``keyframe_draws``; all evaluations must cover the
    same N keyframes (one split), else ValueError."""
    tokens = sorted(evaluations[0].gt_boxes.sample_tokens)
    for evaluation in evaluations[1:]:
        if sorted(evaluation.gt_boxes.sample_tokens) != tokens:
            raise ValueError("resampled_nd_scores: the evaluations cover different keyframes; compare them on one "
                             "split")
    if draws.shape[1] != len(tokens):
        raise ValueError(f"resampled_nd_scores: draws of {draws.shape[1]} keyframes for a split of {len(tokens)}")
    scores = np.empty((len(evaluations), len(draws)))
    for column, draw in enumerate(tqdm(draws, desc="keyframe draws", unit="draw", disable=not progress)):
        for row, evaluation in enumerate(evaluations):
            scores[row, column] = drawn_metrics(evaluation.config, evaluation.gt_boxes, evaluation.pred_boxes,
                                                tokens, draw).nd_score
    return scores


def percentile_interval(values: np.ndarray, level: float = INTERVAL_LEVEL) -> Tuple[float, float]:
    """The central ``level`` share of ``values``: (lower, upper) percentiles."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"percentile_interval: level must lie in (0, 1), got {level}")
    tail = 50.0 * (1.0 - level)
    lower, upper = np.percentile(values, [tail, 100.0 - tail])
    return float(lower), float(upper)


def checked_results(path: str, split_tokens: Sequence[str]) -> str:
    """``path``, a submission file, when it passes check_submission against the split's keyframes ``split_tokens``
    (exactly those predicted, every box of the format); FileNotFoundError / ValueError naming it otherwise (the devkit
    would stop on an assertion)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file (give a folder tools/test.py wrote with --out)")
    check_submission(read_json(path), split_tokens, source=path)
    return path


def resampled_comparison(nusc: NuScenes, split: str, result_paths: Sequence[str], names: Sequence[str],
                         num_draws: int, level: float = INTERVAL_LEVEL, seed: int = 0, progress: bool = False
                         ) -> List[dict]:
    """Submissions on ``split`` side by side, the first the reference. Per submission: ``NDS``, ``NDS_interval``
    (the central ``level`` share of its NDS over ``num_draws`` keyframe draws), and from the second on
    ``difference`` (its NDS minus the first's), ``difference_interval`` (on the paired draws) and
    ``share_not_below_first`` (of the draws). Every file is checked (checked_results) before any is scored."""
    if len(names) != len(result_paths):
        raise ValueError(f"{len(names)} names for {len(result_paths)} submissions")
    percentile_interval(np.zeros(1), level)  # a level outside (0, 1) stops here, before the evaluations
    tokens = split_sample_tokens(nusc, split)
    paths = [checked_results(path, tokens) for path in result_paths]
    with tempfile.TemporaryDirectory() as scratch:  # the devkit writes its summary files there, not beside the files
        evaluations = [run_detection_eval(nusc, path, split, tempfile.mkdtemp(dir=scratch)) for path in paths]
    resampled = resampled_nd_scores(evaluations, keyframe_draws(len(tokens), num_draws, seed), progress)
    rows = []
    for index, (name, evaluation) in enumerate(zip(names, evaluations)):
        entry = dict(name=name, NDS=evaluation.metrics.nd_score,
                     NDS_interval=percentile_interval(resampled[index], level))
        if index:
            difference = resampled[index] - resampled[0]
            entry.update(difference=evaluation.metrics.nd_score - evaluations[0].metrics.nd_score,
                         difference_interval=percentile_interval(difference, level),
                         share_not_below_first=float(np.mean(difference >= 0.0)))
        rows.append(entry)
    return rows
