"""One offline evaluation: a detector over a split (sharded over processes under torchrun), the submission file,
nuscenes-devkit's DetectionEval, the decision metrics (perception.eval.decision_metrics), metrics.json and
report.md.

Each frame's predictions are written as they are made, one FRAME_PREDICTION line a frame in PREDICTIONS_FILE
(under torchrun one file a process, predictions_path), flushed, beside PREDICTIONS_RUN_FILE (what made them,
run_identity): a killed evaluation resumes from them (``resume``), detecting only the frames not yet recorded, and
ends with the submission, metrics and report an uninterrupted run writes (the timings but the frames' own)."""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, TextIO, Tuple

import numpy as np
import torch
import torch.distributed as dist
from nuscenes.nuscenes import NuScenes
from torch.utils.data import Subset
from tqdm import tqdm

from perception.datasets.collate import make_frame_loader
from perception.datasets.frame import Frame
from perception.datasets.lane_map import log_lanes
from perception.datasets.loader import NuScenesFrames, UnreadableFrame
from perception.datasets.splits import split_scenes
from perception.decision.learned import check_plan_grid, past_ego_features
from perception.detector import Detector
from perception.eval.decision_metrics import grade_planners
from perception.eval.logged_drive import planned_frame_for_sample, tracked_agents
from perception.eval.detection import (DEVKIT_DETAILS_FILE, DEVKIT_SUMMARY_FILE, PLOTS_FOLDER, check_lidar_keyframes,
                                       evaluate_submission, metrics_record, render_plots)
from perception.eval.report import write_report
from perception.eval.submission import boxes_to_submission
from perception.geometry import Boxes3D, EgoPose, RigidTransform
from perception.geometry.boxes import DETECTION_RECORD
from perception.jsonfile import (as_read_back, check_same_run, read_json, read_json_lines, write_json_atomic,
                                 write_json_lines)
from perception.models.ego_mlp import EgoMLP
from perception.models.planning_head import PlanningDetector
from perception.models.planning_types import PlanningOutputs
from perception.sensors import DEFAULT_LIDAR_SWEEPS, DEFAULT_RADAR_SWEEPS, SENSOR_GROUPS

RESULTS_FILE = "results_nusc.json"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
PREDICTIONS_FILE = "predictions.jsonl"
PREDICTIONS_RUN_FILE = "predictions_run.json"
EVALUATION_OUTPUTS = (RESULTS_FILE, METRICS_FILE, REPORT_FILE, DEVKIT_SUMMARY_FILE, DEVKIT_DETAILS_FILE, PLOTS_FOLDER)
"""What evaluate_split writes into its folder after the predictions: the submission, metrics.json, report.md, the
devkit's metrics files and the plots folder."""

FRAME_PREDICTION = ("sample_token", "boxes", "ego_pose", "plan", "unreadable", "seconds", "batch")
"""The keys of one PREDICTIONS_FILE line: sample_token; boxes (the detector's, ego frame: Boxes3D.to_json items);
ego_pose (the keyframe's LiDAR pose the boxes' ego frame refers to, {"timestamp_us", "ego_to_global": 4 x 4},
null for an unreadable frame); plan (a planning head's PlanningOutputs row, {"trajectory", "maneuver_logits",
"lane_change_logits"} as lists, null without one); unreadable ({"path", "problem"} of a frame whose file a reader
rejected, else null); seconds (the frame's share of its batch's loading and detecting time); batch ([its place in
its batch, the batch's size]: a resume keeps whole batches only, so that the frames left are batched as an
uninterrupted run batches them). The submission boxes are made from boxes and ego_pose again when read back
(boxes_to_submission: the same values)."""
PLAN_OUTPUTS = ("trajectory", "maneuver_logits", "lane_change_logits")
"""The PlanningOutputs fields a FRAME_PREDICTION's plan holds (float32 tensors, read back as such)."""


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

    def add(self, token: str, boxes: Boxes3D, ego_pose: Optional[EgoPose], plan: Optional[PlanningOutputs] = None,
            unreadable: Optional[UnreadableFrame] = None) -> None:
        """One frame (not counted here): its ``boxes`` (ego frame of ``ego_pose``) and their submission boxes (none
        for an ``unreadable`` one, recorded), its ``plan`` where there is one."""
        self.ego_boxes[token] = boxes
        self.results[token] = [] if unreadable is not None else boxes_to_submission(token, boxes, ego_pose)
        if unreadable is not None:
            self.unreadable.append(unreadable)
        if plan is not None:
            self.plans[token] = plan

    @classmethod
    def merged(cls, parts: Sequence["Predictions"], sample_tokens: Sequence[str]) -> "Predictions":
        """One Predictions from the processes' parts, its unreadable frames in the order of ``sample_tokens`` (the
        split's, in loader order: as one process lists them); ValueError when a sample was predicted twice."""
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
        place = {token: index for index, token in enumerate(sample_tokens)}
        merged.unreadable.sort(key=lambda item: place[item.sample_token])
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


