"""The synthetic LiDAR against hand-worked beam geometry: points on a wall at a known range, the ego car's roof
under the sensor, the nuScenes model's every-firing files, annotations in range only, and bad model values."""
import numpy as np
import pytest

from perception.datasets.synthetic import lidar
from perception.datasets.synthetic.layout import MATERIAL_REFLECTIVITY, Material
from perception.datasets.synthetic.raycast import StaticGeometry, WorldGeometry
from perception.datasets.synthetic.scene import build_scene
from perception.datasets.synthetic.writer import ANNOTATION_RANGE_M, annotated_actors, annotated_keyframes
from perception.datasets.synthetic.rig import KEYFRAME_PERIOD_US
from perception.geometry import RigidTransform


def _wall_snapshot(range_m: float, half_width_m: float, half_height_m: float):
    """A world of one vertical wall facing the origin at x = range_m: y, z within +-half_width_m, +-half_height_m."""
    vertices = np.array([[range_m, -half_width_m, -half_height_m], [range_m, half_width_m, -half_height_m],
                         [range_m, half_width_m, half_height_m], [range_m, -half_width_m, half_height_m]],
                        np.float32)
    static = StaticGeometry(vertices, np.array([[0, 1, 2], [0, 2, 3]]), np.full((2, 3), 0.5, np.float32),
                            np.full(2, MATERIAL_REFLECTIVITY[Material.WALL], np.float32),
                            np.full(2, Material.WALL, np.int8))
    return WorldGeometry(static, []).snapshot(0.0)


def test_wall_at_10_m_gets_the_points_the_beam_geometry_predicts():
    # The wall spans elevations +-atan(1 / 10) = +-5.71 deg: beams -30.67 + 1.333 k for k = 19 .. 27 (-5.33 ..
    # 5.33 deg), 9 beams; and azimuths +-5.71 deg = 11.42 deg / (360 / 1084 deg per firing) = 34.4 firings a beam.
    # 2 % of the returns drop (BASE_DROPOUT; the range term is 0.5 (10 / 80)^2 (1 - 0.4) (1 - cos) < 0.0001).
    snapshot = _wall_snapshot(10.0, 1.0, 1.0)
    counts = []
    for seed in range(4):
        points = lidar.simulate_sweep(snapshot, RigidTransform.identity(), None, np.random.default_rng(seed))
        assert np.allclose(points[:, 0], 10.0, atol=0.1)
        assert set(points[:, 4].astype(int)) == set(range(19, 28))
        counts.append(len(points))
    assert 9 * 34 * 0.9 <= min(counts) and max(counts) <= 9 * 35
    assert np.mean(counts) == pytest.approx(9 * 34.4 * 0.98, rel=0.03)


def test_nuscenes_model_writes_every_firing_and_no_returns_at_the_sensor():
    snapshot = _wall_snapshot(10.0, 1.0, 1.0)
    model = lidar.LIDAR_MODELS["nuscenes"]
    points = lidar.simulate_sweep(snapshot, RigidTransform.identity(), None, np.random.default_rng(0), model)
    assert len(points) == 32 * lidar.AZIMUTH_STEPS
    assert np.all(np.bincount(points[:, 4].astype(int)) == lidar.AZIMUTH_STEPS)
    on_wall = np.abs(points[:, 0] - 10.0) < 0.1
    no_return = np.linalg.norm(points[:, :3], axis=1) <= model.no_return_spread_m
    assert 9 * 34 * 0.9 <= on_wall.sum() <= 9 * 35
    # the rest came off the ego car (the rig's boxes seen from LIDAR_TOP's calibration), 2 % of those dropped
    on_ego = ~on_wall & ~no_return
    ego_distance, _ = lidar.ego_body_hits(lidar.beam_directions(0.0)[0])
    assert np.all(np.linalg.norm(points[on_ego, :3], axis=1) < 3.0)
    assert on_ego.sum() == pytest.approx(0.98 * np.isfinite(ego_distance).sum(), rel=0.03)
    assert np.all(points[no_return, 0] == 0.0) and np.all(points[no_return, 2] == 0.0)
    assert np.all(points[no_return, 1] <= 0.0)


def test_ray_box_distance_by_hand():
    box_min, box_max = np.array([1.0, -1.0, -1.0]), np.array([2.0, 1.0, 1.0])
    directions = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [np.sqrt(0.5), np.sqrt(0.5), 0.0], [-1.0, 0.0, 0.0],
                           [np.sqrt(0.5), 0.0, np.sqrt(0.5)]])
    distance, axis = lidar.ray_box_distance(np.zeros(3), directions, box_min, box_max)
    # straight on: 1 m through the x = 1 face; along y: parallel to the box, outside it; at 45 deg in xy it meets
    # x = 1 at y = 1 (the edge): sqrt(2); backwards: behind; at 45 deg in xz: x = 1 at z = 1, sqrt(2)
    assert distance[0] == pytest.approx(1.0) and axis[0] == 0
    assert np.isinf(distance[1]) and np.isinf(distance[3])
    assert distance[2] == pytest.approx(np.sqrt(2.0)) and distance[4] == pytest.approx(np.sqrt(2.0))


