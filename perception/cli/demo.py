"""The main job on the embedded default: a small synthetic world the shipped models never saw (generated on the
first run), then the three things users run, each through its own tool so the printed commands can be reused:
offline evaluation with the official nuScenes metrics and the decisions graded against the logged drive, a replay
of the validation scene through the whole stack (detections, the learned plan through the safety layer, video,
MCAP), and the stage-by-stage latency benchmark; plus LiDAR points drawn on the six cameras. The model is the
shipped planning model (the shipped detector trained further with the learned planning head)."""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import cv2
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import LidarPointCloud

from perception.cli import add_debug_option, check_output_path, positive_int, tool_main
from perception.datasets.records import SPLITS_FILE, open_nuscenes, project_point_sensor_to_camera, sample_data_path
from perception.datasets.splits import split_sample_tokens, split_scenes
from perception.paths import DATA_ROOT, REPO_ROOT
from perception.sensors import CAMERA_CHANNELS, LIDAR_CHANNEL
from perception.viz.camera import draw_points, mosaic

DEMO_WORLD = dict(num_scenes=2, samples_per_scene=10, seed=2026, image_size=(256, 144), version="v1.0-synth")
"""The demo's world: seed 2026, unlike the training world's 7, so the evaluation is on scenes the model never saw;
the last scene is the synth_val split. Images at the shipped model's input size."""
DEMO_SPLIT = "synth_val"
CONFIG = REPO_ROOT / "configs" / "fusion_tiny_planning.py"
CHECKPOINT = REPO_ROOT / "checkpoints" / "fusion_tiny_planning.pth"
EGO_MLP = REPO_ROOT / "checkpoints" / "ego_mlp.pth"
"""The ego-state-only planner graded beside the learned one (the planning model's ego branch started from it)."""


def render_lidar_on_cameras(nusc: NuScenes, sample_token: str):
    """(H, W, 3) BGR mosaic of the six cameras of one sample with its LiDAR points drawn on each."""
    sample = nusc.get("sample", sample_token)
    lidar_token = sample["data"][LIDAR_CHANNEL]
    points = LidarPointCloud.from_file(sample_data_path(nusc, lidar_token)).points[:3].T
    images = {}
    for channel in CAMERA_CHANNELS:
        camera_token = sample["data"].get(channel)
        if camera_token is None:
            continue
        image = cv2.imread(sample_data_path(nusc, camera_token))
        projection = project_point_sensor_to_camera(nusc, lidar_token, camera_token, points)
        visible = projection.visible
        images[channel] = draw_points(image, projection.pixels[visible], projection.depth[visible])
    return mosaic(images, CAMERA_CHANNELS)


def ensure_demo_world(dataroot: Path, version: str) -> Path:
    """``dataroot`` holding a world of ``version``; the demo world (DEMO_WORLD, at that version) generated when the
    folder is absent or empty (into a temporary folder that is renamed when complete, so an interrupted run starts
    over rather than reading half a world). ValueError naming the folder when it holds files but no such world:
    nothing of it is removed."""
    if (dataroot / version / SPLITS_FILE).is_file():
        print(f"demo world: {dataroot} (already generated)")
        return dataroot
    if dataroot.exists() and (not dataroot.is_dir() or any(dataroot.iterdir())):
        raise ValueError(f"{dataroot}: holds files but no {version} world with {SPLITS_FILE}; the demo generates its "
                         f"world only into an absent or empty folder (give another --dataroot)")
    from perception.datasets.synthetic import generate_world

    partial = dataroot.with_name(dataroot.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    world = dict(DEMO_WORLD, version=version)
    print(f"generating the demo world into {dataroot}: {world}")
    generate_world(partial, workers=min(2, os.cpu_count() or 1), **world)
    if dataroot.exists():
        dataroot.rmdir()  # empty, as checked above
    os.replace(partial, dataroot)
    return dataroot


def run_step(title: str, tool: str, main: Callable[[List[str]], object], argv: List[str]) -> float:
    """Prints the equivalent command line, runs the tool's main(argv), returns its wall time [s]. The tool's
    errors reach the demo's own tool_main (the undecorated main), which reports them."""
    print(f"\n== {title}\n$ python tools/{tool}.py {shlex.join(argv)}", flush=True)
    start = time.perf_counter()
    main.__wrapped__(argv)
    return time.perf_counter() - start


@tool_main
def main(argv: Optional[Sequence[str]] = None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataroot", default=str(DATA_ROOT / "synthetic-demo"),
                        help="a nuScenes-format world with a synth_val split (the demo world generated there when "
                             "the folder is absent or empty; default: %(default)s)")
    parser.add_argument("--version", default=DEMO_WORLD["version"],
                        help="its version (the generated world's too; default: %(default)s)")
    parser.add_argument("--out", default=str(REPO_ROOT / "outputs" / "demo"), help="output folder")
    parser.add_argument("--benchmark-iters", type=positive_int, default=10,
                        help="timed frames of the latency benchmark")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    check_output_path(parser, "--out", args.out)
    started = time.perf_counter()
    from perception.cli import benchmark, replay, test

    world_started = time.perf_counter()
    dataroot = ensure_demo_world(Path(args.dataroot), args.version)
    world_s = time.perf_counter() - world_started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    nusc = open_nuscenes(str(dataroot), args.version)
    scene = split_scenes(nusc, DEMO_SPLIT)[0]
    picture = out / "lidar_on_cameras.jpg"
    cv2.imwrite(str(picture), render_lidar_on_cameras(nusc, split_sample_tokens(nusc, DEMO_SPLIT)[0]))
    print(f"LiDAR on the six cameras: {picture}")

    data = ["--dataroot", str(dataroot), "--version", args.version]
    model = [str(CONFIG), str(CHECKPOINT)]
    seconds = {
        "evaluation": run_step("1. offline evaluation: official nuScenes metrics, decisions against the logged drive",
                               "test", test.main,
                               model + data + ["--split", DEMO_SPLIT, "--ego-mlp", str(EGO_MLP),
                                               "--out", str(out / "evaluation")]),
        "replay": run_step("2. replay of a logged drive in timestamp order: detections, decisions, video, MCAP",
                           "replay", replay.main, model + data + ["--scene", scene, "--out", str(out / "replay")]),
        "benchmark": run_step("3. latency, stage by stage (CPU)", "benchmark", benchmark.main,
                              model + data + ["--scene", scene, "--json", str(out / "benchmark.json"),
                                              "--iters", str(args.benchmark_iters), "--warmup", "3",
                                              "--sweeps", "1,5,10", "--curve-iters", "3", "--kernel-iters", "5"]),
    }
    seconds = {"world": world_s, **seconds}
    print(f"\ndemo done in {time.perf_counter() - started:.0f} s: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    print(f"outputs: {out} (evaluation/report.md, replay/replay.mp4, replay/replay.mcap, benchmark.json, "
          "benchmark.png)")
    return seconds


if __name__ == "__main__":
    main()
