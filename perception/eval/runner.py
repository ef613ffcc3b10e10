"""One offline evaluation: a detector over a split (sharded over processes under torchrun), the submission file,
nuscenes-devkit's DetectionEval, the decision metrics (perception.eval.decision_metrics), metrics.json and
report.md."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch.distributed as dist
from nuscenes.nuscenes import NuScenes
from torch.utils.data import Subset
from tqdm import tqdm

from perception.datasets.collate import make_frame_loader
from perception.datasets.frame import Frame
from perception.datasets.lane_map import log_lanes
from perception.datasets.loader import NuScenesFrames, UnreadableFrame
from perception.datasets.splits import split_scenes
from perception.decision.learned import past_ego_features
from perception.detector import Detector
from perception.eval.decision_metrics import grade_planners
from perception.eval.logged_drive import planned_frame_for_sample, tracked_agents
from perception.eval.detection import evaluate_submission, metrics_record, render_plots
from perception.eval.report import write_report
from perception.eval.submission import boxes_to_submission
from perception.geometry import Boxes3D
from perception.models.ego_mlp import EgoMLP
from perception.models.planning_head import PlanningDetector
from perception.models.planning_types import PlanningOutputs
from perception.sensors import SENSOR_GROUPS

RESULTS_FILE = "results_nusc.json"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"


@dataclass
class Predictions:
    """Submission boxes per sample token (boxes_to_submission), the wall time spent loading and detecting
    ``frames`` frames [s], summed over processes, the detector's boxes per sample token (in the ego frame of
    the keyframe's LiDAR timestamp, for the decision metrics), the planning head's outputs per sample token (a
    PlanningDetector that plans; None otherwise) and the frames that could not be read (counted with no
    detections)."""

    results: Dict[str, List[dict]] = field(default_factory=dict)
    seconds: float = 0.0
    frames_per_process: List[int] = field(default_factory=lambda: [0])
    ego_boxes: Dict[str, Boxes3D] = field(default_factory=dict)
    unreadable: List[UnreadableFrame] = field(default_factory=list)
    plans: Optional[Dict[str, PlanningOutputs]] = None

    @property
    def frames(self) -> int:
        return sum(self.frames_per_process)

    @classmethod
    def merged(cls, parts: Sequence["Predictions"]) -> "Predictions":
        """One Predictions from the processes' parts; ValueError when a sample was predicted twice."""
        merged = cls(frames_per_process=[])
        for part in parts:
            duplicated = sorted(set(merged.results) & set(part.results))
            if duplicated:
                raise ValueError(f"samples predicted by more than one process: {', '.join(duplicated)}")
            merged.results.update(part.results)
            merged.ego_boxes.update(part.ego_boxes)
            if part.plans is not None:
                merged.plans = {**(merged.plans or {}), **part.plans}
            merged.unreadable += part.unreadable
            merged.seconds += part.seconds
            merged.frames_per_process += part.frames_per_process
        return merged


@dataclass(frozen=True)
class Shard:
    """This process's share of the frames: ``rank`` of ``world_size`` processes takes indices rank::world_size."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def indices(self, count: int) -> range:
        return range(self.rank, count, self.world_size)

    @classmethod
    def of_process_group(cls) -> "Shard":
        """This process's shard of the default process group (a torchrun launch starts it with
        perception.engine.init_distributed_from_env), or the single shard when there is none."""
        if not dist.is_initialized():
            return cls()
        return cls(dist.get_rank(), dist.get_world_size())


def gather_predictions(predictions: Predictions, shard: Shard) -> Predictions:
    """Every process's predictions merged (all_gather_object over the default process group); as is for one."""
    if shard.world_size == 1:
        return predictions
    gathered: List[Optional[Predictions]] = [None] * shard.world_size
    dist.all_gather_object(gathered, predictions)
    return Predictions.merged(gathered)


