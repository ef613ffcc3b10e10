"""Plans without perception, the baselines every planner is graded beside."""
from __future__ import annotations

import numpy as np

from perception.decision.ego_state import EgoState
from perception.decision.types import PlannerConfig


def constant_velocity_plan(ego: EgoState, config: PlannerConfig = PlannerConfig()) -> np.ndarray:
    """(horizon_steps, 2) waypoints [x, y] [m] at config.step_times_s: the ego keeps its current speed (reversing
    counts as standing) straight along its heading."""
    distance = max(ego.speed_mps, 0.0) * config.step_times_s
    return np.stack([distance, np.zeros_like(distance)], axis=1)
