"""The decision metrics on hand-worked frames: L2 and collisions per horizon in both conventions, frames too short
for a horizon counted and skipped, maneuver grading against the logged labels, lane-change feasibility against the
logged lane changes and the gap check on the ground truth."""
import numpy as np
import pytest

from perception.decision import EgoState
from perception.decision.baselines import constant_velocity_plan
from perception.eval import logged_drive
from perception.eval.decision_metrics import (LoggedFuture, PlannedFrame, grade_lane_change_feasibility,
                                              grade_maneuvers, grade_planners, l2_ratio)
from perception.eval.logged_drive import _bracket, _interpolate_boxes, logged_future
from perception.eval.report import decision_report_markdown
from perception.geometry import Boxes3D
from perception.maneuvers import Maneuver
from tests.conftest import REAL_SCENE_FIXTURE_ROOT
from tests.eval.devkit_truth import devkit_centres_in_ego

TIMES = 0.5 * np.arange(1, 7)
KEEP, FOLLOW, BRAKE, STOP = Maneuver.KEEP_LANE, Maneuver.FOLLOW, Maneuver.BRAKE, Maneuver.STOP
LEFT, RIGHT = Maneuver.CHANGE_LANE_LEFT, Maneuver.CHANGE_LANE_RIGHT


def _future(token, speed, valid_steps=6, boxes=None):
    xy = np.c_[speed * TIMES, np.zeros(6)]
    valid = np.arange(6) < valid_steps
    xy[~valid] = np.nan
    boxes = boxes or tuple(Boxes3D.empty() for _ in TIMES)
    return LoggedFuture(token, TIMES, xy, valid, boxes, valid.copy())


def test_constant_velocity_goes_straight_at_the_current_speed():
    plan = constant_velocity_plan(EgoState(8.0, yaw_rate_rps=0.3))
    assert plan.tolist() == [[4.0 * k, 0.0] for k in range(1, 7)]
    assert constant_velocity_plan(EgoState(-2.0)).tolist() == [[0.0, 0.0]] * 6


def test_l2_and_collisions_per_horizon_in_both_conventions():
    # frame a: logged 10 m/s, the plan 8 m/s -> errors 1, 2, ..., 6 m; frame b: the log covers 2 s only, the plan
    # is exact. A parked car sits on frame a's logged path at 25 m (rear 22.7 m): the logged drive itself reaches it
    # at 2.0 s (a box misplaced in the annotations), the slower plan at 2.5 s (20 m + 3.44 m front)
    car = Boxes3D(centers=np.array([[25.0, 0.0, 0.9]]), sizes=np.array([[1.9, 4.6, 1.6]]), yaws=np.zeros(1))
    frame_a = PlannedFrame(_future("a", 10.0, boxes=tuple(car for _ in TIMES)), KEEP,
                           {"slow": (np.c_[8.0 * TIMES, np.zeros(6)], KEEP)})
    frame_b = PlannedFrame(_future("b", 6.0, valid_steps=4), None, {"slow": (np.c_[6.0 * TIMES, np.zeros(6)], FOLLOW)})
    decisions = grade_planners([frame_a, frame_b])
    slow = decisions["planners"]["slow"]
    assert slow["num_frames"]["l2"] == {"1s": 2, "2s": 2, "3s": 1}
    assert slow["l2_uniad_m"] == pytest.approx({"1s": (2 + 0) / 2, "2s": (4 + 0) / 2, "3s": 6.0})
    assert slow["l2_stp3_m"] == pytest.approx({"1s": (1.5 + 0) / 2, "2s": (2.5 + 0) / 2, "3s": 3.5})
    # the plan collides in frame a at 2.5 s and 3.0 s (2 of its 6 steps); frame b has no boxes
    assert slow["collision_uniad"] == pytest.approx({"1s": 0.0, "2s": 0.0, "3s": 1.0})
    assert slow["collision_stp3"]["3s"] == pytest.approx(2 / 6)
    logged = decisions["planners"]["logged"]
    # frame a: 20 m + 3.44 m > 22.7 m at 2 s; frame b has no boxes
    assert logged["l2_uniad_m"]["3s"] == 0.0 and logged["collision_uniad"]["2s"] == pytest.approx(0.5)
    assert decisions["num_frames"] == 2 and decisions["num_frames_labelled"] == 1