def predict(detector: Detector, batches: Iterable, total_frames: int, progress: bool = True,
            ego_states: Optional[Callable[[Sequence[str]], np.ndarray]] = None) -> Predictions:
    """Runs ``detector`` over ``batches`` (lists of Frame), keeps each frame's boxes (ego frame) and converts them
    to submission boxes in the global frame. An UnreadableFrame in a batch is recorded and gets no detections. With
    ``ego_states`` (sample tokens -> (B, len(EGO_FEATURES)) from past poses), the detector must be a
    PlanningDetector that plans: its plans are kept too. A progress bar counts frames."""
    planning = ego_states is not None
    if planning and not (isinstance(detector, PlanningDetector) and detector.plans):
        raise ValueError(f"predict: ego_states given, but {type(detector).__name__} does not plan")
    predictions = Predictions(plans={} if planning else None)
    start = time.perf_counter()
    with tqdm(total=total_frames, unit="frame", desc="detect", disable=not progress) as bar:
        for batch in batches:
            frames = [item for item in batch if isinstance(item, Frame)]
            for unreadable in (item for item in batch if isinstance(item, UnreadableFrame)):
                predictions.unreadable.append(unreadable)
                predictions.ego_boxes[unreadable.sample_token] = Boxes3D.empty()
                predictions.results[unreadable.sample_token] = []
            plans = []
            if not frames:
                boxes = []
            elif planning:
                boxes, plans = detector.detect_and_plan(frames, ego_states([frame.sample_token for frame in frames]))
            else:
                boxes = detector.detect(frames)
            if len(boxes) != len(frames):
                raise ValueError(f"the detector returned {len(boxes)} box sets for {len(frames)} frames")
            for frame, frame_boxes in zip(frames, boxes):
                predictions.ego_boxes[frame.sample_token] = frame_boxes
                predictions.results[frame.sample_token] = boxes_to_submission(frame.sample_token, frame_boxes,
                                                                              frame.ego_pose)
            for frame, plan in zip(frames, plans):
                predictions.plans[frame.sample_token] = plan
            predictions.frames_per_process[0] += len(batch)
            bar.update(len(batch))
    predictions.seconds = time.perf_counter() - start
    return predictions


@dataclass(frozen=True)
class DataOptions:
    """Where the frames come from and how they are loaded (perception.datasets.loader.NuScenesFrames): sweeps and
    image size (W, H) as the model's config gives them (perception.models.model_inputs); ``skip_corrupt_files``: a
    frame with a file the readers reject is evaluated with no detections and listed, instead of stopping the run
    with the reader's error."""

    dataroot: str
    version: str
    split: str
    lidar_sweeps: int = 10
    radar_sweeps: int = 6
    image_size: Optional[Tuple[int, int]] = None
    batch_size: int = 1
    workers: int = 0
    skip_corrupt_files: bool = False


def load_split_predictions(detector: Detector, nusc: Optional[NuScenes], data: DataOptions,
                           drop: Sequence[str] = (), shard: Shard = Shard(),
                           transform: Optional[Callable[[Frame], Frame]] = None) -> Tuple[Predictions, List[str]]:
    """The detector's predictions over the whole split (this shard's frames, then gathered), and the split's
    sample tokens in loader order. ``drop``: sensor groups blanked at the input (those the detector does not read
    are not loaded either); ``transform``: Frame -> Frame applied to every loaded frame (a corruption,
    perception.datasets.corruptions.CorruptFrames); ``nusc`` may be None on the processes other than the main
    one (they then load the devkit tables only for a detector that plans: its ego-state input reads past poses).
    A PlanningDetector that plans also gives its plans (Predictions.plans)."""
    # Sensor groups the detector does not read are not loaded either.
    not_loaded = tuple(group for group in SENSOR_GROUPS if group in drop or group not in detector.sensors)

    def frames() -> NuScenesFrames:
        return NuScenesFrames(data.dataroot, data.version, data.split, lidar_sweeps=data.lidar_sweeps,
                              radar_sweeps=data.radar_sweeps, image_size=data.image_size, drop=not_loaded,
                              transform=transform, nusc=nusc, progress=shard.is_main,
                              skip_corrupt_files=data.skip_corrupt_files)

    # The main process builds the sample metadata cache; the others then read it (no devkit tables needed).
    dataset = frames() if shard.is_main else None
    if shard.world_size > 1:
        dist.barrier()
    if dataset is None:
        dataset = frames()
    shard_frames = Subset(dataset, shard.indices(len(dataset)))
    loader = make_frame_loader(shard_frames, batch_size=data.batch_size, shuffle=False, num_workers=data.workers,
                               seed=0)
    plans = isinstance(detector, PlanningDetector) and detector.plans
    ego_states = (lambda tokens: past_ego_features(dataset.nusc, tokens)) if plans else None
    predictions = predict(detector, loader, len(shard_frames), progress=shard.is_main, ego_states=ego_states)
    return gather_predictions(predictions, shard), list(dataset.sample_tokens)


