"""The per-frame step replay and benchmark share: the detector's boxes, the planner's decision on them (a planning
model's plan through the safety layer), a timing per pipeline stage (the model's own nested inside)."""
import dataclasses

import numpy as np
import pytest
import torch

from perception.datasets.loader import frame_from_table, load_frame
from perception.datasets.metadata import build_sample_table
from perception.decision import EgoState, PlannerConfig, decide
from perception.decision.learned import EGO_FEATURE_HISTORY_S, ego_history, learned_decision
from perception.decision.safety import check_plan, checked_rule_decision
from perception.detector import OracleDetector
from perception.geometry import EgoPose
from perception.maneuvers import Maneuver
from perception.models.planning_types import PlanningOutputs, constant_velocity_rollout
from perception.runtime.benchmark import PIPELINE_STAGES
from perception.runtime.step import FrameStep, LoadedFrame
from perception.sensors import LIDAR_CHANNEL, SENSOR_GROUPS
from tests.decision.helpers import agents
from tests.runtime.helpers import PlanningOracle, StagedNoBoxes


def load_keyframe(table, index, dataroot, image_size, drop, past_poses):
    """Keyframe ``index`` of a SampleTable as a frame source hands it to the step."""
    return LoadedFrame(frame_from_table(table, index, dataroot, image_size=image_size, drop=drop), past_poses)


def test_step_detects_decides_on_the_detections_and_times_each_stage(nusc_synthetic):
    sample = nusc_synthetic.sample[2]
    table = build_sample_table(nusc_synthetic, [sample["token"]], lidar_sweeps=3, radar_sweeps=1)
    history = ego_history(nusc_synthetic, sample["token"])
    calls = []

    def load():
        calls.append(1)
        return load_keyframe(table, 0, nusc_synthetic.dataroot, None, frozenset(), history)

    result = FrameStep(OracleDetector())(load)
    assert len(calls) == 1 and set(result.timings_ms) == set(PIPELINE_STAGES)
    inner = sum(result.timings_ms[name] for name in ("load", "detector", "decision"))
    assert result.timings_ms["end_to_end"] >= inner - 1e-6
    expected = OracleDetector().detect([load_frame(nusc_synthetic, sample["token"], 3, 1)])[0]
    assert len(result.detections) == len(expected) > 0
    assert (result.detections.centers == expected.centers).all()
    # The past poses are what replay holds: the LiDAR records the devkit chains before the keyframe, oldest first,
    # back to EGO_FEATURE_HISTORY_S (more than the 3 sweeps loaded).
    token, poses = sample["data"][LIDAR_CHANNEL], []
    while token:
        record = nusc_synthetic.get("sample_data", token)
        if record["timestamp"] < sample["timestamp"] - EGO_FEATURE_HISTORY_S * 1e6:
            break
        poses.insert(0, EgoPose.from_record(nusc_synthetic.get("ego_pose", record["ego_pose_token"])))
        token = record["prev"]
    assert len(poses) > 3
    assert [p.timestamp_us for p in result.loaded.past_poses] == [p.timestamp_us for p in poses]
    ego_state = EgoState.from_poses(poses, -1)
    assert result.ego_state.speed_mps == ego_state.speed_mps > 0
    assert result.ego_state == ego_state and ego_state.acceleration_mps2 is not None  # from all the poses, not two
    assert result.decision.to_json() == decide(expected, ego_state).to_json()


def test_a_detector_times_its_own_stages_inside_the_step(nusc_synthetic):
    tokens = [nusc_synthetic.sample[0]["token"]]
    table = build_sample_table(nusc_synthetic, tokens, lidar_sweeps=1, radar_sweeps=1)
    drop = frozenset(SENSOR_GROUPS) - {"lidar"}
    history = ego_history(nusc_synthetic, tokens[0])
    result = FrameStep(StagedNoBoxes(["voxelize", "head"]))(
        lambda: load_keyframe(table, 0, nusc_synthetic.dataroot, None, drop, history))
    assert set(result.timings_ms) == set(PIPELINE_STAGES) | {"voxelize", "head"}
    assert result.loaded.frame.radar is None and len(result.detections) == 0


