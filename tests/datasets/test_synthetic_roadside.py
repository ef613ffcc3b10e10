"""Unannotated roadside structure of the ``nuscenes`` population (layout.add_roadside_structure): a bollard and a
tree crown at known places against hand-worked LiDAR beam and camera ray geometry, the placement rules the cited
sizes and spacings give, never an annotated object, every static material seen by the radar, and deterministic."""
import numpy as np
import pytest

from perception.datasets.synthetic import layout, lidar, scene
from perception.datasets.synthetic.layout import Crown, Material, Pole, Road, StaticWorld
from perception.datasets.synthetic.radar import CROSS_SECTIONS
from perception.datasets.synthetic.raycast import StaticGeometry, WorldGeometry
from perception.datasets.synthetic.scene import build_scene
from perception.datasets.synthetic.shading import FrenetRaster
from perception.geometry import RigidTransform

SENSOR_HEIGHT_M = 1.84


ROAD = Road.from_pieces((-50.0, -20.0), 0.0, [(100.0, 0.0)], 2)
"""A road 20 m to the side: only the frame of the ground's paint lookup."""


def _snapshot(poles=(), crowns=()):
    """A flat world (ground only, no prisms) with the given poles and crowns."""
    world = StaticWorld(ROAD, [], list(poles), (-60.0, -60.0, 60.0, 60.0), list(crowns))
    return WorldGeometry(StaticGeometry.build(world), []).snapshot(0.0)


def test_bollard_at_10_m_returns_points_on_the_beams_the_geometry_predicts():
    # A bollard 1 m high, 0.1 m radius, its axis 10 m ahead of a sensor 1.84 m up: its front face (9.9 m) spans
    # elevations atan(-1.84 / 9.9) = -10.53 deg .. atan(-0.84 / 9.9) = -4.85 deg, so the beams
    # -30.67 + 1.3335 k for k = 16 .. 19 (-9.33 .. -5.33 deg); azimuths +-atan(0.1 / 9.9) = +-0.58 deg =
    # 1.16 deg / (360 / 1084 deg per firing) = 3.5 firings a beam.
    snapshot = _snapshot(poles=[Pole((10.0, 0.0), 0.1, 1.0, Material.POLE)])
    sensor = RigidTransform.from_rotation_translation(np.eye(3), (0.0, 0.0, SENSOR_HEIGHT_M))
    for seed in range(3):
        points = lidar.simulate_sweep(snapshot, sensor, FrenetRaster(ROAD), np.random.default_rng(seed))
        # off the ground (z = -1.84 m in the sensor frame; beam 15 meets it at 9.77 m, beside the bollard)
        on_bollard = (np.hypot(points[:, 0] - 10.0, points[:, 1]) < 0.3) & (points[:, 2] > -1.75)
        assert set(points[on_bollard, 4].astype(int)) == {16, 17, 18, 19}
        assert np.allclose(np.hypot(points[on_bollard, 0], points[on_bollard, 1]), 9.9, atol=0.1)
        assert 4 * 3 * 0.9 <= on_bollard.sum() <= 4 * 4


def test_camera_ray_meets_a_tree_crown_at_its_near_surface():
    # A crown of radius 2 m centred 10 m ahead at the camera's height: the ray straight ahead meets it at 8 m
    # (within the facets' sag, 2 (1 - cos 15 deg) = 0.07 m), the ray straight up misses everything.
    snapshot = _snapshot(crowns=[Crown((10.0, 0.0, 1.5), 2.0, 1.5, (0.2, 0.4, 0.15))])
    distance, triangle = snapshot.cast_triangles(np.array([0.0, 0.0, 1.5], np.float32),
                                                 np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], np.float32))
    assert distance[0] == pytest.approx(8.0, abs=0.08)
    assert snapshot.material[triangle[0]] == Material.FOLIAGE
    assert snapshot.owners(triangle)[0] == -1 and np.isinf(distance[1])


