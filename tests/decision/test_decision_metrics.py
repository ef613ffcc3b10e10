"""The plan's collision geometry (perception.decision.collision) against shapely, and the logged drive
(perception.eval.logged_drive: the logged future, the ego state from the past, every planner per keyframe) against
nuscenes-devkit (real fixture) and the synthetic world's own ego trajectory; its tracked agents against one tracker
per scene run by hand."""
import json

import numpy as np
import pytest
from pyquaternion import Quaternion
from scipy.spatial.transform import Rotation, Slerp
from shapely.geometry import Polygon

from perception.classes import category_to_detection_name
from perception.datasets.ego_log import keyframe_lidar_pose
from perception.datasets.ground_truth import sample_ground_truth
from perception.decision import EgoState, Maneuver
from perception.decision.collision import ego_footprints, plan_collisions, plan_headings
from perception.decision.tracking import AgentTracker
from perception.eval.decision_metrics import grade_planners
from perception.eval.logged_drive import (_interpolate_boxes, keyframe_inputs, logged_future,
                                          planned_frame_for_sample, tracked_agents)
from perception.geometry import Boxes3D
from tests.decision.helpers import agents
from tests.eval.devkit_truth import devkit_centres_in_ego

STRAIGHT = np.stack([5.0 * np.arange(1, 7), np.zeros(6)], axis=1)  # 10 m/s straight ahead


