"""Sharding arithmetic, the merge of the processes' predictions, and the predictions a resume reads back."""
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from perception.datasets.frame import Frame
from perception.datasets.loader import UnreadableFrame
from perception.eval.runner import (PREDICTIONS_FILE, PREDICTIONS_RUN_FILE, DataOptions, PredictionFiles, Predictions,
                                    Shard, open_predictions, predict, run_identity)
from perception.geometry import Boxes3D, EgoPose, RigidTransform
from perception.models.planning_types import PlanningOutputs
from perception.jsonfile import read_json, read_json_lines, write_json_atomic, write_json_lines


def test_shards_cover_every_frame_once():
    shards = [Shard(rank, 3) for rank in range(3)]
    assert [list(s.indices(7)) for s in shards] == [[0, 3, 6], [1, 4], [2, 5]]
    assert [s.is_main for s in shards] == [True, False, False]
    assert list(Shard().indices(4)) == [0, 1, 2, 3]


def test_merge_keeps_every_part_and_refuses_duplicates():
    empty, one_box = Boxes3D.empty(), Boxes3D([[1.0, 2.0, 0.5]], [[2.0, 4.0, 1.5]], [0.25])
    first = Predictions({"a": [], "b": [{"x": 1}]}, seconds=1.5, frames_per_process=[2],
                        ego_boxes={"a": empty, "b": one_box})
    second = Predictions({"c": []}, seconds=0.5, frames_per_process=[1], ego_boxes={"c": empty})
    merged = Predictions.merged([first, second], ["a", "b", "c"])
    assert merged.results == {"a": [], "b": [{"x": 1}], "c": []}
    assert {token: len(boxes) for token, boxes in merged.ego_boxes.items()} == {"a": 0, "b": 1, "c": 0}
    assert merged.ego_boxes["b"] is one_box
    assert (merged.seconds, merged.frames_per_process, merged.frames) == (2.0, [2, 1], 3)
    with pytest.raises(ValueError, match="more than one process: b"):
        Predictions.merged([first, Predictions({"b": []}, frames_per_process=[1])], ["a", "b", "c"])


def _record(token, place, size):
    """A frame with no box, read at the global frame's origin, in batch place ``place`` of ``size``."""
    return {"sample_token": token, "boxes": [], "ego_pose": {"timestamp_us": 0, "ego_to_global": np.eye(4).tolist()},
            "plan": None, "unreadable": None, "seconds": 0.5, "batch": [place, size]}


def _files(tmp_path, identity, **options):
    return PredictionFiles(str(tmp_path), identity, **options)


def test_a_resume_keeps_whole_batches_of_the_same_run_only(tmp_path):
    """Batches of two, the second stopped after its first frame: the first batch is kept, so the frames left are
    batched as an uninterrupted run batches them; the file is rewritten with what is kept."""
    identity = {"model": {"detector": "d"}}
    write_json_atomic(str(tmp_path / PREDICTIONS_RUN_FILE), identity)
    write_json_lines(str(tmp_path / PREDICTIONS_FILE), [_record("a", 0, 2), _record("b", 1, 2), _record("c", 0, 2)])
    log, done = open_predictions(_files(tmp_path, identity, resume=True), Shard(), planning=False)
    log.close()
    assert list(done.results) == ["a", "b"] and done.frames == 2 and done.seconds == 1.0
    assert [record["sample_token"] for record in read_json_lines(str(tmp_path / PREDICTIONS_FILE))] == ["a", "b"]


def test_predictions_of_another_run_are_refused_or_replaced(tmp_path):
    identity = {"model": {"detector": "d"}}
    write_json_lines(str(tmp_path / PREDICTIONS_FILE), [_record("a", 0, 1)])
    with pytest.raises(ValueError, match="missing, so the run that made the frames recorded there is unknown"):
        open_predictions(_files(tmp_path, identity, resume=True), Shard(), planning=False)
    write_json_atomic(str(tmp_path / PREDICTIONS_RUN_FILE), [])
    with pytest.raises(ValueError, match=r"predictions_run.json: the record of the run is a JSON list, not an object"):
        open_predictions(_files(tmp_path, identity, resume=True), Shard(), planning=False)
    write_json_atomic(str(tmp_path / PREDICTIONS_RUN_FILE), {"model": {"detector": "e"}})
    with pytest.raises(ValueError, match=r"are of a run with another model\.detector;"):
        open_predictions(_files(tmp_path, identity, resume=True), Shard(), planning=False)
    with open(tmp_path / PREDICTIONS_FILE, "a") as handle:
        handle.write('{"an older format": 1}\n')  # another run's records are not read: the refusal names the run
    with pytest.raises(ValueError, match=r"are of a run with another model\.detector;"):
        open_predictions(_files(tmp_path, identity, resume=True), Shard(), planning=False)
    log, done = open_predictions(_files(tmp_path, identity, resume=True, restart_other=True), Shard(), False)
    log.close()
    assert done.frames == 0 and read_json_lines(str(tmp_path / PREDICTIONS_FILE)) == []
    assert read_json(str(tmp_path / PREDICTIONS_RUN_FILE)) == identity


