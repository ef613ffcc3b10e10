"""Placement of the synthetic world's objects (traffic.py): a trailer keeps its tow gap behind its truck on a
hand-worked circular road, a group whose members overlap is refused, and no truck and its trailer overlap in the
scene of the review's reproducer (shapely's polygon intersection)."""
import numpy as np
import pytest
from shapely.geometry import Polygon

from perception.datasets.synthetic.actors import Actor, Track
from perception.datasets.synthetic.layout import Road
from perception.datasets.synthetic.scene import LEAD_IN_S, build_scene, scene_duration_s
from perception.datasets.synthetic.traffic import TOW_GAP_M, Population, _Street, _traffic

RADIUS_M = 100.0
CIRCLE = Road.from_pieces((0.0, 0.0), 0.0, [(300.0, 1.0 / RADIUS_M)], 2)
"""A left curve of radius 100 m around (0, 100) (start at the origin heading +x), 2 lanes a direction."""


def _lane_arc(xy, lane_radius):
    """Arc length [m] along the circle of ``lane_radius`` around (0, RADIUS_M) from the start's radius."""
    angle = np.unwrap(np.arctan2(xy[:, 1] - RADIUS_M, xy[:, 0]) + 0.5 * np.pi)
    return lane_radius * angle


def test_trailer_keeps_its_tow_gap_along_a_curved_lane_by_hand():
    """The truck and its trailer drive one motion: on a 100 m radius, in every lane (inner and outer, both
    directions), the trailer's centre stays half the truck, half the trailer and TOW_GAP_M behind the truck's along
    the lane's own circle (radius 100 m less its offset d), at every instant."""
    times_s = np.arange(0.0, 10.0, 0.01)  # at most 13 m/s from s in 140 .. 160 m: on the curve all the time
    street = _Street(CIRCLE, times_s, times_s, (140.0, 160.0), 10.0)
    lanes = set()
    for seed in range(12):
        truck, trailer = _traffic(np.random.default_rng(seed), street, "truck_trailer")
        lane_d = float(CIRCLE.to_frenet(truck.track.xy[:1])[1][0])
        lanes.add(round(lane_d, 2))
        lane_radius = RADIUS_M - lane_d  # left of the centre line is inside a left curve
        behind = _lane_arc(truck.track.xy, lane_radius) - _lane_arc(trailer.track.xy, lane_radius)
        gap = np.abs(behind) - 0.5 * (truck.size_wlh[1] + trailer.size_wlh[1])
        assert gap == pytest.approx(np.full(len(times_s), TOW_GAP_M), abs=1e-3), (seed, lane_d)
    assert lanes == {-5.25, -1.75, 1.75, 5.25}


def _parked_car(x_m):
    """A 2 x 4.5 m car standing at (x_m, 0) facing +x (no mesh: placement looks at the box only)."""
    times_s = np.array([0.0, 10.0])
    track = Track(times_s, np.array([[x_m, 0.0], [x_m, 0.0]]), np.zeros(2))
    return Actor("car", np.array([2.0, 4.5, 1.5]), None, track, "parked")


def _empty_population():
    """Only the ego, standing 100 m away."""
    return Population(np.arange(0.0, 10.0, 0.2), np.full((50, 2), -100.0), np.zeros(50))


def test_a_group_whose_members_overlap_is_refused():
    # centres 3 m apart, 4.5 m long: they overlap by 1.5 m
    assert not _empty_population().try_add([_parked_car(0.0), _parked_car(3.0)])
    # centres 5.1 m apart: 0.6 m between them, accepted as one group (members tested as they are) ...
    population = _empty_population()
    assert population.try_add([_parked_car(0.0), _parked_car(5.1)])
    # ... but not one by one: each keeps 0.4 m clear of the other groups on every side
    population = _empty_population()
    assert population.try_add([_parked_car(0.0)]) and not population.try_add([_parked_car(5.1)])


def test_no_truck_overlaps_its_trailer_in_the_reviewed_scene():
    """Seed 7, scene 6 of 30 keyframes (the README's default world): its driving truck and trailer overlapped at 84
    of 301 instants (bumper gap -0.40 .. 1.58 m) when each drew its own speed wobble."""
    model = build_scene(7, 6, 30)
    pairs = [(a, b) for a, b in zip(model.actors, model.actors[1:]) if a.behaviour == b.behaviour == "driving"
             and (a.detection_name, b.detection_name) == ("truck", "trailer")]
    assert pairs
    for truck, trailer in pairs:
        for t_s in np.arange(-LEAD_IN_S, scene_duration_s(30) + 1e-9, 0.05):
            footprints = []
            for actor in (truck, trailer):
                (x, y, _), yaw = actor.box_centre(t_s)
                half_length, half_width = 0.5 * actor.size_wlh[1], 0.5 * actor.size_wlh[0]
                along, across = np.array([np.cos(yaw), np.sin(yaw)]), np.array([-np.sin(yaw), np.cos(yaw)])
                footprints.append(Polygon([np.array([x, y]) + i * half_length * along + j * half_width * across
                                           for i, j in ((1, 1), (1, -1), (-1, -1), (-1, 1))]))
            assert footprints[0].intersection(footprints[1]).area == 0.0, t_s