def test_collision_with_a_box_on_the_path():
    # the ego's footprint at 1.5 s spans x in [15 + 1.4 - 2.042, 15 + 1.4 + 2.042]; a car there, one beside it
    on_path = agents(("car", 17.0, 0.5, 0, 0))
    beside = agents(("car", 17.0, 2.5, 0, 0))  # 2.5 - 0.95 = 1.55 > 0.925: clear
    boxes = [Boxes3D.empty()] * 2 + [Boxes3D.concatenate([on_path, beside])] + [beside] * 3
    np.testing.assert_array_equal(plan_collisions(STRAIGHT, boxes), [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(plan_collisions(np.zeros((6, 2)), boxes), [0] * 6)


def test_ego_footprint_follows_the_heading():
    corners = ego_footprints(np.array([[0.0, 5.0]]))[0]  # moved straight left: heading +90 degrees
    expected = Polygon([(-0.925, 5 + 1.4 - 2.042), (0.925, 5 + 1.4 - 2.042), (0.925, 5 + 1.4 + 2.042),
                        (-0.925, 5 + 1.4 + 2.042)])
    assert Polygon(corners).symmetric_difference(expected).area == pytest.approx(0.0, abs=1e-9)


def test_a_step_back_keeps_the_heading():
    # forward 1 m, back 0.1 m (a standing plan's noise), forward 1.1 m: the step back points along pi, against
    # the heading 0 it had; it is kept (plans do not reverse), and the footprint at 0.9 m still faces +x
    trajectory = np.array([[1.0, 0.0], [0.9, 0.0], [2.0, 0.0]])
    np.testing.assert_array_equal(plan_headings(trajectory), [0.0, 0.0, 0.0])
    # its footprint: x 0.9 + 1.4 -+ 2.042, y -+ 0.925, as shapely sees it (a U-turn would put it at 0.9 - 1.4)
    expected = Polygon([(0.9 + 1.4 - 2.042, -0.925), (0.9 + 1.4 + 2.042, -0.925), (0.9 + 1.4 + 2.042, 0.925),
                        (0.9 + 1.4 - 2.042, 0.925)])
    assert Polygon(ego_footprints(trajectory)[1]).symmetric_difference(expected).area == pytest.approx(0.0, abs=1e-9)


def _lidar_ego_pose(nusc, sample_token):
    sample = nusc.get("sample", sample_token)
    return nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["ego_pose_token"])


def test_logged_future_on_the_real_fixture(nusc_real):
    first, second, third = [nusc_real.sample[i]["token"] for i in range(3)]
    future = logged_future(nusc_real, first)
    np.testing.assert_array_equal(future.ego_valid, [True, True, False, False, False, False])
    np.testing.assert_array_equal(future.boxes_valid, future.ego_valid)
    pose0 = _lidar_ego_pose(nusc_real, first)
    rotation0 = Quaternion(pose0["rotation"]).inverse
    for step, later in enumerate([second, third]):
        # the keyframes lie within 0.3 ms of the step times: at ~4 m/s that is about a millimetre
        pose = _lidar_ego_pose(nusc_real, later)
        expected = rotation0.rotate(np.array(pose["translation"]) - pose0["translation"])[:2]
        np.testing.assert_allclose(future.ego_xy[step], expected, atol=5e-3)
        # both steps lie between the second and third keyframes, each within 0.3 ms of one: that keyframe's
        # instances, each on its annotation (those of the other keyframe only are half a second away)
        devkit = devkit_centres_in_ego(nusc_real, later, pose0)
        boxes = future.boxes[step]
        assert len(boxes) == len(devkit)
        for xy in devkit.values():
            assert np.linalg.norm(boxes.centers[:, :2] - xy[:2], axis=1).min() < 0.02
    assert not logged_future(nusc_real, third).ego_valid.any()
    assert not logged_future(nusc_real, third).boxes_valid.any()


def test_the_ego_state_of_a_keyframe_on_the_real_fixture(nusc_real):
    tokens = [sample["token"] for sample in nusc_real.sample]
    poses = [_lidar_ego_pose(nusc_real, token) for token in tokens]
    state = keyframe_inputs(nusc_real, tokens[1])[2]  # no sweeps: the previous keyframe, never the next
    displacement = np.array(poses[1]["translation"]) - poses[0]["translation"]
    heading = Quaternion(poses[1]["rotation"]).rotate([1.0, 0.0, 0.0])
    duration = (poses[1]["timestamp"] - poses[0]["timestamp"]) * 1e-6
    assert state.speed_mps == pytest.approx(displacement[:2] @ heading[:2] / np.linalg.norm(heading[:2]) / duration)
    yaws = [Quaternion(p["rotation"]).yaw_pitch_roll[0] for p in poses]
    assert state.yaw_rate_rps == pytest.approx((yaws[1] - yaws[0]) / duration, rel=1e-3)
    first = keyframe_inputs(nusc_real, tokens[0])[2]  # the log's first: moving, by its earlier camera records
    assert first.speed_mps == pytest.approx(state.speed_mps, rel=0.05) and first.acceleration_mps2 is None


def test_logged_future_on_the_synthetic_world(nusc_synthetic):
    """Ego future against the world's own ego trajectory at the exact step times (the poses come from the
    20 Hz sweeps); every planner and the metrics run end to end, ground truth as the detections."""
    from perception.datasets.ground_truth import sample_ground_truth
    from perception.datasets.synthetic.scene import build_scene
    from perception.geometry import EgoPose
    from tests.conftest import TINY_WORLD

    frames = []
    for scene in nusc_synthetic.scene:
        model = build_scene(TINY_WORLD["seed"], int(scene["name"].split("-")[1]), TINY_WORLD["samples_per_scene"])
        token, index = scene["first_sample_token"], 0
        while token:
            future = logged_future(nusc_synthetic, token)
            valid_steps = min(6, TINY_WORLD["samples_per_scene"] - 1 - index)
            np.testing.assert_array_equal(future.ego_valid, np.arange(6) < valid_steps)
            now_s = 0.5 * index
            global_to_now = model.ego_to_global(now_s).inverse()
            for step in range(valid_steps):
                expected = global_to_now.apply(model.ego_to_global(now_s + future.times_s[step]).translation[None])
                np.testing.assert_allclose(future.ego_xy[step], expected[0, :2], atol=2e-3)
            sample = nusc_synthetic.get("sample", token)
            truth = sample_ground_truth(nusc_synthetic, token, EgoPose.from_record(
                _lidar_ego_pose(nusc_synthetic, token)).ego_to_global).boxes
            frames.append(planned_frame_for_sample(nusc_synthetic, token, truth))
            token, index = sample["next"], index + 1
    decisions = grade_planners(frames)
    json.dumps(decisions, allow_nan=False)
    planners = decisions["planners"]
    # Plumbing checks, not grades: the ground truth passed as the detections must reach the rule planner and its gap
    # check in the same ego frame as the keyframe's own ground truth, so both sides agree exactly.
    assert planners["rules_on_detections"] == planners["rules_on_ground_truth"]  # the same boxes on both sides
    feasibility = decisions["lane_change_feasibility"]
    assert list(feasibility) == ["rules_on_detections"]  # no planning head here
    assert feasibility["rules_on_detections"]["gap_check_on_truth"]["accuracy"] == 1.0  # the same boxes again
    # graded against the world: the synthetic logged drive never collides with its own ground truth
    assert all(rate in (0.0, None) for rate in planners["logged"]["collision_uniad"].values())
    assert planners["constant_velocity"]["num_frames"]["l2"]["1s"] == 2 * len(nusc_synthetic.scene)
    assert decisions["num_frames_labelled"] == 0 and decisions["maneuvers"] == {}  # 1.5 s scenes: no 3 s label


def test_a_step_on_the_scenes_last_keyframe_gets_that_keyframes_boxes(nusc_synthetic):
    """The tiny world's keyframes are 0.5 s apart, on the plan's steps: from keyframe k (0, 1, 2) of a 4-keyframe
    scene the step at (3 - k) x 0.5 s lands on the last keyframe (3, at 1.5 s), with no keyframe after it. Its boxes
    are the world's actors where they are at 1.5 s (actor.box_centre), in the ego frame at 0.5 k s; the previous
    keyframe's boxes (1.0 s) have the moving actors elsewhere."""
    from perception.datasets.synthetic.scene import build_scene
    from tests.conftest import TINY_WORLD

    for scene in nusc_synthetic.scene:
        model = build_scene(TINY_WORLD["seed"], int(scene["name"].split("-")[1]), TINY_WORLD["samples_per_scene"])
        tokens = [scene["first_sample_token"]]
        while nusc_synthetic.get("sample", tokens[-1])["next"]:
            tokens.append(nusc_synthetic.get("sample", tokens[-1])["next"])
        assert len(tokens) == 4
        last_s = 1.5
        annotated = [record for record in (nusc_synthetic.get("sample_annotation", token)
                                           for token in nusc_synthetic.get("sample", tokens[3])["anns"])
                     if category_to_detection_name(record["category_name"]) is not None]
        for k in range(3):
            future = logged_future(nusc_synthetic, tokens[k])
            step = 3 - k - 1  # times_s[step] = (3 - k) x 0.5 s
            assert future.times_s[step] == pytest.approx(last_s - 0.5 * k) and future.boxes_valid[step]
            to_now = model.ego_to_global(0.5 * k).inverse()
            actors_then = np.array([to_now.apply(np.asarray(actor.box_centre(last_s)[0])[None])[0]
                                    for actor in model.actors])
            boxes = future.boxes[step]
            assert len(boxes) == len(annotated)
            nearest = np.linalg.norm(boxes.centers[:, None] - actors_then[None], axis=2).min(axis=1)
            assert nearest.max() < 1e-3, (scene["name"], k, nearest.max())


def test_the_gap_check_on_the_truth_is_not_the_detections(nusc_real):
    """Blind detections (none) against the real keyframes' ground truth: with no lane map both neighbouring lanes
    are assumed to exist, so nothing detected passes both sides' gap checks (True, True), while the annotated
    pedestrians ahead in both neighbouring lanes (keyframe 0: 20.2 m ahead 4.9 m left, 17.7 m ahead 3.0 m right)
    fail the truth's on both (False, False). Graded: 3 keyframes x 2 sides = 6 sides, all blocked by the truth,
    all judged feasible: accuracy 0/6, false_feasible_rate 6/6."""
    frames = [planned_frame_for_sample(nusc_real, sample["token"], Boxes3D.empty()) for sample in nusc_real.sample]
    assert [frame.feasibility["rules_on_detections"] for frame in frames] == [(True, True)] * 3
    assert [frame.gap_check_on_truth for frame in frames] == [(False, False)] * 3
    check = grade_planners(frames)["lane_change_feasibility"]["rules_on_detections"]["gap_check_on_truth"]
    assert check == {"sides": 6, "accuracy": 0.0, "blocked_sides": 6, "false_feasible_rate": 1.0}


def test_ego_state_on_the_synthetic_world(nusc_synthetic):
    from perception.datasets.synthetic.scene import build_scene
    from tests.conftest import TINY_WORLD

    scene = nusc_synthetic.scene[0]
    model = build_scene(TINY_WORLD["seed"], 0, TINY_WORLD["samples_per_scene"])
    sample = nusc_synthetic.get("sample", nusc_synthetic.get("sample", scene["first_sample_token"])["next"])
    state = keyframe_inputs(nusc_synthetic, sample["token"])[2]
    before, now = model.ego_to_global(0.5 - 0.05), model.ego_to_global(0.5)  # the last sweep and the keyframe
    speed = np.linalg.norm(now.translation[:2] - before.translation[:2]) / 0.05
    yaw_rate = np.remainder(now.yaw - before.yaw + np.pi, 2 * np.pi) - np.pi
    assert state.speed_mps == pytest.approx(speed, abs=0.05)
    assert state.yaw_rate_rps == pytest.approx(yaw_rate / 0.05, abs=0.01)
    assert isinstance(state, EgoState) and state.acceleration_mps2 is not None


def test_a_blind_detector_on_the_real_fixture(nusc_real):
    """No detections while pedestrians walk ahead of the turning ego: the rules on ground truth follow them, the
    blind ones keep the lane; 3 keyframes (1 s of log) give no 3 s maneuver label, and L2 at 1 s only."""
    frames = [planned_frame_for_sample(nusc_real, sample["token"], Boxes3D.empty()) for sample in nusc_real.sample]
    assert [frame.plans["rules_on_ground_truth"][1] for frame in frames] == [Maneuver.FOLLOW] * 3
    assert [frame.plans["rules_on_detections"][1] for frame in frames] == [Maneuver.KEEP_LANE] * 3
    assert all(frame.logged_maneuver is None for frame in frames)
    decisions = grade_planners(frames)
    assert decisions["planners"]["rules_on_detections"]["num_frames"]["l2"] == {"1s": 1, "2s": 0, "3s": 0}


def test_box_yaw_interpolates_the_short_way_across_pi():
    """A box matched in two keyframes at yaw 3.1 and -3.1 rad turned 2 pi - 6.2 = 0.083 rad through +-pi, not 6.2
    rad back through 0: halfway it points at 3.1 + 0.042 = pi (scipy's Slerp of the two headings), a quarter of the
    way at 3.1 + 0.021; the centre moves linearly. A box in one keyframe only is kept as annotated."""
    before = Boxes3D(centers=[[10.0, 0.0, 0.0], [0.0, 5.0, 0.0]], sizes=[[2.0, 4.0, 1.5]] * 2, yaws=[3.1, 0.3])
    after = Boxes3D(centers=[[12.0, 1.0, 0.0]], sizes=[[2.0, 4.0, 1.5]], yaws=[-3.1])
    slerp = Slerp([0.0, 1.0], Rotation.from_euler("z", [[3.1], [-3.1]]))
    for alpha in (0.25, 0.5):
        boxes = _interpolate_boxes((before, ["car", "parked"]), (after, ["car"]), alpha)
        assert len(boxes) == 2
        turned = Rotation.from_euler("z", boxes.yaws[0]) * slerp([alpha])[0].inv()
        assert turned.magnitude() == pytest.approx(0.0, abs=1e-9)
        np.testing.assert_allclose(boxes.centers[0], [10.0 + 2.0 * alpha, alpha, 0.0])
        assert boxes.yaws[1] == 0.3 and boxes.centers[1].tolist() == [0.0, 5.0, 0.0]
    midway = _interpolate_boxes((before, ["car", "parked"]), (after, ["car"]), 0.5)
    assert abs(np.cos(midway.yaws[0]) - -1.0) < 1e-9  # about pi


def test_a_box_in_one_keyframe_only_is_read_from_the_nearer_keyframe():
    """A car in both keyframes, one leaving after the first and one arriving in the second: a step on the first
    keyframe (alpha 0) or up to halfway reads the leaving car as annotated and not the arriving one, whose position
    is half a second away; beyond halfway the reverse."""
    size = [[2.0, 4.0, 1.5]]
    before = Boxes3D(centers=[[10.0, 0.0, 0.0], [0.0, 5.0, 0.0]], sizes=size * 2, yaws=[0.0, 0.0])
    after = Boxes3D(centers=[[12.0, 0.0, 0.0], [30.0, -5.0, 0.0]], sizes=size * 2, yaws=[0.0, 0.0])
    for alpha, (x, other) in {0.0: (10.0, [0.0, 5.0]), 0.5: (11.0, [0.0, 5.0]), 0.75: (11.5, [30.0, -5.0]),
                              1.0: (12.0, [30.0, -5.0])}.items():
        boxes = _interpolate_boxes((before, ["car", "leaving"]), (after, ["car", "arriving"]), alpha)
        np.testing.assert_allclose(boxes.centers[:, :2], [[x, 0.0], other])


def test_tracked_agents_runs_one_tracker_per_scene_over_its_keyframes_in_time_order(nusc_synthetic):
    """The tiny world's two scenes, their keyframes given newest first (ground truth as detections): each keyframe
    gets what an AgentTracker of its own scene, fed that scene's keyframes oldest first, returns; in the order given,
    every frame would come before the previous one and start the tracks afresh (no estimate at all)."""
    scenes, boxes = [], {}
    for scene in nusc_synthetic.scene:
        tokens, token = [], scene["first_sample_token"]
        while token:
            tokens.append(token)
            boxes[token] = sample_ground_truth(nusc_synthetic, token,
                                               keyframe_lidar_pose(nusc_synthetic, token).ego_to_global).boxes
            token = nusc_synthetic.get("sample", token)["next"]
        scenes.append(tokens)
    newest_first = sorted(boxes, key=lambda token: nusc_synthetic.get("sample", token)["timestamp"], reverse=True)
    found = tracked_agents(nusc_synthetic, boxes, newest_first)
    estimated = 0
    for tokens in scenes:
        tracker = AgentTracker()
        for token in tokens:
            expected = tracker.update(boxes[token], keyframe_lidar_pose(nusc_synthetic, token))
            np.testing.assert_array_equal(found[token].boxes.velocities, expected.boxes.velocities)
            np.testing.assert_array_equal(found[token].accelerations_mps2, expected.accelerations_mps2)
            estimated += int(np.count_nonzero(expected.accelerations_mps2))
    assert estimated > 0