def test_frames_on_different_step_grids_are_an_error_naming_the_sample():
    short = LoggedFuture("b", TIMES[:4], np.c_[TIMES[:4], np.zeros(4)], np.ones(4, bool),
                         tuple(Boxes3D.empty() for _ in range(4)), np.ones(4, bool))
    plans = {"cv": (np.c_[TIMES, np.zeros(6)], KEEP)}
    with pytest.raises(ValueError, match=r"sample b: step times \[0.5, 1.0, 1.5, 2.0\] differ"):
        grade_planners([PlannedFrame(_future("a", 1.0), KEEP, plans), PlannedFrame(short, KEEP, plans)])


def test_maneuver_grading_against_the_logged_labels():
    logged = [KEEP, KEEP, BRAKE, STOP, LEFT, LEFT, RIGHT, FOLLOW, STOP]
    decided = [KEEP, BRAKE, BRAKE, KEEP, LEFT, RIGHT, KEEP, LEFT, BRAKE]
    still = np.zeros((6, 2))
    frames = [PlannedFrame(_future(str(i), 5.0), truth, {"p": (still, guess), "cv": (still, None)})
              for i, (truth, guess) in enumerate(zip(logged, decided))]
    frames.append(PlannedFrame(_future("x", 5.0), None, {"p": (still, STOP), "cv": (still, None)}))  # unlabelled
    grades = grade_maneuvers(frames)
    assert list(grades) == ["p"]  # constant velocity decides no maneuver
    p = grades["p"]
    assert p["num_frames"] == 9 and p["accuracy"] == pytest.approx(3 / 9)
    assert p["lane_change_precision"] == pytest.approx(1 / 3)  # LEFT right, RIGHT wrong side, LEFT for FOLLOW
    assert p["lane_change_recall"] == pytest.approx(1 / 3)  # of LEFT, LEFT, RIGHT
    # of the logged BRAKE, STOP, STOP: the STOP decided as KEEP is missed; the BRAKE decided as BRAKE and the STOP
    # decided as BRAKE (the other braking maneuver, still a brake) are caught: 1/3
    assert p["critical_miss_rate"] == pytest.approx(1 / 3)
    assert p["false_brake_rate"] == pytest.approx(1 / 6)  # a KEEP decided as BRAKE
    # rows the logged labels, columns the decided ones, both in Maneuver's order
    assert p["labels"] == ["KEEP_LANE", "FOLLOW", "BRAKE", "STOP", "CHANGE_LANE_LEFT", "CHANGE_LANE_RIGHT"]
    assert p["confusion_matrix"] == [[1, 0, 1, 0, 0, 0],  # KEEP: decided KEEP, BRAKE
                                     [0, 0, 0, 0, 1, 0],  # FOLLOW: decided LEFT
                                     [0, 0, 1, 0, 0, 0],  # BRAKE: decided BRAKE
                                     [1, 0, 1, 0, 0, 0],  # STOP: decided KEEP, BRAKE
                                     [0, 0, 0, 0, 1, 1],  # LEFT: decided LEFT, RIGHT
                                     [1, 0, 0, 0, 0, 0]]  # RIGHT: decided KEEP


