"""The agent tracker: velocities and accelerations worked by hand from a moving ego, the standing rule, the
association rules (class, gate, score, closest first), the resets; and its association on a synthetic scene's ground
truth against the annotations' own instance tokens."""
import numpy as np
import pytest

from perception.datasets.ego_log import keyframe_lidar_pose
from perception.datasets.ground_truth import sample_ground_truth
from perception.decision.tracking import TRACKING_GATES_M, AgentTracker, TrackerConfig
from perception.geometry import EgoPose, RigidTransform
from tests.decision.helpers import agents

HALF_SECOND_US = 500_000


def _pose(time_us: int, x: float, y: float, yaw: float) -> EgoPose:
    rotation = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    return EgoPose(time_us, RigidTransform.from_rotation_translation(rotation, np.array([x, y, 0.0])))


def _in_ego(pose: EgoPose, world_xy, world_velocity, name: str = "car"):
    """A box at a global position and velocity, seen from ``pose``'s ego frame."""
    to_ego = pose.ego_to_global.inverse()
    x, y, _ = to_ego.apply(np.array([[*world_xy, 0.0]]))[0]
    vx, vy, _ = to_ego.apply_rotation(np.array([[*world_velocity, 0.0]]))[0]
    return agents((name, x, y, vx, vy))


def _braking(t_s: float, start_m: float, speed_mps: float, deceleration_mps2: float):
    """(position [m] along its path from start_m, speed [m/s]) at t_s of an agent braking to a stop."""
    stop_s = speed_mps / deceleration_mps2
    moving = min(t_s, stop_s)
    distance_m = start_m + speed_mps * moving - deceleration_mps2 * moving ** 2 / 2
    return distance_m, max(speed_mps - deceleration_mps2 * t_s, 0.0)


def test_a_braking_lead_seen_from_a_turning_ego():
    # the lead drives along the global +y axis from y = 30 m at 12 m/s braking at 4 m/s^2: at 0, 0.5, 1, 1.5 s it is
    # at 30, 35.5, 40, 43.5 m; speeds over its displacements 11 and 9 m/s (midpoints 0.25, 0.75 s), then 7 m/s:
    # (9 - 11) / 0.5 = -4 from the third frame on, while the ego drives and turns behind it
    tracker = AgentTracker(TrackerConfig(smoothing=0.5))
    poses = [_pose(0, 0, 0, 1.2), _pose(HALF_SECOND_US, 1.0, 5.0, 1.4), _pose(2 * HALF_SECOND_US, 1.5, 10.0, 1.6),
             _pose(3 * HALF_SECOND_US, 1.8, 15.0, 1.6)]
    found = []
    for k, pose in enumerate(poses):
        y, speed = _braking(k * 0.5, 30.0, 12.0, 4.0)
        found.append(tracker.update(_in_ego(pose, (0.0, y), (0.0, speed)), pose).accelerations_mps2[0])
    np.testing.assert_allclose(found, [0.0, 0.0, -4.0, -4.0], atol=1e-9)


def test_a_moving_track_s_velocity_is_its_displacement_seen_from_a_turning_ego():
    # the braking lead of the test above, its detector's velocity wrong by 3 m/s across its path: from the second
    # frame on the planners see the displacements' direction, the global +y axis, in each ego frame, at their
    # speeds 11, 9, 7 m/s (at 0.25, 0.75, 1.25 s) brought to now with the acceleration: 11 (none yet),
    # 9 - 4 x 0.25 = 8 and 7 - 4 x 0.25 = 6 m/s, the lead's true speeds at 1 and 1.5 s
    tracker = AgentTracker()
    poses = [_pose(0, 0, 0, 1.2), _pose(HALF_SECOND_US, 1.0, 5.0, 1.4), _pose(2 * HALF_SECOND_US, 1.5, 10.0, 1.6),
             _pose(3 * HALF_SECOND_US, 1.8, 15.0, 1.6)]
    for k, (pose, measured) in enumerate(zip(poses, [None, 11.0, 8.0, 6.0])):
        y, speed = _braking(k * 0.5, 30.0, 12.0, 4.0)
        detected = _in_ego(pose, (0.0, y), (3.0, speed))
        seen = tracker.update(detected, pose).boxes
        expected = (detected.velocities[0] if measured is None
                    else _in_ego(pose, (0.0, y), (0.0, measured)).velocities[0])
        np.testing.assert_allclose(seen.velocities[0], expected, atol=1e-9)
        np.testing.assert_allclose(seen.centers, detected.centers)


