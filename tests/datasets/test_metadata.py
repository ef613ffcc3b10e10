"""The SampleTable's one constructor: ground truth in and out of its columns, records per channel, checks."""
import numpy as np
import pytest

from perception.datasets.ground_truth import sample_ground_truth
from perception.datasets.metadata import KeyframeRow, SampleTable, build_sample_table, pose_row
from perception.geometry import EgoPose
from perception.sensors import ALL_CHANNELS, LIDAR_CHANNEL


def test_ground_truth_columns_give_back_the_devkit_ground_truth(nusc_synthetic):
    tokens = [sample["token"] for sample in nusc_synthetic.sample[:3]]
    table = build_sample_table(nusc_synthetic, tokens, lidar_sweeps=2, radar_sweeps=1)
    for index, token in enumerate(tokens):
        lidar = nusc_synthetic.get("sample_data", nusc_synthetic.get("sample", token)["data"][LIDAR_CHANNEL])
        pose = EgoPose.from_record(nusc_synthetic.get("ego_pose", lidar["ego_pose_token"]))
        truth = sample_ground_truth(nusc_synthetic, token, pose.ego_to_global)
        boxes, num_lidar_points, num_radar_points = table.ground_truth(index)
        assert len(truth.boxes) > 0
        for name in ("labels", "attributes"):
            np.testing.assert_array_equal(getattr(boxes, name), getattr(truth.boxes, name))
        for name in ("centers", "sizes", "yaws", "velocities"):  # to rounding: once 4.4e-16 apart
            np.testing.assert_allclose(getattr(boxes, name), getattr(truth.boxes, name), rtol=0, atol=1e-12)
        np.testing.assert_array_equal(boxes.scores, np.ones(len(boxes)))
        np.testing.assert_array_equal(num_lidar_points, truth.num_lidar_points)
        np.testing.assert_array_equal(num_radar_points, truth.num_radar_points)


def test_channel_records_follow_the_devkit_prev_links(nusc_synthetic):
    sample = nusc_synthetic.sample[2]
    table = build_sample_table(nusc_synthetic, [sample["token"]], lidar_sweeps=3, radar_sweeps=1)
    token, expected = sample["data"][LIDAR_CHANNEL], []
    while token and len(expected) < 3:
        record = nusc_synthetic.get("sample_data", token)
        expected.append(record["filename"])
        token = record["prev"]
    assert [table.paths[r].decode() for r in table.channel_records(0, LIDAR_CHANNEL)] == expected


def test_a_sample_data_without_its_ego_pose_is_named(nusc_synthetic, monkeypatch):
    sample = nusc_synthetic.sample[2]
    radar = nusc_synthetic.get("sample_data", sample["data"]["RADAR_FRONT"])
    get = nusc_synthetic.get

    def without_the_pose(table, token):
        if table == "ego_pose" and token == radar["ego_pose_token"]:
            raise KeyError(token)  # what the devkit's index raises for a token it lacks
        return get(table, token)

    monkeypatch.setattr(nusc_synthetic, "get", without_the_pose)
    with pytest.raises(ValueError, match=f"sample_data {radar['token']} \\({radar['filename']}\\): its ego pose "):
        build_sample_table(nusc_synthetic, [sample["token"]], lidar_sweeps=1, radar_sweeps=1)


def test_a_sweep_whose_pose_is_stamped_at_another_time_is_named(nusc_synthetic, monkeypatch):
    # a pose 40 ms off its record moved the sweep by the ego's 40 ms of motion, silently
    sample = nusc_synthetic.sample[2]
    lidar = nusc_synthetic.get("sample_data", sample["data"][LIDAR_CHANNEL])
    sweep = nusc_synthetic.get("sample_data", lidar["prev"])
    pose = nusc_synthetic.get("ego_pose", sweep["ego_pose_token"])
    monkeypatch.setitem(pose, "timestamp", pose["timestamp"] + 40_000)
    with pytest.raises(ValueError, match=f"sample_data {sweep['token']} \\({sweep['filename']}\\): stamped "
                                         f"{sweep['timestamp']} us, its ego pose"):
        build_sample_table(nusc_synthetic, [sample["token"]], lidar_sweeps=2, radar_sweeps=1)


@pytest.mark.parametrize("table, field", [("ego_pose", "timestamp"), ("ego_pose", "translation"),
                                          ("ego_pose", "rotation"), ("calibrated_sensor", "rotation")])