def test_lane_change_feasibility_against_the_log_and_the_gap_check_on_the_truth():
    # (logged label, the planner's (left, right), the gap check on the truth's (left, right))
    rows = [(LEFT, (True, False), (True, True)),     # took left, judged feasible; right judged blocked, was free
            (RIGHT, (True, False), (True, False)),   # took right, judged blocked; both sides agree with the truth
            (KEEP, (True, True), (False, True)),     # left judged feasible where the truth blocks it
            (None, (False, False), (False, False))]  # unlabelled: graded against the truth only
    still = np.zeros((6, 2))
    frames = [PlannedFrame(_future(str(i), 5.0), logged, {"p": (still, KEEP)}, {"p": judged}, truth)
              for i, (logged, judged, truth) in enumerate(rows)]
    frames.append(PlannedFrame(_future("n", 5.0), LEFT, {"p": (still, KEEP)}, {}, (True, True)))  # p judged nothing
    # a lane change past its lane boundary: judged from the lane it changes to, so not graded against the log
    frames.append(PlannedFrame(_future("u", 5.0), RIGHT, {"p": (still, KEEP)}, {"p": (True, False)}, (True, False),
                               lane_change_under_way=True))
    p = grade_lane_change_feasibility(frames)["p"]
    assert p["num_frames"] == 5 and p["logged_lane_changes"] == 2 and p["lane_changes_under_way"] == 1
    assert p["logged_side_feasible_rate"] == pytest.approx(1 / 2)
    check = p["gap_check_on_truth"]
    # 10 sides: wrong are frame 0's right and frame 2's left; blocked by the truth: frame 1's right, frame 2's
    # left, frame 3's both, the under-way frame's right, of which frame 2's left was judged feasible
    assert check == {"sides": 10, "accuracy": pytest.approx(8 / 10), "blocked_sides": 5,
                     "false_feasible_rate": pytest.approx(1 / 5)}
    assert grade_lane_change_feasibility(frames[3:4])["p"]["logged_side_feasible_rate"] is None
    text = decision_report_markdown(grade_planners(frames))
    assert "| p | 2 | 1 | 0.500 | 10 | 0.800 | 5 | 0.200 |" in text


def test_disagreeing_frames_are_named():
    good = PlannedFrame(_future("a", 5.0), KEEP, {"p": (np.zeros((6, 2)), KEEP)})
    short = PlannedFrame(_future("b", 5.0), KEEP, {"p": (np.zeros((5, 2)), KEEP)})
    with pytest.raises(ValueError, match="sample b: the p plan"):
        grade_planners([good, short])


def test_the_report_shows_every_planner():
    frames = [PlannedFrame(_future("a", 10.0), KEEP, {"constant_velocity": (np.c_[10.0 * TIMES, np.zeros(6)], None),
                                                      "rules": (np.c_[9.0 * TIMES, np.zeros(6)], FOLLOW)})]
    text = decision_report_markdown(grade_planners(frames))
    assert "| constant_velocity | 0.00 | 0.00 | 0.00 |" in text and "| rules | 1.00 | 2.00 | 3.00 |" in text
    assert "| rules | 0.000 | n/a | n/a | n/a | 0.000 | 1 |" in text and "| logged |" in text
    assert "UniAD: the value at exactly t; ST-P3 / VAD: the mean over the steps 0.5 s .. t." in text


def test_l2_over_constant_velocitys_hand_worked():
    """Per step k = 1..6 (0.5 s each): a planner off by 0.5 k m on both frames, constant velocity by k m on frame a
    and 2 k m on frame b. At 3 s, UniAD: 3 / 6 = 0.5 on a, 3 / 12 = 0.25 on b, (3 + 3) / (6 + 12) = 1/3 on both;
    ST-P3 the same (the means over the steps scale alike). Over the draws (a, a), (b, b), (a, b) the ratios are 0.5,
    0.25, 1/3, whose 25th / 75th percentiles are 0.25 + (1/3 - 0.25) / 2 and 1/3 + (0.5 - 1/3) / 2."""
    steps = np.arange(1, 7, dtype=float)
    planner, reference = np.stack([0.5 * steps, 0.5 * steps]), np.stack([steps, 2.0 * steps])
    valid = np.ones((2, 6), dtype=bool)
    ratio = l2_ratio(planner, reference, valid, TIMES, np.array([[0, 0], [1, 1], [0, 1]]), level=0.5)
    for convention in ("uniad", "stp3"):
        assert ratio[convention]["3s"]["ratio"] == pytest.approx(1 / 3)
        assert ratio[convention]["3s"]["interval"] == pytest.approx([0.25 + (1 / 3 - 0.25) / 2,
                                                                     1 / 3 + (0.5 - 1 / 3) / 2])
    # through grade_planners: each planner but the logged drive gets the ratio of its printed L2 to constant velocity's
    frames = [PlannedFrame(_future(token, 10.0), KEEP,
                           {"constant_velocity": (np.c_[speed * TIMES, np.zeros(6)], None),
                            "p": (np.c_[9.0 * TIMES, np.zeros(6)], KEEP)})
              for token, speed in (("a", 8.0), ("b", 6.0))]
    planners = grade_planners(frames)["planners"]
    assert "l2_ratio_to_constant_velocity" not in planners["logged"]
    p = planners["p"]["l2_ratio_to_constant_velocity"]
    for horizon in ("1s", "2s", "3s"):
        # logged 10 m/s: p is 1 m/s off in both frames, constant velocity 2 and 4 m/s off, so 1 / mean(2, 4)
        assert p["uniad"][horizon]["ratio"] == pytest.approx(1 / 3)
        assert p["stp3"][horizon]["ratio"] == pytest.approx(1 / 3)
        low, high = p["uniad"][horizon]["interval"]
        assert 0.25 <= low <= 1 / 3 <= high <= 0.5  # between frame b's ratio alone and frame a's
    text = decision_report_markdown(grade_planners(frames))
    assert "| p | 0.33x (" in text and "| constant_velocity | 1.00x (1.00-1.00) |" in text