def gather_predictions(predictions: Predictions, shard: Shard, sample_tokens: Sequence[str]) -> Predictions:
    """Every process's predictions merged (all_gather_object over the default process group; Predictions.merged
    with the split's ``sample_tokens`` in loader order); as is for one."""
    if shard.world_size == 1:
        return predictions
    gathered: List[Optional[Predictions]] = [None] * shard.world_size
    dist.all_gather_object(gathered, predictions)
    return Predictions.merged(gathered, sample_tokens)


def prediction_record(token: str, boxes: Boxes3D, ego_pose: Optional[EgoPose], plan: Optional[PlanningOutputs],
                      unreadable: Optional[UnreadableFrame], seconds: float, batch: Tuple[int, int]
                      ) -> Dict[str, Any]:
    """One frame's FRAME_PREDICTION line (``batch``: its place in its batch and the batch's size)."""
    return {"sample_token": token, "boxes": boxes.to_json(),
            "ego_pose": None if ego_pose is None else {"timestamp_us": ego_pose.timestamp_us,
                                                       "ego_to_global": ego_pose.ego_to_global.matrix.tolist()},
            "plan": None if plan is None else {name: getattr(plan, name).detach().cpu().tolist()
                                               for name in PLAN_OUTPUTS},
            "unreadable": None if unreadable is None else {"path": unreadable.path, "problem": unreadable.problem},
            "seconds": seconds, "batch": list(batch)}


def add_prediction_record(predictions: Predictions, record: Mapping[str, Any]) -> None:
    """A FRAME_PREDICTION line back into ``predictions`` (the inverse of prediction_record, the frame counted)."""
    token, pose = record["sample_token"], record["ego_pose"]
    plan = record["plan"]
    unreadable = record["unreadable"]
    predictions.add(token, Boxes3D.from_json(record["boxes"]),
                    None if pose is None else EgoPose(pose["timestamp_us"], RigidTransform(pose["ego_to_global"])),
                    None if plan is None else PlanningOutputs(**{name: torch.tensor(plan[name], dtype=torch.float32)
                                                                 for name in PLAN_OUTPUTS}),
                    None if unreadable is None else UnreadableFrame(token, unreadable["path"], unreadable["problem"]))
    predictions.seconds += record["seconds"]
    predictions.frames_per_process[0] += 1


def _check_prediction_record(record: Any, where: str) -> None:
    """ValueError naming ``where`` unless ``record`` is a FRAME_PREDICTION of the types it names."""
    problem = ""
    if not isinstance(record, dict) or set(record) != set(FRAME_PREDICTION):
        problem = f"must have exactly the keys {FRAME_PREDICTION}"
    elif not (isinstance(record["sample_token"], str) and isinstance(record["boxes"], list)
              and all(isinstance(box, dict) and set(box) == set(DETECTION_RECORD) for box in record["boxes"])):
        problem = "needs a sample_token and a list of boxes (DETECTION_RECORD items)"
    elif (record["ego_pose"] is None) == (record["unreadable"] is None) or not all(
            record[key] is None or isinstance(record[key], dict) for key in ("ego_pose", "plan", "unreadable")):
        problem = "needs an ego_pose object for a frame it read, an unreadable object for one it could not"
    elif not (isinstance(record["seconds"], (int, float)) and isinstance(record["batch"], list)
              and len(record["batch"]) == 2 and all(isinstance(value, int) for value in record["batch"])
              and 0 <= record["batch"][0] < record["batch"][1]):
        problem = "needs seconds and its batch as [place, size]"
    if problem:
        raise ValueError(f"{where}: a frame's predictions record {problem}")


