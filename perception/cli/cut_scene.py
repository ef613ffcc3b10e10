"""Cut a scene in two at a keyframe into a new data root, with a custom split for each part (see
perception.datasets.scene_cut): the head to fine-tune on, the tail held out to choose the recipe.

    python tools/cut_scene.py ../shared/fixtures/nuscenes-scene0916 v1.0-mini scene-0916-a 17 /tmp/scene0916_cut \\
        --fit-split real_fit --held-split real_held
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from perception.cli import (add_debug_option, check_data_root, check_output_path, positive_int, resolve_input_paths,
                            tool_main)
from perception.datasets.scene_cut import cut_scene


@tool_main
def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataroot", help="nuScenes-format data root")
    parser.add_argument("version", help="its version folder, e.g. v1.0-mini")
    parser.add_argument("scene", help="the scene's name, e.g. scene-0916-a")
    parser.add_argument("first_held_keyframe", type=positive_int,
                        help="0-based index of the first keyframe held out, from 1 (the part before the cut is not "
                             "empty)")
    parser.add_argument("out", help="the new data root to write (must not exist)")
    parser.add_argument("--fit-split", required=True, help="custom split naming the part before the cut")
    parser.add_argument("--held-split", required=True, help="custom split naming the part from the cut on")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    resolve_input_paths(args, "dataroot")
    check_data_root(parser, args.dataroot, args.version)
    check_output_path(parser, "OUT", args.out)
    out = cut_scene(args.dataroot, args.version, args.scene, args.first_held_keyframe, args.out,
                    args.fit_split, args.held_split)
    print(f"wrote {out}: splits {args.fit_split!r} (keyframes 0-{args.first_held_keyframe - 1} of {args.scene}) "
          f"and {args.held_split!r} (keyframes {args.first_held_keyframe} on)")


if __name__ == "__main__":
    main()