@pytest.mark.parametrize("change, problem", [
    (dict(boxes=None), "a list of boxes"), (dict(boxes=[{"label": "car"}]), "a list of boxes"),
    (dict(ego_pose=None), "an ego_pose object"), (dict(seconds="1"), "seconds and its batch"),
    (dict(batch=[2, 2]), "seconds and its batch"), (dict(extra=1), "exactly the keys"),
    (dict(batch=[-1, 2]), "seconds and its batch"), (dict(plan=[[0.0, 0.0]]), "an ego_pose object"),
    (dict(unreadable={"path": "/x.bin", "problem": "cut short"}), "an ego_pose object for a frame it read"),
])
def test_a_malformed_record_is_named_with_its_line(tmp_path, change, problem):
    identity = {"model": {"detector": "d"}}
    write_json_atomic(str(tmp_path / PREDICTIONS_RUN_FILE), identity)
    write_json_lines(str(tmp_path / PREDICTIONS_FILE), [_record("a", 0, 1), {**_record("b", 0, 1), **change}, {}])
    with pytest.raises(ValueError, match=f"{PREDICTIONS_FILE}: line 2: a frame's predictions record .*{problem}"):
        open_predictions(_files(tmp_path, identity, resume=True), Shard(), planning=False)


def test_a_resume_keeps_every_whole_batch(tmp_path):
    """Two whole batches of two, then one stopped after its first frame: the four frames of the whole ones."""
    identity = {"model": {"detector": "d"}}
    write_json_atomic(str(tmp_path / PREDICTIONS_RUN_FILE), identity)
    records = [_record("a", 0, 2), _record("b", 1, 2), _record("c", 0, 2), _record("d", 1, 2), _record("e", 0, 2)]
    write_json_lines(str(tmp_path / PREDICTIONS_FILE), records)
    log, done = open_predictions(_files(tmp_path, identity, resume=True), Shard(), planning=False)
    log.close()
    assert list(done.results) == ["a", "b", "c", "d"] and done.frames == 4


def test_a_fresh_run_removes_every_processs_earlier_predictions(tmp_path):
    """Without resume the earlier run's files go, those of each process of a sharded run too (they would be read
    by a later resume with as many processes); other files stay."""
    for name in ("predictions.0.jsonl", "predictions.1.jsonl", PREDICTIONS_FILE, "notes.jsonl", "report.md"):
        write_json_lines(str(tmp_path / name), [_record("a", 0, 1)])
    log, done = open_predictions(_files(tmp_path, {"model": {"detector": "d"}}), Shard(), planning=False)
    log.close()
    # report.md is an evaluation's name, but without predictions_run.json the folder's are not an evaluation's
    assert done.frames == 0 and sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.jsonl", PREDICTIONS_FILE, PREDICTIONS_RUN_FILE, "report.md"]
    assert read_json_lines(str(tmp_path / PREDICTIONS_FILE)) == []


def test_a_resume_into_another_runs_folder_with_no_frame_recorded_is_refused(tmp_path):
    """A run of another model killed before its first frame left its predictions_run.json and no prediction: a
    resume there is refused as with frames recorded, not started afresh over the other run's folder."""
    write_json_atomic(str(tmp_path / PREDICTIONS_RUN_FILE), {"model": {"detector": "e"}})
    with pytest.raises(ValueError, match=r"are of a run with another model\.detector;"):
        open_predictions(_files(tmp_path, {"model": {"detector": "d"}}, resume=True), Shard(), planning=False)
    assert read_json(str(tmp_path / PREDICTIONS_RUN_FILE)) == {"model": {"detector": "e"}}


def test_the_run_identity_names_the_data_root_as_its_real_path(tmp_path):
    """A resume names the data through a link or a relative path: the same folder, the same run."""
    (tmp_path / "data").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "data")
    identities = [run_identity("oracle", DataOptions(root, "v1.0-mini", "mini_val"), (), Shard(), None, {})
                  for root in (str(tmp_path / "data"), str(tmp_path / "link"), os.path.relpath(tmp_path / "data"))]
    assert identities[0]["data"]["dataroot"] == os.path.realpath(tmp_path / "data")
    assert identities[1] == identities[0] and identities[2] == identities[0]


def test_the_run_identity_hand_written():
    """What a resume compares: the model (its provenance, else the detector's name), the data options but the
    number of loader workers (they do not change a prediction), the sensors dropped in sorted order, the transform
    and the number of processes."""
    data = DataOptions("/data", "v1.0-mini", "mini_val", lidar_sweeps=3, radar_sweeps=2, image_size=(64, 32),
                       batch_size=2, workers=4)
    assert run_identity("oracle", data, ("radar", "camera"), Shard(1, 2), None, {}) == {
        "model": {"detector": "oracle"},
        "data": {"dataroot": "/data", "version": "v1.0-mini", "split": "mini_val", "lidar_sweeps": 3,
                 "radar_sweeps": 2, "image_size": [64, 32], "batch_size": 2, "skip_corrupt_files": False},
        "dropped": ["camera", "radar"], "transform": None, "processes": 2}
    provenance = {"config_sha256": "c0", "checkpoint_sha256": "w0"}
    assert run_identity("net", data, (), Shard(), None, provenance)["model"] == provenance
    assert (run_identity("net", replace(data, workers=0), ("camera", "radar"), Shard(0, 2), None, {})
            == run_identity("net", data, ("radar", "camera"), Shard(1, 2), None, {}))


