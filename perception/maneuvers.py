"""The ego maneuvers a decision or a label names, as used everywhere in the project (the decision layer, the labels
derived from the logged drive, the synthetic world's scripted labels, the planning head's classes), and the time
grid of a plan."""
from __future__ import annotations

import enum

PLAN_STEP_S = 0.5
"""Spacing of a plan's waypoints and of the logged poses the maneuver labels read [s] (nuScenes keyframes: 2 Hz)."""
PLAN_HORIZON_STEPS = 6
"""A plan's waypoints: PLAN_STEP_S, 2 PLAN_STEP_S, ..., 3 s ahead (the horizon of UniAD's and VAD's L2)."""


class Maneuver(enum.Enum):
    """The ego's maneuver for the next seconds; the definition order is the planning head's class order."""

    KEEP_LANE = "KEEP_LANE"
    FOLLOW = "FOLLOW"
    BRAKE = "BRAKE"
    STOP = "STOP"
    CHANGE_LANE_LEFT = "CHANGE_LANE_LEFT"
    CHANGE_LANE_RIGHT = "CHANGE_LANE_RIGHT"

    @property
    def is_braking(self) -> bool:
        """BRAKE or STOP: the maneuvers the critical-miss and false-brake rates count."""
        return self in (Maneuver.BRAKE, Maneuver.STOP)

    @property
    def is_lane_change(self) -> bool:
        """CHANGE_LANE_LEFT or CHANGE_LANE_RIGHT: the maneuvers the lane-change precision and recall count."""
        return self in (Maneuver.CHANGE_LANE_LEFT, Maneuver.CHANGE_LANE_RIGHT)


__all__ = ["Maneuver", "PLAN_HORIZON_STEPS", "PLAN_STEP_S"]