def test_a_box_the_detector_sees_standing_keeps_the_detector_s_velocity():
    # parked cars the detector sees standing (0.2 m/s) whose boxes jitter by 0.3 m and by 0.8 m (0.6 and 1.6 m/s
    # over 0.5 s, the second a real keyframe's centre error) keep the detector's velocity; a car crawling 1.2 m in
    # 0.5 s (2.4 m/s) that the detector sees at 2 m/s gets its displacement's, and so does one whose displacement
    # is 0.4 m/s but whose detector's velocity says 1.5 m/s
    config = TrackerConfig()
    tracker = AgentTracker(config)
    tracker.update(agents(("car", 10.0, 5.0, 0.2, 0.0), ("car", 10.0, -8.0, 0.2, 0.0), ("car", 20.0, 0.0, 2.0, 0.0),
                          ("car", 30.0, -3.5, 1.5, 0.0)), _pose(0, 0, 0, 0))
    seen = tracker.update(agents(("car", 10.3, 5.0, 0.2, 0.0), ("car", 10.8, -8.0, 0.2, 0.0),
                                 ("car", 21.2, 0.0, 2.0, 0.0), ("car", 30.2, -3.3, 1.5, 0.0)),
                          _pose(HALF_SECOND_US, 0, 0, 0)).boxes
    assert 0.6 < config.standing_speed_mps < 1.5
    np.testing.assert_allclose(seen.velocities, [[0.2, 0.0], [0.2, 0.0], [2.4, 0.0], [0.4, 0.4]], atol=1e-9)


def test_estimates_are_smoothed_and_clipped():
    config = TrackerConfig(smoothing=0.5, braking_smoothing=0.5)
    tracker = AgentTracker(config)
    # positions 0, 5, 9, 13, 13 m every 0.5 s: speeds 10, 8, 8, 0 m/s; accelerations -4, then 0 (smoothed
    # 0.5 * 0 + 0.5 * -4 = -2), then -16 (0.5 * -16 + 0.5 * -2 = -9, the clip); the detector's velocities are
    # not read (here 3 m/s throughout)
    found = [tracker.update(agents(("car", 20.0 + x, 0.0, 3.0, 0.0)),
                            _pose(k * HALF_SECOND_US, 0, 0, 0)).accelerations_mps2[0]
             for k, x in enumerate([0.0, 5.0, 9.0, 13.0, 13.0])]
    np.testing.assert_allclose(found, [0.0, 0.0, -4.0, -2.0, config.min_acceleration_mps2])


def test_a_harder_braking_estimate_takes_its_own_weight():
    # positions 0, 5, 10, 14, 18, 22.5 m every 0.5 s: speeds 10, 10, 8, 8, 9 m/s; estimates 0, -4, 0, +2 m/s^2.
    # -4 brakes harder than the running 0: weight 1, -4; then 0 and +2 do not: weight 0.5, -2 and 0.
    tracker = AgentTracker(TrackerConfig(smoothing=0.5, braking_smoothing=1.0))
    found = [tracker.update(agents(("car", 20.0 + x, 0.0, 3.0, 0.0)),
                            _pose(k * HALF_SECOND_US, 0, 0, 0)).accelerations_mps2[0]
             for k, x in enumerate([0.0, 5.0, 10.0, 14.0, 18.0, 22.5])]
    np.testing.assert_allclose(found, [0.0, 0.0, 0.0, -4.0, -2.0, 0.0], atol=1e-9)
    with pytest.raises(ValueError, match="braking_smoothing"):
        TrackerConfig(braking_smoothing=1.5)


