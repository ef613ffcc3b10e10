"""Generates the synthetic nuScenes-format world (see perception.datasets.synthetic) and optionally a preview
picture of one of its keyframes."""
from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

import cv2

from perception.cli import add_debug_option, check_output_path, parse_image_size, positive_int, seed, tool_main
from perception.paths import DATA_ROOT


@tool_main
def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(DATA_ROOT / "synthetic"), help="dataroot to write")
    parser.add_argument("--scenes", type=positive_int, default=10, help="number of scenes")
    parser.add_argument("--samples-per-scene", type=positive_int, default=40, help="keyframes (2 Hz) per scene")
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--image-size", type=parse_image_size, default=(800, 450), help="camera images, WxH")
    parser.add_argument("--version", default="v1.0-synth", help="table folder name (default: %(default)s)")
    parser.add_argument("--workers", type=positive_int, default=1, help="scenes recorded in parallel processes")
    parser.add_argument("--population", default="default",
                        help="who is where and their radar cross-sections: 'default', or 'nuscenes' (nuScenes' "
                             "class mix, measured cross-sections, every third scene down a car park's aisle; "
                             "README)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an unfinished world in --out (a run stopped while generating it, with the "
                             "same arguments): its recorded scenes are kept, the others recorded")
    parser.add_argument("--preview", nargs="?", const="", default=None, metavar="PNG",
                        help="also write a picture of the first validation keyframe (default: OUT/preview.png)")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    check_output_path(parser, "--out", args.out)
    if args.preview:  # (the default, OUT/preview.png, goes where --out does)
        check_output_path(parser, "--preview", args.preview, folder=False)
        if not cv2.haveImageWriter(args.preview):
            parser.error(f"--preview {args.preview}: OpenCV writes no picture of that extension (give a .png)")
    from perception.datasets.synthetic import VAL_SPLIT, generate_world, unfinished_world

    unfinished = unfinished_world(args.out)
    if os.path.isdir(args.out) and os.listdir(args.out) and not (args.resume and unfinished):
        parser.error(f"--out {args.out}: " + ("holds an unfinished world: add --resume to continue it" if unfinished
                                              else "holds files already and no unfinished world to resume (a world "
                                                   "written over another would keep its sensor files beside the new "
                                                   "tables); choose another folder or remove it"))

    dataroot = generate_world(args.out, args.scenes, args.samples_per_scene, args.seed, args.image_size,
                              args.version, progress=True, workers=args.workers, population=args.population,
                              resume=args.resume)
    print(f"wrote {dataroot}")
    if args.preview is not None:
        from perception.datasets.records import open_nuscenes
        from perception.datasets.splits import split_sample_tokens
        from perception.viz.preview import render_preview

        nusc = open_nuscenes(str(dataroot), args.version)
        path = args.preview or os.path.join(str(dataroot), "preview.png")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if not cv2.imwrite(path, render_preview(nusc, split_sample_tokens(nusc, VAL_SPLIT)[0])):
            raise ValueError(f"{path}: OpenCV could not write the preview")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
