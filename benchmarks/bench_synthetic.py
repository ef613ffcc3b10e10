"""Speed of the synthetic world generator (perception.datasets.synthetic), per sensor frame and per keyframe.

    .venv/bin/python benchmarks/bench_synthetic.py [--samples-per-scene 40] [--image-size 800x450] [--json out.json]

Records one scene (index 0, seed 0) into a temporary folder with one ray-casting thread, timing every sensor
frame: wall and CPU seconds (time.process_time, all threads of this process) per modality (LiDAR sweep, radar
frame, camera image; each includes posing the world, ray casting, the sensor model and writing the file), the
scene set-up (road, traffic, Frenet grid) and the tables. Extrapolates to the issue's target (10 scenes x 40
keyframes, all sweeps, 6 cameras at 800x450) as 10 x the scene's CPU time scaled to 40 keyframes (x 40 /
``--samples-per-scene``) shared by 2 worker processes (``--workers 2``: one scene per process, nothing shared),
i.e. assuming two otherwise idle cores, at the ``--image-size`` measured (the target's by default; the report's
``target_estimate`` says which). Also times the tiny test world (2 scenes x 4 keyframes at 320x180,
tests/conftest.py) end to end in this process.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from perception.cli import parse_image_size, positive_int
from perception.datasets.synthetic import generate_world
from perception.datasets.synthetic.scene import build_scene
from perception.datasets.synthetic.world import namespace
from perception.datasets.synthetic.writer import SceneRecorder, SensorFrame
from perception.sensors import modality_of

TARGET_SCENES, TARGET_KEYFRAMES, TARGET_CORES = 10, 40, 2


def time_scene(samples_per_scene: int, image_size, out_dir: Path) -> Dict[str, object]:
    """Wall and CPU seconds of recording scene 0, split by stage and modality."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    model = build_scene(0, 0, samples_per_scene)
    recorder = SceneRecorder(model, out_dir, namespace("bench", 0), 0, samples_per_scene, image_size, num_threads=1)
    setup = (time.perf_counter() - wall0, time.process_time() - cpu0)
    per_frame: Dict[str, List[tuple]] = {"lidar": [], "radar": [], "camera": []}
    last = [time.perf_counter(), time.process_time()]

    def on_frame(frame: SensorFrame) -> None:
        now = (time.perf_counter(), time.process_time())
        per_frame[modality_of(frame.channel)].append((now[0] - last[0], now[1] - last[1]))
        last[:] = now

    recorder.record(on_frame=on_frame)
    total = (time.perf_counter() - wall0, time.process_time() - cpu0)
    return {"setup": setup, "per_frame": per_frame, "total": total}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples-per-scene", type=positive_int, default=40)
    parser.add_argument("--image-size", type=parse_image_size, default=(800, 450))
    parser.add_argument("--tiny-repeats", type=positive_int, default=3)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        generate_world(Path(tmp) / "warm", 1, 1, 0, (32, 18), progress=False)  # Numba compiles (and caches)
        scene = time_scene(args.samples_per_scene, args.image_size, Path(tmp) / "scene")
        tiny = []
        for repeat in range(args.tiny_repeats):
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            generate_world(Path(tmp) / f"tiny{repeat}", 2, 4, 0, (320, 180), progress=False)
            tiny.append((time.perf_counter() - start_wall, time.process_time() - start_cpu))

    report: Dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, load average "
                   f"{os.getloadavg()[0]:.1f} at the end",
        "scene": f"1 scene x {args.samples_per_scene} keyframes, cameras {args.image_size[0]}x{args.image_size[1]}",
    }
    for kind, times in scene["per_frame"].items():
        report[f"{kind}_frames"] = len(times)
        report[f"{kind}_ms_median_wall"] = 1e3 * statistics.median(t[0] for t in times)
        report[f"{kind}_ms_median_cpu"] = 1e3 * statistics.median(t[1] for t in times)
        report[f"{kind}_s_total_cpu"] = sum(t[1] for t in times)
    report["setup_s_wall_cpu"] = scene["setup"]
    report["scene_s_wall"], report["scene_s_cpu"] = scene["total"]
    report["keyframes_per_s_cpu"] = args.samples_per_scene / scene["total"][1]
    report["keyframes_per_s_wall"] = args.samples_per_scene / scene["total"][0]
    report["target_estimate"] = (f"{TARGET_SCENES} scenes x {TARGET_KEYFRAMES} keyframes, cameras "
                                 f"{args.image_size[0]}x{args.image_size[1]} (the target's: 800x450), "
                                 f"{TARGET_CORES} worker processes")
    report["target_estimate_s"] = (TARGET_SCENES * scene["total"][1] * TARGET_KEYFRAMES / args.samples_per_scene
                                   / TARGET_CORES)
    report["tiny_world_s_wall_median"] = statistics.median(t[0] for t in tiny)
    report["tiny_world_s_cpu_median"] = statistics.median(t[1] for t in tiny)
    for key, value in report.items():
        print(f"{key:28s} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