def test_association_by_class_gate_score_and_closest_first():
    tracker = AgentTracker(TrackerConfig(smoothing=1.0, braking_smoothing=1.0))
    poses = [_pose(k * HALF_SECOND_US, 0, 0, 0) for k in range(4)]
    tracker.update(agents(("car", 20.0, 0.0, 10.0, 0.0), ("car", 20.0, 3.5, 6.0, 0.0),
                          ("pedestrian", 10.0, 5.0, 1.0, 0.0), ("truck", 40.0, 0.0, 5.0, 0.0)), poses[0])
    tracker.update(agents(("car", 25.0, 0.0, 10.0, 0.0), ("car", 23.0, 3.5, 6.0, 0.0),
                          ("pedestrian", 10.5, 5.0, 1.0, 0.0), ("truck", 42.5, 0.0, 5.0, 0.0)), poses[1])
    # the cars, given in the other order, move on by 2 and 4.5 m (speeds 4 and 9 m/s after 6 and 10: -4 and -2);
    # the pedestrian, moved back by its 1 m/s over 0.5 s, is 1.2 m from where it stood (its gate is 1 m): a new
    # track, not -0.4 m/s^2 (its displacement of 1.7 m would give 3.4 m/s); the truck's box is now a car: a new track
    now = agents(("car", 25.0, 3.5, 4.0, 0.0), ("car", 29.5, 0.0, 9.0, 0.0), ("pedestrian", 12.2, 5.0, 1.0, 0.0),
                 ("car", 45.0, 0.0, 5.0, 0.0))
    np.testing.assert_allclose(tracker.update(now, poses[2]).accelerations_mps2, [-4.0, -2.0, 0.0, 0.0])
    low = agents(("car", 27.0, 3.5, 4.0, 0.0))
    low.scores[:] = 0.1  # below the planner's min_score: not tracked
    assert tracker.update(low, poses[3]).accelerations_mps2[0] == 0.0


def test_a_track_s_speeds_come_only_from_boxes_of_its_class():
    # a truck at 40 then 42.5 m (5 m/s over 0.5 s), then a car at 44 m detected at 3 m/s: moved back by its
    # velocity (44 - 1.5 = 42.5) it sits exactly where the truck was, but a car does not continue a truck's track:
    # a new track, acceleration 0 and the detector's 3 m/s (continuing it would read (44 - 42.5) / 0.5 = 3 m/s,
    # (3 - 5) / 0.5 = -4 m/s^2, and 3 - 4 x 0.25 = 2 m/s now)
    tracker = AgentTracker(TrackerConfig())
    tracker.update(agents(("truck", 40.0, 0.0, 5.0, 0.0)), _pose(0, 0, 0, 0))
    tracker.update(agents(("truck", 42.5, 0.0, 5.0, 0.0)), _pose(HALF_SECOND_US, 0, 0, 0))
    seen = tracker.update(agents(("car", 44.0, 0.0, 3.0, 0.0)), _pose(2 * HALF_SECOND_US, 0, 0, 0))
    assert seen.accelerations_mps2[0] == 0.0
    assert seen.boxes.velocities[0].tolist() == [3.0, 0.0]


def test_frames_closer_than_the_baseline_carry_the_estimate_on():
    # every 0.1 s, a car braking at 2 m/s^2 from 10 m/s, its box jittering by +-0.05 m along its path: speeds are
    # measured over 0.4 s (0 -> 0.4 s: 9.6 m/s at 0.2 s, 0.4 -> 0.8 s: 8.8 m/s at 0.6 s), never over 0.1 s
    tracker = AgentTracker(TrackerConfig(smoothing=1.0, braking_smoothing=1.0, baseline_s=0.4))
    found = []
    for k in range(9):
        x, speed = _braking(k * 0.1, 20.0, 10.0, 2.0)
        jitter = 0.05 if k % 4 else 0.0  # the reference frames (k = 0, 4, 8) sit on the path
        found.append(tracker.update(agents(("car", x + jitter, 0.0, speed, 0.0)),
                                    _pose(k * 100_000, 0, 0, 0)).accelerations_mps2[0])
    np.testing.assert_allclose(found, [0, 0, 0, 0, 0, 0, 0, 0, -2], atol=1e-9)


def test_frames_out_of_order_or_too_far_apart_start_afresh():
    tracker = AgentTracker(TrackerConfig(smoothing=1.0, braking_smoothing=1.0))
    for k, x in enumerate([0.0, 5.0, 9.0]):
        tracker.update(agents(("car", 20.0 + x, 0.0, 8.0, 0.0)), _pose(k * HALF_SECOND_US, 0, 0, 0))
    # the next frame 1.5 s later (more than max_gap_s), then one earlier than it: no estimate either time
    for k, x in ((5, 37.0), (4, 33.0)):
        tracked = tracker.update(agents(("car", x, 0.0, 8.0, 0.0)), _pose(k * HALF_SECOND_US, 0, 0, 0))
        assert tracked.accelerations_mps2[0] == 0.0
        assert tracked.boxes.velocities[0].tolist() == [8.0, 0.0]  # no measured velocity either: the detector's
    with pytest.raises(ValueError, match="smoothing"):
        TrackerConfig(smoothing=0.0)


