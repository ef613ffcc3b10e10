"""How well the agent tracker (perception.decision.tracking) estimates accelerations and velocities from a
detector's boxes, against the annotations: per smoothing weight (and weight of a harder-braking estimate), the
error of the accelerations beside the error of assuming none (constant velocity, what the planner predicted before
tracking); per standing speed, the error of the velocities the planners see beside the detector's own.

    .venv/bin/python benchmarks/tracking_accuracy.py configs/fusion_tiny_planning.py \\
        checkpoints/fusion_tiny_planning.pth --dataroot datasets/synthetic --version v1.0-synth --split synth_train \\
        --smoothing 1,0.5,0.3,0.2 --braking-smoothing 0.3,0.5,1 --standing-speed 0,0.5,1,1.5 \\
        --json outputs/tracking/synth_train.json

The detector runs over the split (keyframes, the config's sweeps); per pair of weights, the accelerations the
decision metrics use (perception.eval.logged_drive.tracked_agents: one tracker per scene over its keyframes
in time order). A tracked box (scoring >= the planner's min_score, a class with a gate) is
matched to the closest annotation of its class within MATCH_DISTANCE_M (nuScenes' middle centre-distance
threshold). Its reference acceleration is the annotation's instance's speed change since the previous keyframe
(the annotations' velocities, the devkit's central differences of their positions) over the time between them;
boxes whose instance was not annotated there are not graded. Reports, over the graded boxes: the RMSE and the mean
absolute error of the estimates and of 0, the mean estimate where the reference brakes harder than BRAKING_MPS2 and
the mean absolute error there, and how many boxes were graded. Velocities (perception.eval.logged_drive
.tracked_agents' boxes): every matched tracked box against its annotation's velocity (the devkit's central
differences), the mean absolute error of the vector and of its lateral (ego y) component, for annotations moving
at MOVING_MPS or more and for the others.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List

import numpy as np

from perception.datasets.ego_log import keyframe_lidar_pose
from perception.datasets.ground_truth import sample_ground_truth
from perception.decision.tracking import TrackerConfig
from perception.eval.logged_drive import tracked_agents

MATCH_DISTANCE_M = 2.0
BRAKING_MPS2 = -1.0
MOVING_MPS = 0.5


def reference_accelerations(nusc, tokens: List[str]) -> Dict[str, tuple]:
    """token -> (ground-truth boxes in the keyframe's ego frame, (K,) reference accelerations, NaN where the
    instance was not annotated at the previous keyframe of the scene)."""
    references, previous = {}, {}
    for token in tokens:
        sample = nusc.get("sample", token)
        pose = keyframe_lidar_pose(nusc, token)
        truth = sample_ground_truth(nusc, token, pose.ego_to_global)
        instances = [nusc.get("sample_annotation", t)["instance_token"] for t in truth.tokens]
        speeds = np.hypot(truth.boxes.velocities[:, 0], truth.boxes.velocities[:, 1])
        before = previous.get(sample["scene_token"], {})
        accelerations = np.array([(speed - before[i][0]) / ((pose.timestamp_us - before[i][1]) * 1e-6)
                                  if i in before else np.nan for i, speed in zip(instances, speeds)])
        references[token] = (truth.boxes, accelerations)
        previous[sample["scene_token"]] = {i: (s, pose.timestamp_us) for i, s in zip(instances, speeds)}
    return references


def matched_annotations(boxes, truth, min_score: float):
    """(box index, annotation index) pairs: each box scoring >= min_score with the closest annotation of its class
    within MATCH_DISTANCE_M."""
    for index in np.flatnonzero(boxes.scores >= min_score):
        same = np.flatnonzero(truth.labels == boxes.labels[index])
        if len(same):
            distance = np.linalg.norm(truth.centers[same, :2] - boxes.centers[index, :2], axis=1)
            if distance.min() <= MATCH_DISTANCE_M:
                yield int(index), int(same[int(np.argmin(distance))])


def grade(nusc, ego_boxes, tokens: List[str], references, smoothing: float, braking_smoothing: float) -> dict:
    """The module docstring's acceleration figures for one pair of weights (TrackerConfig's)."""
    config = TrackerConfig(smoothing=smoothing, braking_smoothing=braking_smoothing)
    tracked = tracked_agents(nusc, ego_boxes, tokens, config)
    estimates, truths = [], []
    for token in tokens:
        truth, reference = references[token]
        for index, nearest in matched_annotations(ego_boxes[token], truth, config.min_score):
            if np.isfinite(reference[nearest]):
                estimates.append(tracked[token].accelerations_mps2[index])
                truths.append(reference[nearest])
    estimates, truths = np.array(estimates), np.array(truths)
    braking = truths < BRAKING_MPS2
    return {"smoothing": smoothing, "braking_smoothing": braking_smoothing, "graded": int(len(truths)),
            "braking": int(braking.sum()),
            "rmse_mps2": float(np.sqrt(np.mean((estimates - truths) ** 2))),
            "rmse_of_zero_mps2": float(np.sqrt(np.mean(truths ** 2))),
            "mae_mps2": float(np.mean(np.abs(estimates - truths))),
            "mae_of_zero_mps2": float(np.mean(np.abs(truths))),
            "mean_estimate_when_braking_mps2": float(estimates[braking].mean()) if braking.any() else None,
            "mae_when_braking_mps2": float(np.abs(estimates - truths)[braking].mean()) if braking.any() else None,
            "mean_reference_when_braking_mps2": float(truths[braking].mean()) if braking.any() else None}


def grade_velocities(nusc, ego_boxes, tokens: List[str], references, standing_speed_mps: float) -> dict:
    """The module docstring's velocity figures for one standing speed: the detector's and the tracked ones."""
    config = TrackerConfig(standing_speed_mps=standing_speed_mps)
    tracked = tracked_agents(nusc, ego_boxes, tokens, config)
    errors = {"detector": [], "tracked": []}  # (K, 2) each: [|error|, |lateral error|]
    moving = []
    for token in tokens:
        truth = references[token][0]
        tracked_boxes = tracked[token].boxes
        for index, nearest in matched_annotations(ego_boxes[token], truth, config.min_score):
            reference = truth.velocities[nearest]
            moving.append(np.hypot(*reference) >= MOVING_MPS)
            for name, boxes in (("detector", ego_boxes[token]), ("tracked", tracked_boxes)):
                error = boxes.velocities[index] - reference
                errors[name].append([np.hypot(*error), abs(error[1])])
    moving = np.array(moving, dtype=bool)
    row = {"standing_speed_mps": standing_speed_mps, "graded_moving": int(moving.sum()),
           "graded_standing": int((~moving).sum())}
    for name, values in errors.items():
        values = np.array(values).reshape(-1, 2)
        for subset, selected in (("moving", moving), ("standing", ~moving)):
            row[f"{name}_{subset}_mae_mps"] = float(values[selected, 0].mean()) if selected.any() else None
            row[f"{name}_{subset}_lateral_mae_mps"] = float(values[selected, 1].mean()) if selected.any() else None
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("checkpoint")
    parser.add_argument("--dataroot", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--smoothing", default="1,0.5,0.3,0.2", help="comma-separated weights of the newest estimate")
    parser.add_argument("--braking-smoothing", default="0.3,0.5,1",
                        help="comma-separated weights of a newest estimate below the running one")
    parser.add_argument("--standing-speed", default="0,0.5,1,1.5",
                        help="comma-separated TrackerConfig.standing_speed_mps values [m/s]")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()

    from nuscenes.nuscenes import NuScenes

    from perception.eval.runner import DataOptions, load_split_predictions
    from perception.models import load_detector, model_inputs

    nusc = NuScenes(version=args.version, dataroot=args.dataroot, verbose=False)
    inputs = model_inputs(args.config)
    data = DataOptions(args.dataroot, args.version, args.split, inputs.lidar_sweeps, inputs.radar_sweeps,
                       inputs.image_size)
    predictions, tokens = load_split_predictions(load_detector(args.config, args.checkpoint), nusc, data)
    tokens = sorted(tokens, key=lambda token: nusc.get("sample", token)["timestamp"])
    references = reference_accelerations(nusc, tokens)
    rows = [grade(nusc, predictions.ego_boxes, tokens, references, float(weight), float(braking_weight))
            for weight in args.smoothing.split(",") for braking_weight in args.braking_smoothing.split(",")]
    print(f"{'smoothing':>9}{'braking':>8}{'graded':>8}{'RMSE':>8}{'of 0':>8}{'MAE':>8}{'of 0':>8}{'braking':>9}"
          f"{'est':>8}{'ref':>8}{'MAE':>8}")
    for row in rows:
        braking = row["mean_estimate_when_braking_mps2"]
        print(f"{row['smoothing']:>9.2f}{row['braking_smoothing']:>8.2f}{row['graded']:>8}{row['rmse_mps2']:>8.2f}"
              f"{row['rmse_of_zero_mps2']:>8.2f}{row['mae_mps2']:>8.2f}{row['mae_of_zero_mps2']:>8.2f}"
              f"{row['braking']:>9}"
              + (f"{braking:>8.2f}{row['mean_reference_when_braking_mps2']:>8.2f}{row['mae_when_braking_mps2']:>8.2f}"
                 if braking is not None else ""))
    velocity_rows = [grade_velocities(nusc, predictions.ego_boxes, tokens, references, float(speed))
                     for speed in args.standing_speed.split(",")]
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:  # before the tables: a printing error loses nothing
        json.dump({"command": " ".join(["benchmarks/tracking_accuracy.py", *sys.argv[1:]]), "rows": rows,
                   "velocity_rows": velocity_rows}, f, indent=2)

    def mae(value) -> str:  # None: no box of that subset was graded
        return "n/a" if value is None else f"{value:.2f}"

    print("velocity MAE [m/s], vector (lateral), of the detector's and of the tracked velocities")
    print(f"{'standing':>9}{'moving':>8}{'detector':>16}{'tracked':>16}{'standing':>9}{'detector':>16}{'tracked':>16}")
    for row in velocity_rows:
        cells = [f"{mae(row[f'{name}_{subset}_mae_mps'])} ({mae(row[f'{name}_{subset}_lateral_mae_mps'])})"
                 for subset in ("moving", "standing") for name in ("detector", "tracked")]
        print(f"{row['standing_speed_mps']:>9.2f}{row['graded_moving']:>8}{cells[0]:>16}{cells[1]:>16}"
              f"{row['graded_standing']:>9}{cells[2]:>16}{cells[3]:>16}")


if __name__ == "__main__":
    main()
