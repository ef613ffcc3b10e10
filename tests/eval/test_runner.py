"""Sharding arithmetic, the merge of the processes' predictions, and the predictions a resume reads back."""
import numpy as np
import pytest

from perception.eval.runner import (PREDICTIONS_FILE, PREDICTIONS_RUN_FILE, PredictionFiles, Predictions, Shard,
                                    open_predictions)
from perception.geometry import Boxes3D
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
    merged = Predictions.merged([first, second])
    assert merged.results == {"a": [], "b": [{"x": 1}], "c": []}
    assert {token: len(boxes) for token, boxes in merged.ego_boxes.items()} == {"a": 0, "b": 1, "c": 0}
    assert merged.ego_boxes["b"] is one_box
    assert (merged.seconds, merged.frames_per_process, merged.frames) == (2.0, [2, 1], 3)
    with pytest.raises(ValueError, match="more than one process: b"):
        Predictions.merged([first, Predictions({"b": []}, frames_per_process=[1])])


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
])
def test_a_malformed_record_is_named_with_its_line(tmp_path, change, problem):
    identity = {"model": {"detector": "d"}}
    write_json_atomic(str(tmp_path / PREDICTIONS_RUN_FILE), identity)
    write_json_lines(str(tmp_path / PREDICTIONS_FILE), [_record("a", 0, 1), {**_record("b", 0, 1), **change}, {}])
    with pytest.raises(ValueError, match=f"{PREDICTIONS_FILE}: line 2: a frame's predictions record .*{problem}"):
        open_predictions(_files(tmp_path, identity, resume=True), Shard(), planning=False)