def decision_metrics(nusc: NuScenes, ego_boxes: Mapping[str, Boxes3D], sample_tokens: Sequence[str],
                     ego_mlp: Optional[EgoMLP] = None, plans: Optional[Mapping[str, PlanningOutputs]] = None
                     ) -> dict:
    """grade_planners over ``sample_tokens``: every planner of planned_frame_for_sample (the rule planner on each
    sample's ``ego_boxes``, the detector's in the ego frame, as tracked: tracked_agents; the ego MLP when
    given; the planning head's ``plans`` per sample token when given), against the logged drive. A progress bar
    counts frames."""
    tracked = tracked_agents(nusc, ego_boxes, sample_tokens)
    frames = [planned_frame_for_sample(nusc, token, tracked[token].boxes, ego_mlp=ego_mlp,
                                       learned_plan=None if plans is None else plans.get(token),
                                       with_learned=plans is not None,
                                       agent_accelerations_mps2=tracked[token].accelerations_mps2)
              for token in tqdm(sample_tokens, unit="frame", desc="decide")]
    return grade_planners(frames)


def evaluate_split(detector: Detector, detector_name: str, nusc: Optional[NuScenes], data: DataOptions,
                   out_dir: str, drop: Sequence[str] = (), shard: Shard = Shard(), render_curves: bool = True,
                   verbose: bool = False, transform: Optional[Callable[[Frame], Frame]] = None,
                   ego_mlp: Optional[EgoMLP] = None) -> Optional[dict]:
    """The detector over ``data.split``, then on the main process: ``out_dir/results_nusc.json``, the devkit's
    DetectionEval, the decision metrics (metrics.json's "decisions"), ``metrics.json`` and ``report.md``. Returns
    the metrics.json content on the main process, None on the others and for splits without annotations (the test
    split: the submission is for the server; neither detection nor decision metrics can be computed).
    ``nusc`` (the devkit tables, needed to evaluate) may be None on the other processes; ``transform``: as in
    load_split_predictions; ``ego_mlp``: graded beside the other planners when given, as are the detector's
    plans when it is a PlanningDetector that plans. A lane map the decision metrics cannot read is named before the
    detection pass."""
    if nusc is not None:
        scenes = set(split_scenes(nusc, data.split))
        for scene in nusc.scene:
            if scene["name"] in scenes:
                log_lanes(nusc, scene["log_token"])
    predictions, sample_tokens = load_split_predictions(detector, nusc, data, drop, shard, transform)
    if not shard.is_main:
        return None
    sensors = [group for group in SENSOR_GROUPS if group in detector.sensors and group not in drop]
    result_path = os.path.join(out_dir, RESULTS_FILE)
    evaluation = evaluate_submission(nusc, data.split, predictions.results, sensors, result_path, verbose)
    if evaluation is None:
        return None
    run = {"dataroot": data.dataroot, "version": data.version, "split": data.split, "detector": detector_name,
           "sensors": sensors, "dropped": list(drop), "lidar_sweeps": data.lidar_sweeps,
           "radar_sweeps": data.radar_sweeps, "image_size": None if data.image_size is None else list(data.image_size),
           "frames_per_process": predictions.frames_per_process,
           "transform": None if transform is None else str(transform),
           "unreadable_files": [{"sample_token": item.sample_token, "path": item.path, "problem": item.problem}
                                for item in predictions.unreadable]}
    decisions = decision_metrics(nusc, predictions.ego_boxes, sample_tokens, ego_mlp, predictions.plans)
    metrics = metrics_record(evaluation, predictions.frames, predictions.seconds / max(predictions.frames, 1),
                             extra={"run": run, "decisions": decisions})
    with open(os.path.join(out_dir, METRICS_FILE), "w") as handle:
        json.dump(metrics, handle, indent=2, allow_nan=False)
    plots = render_plots(evaluation) if render_curves else {}
    write_report(os.path.join(out_dir, REPORT_FILE), metrics, plots)
    return metrics
