"""Unannotated roadside structure of the ``nuscenes`` population (layout.add_roadside_structure): a bollard and a
tree crown at known places against hand-worked LiDAR beam and camera ray geometry, the placement rules the cited
sizes, spacings and clearances give, never an annotated object nor in one's box, every static material seen by the
radar, and deterministic."""
import numpy as np
import pytest

from perception.datasets.synthetic import layout, lidar, scene
from perception.datasets.synthetic.layout import Crown, Material, Pole, Road, StaticWorld
from perception.datasets.synthetic.radar import CROSS_SECTIONS
from perception.datasets.synthetic.raycast import StaticGeometry, WorldGeometry
from perception.datasets.synthetic.scene import LEAD_IN_S, build_scene, scene_duration_s
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


STREET_CLEARANCE_M, SIDEWALK_CLEARANCE_M = 14 * 0.3048, 8 * 0.3048
"""Branches at least 14 ft over the street, 8 ft over the sidewalk (the ordinances layout.TREE_CROWN_CLEARANCE_M
cites)."""


def _crown_underside(crown, step_m=0.05, spokes=90):
    """(N, 3) [m] points of a crown ellipsoid's lower half: on circles of radius rho = 0, step_m, ... < radius about
    its axis, z = centre z - half height * sqrt(1 - (rho / radius)^2)."""
    rho = np.arange(0.0, crown.radius, step_m)[:, None]
    angle = np.linspace(0.0, 2 * np.pi, spokes, endpoint=False)[None]
    x, y = crown.centre[0] + rho * np.cos(angle), crown.centre[1] + rho * np.sin(angle)
    z = np.broadcast_to(crown.centre[2] - crown.half_height * np.sqrt(1.0 - (rho / crown.radius) ** 2), x.shape)
    return np.column_stack([x.ravel(), y.ravel(), z.ravel()])


def test_crowns_clear_the_roadway_and_the_sidewalk_by_the_cited_heights(street):
    road = street[0].world.road
    for crown in street[0].world.crowns:
        underside = _crown_underside(crown)
        _, d = road.to_frenet(underside[:, :2])
        over_road = np.abs(d) < road.half_width  # the parking strip and the lanes
        assert over_road.any()
        assert underside[over_road, 2].min() >= STREET_CLEARANCE_M - 1e-6
        assert underside[~over_road, 2].min() >= SIDEWALK_CLEARANCE_M  # the sidewalk and beyond


def _box_points(size_wlh, step_m=0.1):
    """(N, 3) [m] a grid of points step_m apart (faces included) filling a box of ``size_wlh`` in its own frame
    (x along its length, z up from the ground)."""
    width, length, height = size_wlh
    axes = [np.linspace(-0.5 * length, 0.5 * length, int(np.ceil(length / step_m)) + 1),
            np.linspace(-0.5 * width, 0.5 * width, int(np.ceil(width / step_m)) + 1),
            np.linspace(0.0, height, int(np.ceil(height / step_m)) + 1)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


@pytest.mark.parametrize("seed, index", [(7, 4), (0, 9)])
def test_no_object_box_reaches_into_a_crown(seed, index):
    # Scenes where a parked construction vehicle stood in a crown hung from 2.4-3.5 m over the parking strip (its
    # LiDAR returns off the foliage counted in its box). Every object's box, at the population's check times, is
    # filled with points 0.1 m apart; none may lie inside a crown's ellipsoid.
    samples = 8
    model = build_scene(seed=seed, index=index, samples_per_scene=samples, population="nuscenes")
    crowns = model.world.crowns
    assert crowns
    centres = np.array([c.centre for c in crowns])
    radii = np.array([[c.radius, c.radius, c.half_height] for c in crowns])
    for actor in model.actors:
        box = _box_points(actor.size_wlh)
        for t_s in np.arange(-LEAD_IN_S, scene_duration_s(samples) + 1e-9, 0.2):
            xy, yaw = actor.track.pose(t_s)
            reach = np.hypot(*(0.5 * actor.size_wlh[:2]))
            for centre, radius in zip(centres, radii):
                if np.hypot(*(centre[:2] - xy)) > radius[0] + reach:
                    continue
                cos, sin = np.cos(yaw), np.sin(yaw)
                points = np.column_stack([xy[0] + cos * box[:, 0] - sin * box[:, 1],
                                          xy[1] + sin * box[:, 0] + cos * box[:, 1], box[:, 2]])
                inside = (((points - centre) / radius) ** 2).sum(axis=1) < 1.0
                assert not inside.any(), (actor.detection_name, t_s, points[inside].min(axis=0))


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