def test_a_frame_with_a_gap_in_its_log_counts_only_up_to_the_gap():
    """Frame a: logged 10 m/s, the plan 8 m/s, off by 1, 2, .., 6 m, every step logged. Frame g: its log misses the
    step at 2.0 s (step 4) but has 2.5 s and 3.0 s; its plan is exact. A horizon counts a frame only when every step
    up to it is logged: g counts at 1 s only. At 3 s: UniAD 6 m and ST-P3 (1 + .. + 6) / 6 = 3.5 m from frame a
    alone; at 1 s: (2 + 0) / 2 = 1 m."""
    gap = _future("g", 10.0)
    valid = np.array([True, True, True, False, True, True])
    gap = LoggedFuture("g", TIMES, np.where(valid[:, None], gap.ego_xy, np.nan), valid, gap.boxes, valid.copy())
    frames = [PlannedFrame(_future("a", 10.0), KEEP, {"p": (np.c_[8.0 * TIMES, np.zeros(6)], KEEP)}),
              PlannedFrame(gap, KEEP, {"p": (np.c_[10.0 * TIMES, np.zeros(6)], KEEP)})]
    p = grade_planners(frames)["planners"]["p"]
    assert p["num_frames"]["l2"] == {"1s": 2, "2s": 1, "3s": 1}
    assert p["num_frames"]["collision"] == {"1s": 2, "2s": 1, "3s": 1}
    assert p["l2_uniad_m"] == pytest.approx({"1s": 1.0, "2s": 4.0, "3s": 6.0})
    assert p["l2_stp3_m"]["3s"] == pytest.approx(3.5)


def test_the_logged_drives_collisions_count_only_where_its_path_is_logged():
    """Boxes annotated for all 3 s, the ego's log covers 2 s only (5 m/s: 2.5 .. 10 m). A parked car sits on the
    origin at 2.5 s and 3.0 s, behind the ego by then. The logged drive's path is unknown after 2 s (its masked steps
    are placed at the origin, on the car): it is counted up to 2 s only, 0 collisions. A planner's path is known
    at every step: counted at 3 s too (at 12.5 m and 15 m, the car's front at 2.3 m: no collision)."""
    car = Boxes3D(centers=np.array([[0.0, 0.0, 0.9]]), sizes=np.array([[1.9, 4.6, 1.6]]), yaws=np.zeros(1))
    short = _future("s", 5.0, valid_steps=4)
    future = LoggedFuture("s", TIMES, short.ego_xy, short.ego_valid, (Boxes3D.empty(),) * 4 + (car, car),
                          np.ones(6, dtype=bool))
    planners = grade_planners([PlannedFrame(future, KEEP, {"p": (np.c_[5.0 * TIMES, np.zeros(6)], KEEP)})])["planners"]
    logged, p = planners["logged"], planners["p"]
    assert logged["num_frames"]["collision"] == {"1s": 1, "2s": 1, "3s": 0}
    assert logged["collision_uniad"] == {"1s": 0.0, "2s": 0.0, "3s": None}
    assert p["num_frames"]["collision"] == {"1s": 1, "2s": 1, "3s": 1}
    assert p["collision_uniad"] == {"1s": 0.0, "2s": 0.0, "3s": 0.0}


