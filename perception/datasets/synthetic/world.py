"""``generate_world``: writes a whole synthetic nuScenes-format dataset (tables, splits, sensor files, maps)."""
from __future__ import annotations

import multiprocessing
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Tuple, Union

import numpy as np
from tqdm import tqdm

from perception.datasets.lane_map import LaneCentres, write_lane_centres
from perception.datasets.maneuver_labels import write_scripted_maneuvers
from perception.datasets.synthetic.scene import build_scene, check_population, scene_name
from perception.datasets.records import TABLE_NAMES
from perception.datasets.synthetic.tables import fixed_tables, write_tables
from perception.datasets.synthetic.writer import SceneRecorder, sensor_schedule
from perception.jsonfile import check_same_run, read_json, write_json_atomic
from perception.maneuvers import Maneuver

TRAIN_SPLIT, VAL_SPLIT = "synth_train", "synth_val"
VAL_FRACTION = 0.2
SCENE_RECORDS = "scene_records"
"""The folder beside an unfinished world's files: world.json (generate_world's arguments) and, for each scene
recorded so far, scene_<index>.json (its table rows, scripted maneuvers and lane maps, every value as recorded),
written once the scene's sensor files are. A resumed generate_world records only the other scenes; the folder is
removed once the world's tables are written."""
WORLD_FILE = "world.json"


def unfinished_world(out_dir: Union[str, Path]) -> bool:
    """Whether ``out_dir`` holds a world generate_world began and did not finish (SCENE_RECORDS' WORLD_FILE)."""
    return (Path(out_dir) / SCENE_RECORDS / WORLD_FILE).is_file()


def _scene_path(records: Path, index: int) -> Path:
    return records / f"scene_{index}.json"

SceneResult = Tuple[Dict[str, List[dict]], Dict[str, Maneuver], Dict[str, LaneCentres]]
"""A recorded scene: its table rows by table name, its scripted maneuvers by sample token, its lanes by log."""


def scenes_by_split(num_scenes: int) -> Dict[str, List[str]]:
    """The custom splits: the last max(1, round(0.2 * num_scenes)) scenes are synth_val, the rest synth_train."""
    num_val = max(1, round(VAL_FRACTION * num_scenes))
    names = [scene_name(i) for i in range(num_scenes)]
    return {TRAIN_SPLIT: names[:num_scenes - num_val], VAL_SPLIT: names[num_scenes - num_val:]}


def namespace(version: str, seed: int) -> str:
    """The prefix of every token of a world, so worlds of different seeds or versions share no token."""
    return f"{version}/seed={seed}"


