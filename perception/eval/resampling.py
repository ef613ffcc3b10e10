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
from types import SimpleNamespace
from typing import Sequence, Tuple

import numpy as np
from nuscenes.eval.common.data_classes import EvalBoxes
from nuscenes.eval.detection.data_classes import DetectionConfig, DetectionMetrics
from nuscenes.eval.detection.evaluate import DetectionEval
from tqdm import tqdm

from perception.eval.detection import Evaluation


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
    devkit_state = SimpleNamespace(cfg=config, gt_boxes=drawn_boxes(gt_boxes, tokens, draw),
                                   pred_boxes=drawn_boxes(pred_boxes, tokens, draw), verbose=False)
    return DetectionEval.evaluate(devkit_state)[0]


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


def percentile_interval(values: np.ndarray, level: float = 0.9) -> Tuple[float, float]:
    """The central ``level`` share of ``values``: (lower, upper) percentiles."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"percentile_interval: level must lie in (0, 1), got {level}")
    tail = 50.0 * (1.0 - level)
    lower, upper = np.percentile(values, [tail, 100.0 - tail])
    return float(lower), float(upper)