def test_a_pose_or_calibration_without_a_field_is_named_with_its_token(nusc_synthetic, monkeypatch, table, field):
    # the loader's tables are built here: a record without the field was a bare KeyError naming the field only
    sample = nusc_synthetic.sample[2]
    sweep = nusc_synthetic.get("sample_data", nusc_synthetic.get("sample_data", sample["data"][LIDAR_CHANNEL])["prev"])
    record = nusc_synthetic.get(table, sweep["ego_pose_token" if table == "ego_pose" else "calibrated_sensor_token"])
    monkeypatch.delitem(record, field)
    named = f"ego_pose {record['token']}" if table == "ego_pose" else f"calibrated_sensor {record['token']}: LIDAR_TOP"
    with pytest.raises(ValueError, match=f"^{named}: the record has no {field}$"):
        build_sample_table(nusc_synthetic, [sample["token"]], lidar_sweeps=2, radar_sweeps=1)


@pytest.mark.parametrize("timestamp", ["STAMP", "FLOAT", True])
def test_a_sweep_whose_timestamp_is_not_an_integer_is_named(nusc_synthetic, monkeypatch, timestamp):
    # such a sweep was named as stamped at another time than its pose, which it need not be; the pose's own
    # timestamp is checked by EgoPose.from_record
    sample = nusc_synthetic.sample[2]
    lidar = nusc_synthetic.get("sample_data", sample["data"][LIDAR_CHANNEL])
    sweep = nusc_synthetic.get("sample_data", lidar["prev"])
    value = {"STAMP": str(sweep["timestamp"]), "FLOAT": sweep["timestamp"] + 0.5}.get(timestamp, timestamp)
    monkeypatch.setitem(sweep, "timestamp", value)
    with pytest.raises(ValueError, match=f"sample_data {sweep['token']} \\({sweep['filename']}\\): timestamp must "
                                         "be an integer"):
        build_sample_table(nusc_synthetic, [sample["token"]], lidar_sweeps=2, radar_sweeps=1)


def test_a_prev_link_to_another_sensor_or_to_a_later_record_is_named(nusc_synthetic, monkeypatch):
    # a LiDAR sweep chained to a radar record read the radar's bytes as LiDAR points, moved by the radar's
    # calibration; one chained to a later sweep read it as a past one (a negative time lag)
    sample = nusc_synthetic.sample[2]
    lidar = nusc_synthetic.get("sample_data", sample["data"][LIDAR_CHANNEL])
    radar = nusc_synthetic.get("sample_data", sample["data"]["RADAR_FRONT"])
    later = nusc_synthetic.get("sample_data", lidar["next"])
    for prev, problem in ((radar, "is RADAR_FRONT at"), (later, f"is LIDAR_TOP at {later['timestamp']} us, not an")):
        monkeypatch.setitem(lidar, "prev", prev["token"])
        with pytest.raises(ValueError, match=f"sample_data {lidar['token']} .*: its prev {prev['token']} {problem}"):
            build_sample_table(nusc_synthetic, [sample["token"]], lidar_sweeps=2, radar_sweeps=1)


def test_a_calibration_that_cannot_be_read_names_its_record(nusc_synthetic, monkeypatch):
    sample = nusc_synthetic.sample[0]
    radar = nusc_synthetic.get("sample_data", sample["data"]["RADAR_FRONT"])
    calibration = nusc_synthetic.get("calibrated_sensor", radar["calibrated_sensor_token"])
    for field, value in (("translation", ["a", 0.0, 0.0]), ("translation", ["1.5", 0.0, 0.0]),
                         ("rotation", [0.5, 0.0, 0.0, 0.0])):
        monkeypatch.setitem(calibration, field, value)
        with pytest.raises(ValueError, match=f"calibrated_sensor {calibration['token']}: "):
            build_sample_table(nusc_synthetic, [sample["token"]], lidar_sweeps=1, radar_sweeps=1)
        monkeypatch.undo()


def _keyframe(sample_token: str) -> KeyframeRow:
    return KeyframeRow(sample_token, "scene", 0, pose_row([0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]),
                       [[] for _ in ALL_CHANNELS])


def test_a_table_without_annotations_has_no_ground_truth():
    table = SampleTable.from_rows([_keyframe("a"), _keyframe("b")], [], [], None)
    assert len(table) == 2 and table.ground_truth(1) is None
    assert table.gt_offsets.tolist() == [0, 0, 0] and table.gt_centers.shape == (0, 3)


def test_ground_truths_must_match_the_keyframes():
    with pytest.raises(ValueError, match="0 ground truths for 1 keyframes"):
        SampleTable.from_rows([_keyframe("a")], [], [], [])