def test_the_logged_side_is_the_side_the_driver_took():
    """A left change judged (left ok, right blocked) and a right change judged (left blocked, right ok): the side
    taken was judged feasible in both, 2/2. A left change judged (left blocked, right ok) alone: 0/1."""
    still = np.zeros((6, 2))
    frames = [PlannedFrame(_future("l", 5.0), LEFT, {"p": (still, KEEP)}, {"p": (True, False)}),
              PlannedFrame(_future("r", 5.0), RIGHT, {"p": (still, KEEP)}, {"p": (False, True)})]
    assert grade_lane_change_feasibility(frames)["p"]["logged_side_feasible_rate"] == 1.0
    wrong_side = [PlannedFrame(_future("l", 5.0), LEFT, {"p": (still, KEEP)}, {"p": (False, True)})]
    assert grade_lane_change_feasibility(wrong_side)["p"]["logged_side_feasible_rate"] == 0.0


def test_false_feasible_is_a_share_of_the_sides_the_truth_blocks():
    """Two frames, the truth blocks the left and frees the right in both; judged (ok, ok) and (blocked, ok). Of the
    2 blocked sides 1 was judged feasible: 1/2 (the free sides: none judged blocked, a different share, 0/2).
    Accuracy 3 of 4 sides."""
    still = np.zeros((6, 2))
    frames = [PlannedFrame(_future(token, 5.0), KEEP, {"p": (still, KEEP)}, {"p": judged}, (False, True))
              for token, judged in (("a", (True, True)), ("b", (False, True)))]
    check = grade_lane_change_feasibility(frames)["p"]["gap_check_on_truth"]
    assert check == {"sides": 4, "accuracy": pytest.approx(3 / 4), "blocked_sides": 2,
                     "false_feasible_rate": pytest.approx(1 / 2)}


@pytest.fixture(scope="module")
def nusc_scene():
    """nuscenes-devkit's NuScenes on ../shared/fixtures/nuscenes-scene0916 (scene-0916's 41 keyframes, in two scene
    records)."""
    if not (REAL_SCENE_FIXTURE_ROOT / "v1.0-mini").is_dir():
        pytest.skip(f"real scene fixture absent: expected tables at {REAL_SCENE_FIXTURE_ROOT / 'v1.0-mini'}")
    from nuscenes.nuscenes import NuScenes

    return NuScenes(version="v1.0-mini", dataroot=str(REAL_SCENE_FIXTURE_ROOT), verbose=False)