def _check_arguments(num_scenes: int, samples_per_scene: int, image_size: Sequence[int], version: str,
                     workers: int, population: str) -> None:
    if num_scenes < 1:
        raise ValueError(f"num_scenes must be >= 1, got {num_scenes}")
    if samples_per_scene < 1:
        raise ValueError(f"samples_per_scene must be >= 1, got {samples_per_scene}")
    if len(image_size) != 2 or min(image_size) < 16:
        raise ValueError(f"image_size must be (width, height) of at least 16 pixels each, got {image_size}")
    separators = [sep for sep in (os.sep, os.altsep) if sep]
    if version in ("", ".", "..", SCENE_RECORDS) or any(sep in version for sep in separators):
        raise ValueError(f"version must name one folder inside the dataroot (not '.', '..' or {SCENE_RECORDS!r}, "
                         f"no path separator), got {version!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    check_population(population)


def _save_scene(path: Path, result: SceneResult) -> None:
    """A recorded scene as SCENE_RECORDS' scene_<index>.json (floats as they are, lanes unrounded)."""
    tables, maneuvers, lanes = result
    write_json_atomic(str(path), {
        "tables": tables, "maneuvers": {token: maneuver.value for token, maneuver in maneuvers.items()},
        "lanes": {token: {"width_m": lane.width_m, "lines": [line.tolist() for line in lane.lines]}
                  for token, lane in lanes.items()}})


def _load_scene(path: Path) -> SceneResult:
    """The scene _save_scene wrote, the same values."""
    record = read_json(str(path))
    return (record["tables"], {token: Maneuver(value) for token, value in record["maneuvers"].items()},
            {token: LaneCentres(tuple(np.asarray(line, dtype=np.float64) for line in lane["lines"]), lane["width_m"])
             for token, lane in record["lanes"].items()})


def _scene_records(records: Path, arguments: Dict[str, Any], resume: bool) -> Dict[int, SceneResult]:
    """The scenes an unfinished world of the same ``arguments`` recorded in ``records`` (with ``resume``; a
    ValueError naming world.json when they differ), else none: the folder made anew with world.json."""
    world = records / WORLD_FILE
    if resume and world.is_file():
        check_same_run(str(world), arguments, "the scenes recorded there", "generate into another folder")
        return {index: _load_scene(_scene_path(records, index)) for index in range(arguments["num_scenes"])
                if _scene_path(records, index).is_file()}
    shutil.rmtree(records, ignore_errors=True)
    records.mkdir(parents=True)
    write_json_atomic(str(world), arguments, indent=1)
    return {}


def _record_scene(args: Tuple) -> SceneResult:
    out_dir, index, samples_per_scene, seed, image_size, version, num_threads, population = args
    model = build_scene(seed, index, samples_per_scene, population)
    recorder = SceneRecorder(model, out_dir, namespace(version, seed), seed, samples_per_scene, image_size,
                             num_threads)
    return recorder.record(), recorder.scripted_maneuvers(), recorder.lane_centres()


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


@contextmanager
def _threads_of_spawned_processes(threads: int) -> Iterator[None]:
    """Processes spawned inside start with ``threads`` OpenMP / BLAS / Numba threads (variables the user set are
    kept). Without it every worker's numpy starts one OpenBLAS thread per core, and their spinning cost ~15% of a
    2-worker run on 2 cores."""
    added = [name for name in THREAD_VARIABLES if name not in os.environ]
    os.environ.update({name: str(threads) for name in added})
    try:
        yield
    finally:
        for name in added:
            del os.environ[name]


def generate_world(out_dir: Union[str, Path], num_scenes: int, samples_per_scene: int, seed: int,
                   image_size: Tuple[int, int] = (800, 450), version: str = "v1.0-synth", progress: bool = True,
                   workers: int = 1, population: str = "default", resume: bool = False) -> Path:
    """Generates ``num_scenes`` scenes of ``samples_per_scene`` keyframes (2 Hz, with all sweeps) into
    ``out_dir`` and returns it (the dataroot): ``<version>/*.json`` (the 13 nuScenes tables), ``<version>/
    splits.json`` (synth_train / synth_val), ``<version>/ego_maneuvers.json`` (the ego's scripted maneuver per
    sample token, ``EgoPlan.scripted_maneuver``), ``<version>/lane_centres.json`` (each scene's lane map,
    perception.datasets.lane_map), ``samples/``, ``sweeps/``, ``maps/``.

    ``image_size`` is (width, height) of the camera images. The same arguments give byte-identical files;
    ``workers`` > 1 records scenes in parallel processes (same output). ``population`` (traffic.POPULATIONS):
    "default", or "nuscenes" (classes in nuScenes' train-split shares, parked-car rows, radar cross-sections from
    measurements, every third scene a drive down a car park's aisle; each scene's description then says
    "; population=nuscenes", and "; car park aisle" for those drives). ``resume``: continue an unfinished world
    in ``out_dir`` generated with the same arguments (SCENE_RECORDS), recording only the scenes it lacks; the
    world comes out byte-identical to one generated without a stop.
    """
    image_size = (int(image_size[0]), int(image_size[1]))
    _check_arguments(num_scenes, samples_per_scene, image_size, version, workers, population)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = out_dir / SCENE_RECORDS
    arguments = {"num_scenes": num_scenes, "samples_per_scene": samples_per_scene, "seed": seed,
                 "image_size": list(image_size), "version": version, "population": population}
    done = _scene_records(records, arguments, resume)

    def recorded(index: int, result: SceneResult) -> SceneResult:
        _save_scene(_scene_path(records, index), result)
        return result

    jobs = [(out_dir, i, samples_per_scene, seed, image_size, version, 1 if workers > 1 else 0, population)
            for i in range(num_scenes) if i not in done]
    tables = fixed_tables(namespace(version, seed), image_size)
    for name in TABLE_NAMES:
        tables.setdefault(name, [])
    if workers > 1:
        with _threads_of_spawned_processes(max(1, (os.cpu_count() or 1) // workers)):
            pool = multiprocessing.get_context("spawn").Pool(workers)
        with pool:
            for job, result in zip(jobs, tqdm(pool.imap(_record_scene, jobs), total=len(jobs), disable=not progress,
                                              desc="synthetic scenes", unit="scene")):
                done[job[1]] = recorded(job[1], result)
    else:
        frames_per_scene = len(sensor_schedule(samples_per_scene))
        with tqdm(total=len(jobs) * frames_per_scene, disable=not progress, desc="synthetic sensor frames",
                  unit="frame") as bar:
            for job in jobs:
                model = build_scene(seed, job[1], samples_per_scene, population)
                recorder = SceneRecorder(model, out_dir, namespace(version, seed), seed, samples_per_scene,
                                         image_size)
                done[job[1]] = recorded(job[1], (recorder.record(on_frame=lambda _: bar.update()),
                                                 recorder.scripted_maneuvers(), recorder.lane_centres()))
    maneuvers: Dict[str, Maneuver] = {}
    lanes: Dict[str, LaneCentres] = {}
    for index in range(num_scenes):
        scene_tables, scene_maneuvers, scene_lanes = done[index]
        for name, rows in scene_tables.items():
            tables[name] += rows
        maneuvers.update(scene_maneuvers)
        lanes.update(scene_lanes)
    write_tables(out_dir / version, tables, scenes_by_split(num_scenes))
    write_scripted_maneuvers(out_dir / version, maneuvers)
    write_lane_centres(out_dir / version, lanes)
    shutil.rmtree(records)
    return out_dir