@pytest.mark.parametrize("field, value, problem", [("translation", [float("nan"), 0.0, 0.0], "translation"),
                                                   ("size", [-1.0, 0.0, 1.0], "size"),
                                                   ("rotation", [2.0, 0.0, 0.0, 0.0], "rotation"),
                                                   ("rotation", [0.0, 0.0, 0.0, 0.0], "rotation"),
                                                   ("rotation", [1.0, 0.0, 0.0], "rotation"),
                                                   ("rotation", None, "rotation"),
                                                   ("translation", [1.0, 2.0], "translation"),
                                                   ("size", [0.0, 4.0, 1.5], "size"),
                                                   ("num_lidar_pts", None, "num_lidar_pts"),
                                                   ("num_radar_pts", 2.5, "num_radar_pts"),
                                                   ("size", ["2", "2", "2"], "size"),
                                                   ("rotation", ["1", 0, 0, 0], "rotation"),
                                                   ("translation", ["a", 0.0, 0.0], "translation"),
                                                   ("num_lidar_pts", True, "num_lidar_pts"),
                                                   ("attribute_tokens", ["a", "b"], "2 attributes"),
                                                   ("attribute_tokens", ["dangling"], "attribute 'dangling'")])
def test_an_annotation_that_cannot_be_a_box_is_named(nusc_synthetic, monkeypatch, field, value, problem):
    # a box with a NaN centre, a negative size or a rotation that is no unit quaternion (once scaled silently,
    # or scipy's "zero norm" without the annotation's name); strings where numbers go (numpy read "2" as 2.0
    # silently, "a" failed without the annotation's name), a count that is JSON's true
    sample = nusc_synthetic.sample[0]
    record = nusc_synthetic.get("sample_annotation", sample["anns"][0])
    monkeypatch.setitem(record, field, value)
    lidar = nusc_synthetic.get("sample_data", sample["data"][LIDAR_CHANNEL])
    pose = EgoPose.from_record(nusc_synthetic.get("ego_pose", lidar["ego_pose_token"]))
    with pytest.raises(ValueError, match=f"sample_annotation {record['token']}: .*{problem}"):
        sample_ground_truth(nusc_synthetic, sample["token"], pose.ego_to_global)


def test_a_velocity_that_is_not_finite_is_unknown(nusc_synthetic, monkeypatch):
    # two annotations stamped alike make the devkit's box_velocity divide by zero: +-inf was kept (1.8e308 after
    # nan_to_num), a NaN loss in training
    sample = nusc_synthetic.sample[0]
    lidar = nusc_synthetic.get("sample_data", sample["data"][LIDAR_CHANNEL])
    pose = EgoPose.from_record(nusc_synthetic.get("ego_pose", lidar["ego_pose_token"]))
    monkeypatch.setattr(nusc_synthetic, "box_velocity", lambda token: np.array([np.inf, -np.inf, np.nan]))
    boxes = sample_ground_truth(nusc_synthetic, sample["token"], pose.ego_to_global).boxes
    assert len(boxes) and np.array_equal(boxes.velocities, np.zeros((len(boxes), 2)))


def test_cache_files_differ_by_every_setting_they_are_keyed_by(tmp_path):
    from perception.datasets.metadata import cache_path

    base = ("cache", str(tmp_path / "a"), "v1.0-mini", "mini_val", 10, 6)
    others = [("cache", str(tmp_path / "b"), "v1.0-mini", "mini_val", 10, 6),
              ("cache", str(tmp_path / "a"), "v1.0-trainval", "mini_val", 10, 6),
              ("cache", str(tmp_path / "a"), "v1.0-mini", "mini_train", 10, 6),
              ("cache", str(tmp_path / "a"), "v1.0-mini", "mini_val", 9, 6),
              ("cache", str(tmp_path / "a"), "v1.0-mini", "mini_val", 10, 5)]
    paths = {cache_path(*key) for key in [base] + others}
    assert len(paths) == 6 and cache_path(*base) == cache_path(*base)


