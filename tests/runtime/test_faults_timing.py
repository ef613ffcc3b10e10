"""Fault injection and stage timers, with hand-worked expectations."""
from __future__ import annotations

import dataclasses
import time

import pytest

from perception.runtime.faults import FaultPlan, inject_faults
from perception.runtime.messages import scene_messages
from perception.detector import timed_detect
from perception.timing import StageTimer, latency_summary, round_robin, stage, summarize_records
from tests.runtime.helpers import NoBoxes, StagedNoBoxes


def test_fault_plan_parses_and_validates():
    plan = FaultPlan.parse("drop=0.05, duplicate=0.02,delay=0.1,stall=CAM_FRONT:1.0:2.5,seed=7")
    assert plan == FaultPlan(drop=0.05, duplicate=0.02, delay=0.1, stall=("CAM_FRONT", 1.0, 2.5), seed=7)
    for spec, problem in (("drop=2", "not in"), ("explode=1", "unknown fault"), ("stall=CAM_NOSE:0:1", "channel"),
                          ("stall=CAM_FRONT:2:1", "start_s < end_s"), ("drop=x", "cannot read")):
        with pytest.raises(ValueError, match=problem):
            FaultPlan.parse(spec)


def test_no_faults_is_the_stream_itself(nusc_real):
    messages = scene_messages(nusc_real, nusc_real.scene[0]["name"])
    assert list(inject_faults(messages, FaultPlan())) == messages


def test_each_fault_does_what_it_says(nusc_real):
    messages = scene_messages(nusc_real, nusc_real.scene[0]["name"])
    assert list(inject_faults(messages, FaultPlan(drop=1.0))) == []
    assert list(inject_faults(messages, FaultPlan(duplicate=1.0))) == [m for m in messages for _ in range(2)]
    # Stall: CAM_FRONT silent from 0.3 s after the first message on (its last two images at 0.5 and 1.0 s).
    stalled = list(inject_faults(messages, FaultPlan(stall=("CAM_FRONT", 0.3, 10.0))))
    start = messages[0].timestamp_us
    assert stalled == [m for m in messages if not (m.channel == "CAM_FRONT" and m.timestamp_us - start >= 300_000)]
    assert len(stalled) == len(messages) - 2
    # Delay: every message is held until the next one of its channel has gone by.
    delayed = list(inject_faults(messages, FaultPlan(delay=1.0)))
    assert sorted(delayed, key=lambda m: m.sample_data_token) == sorted(messages, key=lambda m: m.sample_data_token)
    lidar = [m.sequence for m in delayed if m.channel == "LIDAR_TOP"]
    assert lidar != sorted(lidar)


def test_stage_timer_accumulates_nested_stages():
    timer = StageTimer("cpu")
    with timer.stage("end_to_end"):
        for _ in range(2):
            with timer.stage("load"):
                time.sleep(0.01)
    elapsed = timer.elapsed_ms()
    assert list(elapsed) == ["load", "end_to_end"]  # the order the stages finished
    assert elapsed["load"] >= 20.0
    assert elapsed["end_to_end"] >= elapsed["load"]
    timer.reset()
    assert timer.elapsed_ms() == {}
    with stage(None, "anything"):  # no timer: times nothing, runs the block
        ran = True
    assert ran


def test_round_robin_rotates_the_first_contender_and_keeps_the_rounds_after_the_warm_up():
    calls = []

    def contender(name):
        def call(index):
            calls.append((index, name))
            return f"{name}{index}"
        return call

    measured = round_robin({name: contender(name) for name in "abc"}, rounds=3, warmup=1)
    # round i starts with contender i mod 3: a b c (warm-up) | b c a | c a b | a b c
    assert calls == [(0, "a"), (0, "b"), (0, "c"), (1, "b"), (1, "c"), (1, "a"), (2, "c"), (2, "a"), (2, "b"),
                     (3, "a"), (3, "b"), (3, "c")]
    assert measured == {"a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3"], "c": ["c1", "c2", "c3"]}
    for bad in (dict(rounds=0), dict(rounds=1, warmup=-1)):
        with pytest.raises(ValueError, match="round_robin needs"):
            round_robin({"a": contender("a")}, **bad)
    with pytest.raises(ValueError, match="round_robin needs a contender"):
        round_robin({}, rounds=1)


def test_latency_summary_by_hand():
    summary = latency_summary([5.0, 1.0, 3.0, 2.0, 4.0])
    # numpy's linear interpolation over the sorted samples 1..5: p50 = 3, p90 = 4 + 0.6, p99 = 4 + 0.96.
    assert summary == pytest.approx(dict(p50_ms=3.0, p90_ms=4.6, p99_ms=4.96, mean_ms=3.0, min_ms=1.0, max_ms=5.0,
                                         count=5))
    assert set(latency_summary([1.0], unit="s")) == {"p50_s", "p90_s", "p99_s", "mean_s", "min_s", "max_s", "count"}
    with pytest.raises(ValueError):
        latency_summary([])


def test_summarize_records_orders_pipeline_stages_first():
    records = [{"custom": 1.0, "decision": 2.0, "load": 3.0}, {"load": 5.0, "decision": 4.0}]
    summary = summarize_records(records)
    assert list(summary) == ["load", "decision", "custom"]
    assert summary["load"]["p50_ms"] == 4.0 and summary["custom"]["count"] == 1


def test_timed_detect_times_the_call_and_hands_the_detector_its_timer(nusc_real):
    from perception.datasets.loader import load_frame

    frame = load_frame(nusc_real, nusc_real.sample[0]["token"], cameras=False)
    timer = StageTimer()
    timed_detect(StagedNoBoxes(["voxelize", "head"]), frame, timer)
    assert set(timer.elapsed_ms()) == {"voxelize", "head", "detector"}
    timer.reset()
    timed_detect(NoBoxes(), frame, timer)
    assert set(timer.elapsed_ms()) == {"detector"}


def test_a_pipeline_stage_missing_from_some_records_still_comes_first():
    # "load" only in the second record (a frame whose load was not timed): still before "custom", with one sample
    summary = summarize_records([{"custom": 1.0}, {"custom": 3.0, "load": 2.0}])
    assert list(summary) == ["load", "custom"]
    assert summary["load"]["count"] == 1 and summary["custom"]["mean_ms"] == 2.0


def test_a_stall_silences_its_channel_from_its_start_up_to_not_including_its_end(nusc_real):
    # CAM_FRONT images 0, 1, 2 and 3 s after the stream's first message, stalled over [1, 2) s: the one at 1 s
    # is lost, the one at 2 s delivered; a stall that ends where it starts is refused
    template = next(m for m in scene_messages(nusc_real, nusc_real.scene[0]["name"]) if m.channel == "CAM_FRONT")
    stream = [dataclasses.replace(template, timestamp_us=k * 1_000_000, sequence=k) for k in range(4)]
    kept = list(inject_faults(stream, FaultPlan(stall=("CAM_FRONT", 1.0, 2.0))))
    assert [m.sequence for m in kept] == [0, 2, 3]
    with pytest.raises(ValueError, match="start_s < end_s"):
        FaultPlan(stall=("CAM_FRONT", 1.0, 1.0))
