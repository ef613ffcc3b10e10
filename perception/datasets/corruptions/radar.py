"""Radar corruptions (parameters per severity: perception.datasets.corruptions.CORRUPTIONS)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from perception.datasets.frame import Frame
from perception.sensors import RADAR_CHANNELS

GHOST_RANGE_FACTOR = (1.2, 2.0)
"""A multipath ghost appears along a real target's direction from the ego origin, at this factor (uniform) of
its range: the signal took a longer, reflected path."""
GHOST_RCS_LOSS_DB = 10.0
"""A ghost's RCS is its target's less this [dB] (the extra bounce loses power)."""


def _with_points(frame: Frame, points: np.ndarray) -> Frame:
    return replace(frame, radar=replace(frame.radar, points=points.astype(np.float32)))


def missing(frame: Frame, level: None, rng: np.random.Generator, seed: int) -> Frame:
    """No radar: recorded in ``Frame.missing`` like a sensor group that is absent."""
    return replace(frame, radar=None, missing=frame.missing | {"radar"} | set(RADAR_CHANNELS))


def ghost_targets(frame: Frame, fraction: float, rng: np.random.Generator, seed: int) -> Frame:
    """Adds round(fraction * M) multipath ghosts: copies of random radar points moved along their direction from
    the ego origin (in x, y) to a factor in GHOST_RANGE_FACTOR of their range, RCS less GHOST_RCS_LOSS_DB,
    velocity kept. The original points come first, unchanged."""
    if frame.radar is None or len(frame.radar.points) == 0:
        return frame
    points = frame.radar.points
    ghosts = points[rng.integers(0, len(points), int(round(fraction * len(points))))].astype(np.float64)
    ghosts[:, :2] *= rng.uniform(*GHOST_RANGE_FACTOR, len(ghosts))[:, None]
    ghosts[:, 3] -= GHOST_RCS_LOSS_DB
    return _with_points(frame, np.concatenate([points.astype(np.float64), ghosts]))


def velocity_noise(frame: Frame, std_m_s: float, rng: np.random.Generator, seed: int) -> Frame:
    """Gaussian noise of ``std_m_s`` added to each point's vx_comp and vy_comp."""
    if frame.radar is None:
        return frame
    points = frame.radar.points.astype(np.float64)
    points[:, 4:6] += rng.normal(0.0, std_m_s, (len(points), 2))
    return _with_points(frame, points)
