"""The scripts of benchmarks/ on stub work: logged_drive_vetoes' classification worked by hand."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


VETOES = {
    "KEEP_LANE: refused CHANGE_LANE_LEFT, blocked by car #2 8.0 m behind in the left lane at 14.0 m/s; on the ego's "
    "current path at the plan's speeds, proposed plan kept; no agent in the path":
        "1: lane change cuts in front of a follower",
    "KEEP_LANE: refused CHANGE_LANE_LEFT, no left lane on the lane map; on the ego's current path at the plan's "
    "speeds, proposed plan kept; closest in the path: car #1 at 8.0 m/s, 20.0 m ahead, TTC 10.0 s":
        "1: lane change towards a side with no lane on the lane map",
    "BRAKE: refused the KEEP_LANE plan's move into the right lane, no right lane on the lane map; on the ego's "
    "current path at the plan's speeds, slowed the proposed KEEP_LANE plan along its path, braking at 2.0 m/s^2: "
    "car #1 at 0.0 m/s, 6.0 m ahead collides with the plan at 1.5 s":
        "1: lane change towards a side with no lane on the lane map",
    "BRAKE: slowed the proposed KEEP_LANE plan along its path, braking at 2.0 m/s^2: car #3 at 5.0 m/s, 9.0 m ahead "
    "collides with the plan at 1.5 s": "2: collision",
    "STOP: vetoed the proposed KEEP_LANE plan: car #3 at 2.0 m/s, 4.0 m ahead leaves 2.1 m of the 5.0 m braking "
    "margin at 1.0 s; braking at 8.0 m/s^2; even so truck #4 at 9.0 m/s, 3.0 m behind collides with the plan at "
    "2.0 s": "3: braking margin",
}


def test_logged_drive_vetoes_are_classified_by_the_safety_layer_s_words():
    """(A refusal for want of a lane counted as check 1's follower; a braking-margin veto whose fallback still met
    a collision counted as check 2.)"""
    vetoes = load_script("logged_drive_vetoes")
    assert {reason: vetoes.veto_check(reason) for reason in VETOES} == VETOES
    with pytest.raises(ValueError, match="none of the safety layer's words"):
        vetoes.veto_check("STOP: no data from the detector's sensors (lidar)")