def test_a_planning_detector_plans_and_the_safety_layer_decides(nusc_synthetic):
    sample = nusc_synthetic.sample[2]
    table = build_sample_table(nusc_synthetic, [sample["token"]], lidar_sweeps=3, radar_sweeps=1)
    detector = PlanningOracle(Maneuver.BRAKE)
    history = ego_history(nusc_synthetic, sample["token"])
    result = FrameStep(detector)(lambda: load_keyframe(table, 0, nusc_synthetic.dataroot, None, frozenset(), history))
    assert set(result.timings_ms) == set(PIPELINE_STAGES)
    (ego_input,) = detector.ego_inputs.values()
    assert ego_input[0] == pytest.approx(result.ego_state.speed_mps) and ego_input[0] > 0  # from the same poses
    trajectory = result.plan.trajectory.numpy().astype(float)
    assert result.decision.to_json() == check_plan(trajectory, Maneuver.BRAKE, result.detections,
                                                   result.ego_state).to_json()
    assert result.decision.to_json() != decide(result.detections, result.ego_state).to_json()


class LidarOracle(OracleDetector):
    """The oracle as a LiDAR-only model: counts its calls."""

    sensors = frozenset({"lidar"})
    calls = 0

    def detect(self, frames, timer=None):
        self.calls += 1
        return super().detect(frames, timer)


def test_a_planning_head_of_other_waypoints_than_the_decisions_is_refused():
    for grid in ((6, 0.25), (4, 0.5)):
        with pytest.raises(ValueError, match=rf"planning head plans {grid[0]} waypoints {grid[1]:g} s apart; the "
                                             r"decisions plan 6 waypoints 0.5 s apart"):
            FrameStep(PlanningOracle(Maneuver.KEEP_LANE, grid))
    assert FrameStep(PlanningOracle(Maneuver.KEEP_LANE, (4, 0.25)), PlannerConfig(horizon_steps=4, step_s=0.25)).plans


def test_a_frame_without_the_detector_s_sensors_is_not_detected_and_stops(nusc_synthetic):
    token = nusc_synthetic.sample[2]["token"]
    table = build_sample_table(nusc_synthetic, [token], lidar_sweeps=1, radar_sweeps=1)
    history = ego_history(nusc_synthetic, token)
    detector = LidarOracle()
    step = FrameStep(detector)
    seen = step(lambda: load_keyframe(table, 0, nusc_synthetic.dataroot, None, frozenset({"camera"}), history))
    assert detector.calls == 1 and len(seen.detections) > 0 and seen.decision.maneuver != Maneuver.STOP
    tracked = step.tracker._previous
    blind = step(lambda: load_keyframe(table, 0, nusc_synthetic.dataroot, None, frozenset({"lidar"}), history))
    assert detector.calls == 1 and "detector" not in blind.timings_ms and len(blind.detections) == 0
    assert blind.decision.maneuver == Maneuver.STOP and blind.decision.target_speed_mps == 0.0
    assert blind.decision.reason.startswith("STOP: no data from the detector's sensors (lidar); braking")
    assert not (blind.decision.lane_change_left_ok or blind.decision.lane_change_right_ok)
    assert step.tracker._previous is tracked and len(tracked.labels) > 0  # kept for the next frame that sees


class ScriptedDetector:
    """A LiDAR model detecting the boxes it is given, one Boxes3D per call in turn."""

    sensors = frozenset({"lidar"})

    def __init__(self, boxes):
        self.boxes = list(boxes)

    def detect(self, frames, timer=None):
        return [self.boxes.pop(0) for _ in frames]


class ScriptedPlanner(ScriptedDetector):
    """The scripted detector as a planning model proposing KEEP_LANE at the ego input's speed, straight on."""

    plans = True
    plan_grid = (6, 0.5)

    def detect_and_plan(self, frames, ego_state, timer=None):
        logits = torch.zeros(len(Maneuver))
        logits[list(Maneuver).index(Maneuver.KEEP_LANE)] = 1.0
        plans = [PlanningOutputs(constant_velocity_rollout(torch.tensor([float(row[0])]), 6, 0.5)[0], logits,
                                 torch.zeros(2)) for row in ego_state]
        return self.detect(frames), plans


