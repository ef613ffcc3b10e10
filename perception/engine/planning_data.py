"""The planners' targets from the logged drive (their inputs, from the past only: perception.decision.learned).

``logged_targets``: PlanningTargets of keyframes: the logged ego positions at the plan's step times (steps the log
does not cover are masked, never padded); the maneuver label derived from the log
(perception.datasets.maneuver_labels; -1 where the log is too short); lane-change feasibility left / right: the rule
planner's (perception.decision.planner) on the keyframe's ground-truth boxes and its map's lanes where the data has
a lane map (the lane exists and its gap check passes; the log shows only the lane changes taken, not the ones that
were possible), from the keyframe's inputs as evaluation reads them (perception.eval.logged_drive.keyframe_inputs).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from nuscenes.nuscenes import NuScenes

from perception.datasets.ego_log import ego_track
from perception.datasets.maneuver_labels import logged_maneuver
from perception.decision import PlannerConfig, decide
from perception.decision.learned import MANEUVERS
from perception.eval.logged_drive import keyframe_inputs
from perception.models.planning_types import PlanningTargets


def logged_targets(nusc: NuScenes, sample_tokens: Sequence[str], config: PlannerConfig = PlannerConfig()
                   ) -> PlanningTargets:
    """The targets of the keyframes (module docstring), at config.step_times_s."""
    trajectories, valids, maneuvers, feasible = [], [], [], []
    for token in sample_tokens:
        xy, _, valid = ego_track(nusc, token, config.step_times_s)
        label = logged_maneuver(nusc, token)
        _, lanes, ego, truth = keyframe_inputs(nusc, token)  # as evaluation's planners start from them
        gaps = decide(truth, ego, config, lanes=lanes)
        trajectories.append(np.nan_to_num(xy).astype(np.float32))
        valids.append(valid)
        maneuvers.append(-1 if label is None else MANEUVERS.index(label))
        feasible.append([float(gaps.lane_change_left_ok), float(gaps.lane_change_right_ok)])
    count = len(sample_tokens)
    return PlanningTargets(torch.from_numpy(np.stack(trajectories)), torch.from_numpy(np.stack(valids)),
                           torch.tensor(maneuvers, dtype=torch.int64), torch.tensor(feasible, dtype=torch.float32),
                           torch.ones(count, 2, dtype=torch.bool))
