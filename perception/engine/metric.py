"""Validation inside training with the official metrics: predictions -> the project's submission writer ->
nuscenes-devkit's DetectionEval (perception.eval), as an mmengine Metric."""
from __future__ import annotations

import logging
import os
import tempfile
from typing import Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from perception.datasets.records import open_nuscenes
from perception.eval.detection import TP_ERROR_NAMES, NoDetectionsError, empty_prediction_metrics, evaluate_submission
from perception.eval.submission import boxes_to_submission
from perception.registry import METRICS


@METRICS.register_module()
class NuScenesDetectionMetric(BaseMetric):
    """NDS, mAP and the five TP errors (mATE ... mAAE) of the predictions on ``split`` of ``dataroot``/``version``.

    Every sample of the split must have been predicted (the devkit evaluates whole splits); predictions without a
    box (which the devkit's loading cannot take) score as the devkit scores an empty set (empty_prediction_metrics),
    with a warning in the log. ``out_dir``: where the submission and the devkit's summaries go (a temporary folder,
    removed afterwards, when None).
    """

    default_prefix = "nuscenes"

    def __init__(self, dataroot: str, version: str, split: str, out_dir: Optional[str] = None,
                 collect_device: str = "cpu", prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.dataroot, self.version, self.split, self.out_dir = dataroot, version, split, out_dir

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for prediction in data_samples:
            self.results.append(dict(
                sample_token=prediction["sample_token"], sensors=prediction["sensors"],
                boxes=boxes_to_submission(prediction["sample_token"], prediction["boxes"], prediction["ego_pose"])))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        nusc = open_nuscenes(self.dataroot, self.version)
        boxes_by_sample = {result["sample_token"]: result["boxes"] for result in results}
        sensors = results[0]["sensors"] if results else ()
        with tempfile.TemporaryDirectory(prefix="nuscenes_eval_") as scratch:
            out_dir = self.out_dir or scratch
            try:
                evaluation = evaluate_submission(nusc, self.split, boxes_by_sample, sensors,
                                                 os.path.join(out_dir, "submission.json"))
            except NoDetectionsError:
                print_log(f"validation on {self.split}: the model predicted no box; scored as nuscenes-devkit scores "
                          f"an empty prediction set", logger="current", level=logging.WARNING)
                metrics = empty_prediction_metrics()
            else:
                if evaluation is None:
                    raise ValueError(f"validation on {self.split}: {self.version} at {self.dataroot} has no "
                                     f"annotations")
                metrics = evaluation.metrics
        values = {"NDS": metrics.nd_score, "mAP": metrics.mean_ap}
        values.update({TP_ERROR_NAMES[name]: value for name, value in metrics.tp_errors.items()})
        return {name: float(value) for name, value in values.items()}