def _three_frames_of_a_braking_lead(nusc, detector_type):
    """The step's third result on a lead 30 m ahead scored 0.1 (tracked: the planner's min_score is 0.05), the
    detector saying 8 m/s each time, at 30, 34 and 36 m in frames 0.5 s apart; and the step's planner config."""
    token = nusc.sample[2]["token"]
    table = build_sample_table(nusc, [token], lidar_sweeps=1, radar_sweeps=1)
    history = ego_history(nusc, token)
    base = load_keyframe(table, 0, nusc.dataroot, None, frozenset(), history)
    config = PlannerConfig(min_score=0.05)
    seen = [agents(("car", x, 0.0, 8.0, 0.0)) for x in (30.0, 34.0, 36.0)]
    for boxes in seen:
        boxes.scores[:] = 0.1
    step = FrameStep(detector_type(seen), config)
    for k in range(3):
        pose = EgoPose(base.frame.timestamp_us + k * 500_000, base.frame.ego_pose.ego_to_global)
        result = step(lambda: dataclasses.replace(base, frame=dataclasses.replace(base.frame, ego_pose=pose)))
    return result, config


# The lead's displacements' speeds are 8 and 4 m/s (at 0.25 and 0.75 s): an acceleration of (4 - 8) / 0.5 =
# -8 m/s^2, its speed now 4 - 8 x 0.25 = 2 m/s. The planners decide on the lead at 2 m/s braking at 8 m/s^2.
TRACKED_LEAD = agents(("car", 36.0, 0.0, 2.0, 0.0))
TRACKED_ACCELERATION = np.array([-8.0])


def _same_decision(got, expected):
    got, expected = got.to_json(), expected.to_json()
    assert got.pop("ttc_s") == pytest.approx(expected.pop("ttc_s"))  # 2 m/s measured to the float round-off
    assert got == expected


def test_the_planner_decides_on_the_tracked_velocities_and_accelerations(nusc_synthetic):
    result, config = _three_frames_of_a_braking_lead(nusc_synthetic, ScriptedDetector)
    assert "car #0 at 2.0 m/s braking at 8.0 m/s^2" in result.decision.reason
    _same_decision(result.decision, checked_rule_decision(TRACKED_LEAD, result.ego_state, config,
                                                          TRACKED_ACCELERATION))


def test_a_learned_plan_is_checked_with_the_tracked_velocities_and_accelerations(nusc_synthetic):
    result, config = _three_frames_of_a_braking_lead(nusc_synthetic, ScriptedPlanner)
    assert "braking at 8.0 m/s^2" in result.decision.reason
    maneuver, decision = learned_decision(result.plan, TRACKED_LEAD, result.ego_state, result.loaded.past_poses,
                                          config, TRACKED_ACCELERATION)
    assert result.plan_maneuver is maneuver
    _same_decision(result.decision, decision)


def test_the_benchmark_loads_each_keyframe_as_replay_builds_it(nusc_synthetic, tmp_path, monkeypatch):
    """Each keyframe's frame as replay builds it, from streaming states fed before any load: the load stage is
    timed, and it fed each keyframe's state on its first load, inside a timed iteration."""
    from perception.datasets.splits import scene_sample_tokens
    from perception.runtime.benchmark import StreamedKeyframes
    from perception.runtime.records import read_frame_records
    from perception.runtime.replay import ReplayOptions, replay_scene
    from perception.runtime.streaming import StreamingState

    scene = nusc_synthetic.scene[0]
    replay_scene(nusc_synthetic, scene["name"], OracleDetector(), str(tmp_path),
                 ReplayOptions(video=False, mcap=False, lidar_sweeps=3, radar_sweeps=2), progress=False)
    replayed = [r for r in read_frame_records(str(tmp_path / "frames.jsonl")) if r["is_key_frame"]]
    keyframes = StreamedKeyframes(nusc_synthetic, scene_sample_tokens(nusc_synthetic, scene), 3, 2, None,
                                  drops=[frozenset(), frozenset({"camera"})])
    pushed = []
    push = StreamingState.push
    monkeypatch.setattr(StreamingState, "push", lambda self, message: pushed.append(message) or push(self, message))
    assert len(replayed) == len(keyframes) > 1
    for index, record in enumerate(replayed):
        assert keyframes.load(index, frozenset({"camera"})).frame.cameras == {}
        loaded = keyframes.load(index, frozenset())
        assert loaded.frame.timestamp_us == record["timestamp_us"]
        assert (len(loaded.frame.lidar.points), len(loaded.frame.radar.points)) == (record["num_lidar_points"],
                                                                                    record["num_radar_points"])
        assert OracleDetector().detect([loaded.frame])[0].to_json() == record["detections"]
    assert pushed == []  # no message fed while loading