def test_ray_straight_down_meets_the_roof_at_the_zoe_height():
    # LIDAR_TOP sits 1.84023 m above the ground (nuScenes' calibration), the ZOE's roof at 1.562 m: 0.278 m below;
    # its calibration tilts the sensor by < 1 deg, so the sensor's -z ray meets the roof within a millimetre.
    distance, normal = lidar.ego_body_hits(np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    assert distance[0] == pytest.approx(1.84023 - 1.562, abs=1e-3)
    assert abs(normal[0, 2]) == pytest.approx(1.0, abs=1e-3)
    assert np.isinf(distance[1]) and np.isinf(distance[2])


@pytest.mark.parametrize("kwargs, message", [
    ({"min_range_m": 5.0, "max_range_m": 2.0}, "min_range_m < max_range_m"),
    ({"intensity_log_std": -0.1}, "intensity_log_std must be >= 0"),
    ({"no_return_points": True, "no_return_intensity": 0.0}, "no_return_intensity must be > 0"),
])
def test_bad_lidar_model_values_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lidar.LidarModel(**kwargs)


def test_nuscenes_population_annotates_objects_in_range_with_a_keyframe_either_side():
    samples = 6
    model = build_scene(seed=5, index=0, samples_per_scene=samples, population="nuscenes")
    spans = annotated_keyframes(model, samples)
    assert list(spans) == annotated_actors(model, samples)
    ego = [model.ego_to_global(k * KEYFRAME_PERIOD_US * 1e-6).translation[:2] for k in range(samples)]
    trimmed = 0
    for index, keyframes in spans.items():
        actor = model.actors[index]
        in_range = [k for k in range(samples)
                    if np.linalg.norm(actor.box_centre(k * KEYFRAME_PERIOD_US * 1e-6)[0][:2] - ego[k])
                    <= ANNOTATION_RANGE_M]
        assert list(keyframes) == list(range(max(0, in_range[0] - 1), min(samples, in_range[-1] + 2)))
        trimmed += len(keyframes) < samples
    assert trimmed > 0  # the drive takes some objects out of range
    default = build_scene(seed=5, index=0, samples_per_scene=samples)
    assert all(list(k) == list(range(samples)) for k in annotated_keyframes(default, samples).values())


def test_intensity_falls_with_incidence_as_lambert_plus_a_quarter():
    # intensity = 100 x reflectivity x (0.25 + 0.75 cos(incidence)): a wall turned 60 deg from the beams
    # (cos 0.5) returns 0.25 + 0.375 = 0.625 of what the same wall facing them (cos ~1) returns.
    reflectivity = MATERIAL_REFLECTIVITY[Material.WALL]
    along, up = np.array([np.sin(np.pi / 3), np.cos(np.pi / 3), 0.0]), np.array([0.0, 0.0, 1.0])
    centre = np.array([10.0, 0.0, 0.0])
    vertices = np.array([centre - 0.5 * along - up, centre + 0.5 * along - up, centre + 0.5 * along + up,
                         centre - 0.5 * along + up], np.float32)
    turned = WorldGeometry(StaticGeometry(vertices, np.array([[0, 1, 2], [0, 2, 3]]), np.full((2, 3), 0.5, np.float32),
                                          np.full(2, reflectivity, np.float32), np.full(2, Material.WALL, np.int8)),
                           []).snapshot(0.0)
    medians = []
    for snapshot in (_wall_snapshot(10.0, 0.5, 1.0), turned):
        points = lidar.simulate_sweep(snapshot, RigidTransform.identity(), None, np.random.default_rng(0))
        assert len(points) > 20
        medians.append(np.median(points[:, 3]))
    assert medians[0] == pytest.approx(100.0 * reflectivity, abs=2.0)
    assert medians[1] / medians[0] == pytest.approx(0.625, abs=0.04)


def test_returns_nearer_than_the_minimum_range_are_not_written():
    # the default model keeps returns beyond min_range_m = 1 m (2 cm range noise): a 0.6 x 0.6 m wall at 0.6 m
    # (its corners sqrt(0.6^2 + 0.3^2 + 0.3^2) = 0.73 m away) gives none, the same wall at 1.2 m gives points
    for range_m, expected in ((0.6, False), (1.2, True)):
        points = lidar.simulate_sweep(_wall_snapshot(range_m, 0.3, 0.3), RigidTransform.identity(), None,
                                      np.random.default_rng(0))
        assert (len(points) > 0) is expected, (range_m, len(points))