def test_the_logged_future_interpolates_between_keyframes_off_the_steps(nusc_scene):
    """scene-0916-a's keyframes 3 and 4 lie 1.4006 s and 1.9006 s after its first: its 1.5 s step falls a fifth of
    the way between them. Its boxes are the devkit's annotations of both keyframes (in the first keyframe's ego
    frame) matched by instance and interpolated linearly by the timestamps; the instances of keyframe 3 alone as
    annotated there (the nearer), none of keyframe 4 alone. Keyframes run to 3.4 s: every step of the 3 s horizon
    has its boxes (the keyframes read up to the one after the last step)."""
    scene = next(record for record in nusc_scene.scene if record["name"] == "scene-0916-a")
    tokens = [scene["first_sample_token"]]
    while len(tokens) < 8:
        tokens.append(nusc_scene.get("sample", tokens[-1])["next"])
    pose0 = nusc_scene.get("ego_pose", nusc_scene.get("sample_data", nusc_scene.get("sample", tokens[0])["data"][
        "LIDAR_TOP"])["ego_pose_token"])
    future = logged_future(nusc_scene, tokens[0])
    assert future.boxes_valid.all() and future.ego_valid.all()
    times = [nusc_scene.get("sample", token)["timestamp"] for token in tokens]
    step_us = pose0["timestamp"] + 1_500_000
    assert times[3] < step_us < times[4]
    alpha = (step_us - times[3]) / (times[4] - times[3])
    assert 0.15 < alpha < 0.25
    before, after = (devkit_centres_in_ego(nusc_scene, tokens[k], pose0) for k in (3, 4))
    expected = np.array([(1 - alpha) * centre + alpha * after[instance] if instance in after else centre
                         for instance, centre in before.items()])
    moved = max(np.linalg.norm(after[i][:2] - before[i][:2]) for i in before if i in after)
    assert moved > 0.2  # a box moving enough that reading either keyframe alone would be off
    centres = future.boxes[2].centers
    assert len(centres) == len(expected)
    distances = np.linalg.norm(centres[:, None] - expected[None], axis=2)
    assert distances.min(axis=0).max() < 1e-3 and distances.min(axis=1).max() < 1e-3


def test_a_step_is_bracketed_by_the_keyframes_around_it_up_to_the_tolerance_past_the_last():
    """Keyframes at 0, 0.5 and 1.0 s, a 50 ms tolerance: a time between two keyframes (or on one) reads that one and
    the next; up to 50 ms past the last, the last two; beyond, or before the first, nothing; one keyframe alone is
    its own bracket."""
    keyframes = np.array([0, 500_000, 1_000_000], dtype=np.int64)
    assert _bracket(keyframes, 250_000, 50_000) == (0, 1)
    assert _bracket(keyframes, 500_000, 50_000) == (1, 2)
    assert _bracket(keyframes, 1_030_000, 50_000) == (1, 2)
    assert _bracket(keyframes, 1_060_000, 50_000) is None
    assert _bracket(keyframes, -1, 50_000) is None
    assert _bracket(np.array([0]), 30_000, 50_000) == (0, 0)


def test_interpolated_boxes_interpolate_their_sizes_and_velocities():
    """A box matched in two keyframes, 2 x 4 m at (4, 0) m/s then 2.2 x 4.4 m at (6, 1) m/s: a quarter of the way,
    2.05 x 4.1 m at (4.5, 0.25) m/s (the annotations' own change, linear like the centre)."""
    before = Boxes3D(centers=[[10.0, 0.0, 0.0]], sizes=[[2.0, 4.0, 1.5]], yaws=[0.0], velocities=[[4.0, 0.0]])
    after = Boxes3D(centers=[[12.0, 0.0, 0.0]], sizes=[[2.2, 4.4, 1.5]], yaws=[0.0], velocities=[[6.0, 1.0]])
    boxes = _interpolate_boxes((before, ["car"]), (after, ["car"]), 0.25)
    np.testing.assert_allclose(boxes.sizes, [[2.05, 4.1, 1.5]])
    np.testing.assert_allclose(boxes.velocities, [[4.5, 0.25]])


def test_the_boxes_validity_is_the_keyframes_not_the_ego_log(nusc_real, monkeypatch):
    """The real fixture's keyframes lie at 0, 0.4999 and 1.0003 s: from the first, the 0.5 s and 1.0 s steps have
    boxes and the later ones (more than 50 ms past the last keyframe) none. That holds whatever the ego log covers:
    with an ego log that covers no step, the boxes are still valid there (a planner's collisions count wherever the
    boxes are valid, the logged drive's only where its path is logged too)."""
    def no_log(nusc, sample_token, times_s, tolerance_s=0.05):
        count = len(times_s)
        return np.full((count, 2), np.nan), np.full(count, np.nan), np.zeros(count, dtype=bool)

    monkeypatch.setattr(logged_drive, "ego_track", no_log)
    future = logged_future(nusc_real, nusc_real.sample[0]["token"])
    assert not future.ego_valid.any()
    np.testing.assert_array_equal(future.boxes_valid, [True, True, False, False, False, False])