@pytest.fixture(scope="module")
def street():
    """Scene 1 of seed 7 in the nuscenes population, and the same scene without roadside structure (its car parks
    kept)."""
    with_structure = build_scene(seed=7, index=1, samples_per_scene=2, population="nuscenes")
    scene.add_roadside_structure = lambda rng, world: world
    try:
        without = build_scene(seed=7, index=1, samples_per_scene=2, population="nuscenes")
    finally:
        scene.add_roadside_structure = layout.add_roadside_structure
    return with_structure, without


def test_structure_is_static_world_only_never_an_annotated_object(street):
    with_structure, without = street
    # the objects (what gets annotated) are the same ones, in the same places
    assert [a.detection_name for a in with_structure.actors] == [a.detection_name for a in without.actors]
    for a, b in zip(with_structure.actors, without.actors):
        np.testing.assert_array_equal(a.track.xy, b.track.xy)
    # every triangle it adds is static world (owner -1); the objects' triangles are the same
    geometry, plain = with_structure.geometry, without.geometry
    assert len(geometry.owner) - len(plain.owner) == (geometry.owner == -1).sum() - (plain.owner == -1).sum() > 0
    np.testing.assert_array_equal(geometry.owner[geometry.owner >= 0], plain.owner[plain.owner >= 0])
    assert len(with_structure.world.crowns) > 0 and len(without.world.crowns) == 0


def test_placement_follows_the_cited_sizes_and_spacings(street):
    world = street[0].world
    road = world.road
    curb = road.half_width
    s, d = road.to_frenet(np.array([pole.xy for pole in world.poles]))
    lamps = np.array([pole.material == Material.POLE and pole.height == 6.0 for pole in world.poles])
    trees = np.array([pole.material == Material.TRUNK for pole in world.poles])
    bollards = np.array([pole.height <= layout.BOLLARD_HEIGHT_M[1] for pole in world.poles])
    assert trees.any() and bollards.any()
    assert np.all(np.abs(d) > curb)  # all of it off the road, on the sidewalks
    for side in (-1.0, 1.0):
        tree_s = np.sort(s[trees & (d * side > 0)])
        if len(tree_s) > 1:
            assert np.diff(tree_s).min() >= layout.TREE_SPACING_M[0] - 1e-6
        for lamp_s in s[lamps & (d * side > 0)]:
            assert np.all(np.abs(tree_s - lamp_s) >= layout.TREE_CLEARANCE_M)
    np.testing.assert_allclose(np.abs(d[bollards]) - curb, layout.BOLLARD_OFFSET_M, atol=1e-3)
    gaps = np.diff(np.sort(s[bollards]))
    assert np.isclose(gaps, layout.BOLLARD_SPACING_M, atol=1e-3).sum() >= bollards.sum() // 2
    signs = [p for p in world.prisms if p.material == Material.SIGN]
    assert signs and all(p.z0 == layout.SIGN_BOTTOM_M for p in signs)
    assert all(min(abs(p.d0), abs(p.d1)) - curb >= layout.SIGN_POST_OFFSET_M - 1e-9 for p in signs)
    lanes_edge = road.lanes_per_direction * layout.LANE_WIDTH_M
    for crown in world.crowns:  # no crown over a driving lane
        _, d_crown = road.to_frenet(np.array(crown.centre[:2]))
        assert abs(d_crown[0]) - crown.radius >= lanes_edge - 1e-3
        assert crown.centre[2] - crown.half_height >= layout.TREE_CROWN_BASE_M[0] - 1e-9


def test_radar_sees_every_static_material_above_the_ground(street):
    materials = set(np.unique(street[0].geometry.material)) - {Material.GROUND, Material.SIDEWALK, -1}
    assert {Material.TRUNK, Material.FOLIAGE, Material.SIGN, Material.POLE} <= materials
    assert materials <= set(CROSS_SECTIONS["nuscenes"].static)


def test_structure_is_deterministic_per_seed_and_differs_between_seeds(street):
    again = build_scene(seed=7, index=1, samples_per_scene=2, population="nuscenes").world
    assert again.poles == street[0].world.poles and again.crowns == street[0].world.crowns
    assert again.prisms == street[0].world.prisms
    other = build_scene(seed=8, index=1, samples_per_scene=2, population="nuscenes").world
    assert other.poles != again.poles