def test_association_on_ground_truth_matches_the_instances(nusc_synthetic):
    """Ground-truth boxes of a synthetic scene as detections: a box gets an estimate exactly when its annotation's
    instance was annotated at the two previous keyframes, and then the change of the instance's own speeds over
    its two displacements (from the annotations' positions) between their midpoints."""
    scene = nusc_synthetic.scene[0]
    tracker = AgentTracker(TrackerConfig(smoothing=1.0, braking_smoothing=1.0, min_acceleration_mps2=-np.inf,
                                         max_acceleration_mps2=np.inf))
    history, checked, token = {}, 0, scene["first_sample_token"]
    while token:
        pose = keyframe_lidar_pose(nusc_synthetic, token)
        truth = sample_ground_truth(nusc_synthetic, token, pose.ego_to_global)
        found = tracker.update(truth.boxes, pose).accelerations_mps2
        records = [nusc_synthetic.get("sample_annotation", t) for t in truth.tokens]
        centers = pose.ego_to_global.apply(truth.boxes.centers)[:, :2]
        current = {}
        for index, record in enumerate(records):
            instance = record["instance_token"]
            current[instance] = (centers[index], pose.timestamp_us)
            tracked_class = any(part in TRACKING_GATES_M for part in record["category_name"].split("."))
            seen = history.get(instance, [])
            if tracked_class and len(seen) == 2:
                (p0, t0), (p1, t1) = seen
                p2, t2 = centers[index], pose.timestamp_us
                speed_1 = np.linalg.norm(p1 - p0) / ((t1 - t0) * 1e-6)
                speed_2 = np.linalg.norm(p2 - p1) / ((t2 - t1) * 1e-6)
                expected = (speed_2 - speed_1) / ((t2 - t0) / 2 * 1e-6)
                assert found[index] == pytest.approx(expected, abs=1e-6), record["category_name"]
                checked += 1
            elif tracked_class:
                assert found[index] == 0.0
        history = {instance: (history.get(instance, []) + [state])[-2:] for instance, state in current.items()}
        token = nusc_synthetic.get("sample", token)["next"]
    assert checked > 20


def test_the_score_gate_and_standing_thresholds_include_their_bounds():
    # three cars 20 m apart across, each on one bound, each moving on in 0.5 s: scored exactly min_score (0.3),
    # 5 m at a detected 3 m/s (moved back 1.5 m: 3.5 m from where it stood); 5 m at a detected 2 m/s, moved back
    # 1 m to exactly the car gate of 4 m from where it stood; 2 m at a detected exactly standing_speed_mps 1 m/s.
    # Each is tracked, associated and moving: the planners see its displacement, 10, 10 and 4 m/s along +x
    config = TrackerConfig()
    assert (config.min_score, TRACKING_GATES_M["car"], config.standing_speed_mps) == (0.3, 4.0, 1.0)
    tracker = AgentTracker(config)
    before = agents(("car", 0.0, 20.0, 3.0, 0.0), ("car", 20.0, 0.0, 2.0, 0.0), ("car", 0.0, 40.0, 1.0, 0.0))
    now = agents(("car", 5.0, 20.0, 3.0, 0.0), ("car", 25.0, 0.0, 2.0, 0.0), ("car", 2.0, 40.0, 1.0, 0.0))
    for boxes in (before, now):
        boxes.scores[0] = 0.3
    tracker.update(before, _pose(0, 0, 0, 0))
    seen = tracker.update(now, _pose(HALF_SECOND_US, 0, 0, 0)).boxes
    np.testing.assert_allclose(seen.velocities, [[10.0, 0.0], [10.0, 0.0], [4.0, 0.0]], atol=1e-9)


def test_a_frame_at_the_same_time_starts_afresh_and_one_max_gap_s_later_does_not():
    # a car at x = 20 m at 0 s, 29 m at 1 s (= max_gap_s): associated, seen at its displacement's 9 m/s, not the
    # detector's 8; then a frame again at 1 s (not after the previous one): a new track, the detector's 8 m/s
    tracker = AgentTracker(TrackerConfig())
    tracker.update(agents(("car", 20.0, 0.0, 8.0, 0.0)), _pose(0, 0, 0, 0))
    gap = tracker.update(agents(("car", 29.0, 0.0, 8.0, 0.0)), _pose(2 * HALF_SECOND_US, 0, 0, 0))
    assert gap.boxes.velocities[0].tolist() == pytest.approx([9.0, 0.0])
    again = tracker.update(agents(("car", 29.0, 0.0, 8.0, 0.0)), _pose(2 * HALF_SECOND_US, 0, 0, 0))
    assert again.boxes.velocities[0].tolist() == [8.0, 0.0] and again.accelerations_mps2[0] == 0.0