def test_tables_signature_changes_with_a_table_rewritten_to_the_same_size(tmp_path):
    import os

    from perception.datasets.metadata import tables_signature

    table = tmp_path / "v1.0-mini" / "ego_pose.json"
    table.parent.mkdir()
    table.write_text('[{"a": 1}]')
    os.utime(table, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = tables_signature(str(tmp_path), "v1.0-mini")
    assert tables_signature(str(tmp_path), "v1.0-mini") == before
    table.write_text('[{"a": 2}]')  # same 10 bytes, a later mtime
    os.utime(table, ns=(1_000_000_000_000_000_001, 1_000_000_000_000_000_001))
    assert tables_signature(str(tmp_path), "v1.0-mini") != before
    (tmp_path / "v1.0-mini" / "notes.txt").write_text("not a table")  # only .json files count
    assert tables_signature(str(tmp_path), "v1.0-mini") == tables_signature(str(tmp_path), "v1.0-mini")


def test_a_cache_of_another_format_or_other_tables_is_not_loaded(tmp_path, monkeypatch):
    from perception.datasets import metadata

    path = str(tmp_path / "table.npz")
    SampleTable.from_rows([_keyframe("a"), _keyframe("b")], [], [], None).save(path, "tables-1", str(tmp_path))
    loaded = SampleTable.load(path, "tables-1")
    assert loaded is not None and [loaded.sample_token(i) for i in range(2)] == ["a", "b"]
    assert SampleTable.load(path, "tables-2") is None  # the tables changed since
    monkeypatch.setattr(metadata, "CACHE_FORMAT", metadata.CACHE_FORMAT + 1)  # the layout changed since
    assert SampleTable.load(path, "tables-1") is None


@pytest.mark.parametrize("edited, shift_us, lidar_sweeps", [("first sweep", 0, 2), ("second sweep", 10_000, 3)],
                         ids=["a prev stamped as its record", "a prev later than the record after it"])
def test_a_prev_link_that_is_not_strictly_earlier_is_named_anywhere_along_the_chain(nusc_synthetic, monkeypatch,
                                                                                     edited, shift_us, lidar_sweeps):
    """Every record of a chain must be strictly earlier than the one after it, not only than the keyframe's: a
    sweep stamped at the keyframe's own time (a time lag of 0), and a second sweep stamped 10 ms after the first
    (the sweeps are 50 ms apart: still before the keyframe), are named with the record after them. Each edited
    record's pose is stamped with it (the pose check passes)."""
    sample = nusc_synthetic.sample[2]
    lidar = nusc_synthetic.get("sample_data", sample["data"][LIDAR_CHANNEL])
    first = nusc_synthetic.get("sample_data", lidar["prev"])
    second = nusc_synthetic.get("sample_data", first["prev"])
    after, record = (lidar, first) if edited == "first sweep" else (first, second)
    stamped = after["timestamp"] + shift_us
    assert stamped < lidar["timestamp"] or edited == "first sweep"
    monkeypatch.setitem(record, "timestamp", stamped)
    monkeypatch.setitem(nusc_synthetic.get("ego_pose", record["ego_pose_token"]), "timestamp", stamped)
    with pytest.raises(ValueError, match=f"sample_data {after['token']} .*: its prev {record['token']} is LIDAR_TOP at "
                                         f"{stamped} us, not an earlier LIDAR_TOP record \\(it is at "
                                         f"{after['timestamp']} us\\)"):
        build_sample_table(nusc_synthetic, [sample["token"]], lidar_sweeps=lidar_sweeps, radar_sweeps=1)


def test_a_prev_link_to_an_earlier_record_of_another_sensor_is_named(nusc_synthetic, monkeypatch):
    """A LiDAR keyframe chained to a radar record stamped before it: the time runs back as it should, only the
    channel gives it away (the radar's bytes would be read as LiDAR points)."""
    sample = nusc_synthetic.sample[2]
    lidar = nusc_synthetic.get("sample_data", sample["data"][LIDAR_CHANNEL])
    radar = nusc_synthetic.get("sample_data", sample["data"]["RADAR_FRONT"])
    while radar["timestamp"] >= lidar["timestamp"]:  # back along the radar's own chain to one before the LiDAR
        radar = nusc_synthetic.get("sample_data", radar["prev"])
    monkeypatch.setitem(lidar, "prev", radar["token"])
    with pytest.raises(ValueError, match=f"sample_data {lidar['token']} .*: its prev {radar['token']} is RADAR_FRONT "
                                         f"at {radar['timestamp']} us, not an earlier LIDAR_TOP record"):
        build_sample_table(nusc_synthetic, [sample["token"]], lidar_sweeps=2, radar_sweeps=1)


def test_attributes_are_the_attribute_tables_names_and_minus_one_for_none(nusc_synthetic, monkeypatch):
    """Each box's attribute is the index in ATTRIBUTES of its record's attribute name (the devkit's attribute
    table); an annotation without an attribute (barriers, cones) gets -1, never index 0 (pedestrian.moving)."""
    from perception.classes import ATTRIBUTES

    sample = nusc_synthetic.sample[1]
    bare = nusc_synthetic.get("sample_annotation", sample["anns"][0])
    monkeypatch.setitem(bare, "attribute_tokens", [])
    lidar = nusc_synthetic.get("sample_data", sample["data"][LIDAR_CHANNEL])
    pose = EgoPose.from_record(nusc_synthetic.get("ego_pose", lidar["ego_pose_token"]))
    truth = sample_ground_truth(nusc_synthetic, sample["token"], pose.ego_to_global)
    names = {a["token"]: a["name"] for a in nusc_synthetic.attribute}
    expected = [names[r["attribute_tokens"][0]] if r["attribute_tokens"] else None
                for r in (nusc_synthetic.get("sample_annotation", token) for token in truth.tokens)]
    assert truth.tokens[0] == bare["token"] and expected[0] is None and len(set(expected)) > 2
    assert [ATTRIBUTES[i] if i >= 0 else None for i in truth.boxes.attributes] == expected
    assert truth.boxes.attributes[0] == -1
