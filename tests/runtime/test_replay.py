"""The replay end to end on the tiny synthetic world: frames.jsonl and its schema, resume after a kill, MCAP
read-back, video, faults survived, real-time pacing, and the command line."""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import shutil

import cv2
import numpy as np
import pytest
import torch

from perception.cli.replay import main as replay_main
from perception.datasets.loader import load_frame
from perception.decision import EgoState, PlannerConfig, decide
from perception.datasets.ego_log import keyframe_lidar_pose, past_ego_poses
from perception.datasets.lane_map import keyframe_lanes
from perception.decision.learned import EGO_FEATURE_HISTORY_S, past_ego_features, plan_maneuver
from perception.decision.safety import check_plan
from perception.decision.tracking import AgentTracker
from perception.maneuvers import Maneuver
from perception.models.planning_types import EGO_FEATURES, PlanningOutputs
from perception.detector import OracleDetector
from perception.geometry import Boxes3D, EgoPose, RigidTransform
from perception.geometry.boxes import DETECTION_RECORD
import perception.runtime.replay
import perception.decision.safety
from perception.runtime.faults import FaultPlan, inject_faults
from perception.runtime.messages import scene_messages
from perception.runtime.records import (
    FRAME_RECORD, changed_proposal, plan_to_json, read_frame_records, validate_frame_record,
)
from perception.runtime.replay import ReplayOptions, SceneReplay, replay_scene
from perception.runtime.replay_outputs import VIDEO_FRAMES_A_PERIOD, video_frames_held
from perception.sensors import CAMERA_CHANNELS, LIDAR_CHANNEL
from tests.runtime.helpers import (CountingOracle, HalfConfidentOracle, NoBoxes, PlanningOracle, corrupt, linked_copy,
                                   read_mcap)

QUICK = ReplayOptions(video=False, mcap=False)


def _scene(nusc):
    return nusc.scene[0]["name"]


def _keyframes(nusc, scene):
    return [m for m in scene_messages(nusc, scene) if m.channel == LIDAR_CHANNEL and m.is_key_frame]


@pytest.fixture(scope="module")
def full_replay(nusc_synthetic, tmp_path_factory):
    """One replay of the first tiny scene with every output (shared by the read-back tests)."""
    out = tmp_path_factory.mktemp("replay")
    summary = replay_scene(nusc_synthetic, _scene(nusc_synthetic), OracleDetector(), str(out), ReplayOptions(),
                           progress=False)
    return summary, out


def test_one_record_per_keyframe_with_the_oracle_boxes(nusc_synthetic, full_replay):
    summary, out = full_replay
    records = read_frame_records(str(out / "frames.jsonl"))
    keyframes = _keyframes(nusc_synthetic, _scene(nusc_synthetic))
    assert [r["key_token"] for r in records] == [k.sample_data_token for k in keyframes]
    assert [r["index"] for r in records] == list(range(len(keyframes)))
    assert summary.processed == summary.frames == len(keyframes) and summary.skipped == 0
    for record, key in zip(records, keyframes):
        validate_frame_record(record)
        assert set(record) == set(FRAME_RECORD)
        assert record["sample_token"] == key.sample_token and record["status"] == "processed"
        expected = OracleDetector().detect([load_frame(nusc_synthetic, key.sample_token, cameras=False)])[0]
        detected = Boxes3D.from_json(record["detections"])
        np.testing.assert_allclose(detected.centers, expected.centers, atol=1e-9)
        np.testing.assert_array_equal(detected.labels, expected.labels)
        assert record["decision"]["maneuver"] and len(record["decision"]["trajectory"]) == 6
        assert {"load", "detector", "decision", "end_to_end"} <= set(record["timings_ms"])
        assert record["latency_s"] == pytest.approx(record["timings_ms"]["end_to_end"] / 1000)
        assert record["sensor_ages_s"][LIDAR_CHANNEL] == 0.0 and record["missing"] == []
        assert record["num_cameras"] == 6 and record["num_lidar_points"] > 0
    summary_file = json.loads((out / "summary.json").read_text())
    assert summary_file["processed"] == len(keyframes) and "load" in summary_file["stages_ms"]


def test_detections_round_trip_through_json(nusc_synthetic):
    boxes = OracleDetector().detect([load_frame(nusc_synthetic, nusc_synthetic.sample[0]["token"], cameras=False)])[0]
    items = json.loads(json.dumps(boxes.to_json()))
    assert all(set(item) == set(DETECTION_RECORD) for item in items)
    again = Boxes3D.from_json(items)
    for name in ("centers", "sizes", "yaws", "velocities", "labels", "scores", "attributes"):
        np.testing.assert_array_equal(getattr(again, name), getattr(boxes, name))


def test_malformed_records_are_rejected(full_replay, tmp_path):
    good = {key: None for key in FRAME_RECORD}
    with pytest.raises(ValueError, match="lacks"):
        validate_frame_record({"scene": "x"})
    with pytest.raises(ValueError, match="index"):
        validate_frame_record({**good, "scene": "s", "index": "0"})
    record = read_frame_records(str(full_replay[1] / "frames.jsonl"))[0]
    validate_frame_record(record)
    with pytest.raises(ValueError, match="trigger 'timer' is not one of"):
        validate_frame_record({**record, "trigger": "timer"})
    path = tmp_path / "frames.jsonl"
    path.write_text('{"broken": \n{"scene": "s"}\n')
    with pytest.raises(ValueError, match="line 1"):
        read_frame_records(str(path))


