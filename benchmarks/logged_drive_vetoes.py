"""How often the safety layer vetoes the logged drive, and why: an independent oracle for false vetoes. The logged
drive is a safe plan (the synthetic world's never collides), so check_plan applied to it (its future positions
with the maneuver label derived from them, against the keyframe's ground truth:
perception.eval.logged_drive.logged_drive_verdict) should keep it; every veto is a flaw of the rules (or of the
agents' constant-velocity prediction). Prints each veto (scene, label, reason) and the counts by check.

    python benchmarks/logged_drive_vetoes.py --dataroot datasets/synthetic --version v1.0-synth --split synth_train
"""
from __future__ import annotations

import argparse
from collections import Counter

from nuscenes.nuscenes import NuScenes

from perception.datasets.splits import split_sample_tokens
from perception.eval.logged_drive import logged_drive_verdict

REFUSALS = (("blocked by", "1: lane change cuts in front of a follower"),
            ("lane on the lane map", "1: lane change towards a side with no lane on the lane map"))
HAZARDS = (("collides with the plan", "2: collision"), ("braking margin", "3: braking margin"))
"""Words of the safety layer's reasons (perception.decision.safety.check_plan) -> the check that vetoed: a refused
lane change ("refused X, blocked by <followers>; ..." or "refused X, no left lane on the lane map; ...") and the
hazards of checks 2 and 3 ("<agent> collides with the plan at ..." or "<agent> leaves 1.2 m of the 4.5 m braking
margin at ...")."""


def veto_check(reason: str) -> str:
    """The check that vetoed, by the wording of a vetoed plan's ``reason``: a refusal's (check 1, whatever the plan
    put in its place then meets), else the first hazard named (check 2's or 3's; an "even so ..." after it names
    what the veto's own plan still meets). ValueError on a reason in none of these words."""
    words = REFUSALS if "refused " in reason else HAZARDS
    found = [(reason.find(text), check) for text, check in words if text in reason]
    if not found:
        raise ValueError(f"a veto's reason in none of the safety layer's words: {reason!r}")
    return min(found)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataroot", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--split", action="append", required=True, help="repeatable")
    args = parser.parse_args()
    nusc = NuScenes(version=args.version, dataroot=args.dataroot, verbose=False)
    counts, checked = Counter(), 0
    for split in args.split:
        for token in split_sample_tokens(nusc, split):
            verdict = logged_drive_verdict(nusc, token)
            if verdict is None:
                continue
            checked += 1
            if verdict.vetoed:
                check = veto_check(verdict.reason)
                counts[check] += 1
                scene = nusc.get("scene", nusc.get("sample", token)["scene_token"])["name"]
                print(f"{scene} {token}: {verdict.reason}")
    vetoed = sum(counts.values())
    by_check = "".join(f", check {name} {count}" for name, count in sorted(counts.items()))
    print(f"{checked} labelled keyframes, logged drive vetoed on {vetoed} ({vetoed / max(checked, 1):.1%}){by_check}")


if __name__ == "__main__":
    main()
