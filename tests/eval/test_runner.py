"""Sharding arithmetic and the merge of the processes' predictions."""
import pytest

from perception.eval.runner import Predictions, Shard
from perception.geometry import Boxes3D


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
