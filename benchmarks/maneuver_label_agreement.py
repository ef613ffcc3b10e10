"""How well the maneuver labels derived from a synthetic world's logged drive (perception.datasets.maneuver_labels)
agree with the maneuvers its script drove (``<version>/ego_maneuvers.json``): with the world's lane map and from the
poses alone, per world: the keyframes labelled, the share whose label is the script's, and the lane changes named
and scripted with their precision and recall.

    python benchmarks/maneuver_label_agreement.py --dataroot datasets/synthetic --dataroot datasets/synthetic_seed101 \\
        --version v1.0-synth
"""
from __future__ import annotations

import argparse

from nuscenes.nuscenes import NuScenes

from perception.datasets.maneuver_labels import logged_maneuver, read_scripted_maneuvers
from perception.eval.report import markdown_table


def agreement_row(labels: dict, scripted: dict) -> list:
    """[labelled, agreement, lane changes named / scripted, precision, recall] of {token: label} (None: unlabelled)
    against {token: scripted maneuver}."""
    kept = [token for token, label in labels.items() if label is not None]
    named = [token for token in kept if labels[token].is_lane_change]
    driven = [token for token in kept if scripted[token].is_lane_change]
    share = lambda tokens: (f"{sum(labels[t] is scripted[t] for t in tokens) / len(tokens):.2f}"  # noqa: E731
                            if tokens else "n/a")
    return [len(kept), share(kept), f"{len(named)} / {len(driven)}", share(named), share(driven)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataroot", action="append", required=True, help="a synthetic world (repeatable)")
    parser.add_argument("--version", default="v1.0-synth")
    args = parser.parse_args()
    rows = []
    for dataroot in args.dataroot:
        nusc = NuScenes(version=args.version, dataroot=dataroot, verbose=False)
        scripted = read_scripted_maneuvers(f"{dataroot}/{args.version}")
        for use_lane_map, labelled_by in ((True, "lane map"), (False, "poses alone")):
            labels = {sample["token"]: logged_maneuver(nusc, sample["token"], use_lane_map=use_lane_map)
                      for sample in nusc.sample}
            rows.append([dataroot, labelled_by, *agreement_row(labels, scripted)])
    print(markdown_table(["world", "lane changes by", "keyframes labelled", "agree with the script",
                          "lane changes named / scripted", "precision", "recall"], rows))


if __name__ == "__main__":
    main()