def test_merge_keeps_every_parts_plans_and_unreadable_frames_in_loader_order():
    """Two processes sharing the loader's frames a, b, c, d as Shard does (rank 0: a, c; rank 1: b, d), every
    frame unreadable: one process lists them a, b, c, d (its loader's order), the merge of the two listed them
    rank by rank, a, c, b, d."""
    plan = PlanningOutputs(torch.zeros(6, 2), torch.zeros(5), torch.zeros(2))
    tokens = ["a", "b", "c", "d"]
    assert [list(Shard(rank, 2).indices(len(tokens))) for rank in range(2)] == [[0, 2], [1, 3]]
    unreadable = {token: UnreadableFrame(token, f"/{token}.bin", "cut short") for token in tokens}
    first = Predictions({"a": [], "c": []}, frames_per_process=[2], plans={"c": plan},
                        unreadable=[unreadable["a"], unreadable["c"]])
    second = Predictions({"b": [], "d": []}, frames_per_process=[2], plans={"d": plan},
                         unreadable=[unreadable["b"], unreadable["d"]])
    merged = Predictions.merged([first, second], tokens)
    assert sorted(merged.plans) == ["c", "d"]
    assert merged.unreadable == [unreadable["a"], unreadable["b"], unreadable["c"], unreadable["d"]]


class _OneBoxEach:
    """A box 1 m ahead in every frame; stops (a kill) at the batch numbered ``stop``."""

    sensors = frozenset({"lidar"})

    def __init__(self, stop=None):
        self.stop, self.batches = stop, 0

    def detect(self, frames, timer=None):
        if self.batches == self.stop:
            raise KeyboardInterrupt
        self.batches += 1
        return [Boxes3D([[1.0, 0.0, 0.5]], [[2.0, 4.0, 1.5]], [0.0], scores=[0.5]) for _ in frames]


def _frame(token) -> Frame:
    return Frame(token, "scene", 0, EgoPose(0, RigidTransform(np.eye(4))), None, None, {})


def test_a_batch_with_an_unreadable_frame_records_its_whole_size(tmp_path):
    """An unreadable frame and a read one in one batch: two frames counted, each recorded as in a batch of two
    (the unreadable first), so that a resume keeps the batch."""
    path = tmp_path / PREDICTIONS_FILE
    with open(path, "w", encoding="utf-8") as log:
        done = predict(_OneBoxEach(), [[UnreadableFrame("u", "/u.bin", "cut short"), _frame("f")]], 2,
                       progress=False, log=log)
    assert done.frames == 2 and done.results["u"] == [] and len(done.results["f"]) == 1
    assert [(r["sample_token"], r["batch"]) for r in read_json_lines(str(path))] == [("u", [0, 2]), ("f", [1, 2])]


def test_each_batch_is_on_disk_before_the_next_is_detected(tmp_path):
    """A run killed while detecting its second batch has the first batch's records in the file already (flushed,
    not in the still open handle's buffer)."""
    path = tmp_path / PREDICTIONS_FILE
    with open(path, "w", encoding="utf-8") as log:
        with pytest.raises(KeyboardInterrupt):
            predict(_OneBoxEach(stop=1), [[_frame("a"), _frame("b")], [_frame("c")]], 3, progress=False, log=log)
        assert [record["sample_token"] for record in read_json_lines(str(path))] == ["a", "b"]


class _Clock:
    """time.perf_counter for predict: 0 s at its start, then each batch's end from ``ends`` in turn."""

    def __init__(self, ends):
        self.readings = iter([0.0, *ends])

    def perf_counter(self):
        return next(self.readings)


def test_each_frame_takes_an_equal_share_of_its_own_batchs_time(tmp_path, monkeypatch):
    """A batch of an unreadable frame and a read one done at 3 s, then a batch of one frame done at 4 s: by hand,
    3 / 2 = 1.5 s for each frame of the first (the unreadable one's share too) and 4 - 3 = 1 s for the third; 4 s in
    all for three frames."""
    import perception.eval.runner

    monkeypatch.setattr(perception.eval.runner, "time", _Clock([3.0, 4.0]))
    path = tmp_path / PREDICTIONS_FILE
    with open(path, "w", encoding="utf-8") as log:
        done = predict(_OneBoxEach(), [[UnreadableFrame("u", "/u.bin", "cut short"), _frame("f")], [_frame("g")]], 3,
                       progress=False, log=log)
    assert [(r["sample_token"], r["seconds"]) for r in read_json_lines(str(path))] == [("u", 1.5), ("f", 1.5),
                                                                                      ("g", 1.0)]
    assert done.seconds == 4.0 and done.frames == 3