def _whole_batches(records: List[dict]) -> List[dict]:
    """The whole batches of ``records`` (a kill may stop a batch's records midway)."""
    kept: List[dict] = []
    batch: List[dict] = []
    for record in records:
        place, size = record["batch"]
        batch = [record] if place == 0 else batch + [record]
        if place == size - 1 and len(batch) == size:
            kept += batch
    return kept


def predict(detector: Detector, batches: Iterable, total_frames: int, progress: bool = True,
            ego_states: Optional[Callable[[Sequence[str]], np.ndarray]] = None, log: Optional[TextIO] = None,
            predictions: Optional[Predictions] = None, skip_unreadable: bool = True) -> Predictions:
    """Runs ``detector`` over ``batches`` (lists of Frame), keeps each frame's boxes (ego frame) and converts them
    to submission boxes in the global frame. An UnreadableFrame in a batch is recorded and gets no detections, or
    without ``skip_unreadable`` its CorruptFileError is raised, in this process, before the batch is detected. With
    ``ego_states`` (sample tokens -> (B, len(EGO_FEATURES)) from past poses), the detector must be a
    PlanningDetector that plans: its plans are kept too. ``log``: each frame's prediction_record written to it as
    a line and flushed; ``predictions``: those of the frames done before (a resume), added to. A progress bar
    counts frames."""
    planning = ego_states is not None
    if planning and not (isinstance(detector, PlanningDetector) and detector.plans):
        raise ValueError(f"predict: ego_states given, but {type(detector).__name__} does not plan")
    if predictions is None:
        predictions = Predictions(plans={} if planning else None)
    start = time.perf_counter()
    with tqdm(total=total_frames, unit="frame", desc="detect", disable=not progress) as bar:
        for batch in batches:
            unreadable_frames = [item for item in batch if isinstance(item, UnreadableFrame)]
            if unreadable_frames and not skip_unreadable:
                raise unreadable_frames[0].error()
            frames = [item for item in batch if isinstance(item, Frame)]
            plans: List[Optional[PlanningOutputs]] = []
            if not frames:
                boxes = []
            elif planning:
                boxes, plans = detector.detect_and_plan(frames, ego_states([frame.sample_token for frame in frames]))
            else:
                boxes = detector.detect(frames)
            if len(boxes) != len(frames):
                raise ValueError(f"the detector returned {len(boxes)} box sets for {len(frames)} frames")
            now = time.perf_counter()
            seconds, start = (now - start) / len(batch), now
            made = [(item.sample_token, Boxes3D.empty(), None, None, item) for item in unreadable_frames]
            made += [(frame.sample_token, frame_boxes, frame.ego_pose, plan, None)
                     for frame, frame_boxes, plan in zip(frames, boxes, plans or [None] * len(frames))]
            for place, (token, frame_boxes, pose, plan, unreadable) in enumerate(made):
                predictions.add(token, frame_boxes, pose, plan, unreadable)
                if log is not None:
                    log.write(json.dumps(prediction_record(token, frame_boxes, pose, plan, unreadable, seconds,
                                                           (place, len(made)))) + "\n")
            if log is not None:
                log.flush()
            predictions.seconds += seconds * len(batch)
            predictions.frames_per_process[0] += len(batch)
            bar.update(len(batch))
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
    lidar_sweeps: int = DEFAULT_LIDAR_SWEEPS
    radar_sweeps: int = DEFAULT_RADAR_SWEEPS
    image_size: Optional[Tuple[int, int]] = None
    batch_size: int = 1
    workers: int = 0
    skip_corrupt_files: bool = False


def predictions_path(out_dir: str, shard: Shard) -> str:
    """This process's PREDICTIONS_FILE: predictions.jsonl, or predictions.<rank>.jsonl of several processes."""
    name = PREDICTIONS_FILE if shard.world_size == 1 else PREDICTIONS_FILE.replace(".jsonl", f".{shard.rank}.jsonl")
    return os.path.join(out_dir, name)


def run_identity(detector_name: str, data: DataOptions, drop: Sequence[str], shard: Shard,
                 transform: Optional[Callable[[Frame], Frame]], provenance: Mapping[str, Any]) -> Dict[str, Any]:
    """What PREDICTIONS_RUN_FILE holds: what makes a frame's predictions (the model: its ``provenance``, e.g. the
    hashes of its config and weights, or without one the detector's name; the data (its root as os.path.realpath
    names it: the same folder however a run names it) and how it is loaded, the sensors dropped, the transform) and
    how the frames are shared among the processes."""
    model = dict(provenance) if provenance else {"detector": detector_name}
    loaded = {key: value for key, value in asdict(data).items() if key != "workers"}
    return as_read_back({"model": model, "data": dict(loaded, dataroot=os.path.realpath(data.dataroot)),
                         "dropped": sorted(drop), "transform": None if transform is None else str(transform),
                         "processes": shard.world_size})


