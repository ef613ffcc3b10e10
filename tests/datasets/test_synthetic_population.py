"""The world's populations: the default world stays what it was (pinned: it changes only on purpose, each change
listed at TINY_WORLD_ANNOTATIONS), the ``nuscenes`` population draws its classes in nuScenes' train-split shares, and an
unknown population name is refused."""
import collections
import hashlib
import json

import numpy as np
import pytest
from nuscenes.utils.data_classes import RadarPointCloud

from perception.datasets.synthetic import generate_world
from perception.datasets.synthetic.class_specs import NUSCENES_TRAIN_ANNOTATIONS
from perception.datasets.synthetic.radar import CROSS_SECTIONS
from perception.datasets.synthetic.scene import build_scene
from perception.datasets.synthetic.traffic import POPULATIONS, class_quota, drive_stretch, nuscenes_object_count
from perception.datasets.synthetic.writer import SceneRecorder, annotated_actors

TINY_WORLD_ANNOTATIONS = {
    "human.pedestrian.adult": 100, "movable_object.barrier": 16, "movable_object.trafficcone": 40,
    "vehicle.bicycle": 32, "vehicle.bus.rigid": 12, "vehicle.car": 40, "vehicle.construction": 8,
    "vehicle.motorcycle": 16, "vehicle.trailer": 16, "vehicle.truck": 20,
}
"""Annotations per category of tests/conftest.py TINY_WORLD (2 scenes x 4 keyframes, seed 0), and below the md5 of
its sample_annotation.json, so that the default world is pinned: as the generator wrote it before the population
option (git HEAD of 2026-12-03, b72446bd...), then with the roads' outer edges MAP_MARGIN_M from the map's edges
(2026-12-07: every scene moved by its road's outer half width; in each keyframe's ego frame the boxes moved by less
than 3e-11 m, their point counts the same), then with each trailer on its truck's motion (traffic.TOW_GAP_M; before:
md5 979c8c35..., 1625 radar points; the trailer draws no speed wobble of its own, so every later draw moved), then
with the road on geometry's path_points and frenet_coordinates (before: md5 2129e4a2...; the boxes moved by less
than 1e-12 m, their point counts and the radar's the same)."""
TINY_WORLD_ANNOTATION_MD5 = "a81a795dc86b962f53687ddd89afc0f7"
TINY_WORLD_KEYFRAME_RADAR_POINTS = 1637
TINY_WORLD_KEYFRAME_RADAR_SUMS = {"x": 41605.944, "y": -336.264, "rcs": 20122.088, "vx_comp": -304.961,
                                  "vy_comp": -199.685}
"""The radar files are pinned by their point count and the sums of their columns, not their bytes: the same world
had other radar bytes on another host (seen on 2026-12-06: md5 070967f5... on the hosts before, 44b9a6b4... on a
Xeon with AVX512-FP16), most likely the last bit of open3d's ray-casting distances (Embree picks its kernels by
CPU). The values are read again with each change of the world listed above. One ulp added to or taken from every
ray's distance, at random, moves these sums by less than 0.001 and keeps the point count; a change to the world
moves them far more."""


def test_default_world_is_unchanged(synthetic_root):
    table_dir = synthetic_root / "v1.0-synth"
    annotations = json.loads((table_dir / "sample_annotation.json").read_text())
    instances = {row["token"]: row for row in json.loads((table_dir / "instance.json").read_text())}
    categories = {row["token"]: row["name"] for row in json.loads((table_dir / "category.json").read_text())}
    counts = collections.Counter(categories[instances[a["instance_token"]]["category_token"]] for a in annotations)
    assert dict(counts) == TINY_WORLD_ANNOTATIONS
    assert hashlib.md5((table_dir / "sample_annotation.json").read_bytes()).hexdigest() == TINY_WORLD_ANNOTATION_MD5
    paths = sorted(synthetic_root.glob("samples/RADAR_*/*.pcd"))
    unfiltered = dict(invalid_states=list(range(18)), dynprop_states=list(range(8)), ambig_states=list(range(5)))
    radar = np.concatenate([RadarPointCloud.from_file(str(path), **unfiltered).points for path in paths], axis=1)
    assert len(paths) == 40 and radar.shape[1] == TINY_WORLD_KEYFRAME_RADAR_POINTS
    columns = {"x": 0, "y": 1, "rcs": 5, "vx_comp": 8, "vy_comp": 9}  # RadarPointCloud's rows
    sums = {name: float(radar[row].sum()) for name, row in columns.items()}
    assert sums == pytest.approx(TINY_WORLD_KEYFRAME_RADAR_SUMS, abs=0.01)
    scenes = json.loads((table_dir / "scene.json").read_text())
    assert all("population" not in scene["description"] for scene in scenes)


def test_class_quota_splits_in_the_cited_shares_on_average():
    # 100 objects: car 100 * 413318 / 944881 = 43.74, pedestrian 19.67, bicycle 1.00 ...
    total = sum(NUSCENES_TRAIN_ANNOTATIONS.values())
    assert total == 944881
    rng = np.random.default_rng(0)
    draws = [class_quota(rng, 100) for _ in range(2000)]
    for name, count in NUSCENES_TRAIN_ANNOTATIONS.items():
        quotas = np.array([draw[name] for draw in draws])
        expected = 100 * count / total
        assert set(quotas) <= {np.floor(expected), np.ceil(expected)}
        assert quotas.mean() == pytest.approx(expected, abs=0.05)
    assert class_quota(rng, 100)["car"] in (43, 44)


def test_nuscenes_population_matches_the_cited_class_shares():
    """Two scenes of 4 keyframes: every class share of the annotated objects within 0.04 of nuScenes' train split
    (placements refused for overlaps and objects beyond the annotation range make up the difference)."""
    counts = collections.Counter()
    for index in range(2):
        model = build_scene(seed=5, index=index, samples_per_scene=4, population="nuscenes")
        names = [model.actors[i].detection_name for i in annotated_actors(model, 4)]
        counts.update(names)
        # 22.4 objects per 100 m of the drive stretch
        s_min, s_max = drive_stretch(model.world.road, model.plan)
        expected = round(0.224 * (s_max - s_min))
        assert nuscenes_object_count(model.world.road, model.plan) == expected
        # each class's share rounds up with the probability of its remainder: at most one more object a class
        assert 0.75 * expected <= len(names) <= len(model.actors) <= expected + len(NUSCENES_TRAIN_ANNOTATIONS)
    total, cited_total = sum(counts.values()), sum(NUSCENES_TRAIN_ANNOTATIONS.values())
    for name, cited in NUSCENES_TRAIN_ANNOTATIONS.items():
        assert counts[name] / total == pytest.approx(cited / cited_total, abs=0.04), name
    assert counts["car"] >= 2 * counts["pedestrian"] > 0


def test_nuscenes_scene_says_how_it_was_generated(tmp_path):
    model = build_scene(seed=5, index=0, samples_per_scene=2, population="nuscenes")
    recorder = SceneRecorder(model, tmp_path, "ns", 5, 2, (64, 36))
    assert recorder.description() == model.plan.description() + "; population=nuscenes"


def test_unknown_population_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown population 'nuscene'; known: default, nuscenes"):
        generate_world(tmp_path, num_scenes=1, samples_per_scene=1, seed=0, image_size=(64, 36), progress=False,
                       population="nuscene")
    with pytest.raises(ValueError, match="unknown population"):
        build_scene(0, 0, 2, population="")
    assert not any(tmp_path.iterdir())
    assert set(CROSS_SECTIONS) == set(POPULATIONS)  # every population has its radar cross-sections
