"""Car parks beside the street of the ``nuscenes`` population (layout.add_car_parks, traffic's bay slots): bay
centres and axes against hand-worked geometry, parked cars standing in the bays at the bays' angle to the road,
open ground (no building, wall or hedge) where a car park lies, and none in the default world."""
import numpy as np
import pytest

from perception.datasets.synthetic import layout
from perception.datasets.synthetic.layout import CarPark, Material
from perception.datasets.synthetic.scene import build_scene


def test_perpendicular_bays_on_the_right_side():
    # 11.2 m of 2.8 m bays: centres at 10 + 1.4 + 2.8 k, k = 0..3 (the last at s1 - 1.4), axes pointing away from
    # the street on the right (d < 0): -90 degrees off the road's heading.
    park = CarPark(side=-1.0, s0=10.0, s1=21.2, bay_angle_rad=0.5 * np.pi, row_d=(12.0,))
    s, d, yaw = park.bays()
    np.testing.assert_allclose(s, [11.4, 14.2, 17.0, 19.8])
    np.testing.assert_allclose(d, -12.0)
    np.testing.assert_allclose(yaw, -0.5 * np.pi)


def test_angled_bays_on_the_left_side_in_two_rows():
    # 60-degree bays are 2.8 / sin(60 deg) = 3.2332 m apart along the curb; on the left (d > 0) the axis leans
    # with the -s traffic of that side and away from the street: 180 - 60 = 120 degrees off the road's heading.
    park = CarPark(side=1.0, s0=0.0, s1=10.0, bay_angle_rad=np.pi / 3.0, row_d=(12.0, 23.0))
    s, d, yaw = park.bays()
    spacing = 2.8 / np.sin(np.pi / 3.0)
    row = 0.5 * spacing + spacing * np.arange(3)  # the 4th would end at 4 * 3.2332 = 12.9 m > 10 m
    np.testing.assert_allclose(s, np.concatenate([row, row]))
    np.testing.assert_allclose(d, [12.0] * 3 + [23.0] * 3)
    np.testing.assert_allclose(yaw, 2.0 * np.pi / 3.0)
    # the axis points away from the street: a step along it from the bay's centre increases |d|
    assert np.sin(yaw[0]) > 0


@pytest.fixture(scope="module")
def scenes():
    # street scenes: scene 2 drives down a car park's aisle (test_synthetic_aisle.py)
    return [build_scene(seed=7, index=index, samples_per_scene=2, population="nuscenes") for index in (0, 1, 3, 4)]


def _wrapped(angle: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * angle))


def test_cars_stand_in_the_bays_at_the_bays_angle(scenes):
    in_bays = 0
    for scene in scenes:
        road = scene.world.road
        cars = [a for a in scene.actors if a.detection_name == "car"]
        for park in scene.world.car_parks:
            bay_s, bay_d, bay_yaw = park.bays()
            bay_xy, bay_heading = road.to_global(bay_s, bay_d)
            for car in cars:
                distance = np.linalg.norm(bay_xy - car.track.xy[0], axis=1)
                if distance.min() > 1.0:
                    continue
                in_bays += 1
                bay = int(np.argmin(distance))
                assert distance[bay] < 1e-9 and car.behaviour == "parked"
                assert np.all(car.track.xy == car.track.xy[0])  # it stands still
                relative = _wrapped(car.track.yaw[0] - bay_heading[bay] - bay_yaw[bay])
                # nose in; perpendicular bays also backed in
                allowed = [0.0, np.pi] if park.bay_angle_rad == 0.5 * np.pi else [0.0]
                assert min(abs(_wrapped(relative - a)) for a in allowed) < 1e-3
    assert in_bays >= 4


def test_car_parks_lie_on_open_ground_beyond_the_sidewalk(scenes):
    parks = 0
    for scene in scenes:
        world = scene.world
        outer = world.road.half_width + layout.SIDEWALK_WIDTH_M
        for park in world.car_parks:
            parks += 1
            assert min(park.row_d) - 0.5 * layout.BAY_DEPTH_M >= outer
            assert park.s1 - park.s0 >= layout.CAR_PARK_LENGTH_M[0]
            for prism in world.prisms:
                on_its_side = prism.d0 * park.side > 0 and min(abs(prism.d0), abs(prism.d1)) >= outer
                overlaps = prism.s0 < park.s1 and prism.s1 > park.s0
                if on_its_side and overlaps:
                    assert prism.material not in (Material.BUILDING, Material.WALL, Material.FOLIAGE), prism
    assert parks >= 2


def test_default_world_has_no_car_parks():
    assert build_scene(seed=7, index=0, samples_per_scene=2).world.car_parks == []