@dataclass(frozen=True)
class PredictionFiles:
    """Where the frames' predictions are written as made (module docstring): ``out_dir``; the run's ``identity``
    (run_identity); whether to ``resume`` an earlier run's there, and then what to do with those of another run:
    refuse them (ValueError naming PREDICTIONS_RUN_FILE) or, with ``restart_other``, start afresh."""

    out_dir: str
    identity: Dict[str, Any]
    resume: bool = False
    restart_other: bool = False


def remove_earlier_run(out_dir: str) -> None:
    """Before a fresh run into ``out_dir``: removes the predictions files there and, where it holds
    PREDICTIONS_RUN_FILE (a folder evaluate_split wrote; another folder's files are left alone), that file and the
    earlier run's EVALUATION_OUTPUTS, so that a fresh run killed or failed leaves none of them beside its own."""
    if not os.path.isdir(out_dir):
        return
    earlier_run = os.path.isfile(os.path.join(out_dir, PREDICTIONS_RUN_FILE))
    for name in os.listdir(out_dir):
        path = os.path.join(out_dir, name)
        predictions = name.startswith("predictions.") and name.endswith(".jsonl")
        if predictions or (earlier_run and name in (PREDICTIONS_RUN_FILE, *EVALUATION_OUTPUTS)):
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


def open_predictions(files: PredictionFiles, shard: Shard, planning: bool) -> Tuple[TextIO, Predictions]:
    """This process's PREDICTIONS_FILE opened to append, and the predictions already in it: with files.resume those
    of an earlier run of the same identity, its whole batches; else none (the main process removes the
    earlier run's files, remove_earlier_run, and writes PREDICTIONS_RUN_FILE). Every process reads and checks before
    the main one changes anything."""
    run_path = os.path.join(files.out_dir, PREDICTIONS_RUN_FILE)
    path = predictions_path(files.out_dir, shard)
    recorded = read_json(run_path) if files.resume and os.path.isfile(run_path) else None
    same = files.resume and recorded == files.identity
    records = read_json_lines(path, _check_prediction_record) if same else []  # another run's: not read
    recorded_frames = os.path.isfile(path) and os.path.getsize(path) > 0
    if files.resume and (recorded_frames or os.path.isfile(run_path)) and not files.restart_other:
        check_same_run(run_path, files.identity, "the frames recorded there",
                       "evaluate into another folder, or remove them")
    if shard.world_size > 1:
        dist.barrier()  # every process has read what it keeps before the main one removes anything
    if shard.is_main and not same:
        remove_earlier_run(files.out_dir)
        os.makedirs(files.out_dir, exist_ok=True)
        write_json_atomic(run_path, files.identity, indent=2)
    if shard.world_size > 1:
        dist.barrier()  # the main process's fresh folder before the others write into it
    kept = _whole_batches(records) if same else []
    done = Predictions(plans={} if planning else None)
    for record in kept:
        add_prediction_record(done, record)
    write_json_lines(path, kept)  # what is kept (a line cut short by a kill, a batch stopped midway are gone)
    return open(path, "a", encoding="utf-8"), done


