"""JSON files cut short or of the wrong shape: an error naming the file (the devkit's and json's own name none)."""
import json
import re
import shutil

import pytest

from perception.datasets.records import open_nuscenes
from perception.eval.resampling import checked_results
from perception.jsonfile import (as_read_back, check_same_run, finite_or_null, read_json, read_json_lines,
                                 write_json_atomic, write_json_lines)
from tests.conftest import TINY_WORLD


def test_read_json_names_a_file_cut_short(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text(json.dumps({"a": [1, 2, 3]})[:9])
    with pytest.raises(ValueError, match=f"{path}: not valid JSON"):
        read_json(str(path))
    path.write_text('{"a": 1}')
    assert read_json(str(path)) == {"a": 1}
    path.write_bytes(b"\xff\xfe{}")  # not UTF-8
    with pytest.raises(ValueError, match=f"{path}: not valid JSON"):
        read_json(str(path))


def test_an_atomic_write_killed_midway_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "cell.json"
    write_json_atomic(str(path), {"nd_score": 0.5}, indent=2)
    assert read_json(str(path)) == {"nd_score": 0.5} and [p.name for p in tmp_path.iterdir()] == ["cell.json"]

    def killed(value, handle, **options):  # json.dump interrupted after part of the file
        handle.write('{"nd_sc')
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", killed)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(str(path), {"nd_score": 0.7})
    assert read_json(str(path)) == {"nd_score": 0.5}  # the old record, whole


def test_json_lines_drop_only_a_last_line_cut_short(tmp_path):
    path = tmp_path / "records.jsonl"
    assert read_json_lines(str(path)) == []  # no file yet: nothing recorded
    write_json_lines(str(path), [{"a": 1}, [2.5, None]])
    assert path.read_text() == '{"a": 1}\n[2.5, null]\n'
    with open(path, "a") as handle:
        handle.write('{"a": ')  # killed while writing the third
    assert read_json_lines(str(path)) == [{"a": 1}, [2.5, None]]
    seen = []
    read_json_lines(str(path), lambda value, where: seen.append(where))
    assert seen == [f"{path}: line 1", f"{path}: line 2"]
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')  # a broken line that is not the last
    with pytest.raises(ValueError, match=f"{path}: line 2 is not JSON"):
        read_json_lines(str(path))
    path.write_text('{"a": 1}\n{"a": \n')  # the last line broken but ended: written whole, so not cut short
    with pytest.raises(ValueError, match=f"{path}: line 2 is not JSON"):
        read_json_lines(str(path))
    path.write_bytes('{"a": "é"}\n'.encode() + '{"a": "é"}'.encode()[:-3])  # cut inside the two bytes of é
    assert read_json_lines(str(path)) == [{"a": "é"}]
    path.write_bytes(b'{"a": 1}\n\xff\xfe garbage\n{"a": 3}\n')  # bytes that are not UTF-8, not last
    with pytest.raises(ValueError, match=f"{path}: line 2 is not JSON"):
        read_json_lines(str(path))


def test_every_float_json_cannot_hold_is_null_at_any_depth():
    infinity = float("inf")
    value = {"plan": [[1.5, -infinity], (float("nan"), 2)], "p": infinity, "n": None, "k": 3, "ok": -0.25}
    assert finite_or_null(value) == {"plan": [[1.5, None], [None, 2]], "p": None, "n": None, "k": 3, "ok": -0.25}
    json.loads(json.dumps(finite_or_null(value)), parse_constant=lambda name: pytest.fail(name))  # strict JSON


def test_a_resume_names_what_differs_from_the_run_it_would_continue(tmp_path):
    identity = {"seed": 1, "options": {"sweeps": 2, "speed": 1.0}, "model": {"sha256": "ab"}, "faults": None}
    path = str(tmp_path / "run.json")

    def check(recorded):
        write_json_atomic(path, recorded)
        check_same_run(path, identity, "the frames there", "start anew")

    check(identity)
    with pytest.raises(ValueError, match=r"run.json: the frames there are of a run with another extra, faults, model, "
                                         r"options.sweeps; start anew$"):
        check({"seed": 1, "options": {"sweeps": 3, "speed": 1.0}, "model": "an older form", "extra": None})
    for recorded, shape in (([], "list"), (None, "NoneType")):
        with pytest.raises(ValueError, match=rf"run.json: the record of the run is a JSON {shape}, not an object; "
                                             r"start anew$"):
            check(recorded)
    with pytest.raises(ValueError, match=r"other.json: missing, so the run that made the frames there is unknown"):
        check_same_run(str(tmp_path / "other.json"), identity, "the frames there", "start anew")
    with pytest.raises(ValueError, match=r"cell.json: the record of the run is a JSON NoneType, not an object"):
        check_same_run("cell.json", identity, "the figures", "start anew", recorded=None)


def test_a_table_cut_short_is_named(synthetic_root, tmp_path):
    version = TINY_WORLD["version"]
    shutil.copytree(synthetic_root / version, tmp_path / version)
    table = tmp_path / version / "ego_pose.json"
    table.write_text(table.read_text()[:150])
    with pytest.raises(ValueError, match=f"{table}: not valid JSON"):
        open_nuscenes(str(tmp_path), version)


def test_a_table_of_another_shape_and_a_splits_file_cut_short_are_named(synthetic_root, tmp_path):
    from perception.datasets.scene_cut import cut_scene
    from perception.datasets.splits import split_scenes

    version = TINY_WORLD["version"]
    shutil.copytree(synthetic_root / version, tmp_path / version)
    (tmp_path / "maps").symlink_to(synthetic_root / "maps")
    table = tmp_path / version / "ego_pose.json"
    records = table.read_text()
    table.write_text(json.dumps({"records": json.loads(records)}))  # an object, not a list of records
    with pytest.raises(ValueError, match=f"{table}: not a table"):
        open_nuscenes(str(tmp_path), version)
    table.write_text(records)
    nusc = open_nuscenes(str(tmp_path), version)
    splits = tmp_path / version / "splits.json"
    splits.write_text(splits.read_text()[:20])
    with pytest.raises(ValueError, match=f"{splits}: not valid JSON"):
        split_scenes(nusc, "synth_val")
    with pytest.raises(ValueError, match=f"{splits}: not valid JSON"):
        cut_scene(str(tmp_path), version, nusc.scene[0]["name"], 2, str(tmp_path / "cut"), "fit", "held")


def test_a_submission_that_is_not_an_object_is_named(tmp_path):
    path = tmp_path / "results_nusc.json"
    for content in ([1, 2], {"meta": {}}):
        path.write_text(json.dumps(content))
        with pytest.raises(ValueError, match=f"{path}: a submission is a dict with 'meta' and 'results'"):
            checked_results(str(path), ["token"])


def test_a_record_as_read_back_from_its_file(tmp_path):
    record = {"sweeps": (1, 2), 3: "keys become strings", "path": tmp_path}
    write_json_atomic(str(tmp_path / "r.json"), record, default=str)
    assert as_read_back(record, default=str) == read_json(str(tmp_path / "r.json")) == {
        "sweeps": [1, 2], "3": "keys become strings", "path": str(tmp_path)}


@pytest.mark.parametrize("table, field, value, problem", [
    ("sample_data", "prev", "dangling", "record {token}'s prev dangling is in no record of sample_data.json"),
    ("sample", "next", "dangling", "record {token}'s next dangling is in no record of sample.json"),
    ("sample_annotation", "attribute_tokens", ["dangling"], "attribute_tokens dangling is in no record of attribute"),
    ("sample_data", "calibrated_sensor_token", None, "a record refers to 'calibrated_sensor_token', which no table "
                                                     "holds (or lacks that field)"),  # the devkit's index reads it
    ("sample_annotation", "next", None, "record {token} has no next"),
    ("calibrated_sensor", "sensor_token", "dangling", "nuscenes-devkit could not index the tables"),
    # references the devkit's index does not follow as it opens the tables: only check_references names them
    ("scene", "log_token", "dangling", "record {token}'s log_token dangling is in no record of log.json"),
    ("scene", "last_sample_token", "dangling", "record {token}'s last_sample_token dangling is in no record of "
                                               "sample.json"),
    ("sample_data", "ego_pose_token", "dangling", "record {token}'s ego_pose_token dangling is in no record of "
                                                  "ego_pose.json"),
])
def test_a_reference_to_no_record_is_named_with_its_table(synthetic_root, tmp_path, table, field, value, problem):
    """A token that no table holds: the devkit raised a bare KeyError where it (or the loader) followed it."""
    version = TINY_WORLD["version"]
    shutil.copytree(synthetic_root / version, tmp_path / version)
    (tmp_path / "maps").symlink_to(synthetic_root / "maps")
    path = tmp_path / version / f"{table}.json"
    records = json.loads(path.read_text())
    token = records[-1]["token"]
    if value is None:
        del records[-1][field]
    else:
        records[-1][field] = value
    path.write_text(json.dumps(records))
    with pytest.raises(ValueError, match=re.escape(problem.format(token=token))):
        open_nuscenes(str(tmp_path), version)
