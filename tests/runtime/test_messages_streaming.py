"""Sensor messages in timestamp order, the streaming state and its fault accounting, against the devkit's tables
and the loader."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from perception.datasets.ego_log import past_ego_poses
from perception.datasets.ground_truth import sample_ground_truth
from perception.datasets.loader import load_frame
from perception.decision.learned import EGO_FEATURE_HISTORY_S
from perception.geometry import EgoPose, RigidTransform
from perception.runtime.faults import FaultPlan, inject_faults
from perception.runtime.messages import message_order_key, scene_messages
from perception.runtime.streaming import DEFAULT_SYNC_WINDOW_S, StreamingState
from perception.sensors import ALL_CHANNELS, CAMERA_CHANNELS, LIDAR_CHANNEL
from tests.runtime.helpers import corrupt


def _scene_sample_data(nusc, scene_record):
    """Tokens of every sample_data whose sample lies in the scene (straight from the devkit's table)."""
    return {sd["token"] for sd in nusc.sample_data
            if nusc.get("sample", sd["sample_token"])["scene_token"] == scene_record["token"]}


def _stream_until(state, messages, key, window_us=50_000):
    """Pushes the messages captured up to ``key`` + window, as the replay does before building at ``key``."""
    for message in messages:
        if message.timestamp_us > key.timestamp_us + window_us:
            break
        state.push(message)


@pytest.mark.parametrize("dataset", ["nusc_real", "nusc_synthetic"])
def test_every_sample_data_once_in_timestamp_order(dataset, request):
    nusc = request.getfixturevalue(dataset)
    for scene in nusc.scene:
        messages = scene_messages(nusc, scene["name"])
        assert {m.sample_data_token for m in messages} == _scene_sample_data(nusc, scene)
        assert len({m.sample_data_token for m in messages}) == len(messages)
        keys = [message_order_key(m) for m in messages]
        assert keys == sorted(keys)
        again = scene_messages(nusc, scene["token"])  # deterministic, by name or token
        assert [(m.sample_data_token, m.sequence) for m in again] == [(m.sample_data_token, m.sequence)
                                                                      for m in messages]
        for channel in ALL_CHANNELS:
            channel_messages = [m for m in messages if m.channel == channel]
            assert [m.sequence for m in channel_messages] == list(range(len(channel_messages)))
            for message in channel_messages:
                record = nusc.get("sample_data", message.sample_data_token)
                assert (message.timestamp_us, message.is_key_frame) == (record["timestamp"], record["is_key_frame"])
                assert message.path.endswith(record["filename"])


def test_synthetic_stream_has_sweeps_at_sensor_rates(nusc_synthetic):
    messages = scene_messages(nusc_synthetic, nusc_synthetic.scene[0]["name"])
    duration_s = (messages[-1].timestamp_us - messages[0].timestamp_us) * 1e-6
    lidar = [m for m in messages if m.channel == LIDAR_CHANNEL]
    cameras = [m for m in messages if m.channel == "CAM_FRONT"]
    assert len(lidar) > 2 * sum(m.is_key_frame for m in lidar)  # sweeps between the keyframes
    assert len(lidar) / duration_s > len(cameras) / duration_s  # LiDAR (20 Hz) outpaces a camera (12 Hz)


def test_unknown_scene_names_the_scenes(nusc_real):
    with pytest.raises(ValueError, match="scene-0916"):
        scene_messages(nusc_real, "scene-9999")


@pytest.mark.parametrize("dataset", ["nusc_real", "nusc_synthetic"])
def test_streamed_keyframe_lidar_equals_the_loader(dataset, request):
    """The LiDAR of a frame built from the stream is the loader's, point for point (the same sweeps, the same
    compensation, up to the float round-off of passing the poses as quaternions); so are the ego pose and the
    ground truth."""
    nusc = request.getfixturevalue(dataset)
    scene = nusc.scene[0]
    messages = scene_messages(nusc, scene["name"])
    for key in [m for m in messages if m.channel == LIDAR_CHANNEL and m.is_key_frame]:
        state = StreamingState()
        _stream_until(state, messages, key)
        truth = sample_ground_truth(nusc, key.sample_token, key.ego_pose.ego_to_global)
        frame, status = state.build_frame(key, scene["token"], truth)
        reference = load_frame(nusc, key.sample_token)
        np.testing.assert_allclose(frame.lidar.points, reference.lidar.points, rtol=0, atol=1e-6)
        assert frame.lidar.num_sweeps == reference.lidar.num_sweeps
        np.testing.assert_allclose(frame.ego_pose.ego_to_global.matrix, reference.ego_pose.ego_to_global.matrix,
                                   atol=1e-12)
        np.testing.assert_allclose(frame.gt_boxes.centers, reference.gt_boxes.centers, atol=1e-9)
        assert status.stale == () and status.ages_s[LIDAR_CHANNEL] == 0.0
        # the ego's past as the tables give it, though a later sweep arrived within the window
        past = past_ego_poses(nusc, key.sample_token, EGO_FEATURE_HISTORY_S)
        assert [p.timestamp_us for p in state.recent_poses(key)] == [p.timestamp_us for p in past]


def test_streamed_keyframe_equals_the_loader_everywhere_on_the_real_fixture(nusc_real):
    """On the real keyframes (no sweeps) the radars and cameras in the sync window are the keyframe's own."""
    scene = nusc_real.scene[0]
    messages = scene_messages(nusc_real, scene["name"])
    for key in [m for m in messages if m.channel == LIDAR_CHANNEL]:
        state = StreamingState()
        _stream_until(state, messages, key)
        frame, _ = state.build_frame(key, scene["token"])
        reference = load_frame(nusc_real, key.sample_token)
        np.testing.assert_allclose(frame.radar.points, reference.radar.points, rtol=0, atol=1e-6)
        assert frame.cameras.keys() == reference.cameras.keys() and frame.missing == reference.missing
        for channel, view in frame.cameras.items():
            np.testing.assert_array_equal(view.image, reference.cameras[channel].image)
            np.testing.assert_allclose(view.camera_to_ego.matrix, reference.cameras[channel].camera_to_ego.matrix,
                                       atol=1e-12)
        # the ego's past poses as the tables give them; at the first keyframe, an earlier camera's
        past = past_ego_poses(nusc_real, key.sample_token, EGO_FEATURE_HISTORY_S)
        assert [p.timestamp_us for p in state.recent_poses(key)] == [p.timestamp_us for p in past]
        assert len(past) > 1


def test_recent_poses_reach_back_the_whole_history_behind_later_sweeps(nusc_synthetic):
    template = _lidar_messages(nusc_synthetic)[0]
    period_us = 50_000
    stream = [dataclasses.replace(template, timestamp_us=i * period_us, sequence=i,
                                  ego_pose=EgoPose(i * period_us, RigidTransform.identity())) for i in range(80)]
    key = stream[70]
    state = StreamingState()
    for message in stream[:73]:  # three sweeps past the key arrived, as in a sync window or a backlog
        state.push(message)
    start_us = key.timestamp_us - int(round(EGO_FEATURE_HISTORY_S * 1e6))
    expected = [m.timestamp_us for m in stream[:71] if m.timestamp_us >= start_us]
    assert len(expected) == 53 and [p.timestamp_us for p in state.recent_poses(key)] == expected


def _lidar_messages(nusc):
    return [m for m in scene_messages(nusc, nusc.scene[0]["name"]) if m.channel == LIDAR_CHANNEL]


def test_duplicates_gaps_and_late_arrivals_are_counted(nusc_synthetic):
    first, second, third, fourth = _lidar_messages(nusc_synthetic)[:4]
    state = StreamingState()
    assert state.push(first)
    assert not state.push(first)  # the same message again
    assert not state.push(dataclasses.replace(first, sequence=99))  # another sequence, the same timestamp
    assert state.faults.duplicated == 2
    assert state.push(fourth)  # second and third are missing
    assert state.faults.dropped == 2
    assert not state.push(second)  # arrives late: no longer dropped, out of order instead
    assert (state.faults.dropped, state.faults.out_of_order) == (1, 1)
    assert state.newest(LIDAR_CHANNEL) is fourth
    assert state.faults.as_dict() == dict(dropped=1, duplicated=2, out_of_order=1, corrupt=0, stale=0)


def test_a_record_stamped_as_the_one_before_is_a_duplicate_not_a_gap(nusc_synthetic):
    first, second, third = _lidar_messages(nusc_synthetic)[:3]
    state = StreamingState()
    assert state.push(first)
    assert not state.push(dataclasses.replace(second, timestamp_us=first.timestamp_us))  # logged with first's stamp
    assert state.push(third)  # nothing was lost between them
    assert state.faults.as_dict() == dict(dropped=0, duplicated=1, out_of_order=0, corrupt=0, stale=0)


def test_injected_faults_match_what_the_state_counts(nusc_synthetic):
    messages = scene_messages(nusc_synthetic, nusc_synthetic.scene[0]["name"])
    plan = FaultPlan(drop=0.1, duplicate=0.1, delay=0.1, seed=3)
    faulty = list(inject_faults(messages, plan))
    assert faulty == list(inject_faults(messages, plan))  # seeded
    state = StreamingState()
    accepted = [m for m in faulty if state.push(m)]
    delivered = {m.sample_data_token for m in faulty}
    lost = len(messages) - len(delivered)
    duplicates = len(faulty) - len(delivered)
    late = len(delivered) - len(accepted)  # delivered, never accepted: arrived after a newer one
    assert lost > 0 and duplicates > 0 and late > 0
    assert state.faults.duplicated == duplicates
    assert state.faults.out_of_order == late
    # A message that never got in is seen as a gap between a channel's first and last accepted ones, or as late
    # when it did arrive; one lost before the first or after the last accepted one leaves no trace.
    first, last = {}, {}
    for m in accepted:
        first.setdefault(m.channel, m.sequence)
        last[m.channel] = m.sequence
    accepted_tokens = {m.sample_data_token for m in accepted}
    seen = sum(1 for m in messages if m.sample_data_token not in accepted_tokens and (
        first[m.channel] < m.sequence < last[m.channel] or m.sample_data_token in delivered))
    assert state.faults.dropped + state.faults.out_of_order == seen


def test_a_stalled_camera_goes_stale_and_the_frame_goes_on_without_it(nusc_synthetic):
    scene = nusc_synthetic.scene[0]
    messages = scene_messages(nusc_synthetic, scene["name"])
    stream = list(inject_faults(messages, FaultPlan(stall=("CAM_FRONT", 0.2, 100.0))))
    assert len(stream) < len(messages)
    key = [m for m in messages if m.channel == LIDAR_CHANNEL and m.is_key_frame][-1]
    state = StreamingState(stale_after_s=0.3)
    _stream_until(state, stream, key)
    frame, status = state.build_frame(key, scene["token"])
    assert status.stale == ("CAM_FRONT",)
    assert status.ages_s["CAM_FRONT"] > 0.3
    assert "CAM_FRONT" in frame.missing and "CAM_FRONT" not in frame.cameras
    assert set(frame.cameras) == set(CAMERA_CHANNELS) - {"CAM_FRONT"}
    assert frame.lidar is not None and state.faults.stale == 1


def test_corrupt_files_are_counted_and_left_out(nusc_synthetic, tmp_path):
    """A truncated LiDAR sweep, an undecodable image and a radar sweep whose file is gone: the frame is built from
    the rest (the camera falls back to its previous image), and the files are named."""
    scene = nusc_synthetic.scene[0]
    messages = scene_messages(nusc_synthetic, scene["name"])
    key = [m for m in messages if m.channel == LIDAR_CHANNEL and m.is_key_frame][1]
    past_sweep = [m for m in messages if m.channel == LIDAR_CHANNEL and m.timestamp_us < key.timestamp_us][-1]
    image = [m for m in messages if m.channel == "CAM_BACK" and m.timestamp_us <= key.timestamp_us + 50_000][-1]
    radar = [m for m in messages if m.channel == "RADAR_FRONT" and m.timestamp_us <= key.timestamp_us][-1]
    broken = {radar.sample_data_token: str(tmp_path / "gone.pcd")}
    for message, payload in ((past_sweep, b"\0" * 21), (image, b"\xff\xd8 not a jpeg")):
        path = str(tmp_path / message.path.replace("/", "_"))
        shutil.copy(message.path, path)
        corrupt(path, payload)
        broken[message.sample_data_token] = path
    stream = [dataclasses.replace(m, path=broken.get(m.sample_data_token, m.path)) for m in messages]
    state = StreamingState()
    _stream_until(state, stream, key)
    frame, status = state.build_frame(key, scene["token"])
    assert sorted(status.corrupt) == sorted(broken.values())
    assert state.faults.corrupt == 3
    healthy = StreamingState()
    _stream_until(healthy, messages, key)
    reference, _ = healthy.build_frame(key, scene["token"])
    assert frame.lidar.num_sweeps == reference.lidar.num_sweeps - 1
    # RADAR_FRONT reads its sweep before the broken one instead, within the span of its six
    assert frame.radar.num_sweeps == reference.radar.num_sweeps
    assert len(frame.radar.points) != len(reference.radar.points)
    assert frame.cameras["CAM_BACK"].timestamp_us < image.timestamp_us  # the previous image
    # Nothing else changed: the broken sweep's points are exactly what is missing.
    lag = (key.timestamp_us - past_sweep.timestamp_us) * 1e-6
    kept = np.abs(reference.lidar.points[:, 4] - np.float32(lag)) > 1e-6
    np.testing.assert_allclose(frame.lidar.points, reference.lidar.points[kept], rtol=0, atol=1e-6)


@pytest.mark.parametrize("window_us", [50_000, 300_000])
def test_a_frame_built_late_reads_what_it_read_on_time(nusc_synthetic, window_us):
    """A real-time replay catching up builds a key a trigger period and its sync window behind the newest
    message, and a long sync window holds the radar sweeps and images of the key's own time: the frame is the one
    built on time, every sweep of its LiDAR included (the buffers once kept only the newest sweeps: none at or
    before the key was left)."""
    scene = nusc_synthetic.scene[0]
    messages = scene_messages(nusc_synthetic, scene["name"])
    key = [m for m in messages if m.channel == LIDAR_CHANNEL and m.is_key_frame][1]
    on_time, late = (StreamingState(sync_window_s=window_us * 1e-6) for _ in range(2))
    _stream_until(on_time, messages, key, window_us)
    _stream_until(late, messages, key, window_us + 500_000)
    expected, expected_status = on_time.build_frame(key, scene["token"])
    frame, status = late.build_frame(key, scene["token"])
    assert frame.lidar.num_sweeps == 10 and status == expected_status
    np.testing.assert_array_equal(frame.lidar.points, expected.lidar.points)
    np.testing.assert_array_equal(frame.radar.points, expected.radar.points)
    assert {c: i.timestamp_us for c, i in frame.cameras.items()} == {
        c: i.timestamp_us for c, i in expected.cameras.items()}
    assert max(i.timestamp_us for i in frame.cameras.values()) <= key.timestamp_us + window_us


def test_state_rejects_bad_settings():
    with pytest.raises(ValueError, match="sweep"):
        StreamingState(lidar_sweeps=0)
    with pytest.raises(ValueError, match="stale_after_s"):
        StreamingState(stale_after_s=0)
    for name, value in (("sync_window_s", float("nan")), ("sync_window_s", -0.1), ("backlog_s", float("inf"))):
        with pytest.raises(ValueError, match=f"{name} must be finite and >= 0"):
            StreamingState(**{name: value})


def test_a_frame_at_another_channel_s_message_reads_the_lidar_before_it_and_ends_its_poses(nusc_synthetic):
    scene = nusc_synthetic.scene[0]
    messages = scene_messages(nusc_synthetic, scene["name"])
    keyframe = next(m for m in messages if m.channel == LIDAR_CHANNEL and m.is_key_frame)
    key = next(m for m in messages if m.channel == "CAM_BACK" and m.timestamp_us > keyframe.timestamp_us + 20_000)
    state = StreamingState(lidar_sweeps=3, radar_sweeps=1)
    for message in messages:
        if message.timestamp_us > key.timestamp_us + DEFAULT_SYNC_WINDOW_S * 1e6:
            break
        state.push(message)
    frame, status = state.build_frame(key, scene["token"])
    lidar_before = [m for m in messages if m.channel == LIDAR_CHANNEL and m.timestamp_us <= key.timestamp_us][-3:]
    assert frame.timestamp_us == key.timestamp_us and frame.ego_pose.timestamp_us == key.timestamp_us
    assert frame.sample_token == key.sample_data_token  # not a keyframe: no sample's token
    assert frame.lidar.num_sweeps == 3
    # the time-lag channel: each sweep's age at the key (hand-worked from the timestamps)
    np.testing.assert_allclose(np.unique(frame.lidar.points[:, 4]),
                               sorted((key.timestamp_us - m.timestamp_us) * 1e-6 for m in lidar_before), atol=1e-6)
    assert status.ages_s[LIDAR_CHANNEL] == pytest.approx((key.timestamp_us - lidar_before[-1].timestamp_us) * 1e-6)
    poses = state.recent_poses(key)
    assert poses[-1].timestamp_us == key.timestamp_us
    assert [p.timestamp_us for p in poses[:-1]] == [
        m.timestamp_us for m in messages if m.channel == LIDAR_CHANNEL and m.timestamp_us < key.timestamp_us]


def test_a_message_older_than_its_channel_s_newest_is_late_whatever_its_sequence_number(nusc_synthetic):
    # the next sweep by number, stamped 10 ms before the newest accepted one: out of order, not a new newest
    first, second = _lidar_messages(nusc_synthetic)[:2]
    state = StreamingState()
    assert state.push(first)
    assert not state.push(dataclasses.replace(second, timestamp_us=first.timestamp_us - 10_000))
    assert state.faults.as_dict() == dict(dropped=0, duplicated=0, out_of_order=1, corrupt=0, stale=0)
    assert state.newest(LIDAR_CHANNEL) is first


def test_a_channel_exactly_stale_after_s_old_is_still_used(nusc_synthetic):
    # stale_after_s 0.5: CAM_FRONT's image 500 000 us before the key is 0.5 s old, kept; CAM_BACK's 500 001 us
    # before it is 0.500001 s old, stale
    messages = scene_messages(nusc_synthetic, nusc_synthetic.scene[0]["name"])
    lidar = next(m for m in messages if m.channel == LIDAR_CHANNEL)
    front, back = (next(m for m in messages if m.channel == c) for c in ("CAM_FRONT", "CAM_BACK"))
    key = dataclasses.replace(lidar, timestamp_us=2_000_000)
    state = StreamingState(stale_after_s=0.5)
    assert state.push(dataclasses.replace(back, timestamp_us=1_499_999))
    assert state.push(dataclasses.replace(front, timestamp_us=1_500_000))
    assert state.push(key)
    status = state.status(key)
    assert status.stale == ("CAM_BACK",)
    assert (status.ages_s["CAM_FRONT"], status.ages_s["CAM_BACK"]) == (0.5, pytest.approx(0.500001))


def test_a_lidar_sweep_not_yet_stale_stays_for_a_frame_at_another_channel(nusc_synthetic):
    """Every sweep's settings (5 sweeps of 0.05 s, a 0.05 s window, a 0.075 s backlog): a frame keyed at a radar
    message 0.467 s after the last sweep before it reads that sweep (0.467 s <= stale_after_s 0.5) even when a sweep
    stamped after the key comes within the key's sync window (its 0.425 s of what five sweeps read had dropped the
    older one: the frame read no LiDAR, as if none had come)."""
    messages = scene_messages(nusc_synthetic, nusc_synthetic.scene[0]["name"])
    lidar = next(m for m in messages if m.channel == LIDAR_CHANNEL)
    radar = next(m for m in messages if m.channel == "RADAR_FRONT")
    state = StreamingState(lidar_sweeps=5, stale_after_s=0.5, sync_window_s=0.05, backlog_s=0.075)
    assert state.push(dataclasses.replace(lidar, timestamp_us=450_000, sequence=9))
    key = dataclasses.replace(radar, timestamp_us=917_000)
    assert state.push(key)
    assert state.push(dataclasses.replace(lidar, timestamp_us=950_000, sequence=19))  # inside the window
    status = state.status(key)
    assert status.ages_s[LIDAR_CHANNEL] == pytest.approx(0.467) and LIDAR_CHANNEL not in status.stale


def test_stale_channels_are_counted_once_per_frame_built(nusc_synthetic):
    # CAM_FRONT stalled from 0.2 s: stale at the last keyframe; two frames built there count it twice
    scene = nusc_synthetic.scene[0]
    messages = scene_messages(nusc_synthetic, scene["name"])
    stream = list(inject_faults(messages, FaultPlan(stall=("CAM_FRONT", 0.2, 100.0))))
    key = [m for m in messages if m.channel == LIDAR_CHANNEL and m.is_key_frame][-1]
    state = StreamingState(stale_after_s=0.3)
    _stream_until(state, stream, key)
    for built in (1, 2):
        _, status = state.build_frame(key, scene["token"])
        assert status.stale == ("CAM_FRONT",) and state.faults.stale == built


def test_a_sweep_a_millisecond_late_still_counts_among_the_ten(nusc_synthetic):
    # every LiDAR sweep before the second keyframe stamped 1 ms earlier (timestamps jitter): the nine before the key
    # are 51, 101, ..., 451 ms old, within the span of ten sweeps at 20 Hz (9.5 x 50 = 475 ms): all ten are read
    scene = nusc_synthetic.scene[0]
    messages = scene_messages(nusc_synthetic, scene["name"])
    key = [m for m in messages if m.channel == LIDAR_CHANNEL and m.is_key_frame][1]
    stream = [dataclasses.replace(m, timestamp_us=m.timestamp_us - 1000)
              if m.channel == LIDAR_CHANNEL and m.timestamp_us < key.timestamp_us else m for m in messages]
    state = StreamingState()
    _stream_until(state, stream, key)
    frame, _ = state.build_frame(key, scene["token"])
    assert frame.lidar.num_sweeps == 10
    np.testing.assert_allclose(np.unique(frame.lidar.points[:, 4]), [0.0] + [0.001 + 0.05 * k for k in range(1, 10)],
                               atol=1e-6)


def test_a_frame_at_a_camera_keyframe_is_not_a_keyframe(nusc_synthetic):
    # the devkit marks the second sample's CAM_FRONT image a keyframe; a frame keyed there (a watchdog's) is not
    # the sample's: it carries the image's sample_data token, not the sample's
    scene = nusc_synthetic.scene[0]
    messages = scene_messages(nusc_synthetic, scene["name"])
    sample = nusc_synthetic.get("sample", nusc_synthetic.get("scene", scene["token"])["first_sample_token"])["next"]
    key = next(m for m in messages if m.sample_data_token == nusc_synthetic.get("sample", sample)["data"]["CAM_FRONT"])
    assert key.is_key_frame and not key.is_lidar_keyframe
    state = StreamingState(lidar_sweeps=1, radar_sweeps=1)
    _stream_until(state, messages, key)
    frame, _ = state.build_frame(key, scene["token"])
    assert frame.sample_token == key.sample_data_token != sample


def test_messages_stamped_alike_follow_the_channel_order_then_the_sequence(nusc_synthetic):
    # three messages at 1 s: CAM_FRONT number 2, LIDAR_TOP number 9, CAM_FRONT number 1; LIDAR_TOP is the first
    # channel of ALL_CHANNELS, so it goes first whatever its number, then the two images by number
    messages = scene_messages(nusc_synthetic, nusc_synthetic.scene[0]["name"])
    lidar, camera = (next(m for m in messages if m.channel == c) for c in (LIDAR_CHANNEL, "CAM_FRONT"))
    tied = [dataclasses.replace(camera, timestamp_us=1_000_000, sequence=2),
            dataclasses.replace(lidar, timestamp_us=1_000_000, sequence=9),
            dataclasses.replace(camera, timestamp_us=1_000_000, sequence=1)]
    ordered = sorted(tied, key=message_order_key)
    assert [(m.channel, m.sequence) for m in ordered] == [(LIDAR_CHANNEL, 9), ("CAM_FRONT", 1), ("CAM_FRONT", 2)]


def _first_of(nusc, channel):
    return next(m for m in scene_messages(nusc, nusc.scene[0]["name"]) if m.channel == channel)


def _at(template, timestamp_us, sequence=0, **changes):
    """``template`` re-stamped at ``timestamp_us`` (its ego pose too, identity) with sequence number ``sequence``."""
    return dataclasses.replace(template, timestamp_us=timestamp_us, sequence=sequence,
                               ego_pose=EgoPose(timestamp_us, RigidTransform.identity()), **changes)


def test_an_image_exactly_stale_after_s_old_stays_buffered_for_a_frame_built_as_late_as_the_backlog_lets(
        nusc_synthetic):
    """The buffers keep what a frame built late may still use. stale_after_s 0.5, sync window 0.05 s, backlog 0.1 s:
    a key may be built 0.05 + 0.1 = 0.15 s behind the newest message, and an image exactly 0.5 s old there is used
    (not stale), so CAM_FRONT keeps an image 0.5 + 0.15 = 0.65 s older than its newest (hand-worked); dropping one
    as old as the span kept (>= instead of >) lost it and left the frame without the camera."""
    lidar, camera = (_first_of(nusc_synthetic, c) for c in (LIDAR_CHANNEL, "CAM_FRONT"))
    state = StreamingState(stale_after_s=0.5, sync_window_s=0.05, backlog_s=0.1)
    assert state.push(_at(camera, 1_000_000, 0))
    key = _at(lidar, 1_500_000)
    assert state.push(key)
    assert state.push(_at(camera, 1_650_000, 1))  # after the key's window: not the image its frame reads
    status = state.status(key)
    assert status.ages_s["CAM_FRONT"] == 0.5 and status.stale == ()


def test_with_no_lidar_pose_before_the_key_an_other_message_exactly_the_limit_before_comes_first(nusc_synthetic):
    """perception.datasets.ego_log.past_ego_poses' rule: with no LiDAR pose before the key, the earliest pose of the
    other channels' records stamped within OTHER_SENSORS_BEFORE_S (0.1 s) before it comes first, one stamped exactly
    0.1 s before included (the tables' walk stops below it), one 1 us earlier not."""
    lidar, front, back, radar = (_first_of(nusc_synthetic, c)
                                 for c in (LIDAR_CHANNEL, "CAM_FRONT", "CAM_BACK", "RADAR_FRONT"))
    state = StreamingState()
    for message in (_at(back, 899_999), _at(front, 900_000), _at(radar, 950_000)):
        assert state.push(message)
    key = _at(lidar, 1_000_000)
    assert state.push(key)
    assert [p.timestamp_us for p in state.recent_poses(key)] == [900_000, 1_000_000]


def test_the_sync_window_ends_at_the_key_plus_sync_window_s_inclusive(nusc_synthetic):
    """A radar sweep stamped exactly sync_window_s (0.05 s) after the LiDAR key is the frame's (age -0.05 s);
    an image 1 us later is not, though it is buffered. fed_up_to delivers the first and stops before the second."""
    lidar, camera, radar = (_first_of(nusc_synthetic, c) for c in (LIDAR_CHANNEL, "CAM_FRONT", "RADAR_FRONT"))
    key = _at(lidar, 1_000_000)
    stream = [key, _at(radar, 1_050_000), _at(camera, 1_050_001)]
    fed = StreamingState(sync_window_s=0.05)
    assert fed.fed_up_to(stream, key) is fed
    assert fed.newest("RADAR_FRONT") is stream[1] and fed.newest("CAM_FRONT") is None
    state = StreamingState(sync_window_s=0.05)
    assert all(state.push(m) for m in stream)
    ages = state.status(key).ages_s
    assert ages["RADAR_FRONT"] == pytest.approx(-0.05) and ages["CAM_FRONT"] is None


def test_a_zero_sync_window_and_backlog_are_accepted_and_read_nothing_after_the_key(nusc_synthetic):
    """sync_window_s = backlog_s = 0 are valid settings (>= 0): the frame reads what is stamped at or before its
    key, a radar sweep at the key's very time (age 0) but not an image 1 us after it."""
    lidar, camera, radar = (_first_of(nusc_synthetic, c) for c in (LIDAR_CHANNEL, "CAM_FRONT", "RADAR_FRONT"))
    state = StreamingState(sync_window_s=0.0, backlog_s=0.0)
    key = _at(lidar, 1_000_000)
    assert all(state.push(m) for m in (key, _at(radar, 1_000_000), _at(camera, 1_000_001)))
    ages = state.status(key).ages_s
    assert ages["RADAR_FRONT"] == 0.0 and ages["CAM_FRONT"] is None
    with pytest.raises(ValueError, match="radar_sweeps=0"):
        StreamingState(radar_sweeps=0)


def test_a_sweep_exactly_the_span_of_its_count_old_is_read(nusc_synthetic):
    """Three LiDAR sweeps span at most (3 - 1/2) x 50 ms = 125 ms back from the newest (hand-worked, exact in
    floating point): sweeps 0, 50 and 125 ms before the key are all read, their time lags exactly those."""
    sweeps = _lidar_messages(nusc_synthetic)[:3]
    state = StreamingState(lidar_sweeps=3, radar_sweeps=1)
    stream = [_at(m, t, i) for i, (m, t) in enumerate(zip(sweeps, (875_000, 950_000, 1_000_000)))]
    assert all(state.push(m) for m in stream)
    frame, _ = state.build_frame(stream[-1], "scene")
    assert frame.lidar.num_sweeps == 3
    np.testing.assert_allclose(np.unique(frame.lidar.points[:, 4]), [0.0, 0.05, 0.125], atol=1e-6)


def test_a_corrupt_image_is_counted_once_and_leaves_its_buffer(nusc_synthetic, tmp_path):
    """CAM_FRONT's newest image undecodable: the first frame names it and reads the image before; it is counted
    once (faults accumulate over the frames: a second frame at the key, which finds nothing corrupt, leaves the
    count at 1) and it leaves the buffer (newest() is the image before it)."""
    lidar, camera = (_first_of(nusc_synthetic, c) for c in (LIDAR_CHANNEL, "CAM_FRONT"))
    broken = str(tmp_path / "broken.jpg")
    with open(broken, "wb") as f:
        f.write(b"\xff\xd8 not a jpeg")
    good, bad = _at(camera, 920_000, 0), _at(camera, 990_000, 1, path=broken)
    key = _at(lidar, 1_000_000)
    state = StreamingState(lidar_sweeps=1, radar_sweeps=1)
    assert all(state.push(m) for m in (good, bad, key))
    frame, status = state.build_frame(key, "scene")
    assert status.corrupt == (broken,) and state.faults.corrupt == 1
    assert frame.cameras["CAM_FRONT"].timestamp_us == 920_000 and state.newest("CAM_FRONT") is good
    _, again = state.build_frame(key, "scene")
    assert again.corrupt == () and state.faults.corrupt == 1