def test_mcap_reads_back_with_what_the_records_say(full_replay):
    _, out = full_replay
    records = read_frame_records(str(out / "frames.jsonl"))
    messages = list(read_mcap(str(out / "replay.mcap")))
    counts = collections.Counter(topic for topic, _, _ in messages)
    for topic in ["/tf", "/LIDAR_TOP", "/RADAR", "/detections", "/plan", "/decision",
                  *[f"/{c}/image" for c in CAMERA_CHANNELS], *[f"/{c}/calibration" for c in CAMERA_CHANNELS]]:
        assert counts[topic] == len(records), topic
    by_time = collections.defaultdict(dict)
    for topic, log_time, decoded in messages:
        by_time[log_time][topic] = decoded
    for record in records:
        frame = by_time[record["timestamp_us"] * 1000]
        cloud = frame["/LIDAR_TOP"]
        assert [f.name for f in cloud.fields] == ["x", "y", "z", "intensity", "time_lag"]
        assert len(cloud.data) == cloud.point_stride * record["num_lidar_points"]
        assert len(frame["/RADAR"].data) == frame["/RADAR"].point_stride * record["num_radar_points"]
        entities = frame["/detections"].entities
        assert len(entities) == len(record["detections"])
        for entity, detection in zip(entities, record["detections"]):
            cube = entity.cubes[0]
            assert [cube.pose.position.x, cube.pose.position.y] == pytest.approx(detection["center"][:2])
            assert [cube.size.x, cube.size.y] == pytest.approx([detection["size"][1], detection["size"][0]])
        assert frame["/decision"] == {"timestamp_us": record["timestamp_us"], "decision": record["decision"],
                                      "plan": None, "missing": record["missing"]}
        image = cv2.imdecode(np.frombuffer(frame["/CAM_FRONT/image"].data, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[1] == frame["/CAM_FRONT/calibration"].width
        assert [t.child_frame_id for t in frame["/tf"].transforms] == ["ego", *CAMERA_CHANNELS]


def test_a_planning_model_decides_by_its_plan_through_the_safety_layer(nusc_synthetic, tmp_path):
    detector = PlanningOracle(Maneuver.CHANGE_LANE_LEFT)
    replay_scene(nusc_synthetic, _scene(nusc_synthetic), detector, str(tmp_path), ReplayOptions(video=False),
                 progress=False)
    records = read_frame_records(str(tmp_path / "frames.jsonl"))
    decisions = {log_time: decoded for topic, log_time, decoded in read_mcap(str(tmp_path / "replay.mcap"))
                 if topic == "/decision"}
    assert len(records) == len(_keyframes(nusc_synthetic, _scene(nusc_synthetic))) > 1
    tracker = AgentTracker()  # the agents as tracked over the replayed keyframes in order
    for record in records:
        # the streamed ego input is the one training and evaluation compute from the tables
        (expected,) = past_ego_features(nusc_synthetic, [record["sample_token"]])
        np.testing.assert_allclose(detector.ego_inputs[record["timestamp_us"]], expected, rtol=1e-5, atol=1e-4)
        plan = record["plan"]
        assert plan["maneuver"] == Maneuver.CHANGE_LANE_LEFT.value and len(plan["trajectory"]) == 6
        trajectory, detections = np.array(plan["trajectory"]), Boxes3D.from_json(record["detections"])
        pose = keyframe_lidar_pose(nusc_synthetic, record["sample_token"])
        tracked = tracker.update(detections, pose)
        lanes = keyframe_lanes(nusc_synthetic, record["sample_token"], pose.ego_to_global.inverse())
        assert lanes is not None  # the synthetic world's lane map, read from its tables
        maneuver = plan_maneuver(trajectory, Maneuver.CHANGE_LANE_LEFT,  # the plan's motion names its maneuver
                                 past_ego_poses(nusc_synthetic, record["sample_token"], EGO_FEATURE_HISTORY_S),
                                 tracked.boxes, lanes=lanes)
        checked = check_plan(trajectory, maneuver, tracked.boxes, EgoState(**record["ego_state"]),
                             agent_accelerations_mps2=tracked.accelerations_mps2, lanes=lanes)
        assert plan["plan_maneuver"] == maneuver.value
        assert record["decision"] == json.loads(json.dumps(checked.to_json()))
        assert decisions[record["timestamp_us"] * 1000]["plan"] == plan
    last = detector.ego_inputs[records[-1]["timestamp_us"]]
    # its position 1.5 s earlier is known: more than the sweep buffer holds
    assert last[EGO_FEATURES.index("known_1.5s_ago")] == 1.0


def test_low_scoring_boxes_are_recorded_but_not_displayed(nusc_synthetic, tmp_path):
    options = ReplayOptions(video=False, mcap=True, display_min_score=0.3)
    replay_scene(nusc_synthetic, _scene(nusc_synthetic), HalfConfidentOracle(), str(tmp_path), options,
                 progress=False)
    records = read_frame_records(str(tmp_path / "frames.jsonl"))
    shown = {log_time: decoded for topic, log_time, decoded in read_mcap(str(tmp_path / "replay.mcap"))
             if topic == "/detections"}
    assert any(d["score"] < 0.3 for record in records for d in record["detections"])
    for record in records:
        confident = [d for d in record["detections"] if d["score"] >= 0.3]
        entities = shown[record["timestamp_us"] * 1000].entities
        assert len(entities) == len(confident)
        assert [e.cubes[0].pose.position.x for e in entities] == pytest.approx([d["center"][0] for d in confident])


def test_video_and_pictures_hold_every_processed_frame(full_replay):
    summary, out = full_replay
    pictures = sorted(os.listdir(out / "frames"))
    assert pictures == [f"{i:06d}.png" for i in range(summary.processed)]
    video = cv2.VideoCapture(str(out / "replay.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == VIDEO_FRAMES_A_PERIOD * summary.processed  # a keyframe a period
    ok, first = video.read()
    assert ok and first.shape == cv2.imread(str(out / "frames" / pictures[0])).shape
    video.release()


def test_resume_after_a_kill_loses_nothing_and_redoes_nothing(nusc_synthetic, tmp_path):
    scene = _scene(nusc_synthetic)
    keyframes = _keyframes(nusc_synthetic, scene)
    killed = CountingOracle(interrupt_at=4)  # the warm-up, two recorded frames, then the kill
    with pytest.raises(KeyboardInterrupt):
        replay_scene(nusc_synthetic, scene, killed, str(tmp_path), ReplayOptions(video=True, mcap=True),
                     progress=False)
    frames_file = tmp_path / "frames.jsonl"
    assert len(read_frame_records(str(frames_file))) == 2  # flushed before the kill
    with open(frames_file, "a") as f:
        f.write('{"scene": "cut short by the ki')  # a line the kill interrupted
    resumed = CountingOracle()
    summary = replay_scene(nusc_synthetic, scene, resumed, str(tmp_path), ReplayOptions(), resume=True,
                           progress=False)
    assert resumed.calls == [keyframes[0].sample_token] + [k.sample_token for k in keyframes[2:]]  # warm-up first
    assert (summary.resumed, summary.processed) == (2, len(keyframes) - 2)
    records = read_frame_records(str(frames_file))
    assert [r["key_token"] for r in records] == [k.sample_data_token for k in keyframes]
    counts = collections.Counter(topic for topic, _, _ in read_mcap(str(tmp_path / "replay.mcap")))
    assert counts["/detections"] == len(keyframes)  # the MCAP and the video are whole again
    assert len(os.listdir(tmp_path / "frames")) == len(keyframes)


def test_a_resume_into_the_frames_of_another_run_is_refused(nusc_synthetic, tmp_path):
    scene = _scene(nusc_synthetic)
    first = dict(run={"model": "oracle"}, progress=False)
    replay_scene(nusc_synthetic, scene, OracleDetector(), str(tmp_path), QUICK, **first)
    with pytest.raises(ValueError, match=r"replay_run.json: the frames in .* are of a run with another "
                                         r"options.lidar_sweeps; replay into another"):
        replay_scene(nusc_synthetic, scene, OracleDetector(), str(tmp_path),
                     ReplayOptions(video=False, mcap=False, lidar_sweeps=1), resume=True, **first)
    with pytest.raises(ValueError, match=r"are of a run with another run\.model;"):
        replay_scene(nusc_synthetic, scene, OracleDetector(), str(tmp_path), QUICK, resume=True,
                     run={"model": "configs/x.py @ y.pth"}, progress=False)
    # what is drawn may change: the same run resumes with a video
    again = replay_scene(nusc_synthetic, scene, OracleDetector(), str(tmp_path),
                         ReplayOptions(video=True, mcap=False), resume=True, **first)
    assert again.processed == 0 and again.resumed == len(_keyframes(nusc_synthetic, scene))
    (tmp_path / "replay_run.json").write_text("[]")
    with pytest.raises(ValueError, match=r"replay_run.json: the record of the run is a JSON list, not an object"):
        replay_scene(nusc_synthetic, scene, OracleDetector(), str(tmp_path), QUICK, resume=True, **first)
    os.remove(tmp_path / "replay_run.json")  # frames of an earlier version: unknown
    with pytest.raises(ValueError, match=r"replay_run.json: missing, so the run that made the frames in .* is unknown"):
        replay_scene(nusc_synthetic, scene, OracleDetector(), str(tmp_path), QUICK, resume=True, **first)


def test_a_fresh_run_stopped_before_its_first_frame_leaves_the_folder_to_the_run_before(nusc_synthetic, tmp_path,
                                                                                         monkeypatch):
    """A fresh run wrote its identity before emptying frames.jsonl: stopped in its warm-up, or refused an option,
    it left the earlier run's records under its own identity, and its --resume took the oracle's as the model's."""
    scene = _scene(nusc_synthetic)
    replay_scene(nusc_synthetic, scene, OracleDetector(), str(tmp_path), QUICK, run={"model": "oracle"},
                 progress=False)
    run_file = (tmp_path / "replay_run.json").read_text()

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt("stopped in the warm-up")
    monkeypatch.setattr(perception.runtime.replay, "_warm_up", stopped)
    with pytest.raises(KeyboardInterrupt):
        replay_scene(nusc_synthetic, scene, NoBoxes(), str(tmp_path), QUICK, run={"model": "m"}, progress=False)
    with pytest.raises(ValueError, match="stale"):
        replay_scene(nusc_synthetic, scene, OracleDetector(), str(tmp_path),
                     dataclasses.replace(QUICK, stale_after_s=0.0), run={"model": "oracle"}, progress=False)
    assert (tmp_path / "replay_run.json").read_text() == run_file
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"are of a run with another run\.model;"):
        replay_scene(nusc_synthetic, scene, NoBoxes(), str(tmp_path), QUICK, resume=True, run={"model": "m"},
                     progress=False)


def test_a_fresh_run_leaves_no_picture_video_or_mcap_of_the_run_before(nusc_synthetic, tmp_path):
    """(A run without video and MCAP left the earlier run's replay.mp4, replay.mcap and frames/ beside its records.)"""
    scene = _scene(nusc_synthetic)
    replay_scene(nusc_synthetic, scene, OracleDetector(), str(tmp_path), ReplayOptions(), progress=False)
    assert {"replay.mp4", "replay.mcap", "frames"} <= set(os.listdir(tmp_path))
    replay_scene(nusc_synthetic, scene, OracleDetector(), str(tmp_path), QUICK, progress=False)
    assert not {"replay.mp4", "replay.mcap", "frames"} & set(os.listdir(tmp_path))


def test_a_resume_into_the_frames_of_another_world_or_scene_is_refused(nusc_synthetic, tmp_path):
    # a world of another seed names its scenes alike: the scene's token is part of the run; and frames whose LiDAR
    # messages are not in the stream (another scene's, under this scene's run file) are refused
    first, second = (scene["name"] for scene in nusc_synthetic.scene[:2])
    for name, folder in ((first, "a"), (second, "b")):
        replay_scene(nusc_synthetic, name, OracleDetector(), str(tmp_path / folder), QUICK, progress=False)
    run_file = tmp_path / "a" / "replay_run.json"
    recorded = json.loads(run_file.read_text())
    run_file.write_text(json.dumps(dict(recorded, scene_token="of another world")))
    with pytest.raises(ValueError, match=r"are of a run with another scene_token;"):
        replay_scene(nusc_synthetic, first, OracleDetector(), str(tmp_path / "a"), QUICK, resume=True, progress=False)
    shutil.copy(tmp_path / "b" / "replay_run.json", run_file)
    with pytest.raises(ValueError, match=rf"frames.jsonl: 4 frames of another stream .* not in scene {second}'s"):
        replay_scene(nusc_synthetic, second, OracleDetector(), str(tmp_path / "a"), QUICK, resume=True,
                     progress=False)


def test_a_resume_with_other_faults_names_them(nusc_synthetic, tmp_path):
    """Other faults make another stream: the refusal names the faults, not the stream's tokens."""
    scene = _scene(nusc_synthetic)
    duplicated = dataclasses.replace(QUICK, faults=FaultPlan(duplicate=0.5, seed=1))
    replay_scene(nusc_synthetic, scene, OracleDetector(), str(tmp_path), duplicated, progress=False)
    dropped = dataclasses.replace(QUICK, faults=FaultPlan(drop=0.5, seed=2))
    with pytest.raises(ValueError, match=r"are of a run with another options.faults"):
        replay_scene(nusc_synthetic, scene, OracleDetector(), str(tmp_path), dropped, resume=True, progress=False)


def test_faults_are_survived_and_counted(nusc_synthetic, tmp_path):
    scene = _scene(nusc_synthetic)
    options = ReplayOptions(faults=FaultPlan(drop=0.05, duplicate=0.05, delay=0.05, stall=("CAM_FRONT", 0.3, 60.0),
                                             seed=1), stale_after_s=0.25, video=False)
    summary = replay_scene(nusc_synthetic, scene, OracleDetector(), str(tmp_path), options, progress=False)
    assert all(summary.faults[name] > 0 for name in ("dropped", "duplicated", "out_of_order", "stale"))
    records = read_frame_records(str(tmp_path / "frames.jsonl"))
    assert records and all(r["status"] == "processed" for r in records)
    assert "CAM_FRONT" in records[-1]["stale"] and "CAM_FRONT" in records[-1]["missing"]
    assert records[-1]["faults"] == summary.faults


def _world_with_a_corrupt_keyframe(nusc_synthetic, synthetic_root, tmp_path):
    """(NuScenes of a linked copy of the tiny world, its first scene, that scene's second keyframe, whose LiDAR file
    is cut to 7 bytes)."""
    from nuscenes.nuscenes import NuScenes

    root = linked_copy(str(synthetic_root), str(tmp_path / "world"))
    nusc = NuScenes(version=nusc_synthetic.version, dataroot=root, verbose=False)
    scene = _scene(nusc)
    key = _keyframes(nusc, scene)[1]
    corrupt(os.path.join(root, nusc.get("sample_data", key.sample_data_token)["filename"]), b"\0" * 7)
    return nusc, scene, key


def test_a_resumed_run_decides_as_an_uninterrupted_one(nusc_synthetic, tmp_path):
    # the decisions read the agents' motion tracked over the frames before: a resume feeds the kept frames'
    # detections to the tracker as the first run did
    scene = _scene(nusc_synthetic)
    replay_scene(nusc_synthetic, scene, OracleDetector(), str(tmp_path / "whole"), QUICK, progress=False)
    with pytest.raises(KeyboardInterrupt):
        replay_scene(nusc_synthetic, scene, CountingOracle(interrupt_at=5), str(tmp_path / "cut"), QUICK,
                     progress=False)
    resumed = SceneReplay(nusc_synthetic, scene, OracleDetector(), str(tmp_path / "cut"), QUICK, resume=True)
    resumed.run(progress=False)
    whole, cut = (read_frame_records(str(tmp_path / run / "frames.jsonl")) for run in ("whole", "cut"))
    assert [r["decision"] for r in cut] == [r["decision"] for r in whole]
    # the tracks after the last frame: the same as an uninterrupted run's (its reference times and velocities
    # reach back over the kept frames)
    uninterrupted = SceneReplay(nusc_synthetic, scene, OracleDetector(), str(tmp_path / "again"), QUICK)
    uninterrupted.run(progress=False)
    expected, got = (vars(run.step.tracker._previous) for run in (uninterrupted, resumed))
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_a_corrupt_file_in_the_data_is_survived(nusc_synthetic, synthetic_root, tmp_path):
    nusc, scene, key = _world_with_a_corrupt_keyframe(nusc_synthetic, synthetic_root, tmp_path)
    summary = replay_scene(nusc, scene, OracleDetector(), str(tmp_path / "out"), QUICK, progress=False)
    assert summary.faults["corrupt"] == 1
    record = read_frame_records(str(tmp_path / "out" / "frames.jsonl"))[1]
    assert record["corrupt_files"] and record["corrupt_files"][0].endswith(
        nusc.get("sample_data", key.sample_data_token)["filename"])
    assert record["num_lidar_points"] > 0  # the past sweeps remain


def test_a_resumed_run_records_the_faults_of_an_uninterrupted_one(nusc_synthetic, synthetic_root, tmp_path):
    nusc, scene, _ = _world_with_a_corrupt_keyframe(nusc_synthetic, synthetic_root, tmp_path)
    whole = replay_scene(nusc, scene, OracleDetector(), str(tmp_path / "whole"), QUICK, progress=False)
    with pytest.raises(KeyboardInterrupt):  # killed after the corrupt keyframe's record was written
        replay_scene(nusc, scene, CountingOracle(interrupt_at=4), str(tmp_path / "cut"), QUICK, progress=False)
    resumed = replay_scene(nusc, scene, OracleDetector(), str(tmp_path / "cut"), QUICK, resume=True, progress=False)
    assert whole.faults["corrupt"] == 1 and resumed.faults == whole.faults
    fields = ("corrupt_files", "faults", "missing", "num_lidar_points")

    def recorded(run: str) -> list:
        records = read_frame_records(str(tmp_path / run / "frames.jsonl"))
        return [[record[field] for field in fields] for record in records]

    assert recorded("cut") == recorded("whole")


def test_every_sweep_makes_a_frame_per_lidar_sweep(nusc_synthetic, tmp_path):
    scene = _scene(nusc_synthetic)
    detector = NoBoxes()
    options = ReplayOptions(every_sweep=True, lidar_sweeps=2, video=False, mcap=False)
    summary = replay_scene(nusc_synthetic, scene, detector, str(tmp_path), options, progress=False)
    sweeps = [m for m in scene_messages(nusc_synthetic, scene) if m.channel == LIDAR_CHANNEL]
    assert summary.processed == len(sweeps)
    # the first frame twice: the untimed, unrecorded warm-up before the replay (as fast as possible too)
    assert [frame.timestamp_us for frame in detector.frames] == [sweeps[0].timestamp_us] + [m.timestamp_us
                                                                                          for m in sweeps]
    assert all(record["deadline_s"] == 0.05 for record in read_frame_records(str(tmp_path / "frames.jsonl")))
    assert all(frame.cameras == {} and frame.radar is None for frame in detector.frames)  # only what it reads
    with pytest.raises(ValueError, match="keyframes only"):
        replay_scene(nusc_synthetic, scene, OracleDetector(), str(tmp_path), ReplayOptions(every_sweep=True))


def test_real_time_pacing_skips_and_counts_late_frames(nusc_synthetic, tmp_path):
    """At 4x real time the keyframes come every 0.125 s; a detector taking 0.3 s cannot keep up."""
    scene = _scene(nusc_synthetic)
    keyframes = _keyframes(nusc_synthetic, scene)
    summary = replay_scene(nusc_synthetic, scene, CountingOracle(delay_s=0.3), str(tmp_path),
                           ReplayOptions(realtime=True, speed=4.0, video=False, mcap=False), progress=False)
    assert summary.frames == len(keyframes) == summary.processed + summary.skipped
    assert summary.skipped >= 1 and summary.late == summary.processed
    records = read_frame_records(str(tmp_path / "frames.jsonl"))
    processed = [r for r in records if r["status"] == "processed"]
    assert all(r["latency_s"] > 0.3 and r["deadline_s"] == 0.5 / 4 for r in processed)
    assert summary.wall_s >= summary.sensor_duration_s / 4


class _VirtualTime:
    """Stands in for the replay module's ``time``: perf_counter reads a virtual clock that only sleep moves, so
    that a real-time replay runs as if every step took no time (deterministic, and instant)."""

    def __init__(self):
        self.now_s = 1000.0

    def perf_counter(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.now_s += seconds


def test_real_time_processes_a_frame_when_its_sync_window_closes(nusc_synthetic, tmp_path, monkeypatch):
    """Keyframe-only LiDAR, at 2x real time, on a virtual clock where a step takes no time: a keyframe every
    0.25 s, its sync window closing 0.025 s after it. The frame is made then, not when the next message comes
    (0.225 s later): each latency is the window, 0.025 s (it was about the period, 0.25 s, every frame late)."""
    scene = _scene(nusc_synthetic)
    keyframes = _keyframes(nusc_synthetic, scene)
    monkeypatch.setattr(perception.runtime.replay, "time", _VirtualTime())
    summary = replay_scene(nusc_synthetic, scene, NoBoxes(), str(tmp_path),
                           ReplayOptions(realtime=True, speed=2.0, lidar_sweeps=1, video=False, mcap=False),
                           progress=False, messages=keyframes)
    latencies = [r["latency_s"] for r in read_frame_records(str(tmp_path / "frames.jsonl"))]
    assert summary.processed == len(keyframes) and len(latencies) == len(keyframes)
    assert latencies == pytest.approx([0.025] * len(keyframes))


def test_speed_leaves_the_deadline_alone_when_not_in_real_time(nusc_synthetic, tmp_path):
    """As fast as possible, ``speed`` paces nothing: the deadline stays one keyframe period, 0.5 s (at 4x real
    time it would be 0.5 / 4 = 0.125 s, as above)."""
    scene = _scene(nusc_synthetic)
    summary = replay_scene(nusc_synthetic, scene, OracleDetector(), str(tmp_path),
                           ReplayOptions(realtime=False, speed=4.0, video=False, mcap=False), progress=False)
    records = read_frame_records(str(tmp_path / "frames.jsonl"))
    assert summary.skipped == 0 and len(records) == len(_keyframes(nusc_synthetic, scene)) > 1
    assert [r["deadline_s"] for r in records] == [0.5] * len(records)


def test_real_time_drawing_changes_no_record(nusc_synthetic, tmp_path, monkeypatch):
    """The pictures and MCAP messages are drawn in the paced loop: a drawing slower than the keyframes' period made
    the next frames late and skipped, so that --no-video changed the records. On a virtual clock where a step takes
    no time and a drawing 1 s (twice the period): every keyframe processed, each latency its sync window, 0.05 s."""
    scene = _scene(nusc_synthetic)
    render = perception.runtime.replay.ReplayOutputs.render
    clock = _VirtualTime()
    monkeypatch.setattr(perception.runtime.replay, "time", clock)

    def slow_render(*args, **kwargs):
        clock.sleep(1.0)
        return render(*args, **kwargs)
    monkeypatch.setattr(perception.runtime.replay.ReplayOutputs, "render", slow_render)
    summary = replay_scene(nusc_synthetic, scene, NoBoxes(), str(tmp_path),
                           ReplayOptions(realtime=True, lidar_sweeps=1, video=False, mcap=False), progress=False)
    records = read_frame_records(str(tmp_path / "frames.jsonl"))
    assert summary.skipped == 0 and summary.processed == len(_keyframes(nusc_synthetic, scene))
    assert [r["latency_s"] for r in records] == pytest.approx([0.05] * len(records))


def test_real_time_replay_warms_the_step_up_once_before_the_clock(nusc_synthetic, tmp_path, monkeypatch):
    scene = _scene(nusc_synthetic)
    keyframes = _keyframes(nusc_synthetic, scene)
    detector = NoBoxes()
    decided = []

    def counting_decide(*args, **kwargs):
        decided.append(kwargs.get("lanes"))
        return decide(*args, **kwargs)

    monkeypatch.setattr(perception.decision.safety, "decide", counting_decide)  # the step's rule decision's
    summary = replay_scene(nusc_synthetic, scene, detector, str(tmp_path),
                           ReplayOptions(realtime=True, speed=8.0, lidar_sweeps=1, video=False, mcap=False),
                           progress=False)
    # how many frames a loaded machine skips at 8x is not this test's business: every keyframe is recorded once
    assert summary.processed + summary.skipped == len(keyframes) and summary.processed >= 1
    assert len(detector.frames) == summary.processed + 1  # the warm-up frame is detected, not recorded
    assert len(decided) == summary.processed + 1  # and decided (the decision's kernels load), with the lane map
    assert decided[0] is not None
    assert detector.frames[0].timestamp_us == detector.frames[1].timestamp_us == keyframes[0].timestamp_us
    assert len(read_frame_records(str(tmp_path / "frames.jsonl"))) == len(keyframes)


def test_the_oracle_is_warmed_up_too(nusc_synthetic, tmp_path):
    """The oracle's first recorded frame paid the decision's first call (its compiled kernels, some 0.5 s: late)."""
    scene = _scene(nusc_synthetic)
    keyframes = _keyframes(nusc_synthetic, scene)
    oracle = CountingOracle()
    summary = replay_scene(nusc_synthetic, scene, oracle, str(tmp_path), QUICK, progress=False)
    assert oracle.calls == [k.sample_token for k in keyframes[:1] + keyframes] and summary.processed == len(keyframes)


def test_command_line_replays_and_resumes(nusc_synthetic, synthetic_root, tmp_path, capsys):
    args = ["--oracle", "--dataroot", str(synthetic_root), "--version", nusc_synthetic.version, "--scene",
            _scene(nusc_synthetic), "--out", str(tmp_path), "--no-video", "--quiet"]
    first = replay_main(args)
    assert "processed" in capsys.readouterr().out
    again = replay_main(args + ["--resume", "--no-mcap"])
    assert (again.resumed, again.processed) == (first.processed, 0)
    with pytest.raises(SystemExit):
        replay_main(["--dataroot", str(synthetic_root), "--version", nusc_synthetic.version])  # no model, no oracle
    for wrong in (["--lidar-sweeps", "0"], ["--image-size", "0x450"]):  # refused, not taken for the default
        with pytest.raises(SystemExit):
            replay_main(args + wrong)
        assert "must be" in capsys.readouterr().err


class SeesEverySensor(NoBoxes):
    """Detects nothing, reading every sensor group (a fusion model's inputs); raises KeyboardInterrupt (a kill) on
    call number ``interrupt_at`` (1-based) when given."""

    sensors = frozenset({"lidar", "radar", "camera"})

    def __init__(self, interrupt_at: int = 0):
        super().__init__()
        self.interrupt_at = interrupt_at

    def detect(self, frames, timer=None):
        if self.interrupt_at and len(self.frames) + 1 == self.interrupt_at:
            raise KeyboardInterrupt
        return super().detect(frames, timer)


LIDAR_OUTAGE = ReplayOptions(faults=FaultPlan(stall=(LIDAR_CHANNEL, 0.8, 1.8)), stale_after_s=0.25, video=False,
                             mcap=False)
"""The tiny world's keyframes come 0.54, 1.04, 1.54, 2.04 s after its first message; the LiDAR delivers nothing
from 0.8 to 1.8 s: the second and third keyframes never come."""


def _first_message_after(stream, timestamp_us):
    return next(m for m in stream if m.timestamp_us > timestamp_us)


def test_a_keyframe_built_as_late_as_the_watchdog_lets_reads_what_it_read_on_time(nusc_synthetic):
    """In real time the newest ready trigger may wait until the next one's window closes, 1.5 periods after it
    when the next is the watchdog's: the buffers kept one period, and such a late frame read fewer radar sweeps."""
    scene = _scene(nusc_synthetic)
    stream = list(inject_faults(scene_messages(nusc_synthetic, scene), LIDAR_OUTAGE.faults))
    options = ReplayOptions(lidar_sweeps=5)
    key = next(m for m in stream if options.is_trigger(m))
    watchdog = _first_message_after(stream, key.timestamp_us + options.watchdog_after_s * 1e6)

    def built_before(limit_us):
        state = options.new_state(frozenset())
        for message in stream:
            if message.timestamp_us < limit_us:
                state.push(message)
        frame, _ = state.build_frame(key, scene)
        return frame
    on_time = built_before(key.timestamp_us + options.sync_window_s * 1e6 + 1)
    late = built_before(watchdog.timestamp_us + options.sync_window_s * 1e6)
    np.testing.assert_array_equal(late.lidar.points, on_time.lidar.points)
    np.testing.assert_array_equal(late.radar.points, on_time.radar.points)


def test_a_lidar_outage_keeps_a_decision_every_period_by_the_watchdog(nusc_synthetic, tmp_path):
    scene = _scene(nusc_synthetic)
    stream = list(inject_faults(scene_messages(nusc_synthetic, scene), LIDAR_OUTAGE.faults))
    keyframes = [m for m in stream if m.channel == LIDAR_CHANNEL and m.is_key_frame]
    assert len(keyframes) == 2  # the first and the last
    # hand-worked: the first watchdog 1.5 periods after the first keyframe, the next a period after it
    first = _first_message_after(stream, keyframes[0].timestamp_us + 750_000)
    second = _first_message_after(stream, first.timestamp_us + 500_000)
    assert second.timestamp_us < keyframes[1].timestamp_us
    detectors = {"lidar only": NoBoxes(), "fused": SeesEverySensor()}
    for name, detector in detectors.items():
        out = tmp_path / name
        options = dataclasses.replace(LIDAR_OUTAGE, video=name == "fused", mcap=name == "fused")
        summary = replay_scene(nusc_synthetic, scene, detector, str(out), options, progress=False)
        records = read_frame_records(str(out / "frames.jsonl"))
        assert [(r["key_token"], r["trigger"]) for r in records] == [
            (keyframes[0].sample_data_token, "lidar"), (first.sample_data_token, "watchdog"),
            (second.sample_data_token, "watchdog"), (keyframes[1].sample_data_token, "lidar")]
        assert (summary.frames, summary.watchdog, summary.processed) == (4, 2, 4)
        for record, key in zip(records[1:3], (first, second)):
            assert record["key_channel"] == key.channel != LIDAR_CHANNEL and record["timestamp_us"] == key.timestamp_us
            assert record["sample_token"] is None and not record["is_key_frame"]
            assert LIDAR_CHANNEL in record["stale"] and record["num_lidar_points"] == 0
            gap_s = (key.timestamp_us - keyframes[0].timestamp_us) * 1e-6  # since the last LiDAR trigger
            assert record["decision"]["reason"].startswith(f"watchdog: no LiDAR keyframe for {gap_s:.2f} s, "
                                                           f"frame at {key.channel}; ")
        assert [r["decision"]["reason"].startswith("watchdog") for r in records] == [False, True, True, False]
    # the MCAP clears the LiDAR at the watchdog's frames (a viewer kept showing the last cloud through the outage)
    clouds = [(time, len(cloud.data) // cloud.point_stride) for topic, time, cloud in
              read_mcap(str(tmp_path / "fused" / "replay.mcap")) if topic == "/LIDAR_TOP"]
    assert clouds == [(r["timestamp_us"] * 1000, r["num_lidar_points"]) for r in records]
    assert [count == 0 for _, count in clouds] == [False, True, True, False]
    # the LiDAR-only model sees nothing at the watchdog's frames: not detected, the minimal-risk stop, its plan
    # slowing at comfortable_decel_mps2 a from the ego's speed v: v T - a T^2 / 2 along the path by T = 3 s, or
    # v^2 / 2a where it stops before (hand-worked)
    assert [f.timestamp_us for f in detectors["lidar only"].frames[1:]] == [k.timestamp_us for k in keyframes]
    for record in read_frame_records(str(tmp_path / "lidar only" / "frames.jsonl"))[1:3]:
        decision = record["decision"]
        assert decision["maneuver"] == Maneuver.STOP.value and "no data from the detector's sensors (lidar)" in \
            decision["reason"]
        speed = record["ego_state"]["speed_mps"]
        path = np.r_[np.zeros((1, 2)), decision["trajectory"]]
        decel, horizon = PlannerConfig().comfortable_decel_mps2, 3.0
        expected_m = (speed * horizon - decel * horizon ** 2 / 2 if speed > decel * horizon
                      else speed ** 2 / (2 * decel))
        assert speed > 5 and np.linalg.norm(np.diff(path, axis=0), axis=1).sum() == pytest.approx(expected_m, rel=0.01)
    # the fusion model reads radar and cameras there, the frame at the key's pose and time
    fused = read_frame_records(str(tmp_path / "fused" / "frames.jsonl"))
    assert all(r["num_radar_points"] > 0 and r["num_cameras"] == 6 for r in fused)
    # the video plays the outage as long as it lasted: each picture held to the next frame's time at 4 fps, the
    # last a period: the first watchdog frame 0.75 s after the keyframe holds it 3 frames, every later picture
    # starts at its own time (the video as long as the log and a period)
    video = cv2.VideoCapture(str(tmp_path / "fused" / "replay.mp4"))
    times_us = [r["timestamp_us"] for r in fused]
    assert (times_us[1] - times_us[0]) * 1e-6 == pytest.approx(0.75, abs=0.05)
    held = video_frames_held(times_us, 4.0, 2)
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == sum(held) == round((times_us[-1] - times_us[0]) * 4e-6) + 2
    video.release()
    assert [f.timestamp_us for f in detectors["fused"].frames[1:]] == [r["timestamp_us"] for r in fused]
    assert all(f.ego_pose.timestamp_us == f.timestamp_us for f in detectors["fused"].frames)
    assert [r["decision"]["maneuver"] for r in fused[1:3]] == [Maneuver.KEEP_LANE.value] * 2


def test_a_lidar_keyframe_delivered_after_a_later_frame_makes_none(nusc_synthetic, tmp_path):
    """A delayed LiDAR keyframe delivered behind the watchdog's frames (the `delay` fault holds a channel's last
    message to the stream's end) was a frame older than those already made, out of timestamp order."""
    scene = _scene(nusc_synthetic)
    stream = scene_messages(nusc_synthetic, scene)
    keyframes = [m for m in stream if m.channel == LIDAR_CHANNEL and m.is_key_frame]
    held = keyframes[-3]
    delivered = [m for m in stream if not (m.channel == LIDAR_CHANNEL and m.timestamp_us >= held.timestamp_us)]
    summary = replay_scene(nusc_synthetic, scene, NoBoxes(), str(tmp_path), QUICK, messages=delivered + [held],
                           progress=False)
    records = read_frame_records(str(tmp_path / "frames.jsonl"))
    times = [r["timestamp_us"] for r in records]
    assert summary.overtaken == 1 and held.sample_data_token not in {r["key_token"] for r in records}
    assert times == sorted(times) and [r["index"] for r in records] == list(range(len(records)))
    assert summary.watchdog > 0 and records[-1]["timestamp_us"] > held.timestamp_us


def test_a_resume_keeps_the_watchdog_frames_and_makes_the_rest(nusc_synthetic, tmp_path):
    scene = _scene(nusc_synthetic)
    whole = replay_scene(nusc_synthetic, scene, SeesEverySensor(), str(tmp_path / "whole"), LIDAR_OUTAGE,
                         progress=False)
    with pytest.raises(KeyboardInterrupt):  # killed on the second watchdog frame (after the warm-up's call)
        replay_scene(nusc_synthetic, scene, SeesEverySensor(interrupt_at=4), str(tmp_path / "cut"), LIDAR_OUTAGE,
                     progress=False)
    detector = SeesEverySensor()
    resumed = replay_scene(nusc_synthetic, scene, detector, str(tmp_path / "cut"), LIDAR_OUTAGE, resume=True,
                           progress=False)
    assert (resumed.resumed, resumed.processed, resumed.watchdog) == (2, 2, whole.watchdog)
    cut, uninterrupted = (read_frame_records(str(tmp_path / run / "frames.jsonl")) for run in ("cut", "whole"))
    fields = ("key_token", "trigger", "decision", "ego_state", "missing")
    assert [[r[f] for f in fields] for r in cut] == [[r[f] for f in fields] for r in uninterrupted]
    assert [f.timestamp_us for f in detector.frames[1:]] == [r["timestamp_us"] for r in uninterrupted[2:]]


class LidarGroundTruth:
    """A LiDAR-only model (not the oracle: the watchdog is on) that detects its frame's ground truth, none at a
    frame without it; raises KeyboardInterrupt (a kill) on call number ``interrupt_at`` (1-based) when given."""

    sensors = frozenset({"lidar"})

    def __init__(self, interrupt_at: int = 0):
        self.calls, self.interrupt_at = 0, interrupt_at

    def detect(self, frames, timer=None):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return [OracleDetector().detect([f])[0] if f.gt_boxes is not None else Boxes3D.empty() for f in frames]


def test_a_resume_past_a_blind_watchdog_frame_tracks_as_the_first_run(nusc_synthetic, tmp_path):
    # the LiDAR is out 0.8-1.3 s: the second keyframe (1.04 s) is lost, the watchdog's frame at 1.29 s holds no
    # LiDAR (the model's only sensor), and the third keyframe (1.54 s) continues the first's tracks, 1 s apart
    scene = _scene(nusc_synthetic)
    options = dataclasses.replace(LIDAR_OUTAGE, faults=FaultPlan(stall=(LIDAR_CHANNEL, 0.8, 1.3)))
    whole = SceneReplay(nusc_synthetic, scene, LidarGroundTruth(), str(tmp_path / "whole"), options)
    whole.run(progress=False)
    with pytest.raises(KeyboardInterrupt):  # calls: the warm-up, the first keyframe, the third: killed
        replay_scene(nusc_synthetic, scene, LidarGroundTruth(interrupt_at=3), str(tmp_path / "cut"), options,
                     progress=False)
    resumed = SceneReplay(nusc_synthetic, scene, LidarGroundTruth(), str(tmp_path / "cut"), options, resume=True)
    resumed.run(progress=False)
    records = {run: read_frame_records(str(tmp_path / run / "frames.jsonl")) for run in ("whole", "cut")}
    assert [r["trigger"] for r in records["whole"]] == ["lidar", "watchdog", "lidar", "lidar"]
    assert records["whole"][1]["decision"]["maneuver"] == Maneuver.STOP.value  # blind
    assert [r["decision"] for r in records["cut"]] == [r["decision"] for r in records["whole"]]
    expected, got = (vars(run.step.tracker._previous) for run in (whole, resumed))
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_a_replay_without_any_lidar_trigger_warms_up_on_the_watchdog_s_first_frame(nusc_synthetic, tmp_path):
    options = dataclasses.replace(LIDAR_OUTAGE, faults=FaultPlan(stall=(LIDAR_CHANNEL, 0.0, 100.0)))
    detector = SeesEverySensor()
    summary = replay_scene(nusc_synthetic, _scene(nusc_synthetic), detector, str(tmp_path), options, progress=False)
    assert summary.frames == summary.watchdog == summary.processed > 0
    records = read_frame_records(str(tmp_path / "frames.jsonl"))
    # the warm-up, then every frame: the first twice
    assert [f.timestamp_us for f in detector.frames] == [r["timestamp_us"] for r in records[:1] + records]


def test_the_oracle_makes_no_frame_and_warms_up_on_none_when_no_lidar_keyframe_comes(nusc_synthetic, tmp_path):
    """The oracle has no watchdog (README): its warm-up ran on the watchdog's first frame anyway, a camera's, and
    failed ("the oracle needs ground truth"); now the replay makes no frame and the oracle is never called."""
    options = ReplayOptions(faults=FaultPlan(stall=(LIDAR_CHANNEL, 0.0, 100.0)), video=False, mcap=False)
    oracle = CountingOracle()
    summary = replay_scene(nusc_synthetic, _scene(nusc_synthetic), oracle, str(tmp_path), options, progress=False)
    assert (summary.frames, summary.watchdog, summary.processed) == (0, 0, 0) and oracle.calls == []
    assert read_frame_records(str(tmp_path / "frames.jsonl")) == []


def _hand_record(**changes):
    """A FRAME_RECORD written by hand: a keyframe processed with no detection."""
    record = dict(scene="scene-1", index=0, key_token="sd", key_channel=LIDAR_CHANNEL, trigger="lidar",
                  sample_token="s", is_key_frame=True, timestamp_us=1_000_000, status="processed", detections=[],
                  decision=None, plan=None, ego_state=None, timings_ms={"end_to_end": 1.5}, sensor_ages_s={},
                  missing=[], stale=[], corrupt_files=[], num_lidar_points=10, num_radar_points=0, num_cameras=0,
                  latency_s=0.0015, deadline_s=0.5, late=False, faults={})
    record.update(changes)
    return record


def test_a_record_s_types_and_values_are_checked_by_hand():
    validate_frame_record(_hand_record())
    validate_frame_record(_hand_record(latency_s=0, deadline_s=1))  # a JSON number without a point is a float too
    for changes, problem in ((dict(index=True), "'index' is bool, expected int"),
                             (dict(late=1), "'late' is int, expected bool"),
                             (dict(status="done"), "status 'done' is not"),
                             (dict(detections=[{"label": "car"}]), "exactly the keys"),
                             (dict(plan={"maneuver": "KEEP_LANE"}), "a plan must have exactly the keys")):
        with pytest.raises(ValueError, match=problem):
            validate_frame_record(_hand_record(**changes))


def test_a_plan_record_holds_the_lane_changes_probabilities():
    # logits 0 and ln 3: probabilities 1 / 2 and 3 / (1 + 3) = 3 / 4; the most likely maneuver BRAKE (logit 2)
    logits = torch.zeros(len(Maneuver))
    logits[list(Maneuver).index(Maneuver.BRAKE)] = 2.0
    trajectory = torch.tensor([[1.0, 0.0], [2.0, 0.5]])
    record = plan_to_json(PlanningOutputs(trajectory, logits, torch.tensor([0.0, math.log(3.0)])), Maneuver.STOP)
    assert record["maneuver"] == Maneuver.BRAKE.value and record["plan_maneuver"] == Maneuver.STOP.value
    assert record["trajectory"] == [[1.0, 0.0], [2.0, 0.5]]
    assert record["lane_change_feasible"] == pytest.approx([0.5, 0.75])
    broken = plan_to_json(PlanningOutputs(torch.tensor([[1.0, float("nan")], [float("inf"), 0.5]]), logits,
                                          torch.tensor([float("nan"), 0.0])), Maneuver.STOP)
    assert broken["trajectory"] == [[1.0, None], [None, 0.5]] and broken["lane_change_feasible"] == [None, 0.5]
    json.dumps(broken, allow_nan=False)  # JSON has no NaN
    # a proposal the safety layer changed is drawn beside the plan, one it kept is not, one not finite cannot be
    assert changed_proposal({"decision": {"vetoed": True}, "plan": record}).tolist() == [[1.0, 0.0], [2.0, 0.5]]
    assert changed_proposal({"decision": {"vetoed": False}, "plan": record}) is None
    assert changed_proposal({"decision": {"vetoed": True}, "plan": broken}) is None


def _restamped(template, timestamp_us, sequence):
    """``template`` re-stamped at ``timestamp_us`` (its ego pose too: identity, the ego standing still) with
    sequence number ``sequence``."""
    return dataclasses.replace(template, timestamp_us=timestamp_us, sequence=sequence,
                               ego_pose=EgoPose(timestamp_us, RigidTransform.identity()))


def test_a_hand_written_timeline_of_triggers_watchdog_and_late_messages(nusc_synthetic, tmp_path):
    """Every rule at its boundary on a timeline written by hand (keyframes, a 0.05 s sync window, the watchdog 0.75 s
    after a trigger, then every 0.5 s), as fast as possible:

      1.00 s  LiDAR keyframe L0        a frame
      1.05 s  RADAR_FRONT              stamped exactly at L0's window end: L0's frame reads it (age -0.05 s)
      1.75 s  CAM_FRONT                exactly 0.75 s after L0: not past the watchdog's time, no frame
      1.80 s  CAM_FRONT                past it: the watchdog's frame, 0.80 s after L0; next due 2.30 s
      1.80 s  LiDAR keyframe L1        delivered after that frame, at its very time: none (overtaken)
      1.80 s  RADAR_FRONT              at that time too, not a trigger: not counted as overtaken
      2.40 s  LiDAR keyframe L2        a frame
      2.42 s  LiDAR keyframe L3        a frame; L2's window (to 2.45 s) still open when the stream ends
      2.00 s  CAM_BACK                 held back to the end (its channel's first): accepted, no frame

    Not in real time, both triggers pending at the end are processed, none skipped; the drive lasted from its
    earliest message to its latest, 1.00 to 2.42 s (not to the last one delivered)."""
    scene = _scene(nusc_synthetic)
    messages = scene_messages(nusc_synthetic, scene)
    lidar = _keyframes(nusc_synthetic, scene)
    front, radar, back = ([m for m in messages if m.channel == c] for c in ("CAM_FRONT", "RADAR_FRONT", "CAM_BACK"))
    stream = [_restamped(lidar[0], 1_000_000, 0), _restamped(radar[0], 1_050_000, 0),
              _restamped(front[0], 1_750_000, 0), _restamped(front[1], 1_800_000, 1),
              _restamped(lidar[1], 1_800_000, 1), _restamped(radar[1], 1_800_000, 1),
              _restamped(lidar[2], 2_400_000, 2), _restamped(lidar[3], 2_420_000, 3),
              _restamped(back[0], 2_000_000, 0)]
    summary = replay_scene(nusc_synthetic, scene, SeesEverySensor(), str(tmp_path), QUICK, messages=stream,
                           progress=False)
    records = read_frame_records(str(tmp_path / "frames.jsonl"))
    assert [(r["key_token"], r["trigger"], r["status"]) for r in records] == [
        (stream[0].sample_data_token, "lidar", "processed"), (stream[3].sample_data_token, "watchdog", "processed"),
        (stream[6].sample_data_token, "lidar", "processed"), (stream[7].sample_data_token, "lidar", "processed")]
    assert records[0]["sensor_ages_s"]["RADAR_FRONT"] == pytest.approx(-0.05)
    assert records[1]["decision"]["reason"].startswith("watchdog: no LiDAR keyframe for 0.80 s, frame at CAM_FRONT; ")
    assert (summary.frames, summary.processed, summary.skipped) == (4, 4, 0)
    assert (summary.watchdog, summary.overtaken) == (1, 1)
    assert summary.sensor_duration_s == pytest.approx(1.42)


def test_real_time_on_a_virtual_clock_makes_each_frame_as_its_own_window_closes(nusc_synthetic, tmp_path,
                                                                               monkeypatch):
    """Every sweep in real time, on a virtual clock where a step takes no time: sweeps A at 1.00 s and B at 1.03 s,
    a radar sweep at 1.06 s, sweep C at 1.10 s. When the radar sweep comes, A's window (to 1.05 s) has closed and
    B's (to 1.08 s) has not: A is made at 1.05 s from what had come, B at 1.08 s, C at 1.15 s after the stream ends;
    none is skipped (none waited behind another), and each latency is its sync window, 0.05 s (hand-worked).
    Processing every trigger pending at A's window close made B before its window closed and skipped A."""
    scene = _scene(nusc_synthetic)
    messages = scene_messages(nusc_synthetic, scene)
    sweeps = [m for m in messages if m.channel == LIDAR_CHANNEL][:3]
    radar = next(m for m in messages if m.channel == "RADAR_FRONT")
    stream = [_restamped(sweeps[0], 1_000_000, 0), _restamped(sweeps[1], 1_030_000, 1),
              _restamped(radar, 1_060_000, 0), _restamped(sweeps[2], 1_100_000, 2)]
    monkeypatch.setattr(perception.runtime.replay, "time", _VirtualTime())
    options = ReplayOptions(every_sweep=True, realtime=True, lidar_sweeps=1, video=False, mcap=False)
    summary = replay_scene(nusc_synthetic, scene, NoBoxes(), str(tmp_path), options, messages=stream,
                           progress=False)
    records = read_frame_records(str(tmp_path / "frames.jsonl"))
    assert [(r["key_token"], r["status"]) for r in records] == [
        (stream[i].sample_data_token, "processed") for i in (0, 1, 3)]
    assert [r["latency_s"] for r in records] == pytest.approx([0.05] * 3)
    assert (summary.processed, summary.skipped, summary.watchdog) == (3, 0, 0)


def test_real_time_reads_a_message_stamped_exactly_at_the_window_end_as_the_fast_replay_does(nusc_synthetic, tmp_path,
                                                                                              monkeypatch):
    """Keyframes in real time on a virtual clock: L0 at 1.00 s, a radar sweep stamped exactly at L0's window end
    (1.05 s: the window is inclusive), L1 at 1.50 s. L0's frame is made once that sweep is in, as the replay as
    fast as possible makes it: the radar's age -0.05 s (a frame made as the sweep came, before it was pushed, had
    none), its latency the window, 0.05 s."""
    scene = _scene(nusc_synthetic)
    lidar = _keyframes(nusc_synthetic, scene)
    radar = next(m for m in scene_messages(nusc_synthetic, scene) if m.channel == "RADAR_FRONT")
    stream = [_restamped(lidar[0], 1_000_000, 0), _restamped(radar, 1_050_000, 0), _restamped(lidar[1], 1_500_000, 1)]
    monkeypatch.setattr(perception.runtime.replay, "time", _VirtualTime())
    for realtime in (False, True):
        out = tmp_path / f"realtime_{realtime}"
        replay_scene(nusc_synthetic, scene, NoBoxes(), str(out), ReplayOptions(realtime=realtime, lidar_sweeps=1,
                                                                               video=False, mcap=False),
                     messages=stream, progress=False)
        first = read_frame_records(str(out / "frames.jsonl"))[0]
        assert first["key_token"] == stream[0].sample_data_token
        assert first["sensor_ages_s"]["RADAR_FRONT"] == pytest.approx(-0.05), realtime
    assert first["latency_s"] == pytest.approx(0.05)