def load_split_predictions(detector: Detector, nusc: Optional[NuScenes], data: DataOptions,
                           drop: Sequence[str] = (), shard: Shard = Shard(),
                           transform: Optional[Callable[[Frame], Frame]] = None,
                           files: Optional[PredictionFiles] = None) -> Tuple[Predictions, List[str]]:
    """The detector's predictions over the whole split (this shard's frames, then gathered), and the split's
    sample tokens in loader order. ``drop``: sensor groups blanked at the input (those the detector does not read
    are not loaded either); ``transform``: Frame -> Frame applied to every loaded frame (a corruption,
    perception.datasets.corruptions.CorruptFrames); ``nusc`` may be None on the processes other than the main
    one (they then load the devkit tables only for a detector that plans: its ego-state input reads past poses).
    A PlanningDetector that plans also gives its plans (Predictions.plans). With ``files`` each frame's
    predictions are written as made, and on a resume the frames recorded there are read back, not detected."""
    # Sensor groups the detector does not read are not loaded either.
    not_loaded = tuple(group for group in SENSOR_GROUPS if group in drop or group not in detector.sensors)

    def frames() -> NuScenesFrames:  # an unreadable frame crosses a worker as a value; predict raises its error
        return NuScenesFrames(data.dataroot, data.version, data.split, lidar_sweeps=data.lidar_sweeps,
                              radar_sweeps=data.radar_sweeps, image_size=data.image_size, drop=not_loaded,
                              transform=transform, nusc=nusc, progress=shard.is_main,
                              skip_corrupt_files=True)

    # The main process builds the sample metadata cache; the others then read it (no devkit tables needed).
    dataset = frames() if shard.is_main else None
    if shard.world_size > 1:
        dist.barrier()
    if dataset is None:
        dataset = frames()
    plans = isinstance(detector, PlanningDetector) and detector.plans
    log, done = (None, None) if files is None else open_predictions(files, shard, plans)
    shard_frames = Subset(dataset, [index for index in shard.indices(len(dataset))
                                    if done is None or dataset.sample_tokens[index] not in done.results])
    loader = make_frame_loader(shard_frames, batch_size=data.batch_size, shuffle=False, num_workers=data.workers,
                               seed=0)
    ego_states = (lambda tokens: past_ego_features(dataset.nusc, tokens)) if plans else None
    try:
        predictions = predict(detector, loader, len(shard_frames), progress=shard.is_main, ego_states=ego_states,
                              log=log, predictions=done, skip_unreadable=data.skip_corrupt_files)
    finally:
        if log is not None:
            log.close()
    return gather_predictions(predictions, shard, dataset.sample_tokens), list(dataset.sample_tokens)


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
                   ego_mlp: Optional[EgoMLP] = None, resume: bool = False, restart_other: bool = False,
                   provenance: Optional[Mapping[str, Any]] = None) -> Optional[dict]:
    """The detector over ``data.split``, then on the main process: ``out_dir/results_nusc.json``, the devkit's
    DetectionEval, the decision metrics (metrics.json's "decisions"), ``metrics.json`` and ``report.md``. Returns
    the metrics.json content on the main process, None on the others and for splits without annotations (the test
    split: the submission is for the server; neither detection nor decision metrics can be computed). Keyframes
    without LiDAR, which the devkit cannot evaluate, are named before the detection pass (check_lidar_keyframes).
    ``nusc`` (the devkit tables, needed to evaluate) may be None on the other processes; ``transform``: as in
    load_split_predictions; ``ego_mlp``: graded beside the other planners when given, as are the detector's
    plans when it is a PlanningDetector that plans. A lane map the decision metrics cannot read is named before the
    detection pass. The frames' predictions are written to ``out_dir`` as made (module docstring); with ``resume``
    an earlier run's there are read back (the same model, data and options: run_identity), and only the frames it
    did not record are detected; another run's are refused, or with ``restart_other`` replaced. ``provenance``:
    what identifies the model (the hashes of its config and weights; without one its name), recorded in
    metrics.json's run too."""
    if nusc is not None:
        check_lidar_keyframes(nusc, data.split)
        scenes = set(split_scenes(nusc, data.split))
        for scene in nusc.scene:
            if scene["name"] in scenes:
                log_lanes(nusc, scene["log_token"])
    if ego_mlp is not None:
        check_plan_grid("the ego MLP", (ego_mlp.horizon_steps, ego_mlp.step_s))
    if isinstance(detector, PlanningDetector) and detector.plans:
        check_plan_grid(detector_name, detector.plan_grid)
    provenance = dict(provenance or {})
    files = PredictionFiles(out_dir, run_identity(detector_name, data, drop, shard, transform, provenance), resume,
                            restart_other)
    predictions, sample_tokens = load_split_predictions(detector, nusc, data, drop, shard, transform, files)
    if not shard.is_main:
        return None
    sensors = [group for group in SENSOR_GROUPS if group in detector.sensors and group not in drop]
    result_path = os.path.join(out_dir, RESULTS_FILE)
    evaluation = evaluate_submission(nusc, data.split, predictions.results, sensors, result_path, verbose)
    if evaluation is None:
        return None
    run = {"dataroot": data.dataroot, "version": data.version, "split": data.split, "detector": detector_name,
           "provenance": provenance, "sensors": sensors, "dropped": list(drop), "lidar_sweeps": data.lidar_sweeps,
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
