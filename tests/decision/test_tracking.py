"""The agent tracker: accelerations worked by hand from a moving ego, the association rules (class, gate, score,
closest first), the resets; and its association on a synthetic scene's ground truth against the annotations'
own instance tokens."""
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


def test_a_braking_lead_seen_from_a_turning_ego():
    # the lead drives along the global +y axis at 12, 10, 8 m/s (-4 m/s^2); the ego drives and turns behind it
    tracker = AgentTracker()
    lead = [(0.0, 30.0, 12.0), (0.0, 35.5, 10.0), (0.0, 40.0, 8.0)]  # (x, y, speed): y advances by the mean speed
    poses = [_pose(0, 0, 0, 1.2), _pose(HALF_SECOND_US, 1.0, 5.0, 1.4), _pose(2 * HALF_SECOND_US, 1.5, 10.0, 1.6)]
    found = [tracker.update(_in_ego(pose, (x, y), (0.0, speed)), pose)[0] for pose, (x, y, speed) in zip(poses, lead)]
    np.testing.assert_allclose(found, [0.0, -4.0, -4.0], atol=1e-9)


def test_estimates_are_smoothed_and_clipped():
    config = TrackerConfig(smoothing=0.5)
    tracker = AgentTracker(config)
    poses = [_pose(k * HALF_SECOND_US, 0, 0, 0) for k in range(4)]
    # speeds 10 -> 8 (-4) -> 8 (0: smoothed 0.5 * 0 + 0.5 * -4 = -2) -> 0 (-16: 0.5 * -16 + 0.5 * -2 = -9, the clip)
    speeds = [10.0, 8.0, 8.0, 0.0]
    found = [tracker.update(agents(("car", 20.0 + k, 0.0, speed, 0.0)), pose)[0]
             for k, (pose, speed) in enumerate(zip(poses, speeds))]
    np.testing.assert_allclose(found, [0.0, -4.0, -2.0, config.min_acceleration_mps2])


def test_association_by_class_gate_score_and_closest_first():
    tracker = AgentTracker()
    first, second = _pose(0, 0, 0, 0), _pose(HALF_SECOND_US, 0, 0, 0)
    tracker.update(agents(("car", 20.0, 0.0, 10.0, 0.0), ("car", 20.0, 3.5, 6.0, 0.0),
                          ("pedestrian", 10.0, 5.0, 0.0, 0.0), ("truck", 40.0, 0.0, 5.0, 0.0)), first)
    # the cars, given in the other order, moved on by their speeds (+5 m, +3 m): each continues its own track;
    # the pedestrian, moved back by its 1 m/s over 0.5 s, is 1.2 m from where it stood (its gate is 1 m): a new
    # track, not +2 m/s^2; the truck's box is now a car: a new track
    now = agents(("car", 23.0, 3.5, 4.0, 0.0), ("car", 25.0, 0.0, 9.0, 0.0), ("pedestrian", 11.7, 5.0, 1.0, 0.0),
                 ("car", 42.5, 0.0, 4.0, 0.0))
    np.testing.assert_allclose(tracker.update(now, second), [-4.0, -2.0, 0.0, 0.0])
    low = agents(("car", 27.0, 3.5, 2.0, 0.0))
    low.scores[:] = 0.1  # below the planner's min_score: not tracked
    assert tracker.update(low, _pose(2 * HALF_SECOND_US, 0, 0, 0))[0] == 0.0


def test_frames_closer_than_the_baseline_carry_the_estimate_on():
    # every 0.1 s, a car braking at exactly 2 m/s^2 whose detected speed jitters by +-0.2 m/s: the estimate is
    # taken over 0.4 s (from the speed at 0.0 to that at 0.4 s, then 0.4 -> 0.8 s), never over 0.1 s (which would
    # give +2 m/s^2 at 0.1 s)
    tracker = AgentTracker(TrackerConfig(smoothing=1.0, baseline_s=0.4))
    found = []
    for k in range(9):
        speed = 10.0 - 0.2 * k + (0.2 if k % 2 else -0.2)
        found.append(tracker.update(agents(("car", 20.0 + k, 0.0, speed, 0.0)), _pose(k * 100_000, 0, 0, 0))[0])
    # k = 4: (10 - 0.8 - 0.2 - (10 - 0.2)) / 0.4 = -2; k = 8: (10 - 1.6 - 0.2 - 9.0) / 0.4 = -2
    np.testing.assert_allclose(found, [0, 0, 0, 0, -2, -2, -2, -2, -2], atol=1e-9)


def test_frames_out_of_order_or_too_far_apart_start_afresh():
    tracker = AgentTracker()
    tracker.update(agents(("car", 20.0, 0.0, 10.0, 0.0)), _pose(HALF_SECOND_US, 0, 0, 0))
    assert tracker.update(agents(("car", 15.0, 0.0, 8.0, 0.0)), _pose(0, 0, 0, 0))[0] == 0.0  # earlier
    far = 3 * HALF_SECOND_US  # 1.5 s later: more than max_gap_s
    assert tracker.update(agents(("car", 30.0, 0.0, 6.0, 0.0)), _pose(far, 0, 0, 0))[0] == 0.0
    with pytest.raises(ValueError, match="smoothing"):
        TrackerConfig(smoothing=0.0)


def test_association_on_ground_truth_matches_the_instances(nusc_synthetic):
    """Ground-truth boxes of a synthetic scene as detections: a box gets an estimate exactly when its annotation's
    instance was annotated at the previous keyframe, and then the instance's own speed change over the time."""
    scene = nusc_synthetic.scene[0]
    tracker = AgentTracker(TrackerConfig(smoothing=1.0, min_acceleration_mps2=-np.inf,
                                         max_acceleration_mps2=np.inf))
    previous, checked, token = {}, 0, scene["first_sample_token"]
    while token:
        pose = keyframe_lidar_pose(nusc_synthetic, token)
        truth = sample_ground_truth(nusc_synthetic, token, pose.ego_to_global)
        found = tracker.update(truth.boxes, pose)
        instances = [nusc_synthetic.get("sample_annotation", t)["instance_token"] for t in truth.tokens]
        speeds = np.hypot(truth.boxes.velocities[:, 0], truth.boxes.velocities[:, 1])
        names = [nusc_synthetic.get("sample_annotation", t)["category_name"] for t in truth.tokens]
        for index, instance in enumerate(instances):
            tracked_class = any(part in TRACKING_GATES_M for part in names[index].split("."))
            if instance in previous and tracked_class:
                speed_before, time_before = previous[instance]
                expected = (speeds[index] - speed_before) / ((pose.timestamp_us - time_before) * 1e-6)
                assert found[index] == pytest.approx(expected, abs=1e-9), names[index]
                checked += 1
        previous = {instance: (speeds[i], pose.timestamp_us) for i, instance in enumerate(instances)}
        token = nusc_synthetic.get("sample", token)["next"]
    assert checked > 20
