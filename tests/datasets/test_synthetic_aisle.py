"""Drives down a car park's aisle in the ``nuscenes`` population (layout.build_car_park_aisle,
traffic.populate_car_park_aisle): which scenes, the aisle's cross-section and rows against hand-worked geometry,
an ego that keeps its lane at a car park's speed, parked vehicles standing in the bays, the pavement drawn in its
colour and the scene's description."""
from pathlib import Path

import numpy as np
import pytest

from perception.datasets.synthetic import layout
from perception.datasets.synthetic.ego import plan_ego
from perception.datasets.synthetic.layout import Material, Road, drives_down_aisle
from perception.datasets.synthetic.scene import build_scene
from perception.datasets.synthetic.shading import AMBIENT, HAZE_DISTANCE_M, NOISE_LEVELS, SKY_HORIZON, shade_pixels
from perception.datasets.synthetic.traffic import drive_stretch
from perception.datasets.synthetic.writer import SceneRecorder


def test_every_third_nuscenes_scene_drives_down_an_aisle():
    assert [index for index in range(9) if drives_down_aisle("nuscenes", index)] == [2, 5, 8]
    assert not any(drives_down_aisle("default", index) for index in range(9))


@pytest.fixture(scope="module")
def aisle():
    return build_scene(seed=7, index=2, samples_per_scene=10, population="nuscenes")


def test_aisle_cross_section_and_rows(aisle):
    road = aisle.world.road
    # one 3.5 m lane a direction, bays straight at the lanes: no parking strip, no sidewalk
    assert (road.lanes_per_direction, road.half_width, road.outer_half_width) == (1, 3.5, 3.5)
    assert np.ptp(road.heading) == 0.0  # straight
    assert not [p for p in aisle.world.prisms if p.material == Material.SIDEWALK]
    # rows of 5 m bays from the aisle's edge at 3.5 m: the first at 3.5 + 2.5, a 3 m planting strip, the second
    # at 6 + 5 + 3, a 6 m aisle, the third at 14 + 5 + 6; each side takes the first one to three
    assert sorted(park.side for park in aisle.world.car_parks) == [-1.0, 1.0]
    for park in aisle.world.car_parks:
        assert park.row_d == (6.0, 14.0, 25.0)[:len(park.row_d)]
        assert layout.CAR_PARK_LENGTH_M[0] <= park.s1 - park.s0 <= layout.CAR_PARK_LENGTH_M[1]
        # beside the ego's drive: its middle between the ego's first and last position
        assert aisle.plan.s[0] <= 0.5 * (park.s0 + park.s1) <= aisle.plan.s[-1]
    # buildings and walls stand beyond the third row's outer edge (25 + 2.5 m) and the 3 m walkway
    for prism in aisle.world.prisms:
        if prism.material in (Material.BUILDING, Material.WALL):
            assert min(abs(prism.d0), abs(prism.d1)) >= 30.5


def test_one_lane_road_has_no_lane_change():
    road = Road.from_pieces((0.0, 0.0), 0.0, [(400.0, 0.0)], 1, parking_width_m=0.0, sidewalk_width_m=0.0)
    times = np.round(np.arange(0.0, 20.0, 0.01), 6)
    # scene index 1 enters the cycle at its lane change: the ego cruises instead, in its one lane's centre
    plan = plan_ego(np.random.default_rng(0), road, 1, times, 50.0, (3.0, 6.0))
    assert plan.phases[0].manoeuvre == "cruise"
    assert "lane_change" not in [phase.manoeuvre for phase in plan.phases]
    np.testing.assert_array_equal(plan.lane, 0)
    np.testing.assert_array_equal(plan.d, -1.75)


def test_ego_keeps_its_lane_at_a_car_park_speed(aisle):
    np.testing.assert_array_equal(aisle.plan.d, -1.75)
    speed = np.diff(aisle.plan.s) / np.diff(aisle.plan.times_s)
    cruise = speed[0] if speed[0] > 0 else speed.max()
    assert 0.0 < cruise <= 6.0 + 1e-6


def test_parked_vehicles_stand_in_the_bays(aisle):
    road = aisle.world.road
    bay_s, bay_d, bay_yaw = (np.concatenate(parts) for parts in zip(*(p.bays() for p in aisle.world.car_parks)))
    stretch = drive_stretch(road, aisle.plan)
    in_stretch = (bay_s >= stretch[0]) & (bay_s <= stretch[1])
    parked = [a for a in aisle.actors if a.behaviour == "parked"]
    assert {a.detection_name for a in aisle.actors} <= {"car", "pedestrian", "motorcycle", "bicycle"}
    s, d = road.to_frenet(np.array([a.track.xy[0] for a in parked]))
    for actor, actor_s, actor_d in zip(parked, s, d):
        distance = np.hypot(bay_s - actor_s, bay_d - actor_d)
        bay = int(np.argmin(distance))
        assert distance[bay] < 1e-6 and in_stretch[bay]
        relative = np.angle(np.exp(1j * (actor.track.yaw[0] - road.heading[0] - bay_yaw[bay])))
        perpendicular = abs(abs(bay_yaw[bay]) - 0.5 * np.pi) < 1e-9
        allowed = [0.0, np.pi] if perpendicular else [0.0]  # nose in; backed in only into perpendicular bays
        assert min(abs(np.angle(np.exp(1j * (relative - a)))) for a in allowed) < 1e-6
    # a car park, not a street: at least 40 % of the bays along the drive hold a vehicle (50-90 % drawn, less the
    # placements refused for overlaps)
    assert len(parked) >= 0.4 * in_stretch.sum()


def test_aisle_scene_says_so(aisle):
    recorder = SceneRecorder(aisle, Path("unused"), "test", 7, 10, (64, 36))
    assert recorder.description() == aisle.plan.description() + "; population=nuscenes; car park aisle"


def test_car_park_pavement_is_drawn_in_its_own_colour(aisle):
    """A camera ray straight down onto the car park beside the aisle sees the pavement's colour, lit by the sun
    (Lambert, as every surface); the road's ground texture would draw grass there, beyond the aisle's edge."""
    road = aisle.world.road
    xy, _ = road.to_global(np.array([aisle.plan.s[0]]), np.array([10.0]))  # the planting strip
    origin = np.array([xy[0, 0], xy[0, 1], 10.0])
    snapshot = aisle.snapshot(0.0)
    distance, triangle = snapshot.cast_triangles(origin, np.array([[0.0, 0.0, -1.0]], np.float32))
    assert snapshot.material[triangle[0]] == Material.PAVEMENT
    assert distance[0] == pytest.approx(10.0 - 0.02, abs=1e-4)
    bgr = shade_pixels(distance, triangle, np.array([[0.0, 0.0, -1.0]]), origin, snapshot.colours,
                       snapshot.triangle_normals(), snapshot.material, aisle.frenet.table,
                       float(aisle.frenet.origin[0]), float(aisle.frenet.origin[1]), aisle.frenet.RESOLUTION_M,
                       road.lanes_per_direction, road.half_width, road.length, aisle.sun_direction, np.uint64(0))
    light = AMBIENT + (1.0 - AMBIENT) * max(aisle.sun_direction[2], 0.0)
    haze = 1.0 - np.exp(-distance[0] / HAZE_DISTANCE_M)
    expected = [c * light * (1.0 - haze) + h * haze for c, h in zip(layout.CAR_PARK_SURFACE, SKY_HORIZON)]
    np.testing.assert_allclose(bgr[0, ::-1] / 255.0, expected, atol=(NOISE_LEVELS + 1) / 255.0)
