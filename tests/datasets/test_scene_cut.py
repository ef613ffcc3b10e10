"""Cutting a scene in two (perception.datasets.scene_cut), read back with nuscenes-devkit: each part holds its own
keyframes, no link crosses the cut, and the ego's logged poses of one part never reach into the other."""
import json

import pytest
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.splits import get_scenes_of_custom_split

from perception.datasets.ego_log import lidar_poses_between, past_ego_poses
from perception.datasets.scene_cut import cut_scene, cut_scene_tables
from perception.runtime.messages import scene_messages
from tests.conftest import TINY_WORLD
from tests.datasets.helpers import LoopGuardedSample

VERSION = TINY_WORLD["version"]


def keyframes(nusc: NuScenes, scene_name: str) -> list:
    scene = next(scene for scene in nusc.scene if scene["name"] == scene_name)
    tokens = [scene["first_sample_token"]]
    while nusc.get("sample", tokens[-1])["next"]:
        tokens.append(nusc.get("sample", tokens[-1])["next"])
    assert tokens[-1] == scene["last_sample_token"] and len(tokens) == scene["nbr_samples"]
    return tokens


def tiny_world_without_splits(synthetic_root, source):
    """A data root at ``source`` whose version folder links the tiny world's files, splits.json left out."""
    (source / VERSION).mkdir(parents=True)
    for entry in (synthetic_root / VERSION).iterdir():
        if entry.name != "splits.json":
            (source / VERSION / entry.name).symlink_to(entry.resolve())
    return source


@pytest.fixture(scope="module")
def cut(synthetic_root, nusc_synthetic, tmp_path_factory):
    name = nusc_synthetic.scene[0]["name"]
    out = cut_scene(synthetic_root, VERSION, name, 2, tmp_path_factory.mktemp("cut") / "root", "fit", "held")
    return name, NuScenes(version=VERSION, dataroot=str(out), verbose=False)


def test_each_part_holds_its_keyframes_and_the_splits_name_them(cut, nusc_synthetic):
    name, nusc = cut
    whole = keyframes(nusc_synthetic, name)
    assert keyframes(nusc, f"{name}-fit") == whole[:2] and keyframes(nusc, f"{name}-held") == whole[2:]
    assert get_scenes_of_custom_split("fit", nusc) == [f"{name}-fit"]
    assert get_scenes_of_custom_split("held", nusc) == [f"{name}-held"]
    assert get_scenes_of_custom_split("synth_train", nusc) == [f"{name}-fit", f"{name}-held"]
    other = nusc_synthetic.scene[1]["name"]
    assert keyframes(nusc, other) == keyframes(nusc_synthetic, other)
    held_lidar = nusc.get("sample", whole[2])["data"]["LIDAR_TOP"]
    assert open(nusc.get_sample_data_path(held_lidar), "rb").read(16)  # the sensor files are reachable


def test_no_link_crosses_the_cut(cut, nusc_synthetic):
    name, nusc = cut
    part_of = {token: part for part in ("fit", "held") for token in keyframes(nusc, f"{name}-{part}")}
    crossing_annotations = [record for record in nusc.sample_annotation if record["sample_token"] in part_of
                            for link in ("prev", "next") if record[link]
                            and part_of[nusc.get("sample_annotation", record[link])["sample_token"]]
                            != part_of[record["sample_token"]]]
    assert not crossing_annotations
    whole = {record["token"]: record for record in nusc_synthetic.sample_annotation}
    assert sum(record["prev"] != whole[record["token"]]["prev"] for record in nusc.sample_annotation) > 0
    first_held = nusc.get("sample", keyframes(nusc, f"{name}-held")[0])
    for channel, token in first_held["data"].items():
        assert nusc.get("sample_data", token)["prev"] == "", channel
        assert nusc_synthetic.get("sample_data", token)["prev"] != "", channel  # the world has sweeps before it


def test_the_logged_poses_of_one_part_never_reach_the_other(cut, nusc_synthetic):
    name, nusc = cut
    last_fit, first_held = keyframes(nusc, f"{name}-fit")[-1], keyframes(nusc, f"{name}-held")[0]
    cut_us = nusc.get("sample", first_held)["timestamp"]
    assert max(pose.timestamp_us for pose in lidar_poses_between(nusc, last_fit, 0.0, 3.0)) < cut_us
    own_records_us = {nusc.get("sample_data", token)["timestamp"]
                      for token in nusc.get("sample", first_held)["data"].values()}
    assert {pose.timestamp_us for pose in past_ego_poses(nusc, first_held, 2.0)} <= own_records_us
    assert max(pose.timestamp_us for pose in lidar_poses_between(nusc_synthetic, last_fit, 0.0, 3.0)) >= cut_us
    assert min(pose.timestamp_us for pose in past_ego_poses(nusc_synthetic, first_held, 2.0)) < cut_us


def test_bad_cuts_fail_with_the_reason(synthetic_root, nusc_synthetic, tmp_path):
    name = nusc_synthetic.scene[0]["name"]
    with pytest.raises(ValueError, match="the first held keyframe must be 1 to 3, got 4"):
        cut_scene(synthetic_root, VERSION, name, 4, tmp_path / "a", "fit", "held")
    with pytest.raises(ValueError, match="no scene named 'scene-9'"):
        cut_scene(synthetic_root, VERSION, "scene-9", 1, tmp_path / "a", "fit", "held")
    with pytest.raises(ValueError, match="two split names, got 'fit' twice"):
        cut_scene(synthetic_root, VERSION, name, 1, tmp_path / "a", "fit", "fit")
    with pytest.raises(ValueError, match="already has a split named 'synth_val'"):
        cut_scene(synthetic_root, VERSION, name, 1, tmp_path / "a", "fit", "synth_val")
    for reserved in ("mini_train", "val", "all"):  # the devkit's names, read before splits.json
        with pytest.raises(ValueError, match=f"'{reserved}' names an official nuScenes split"):
            cut_scene(synthetic_root, VERSION, name, 1, tmp_path / "a", reserved, "held")
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match="exists"):
        cut_scene(synthetic_root, VERSION, name, 1, tmp_path / "b", "fit", "held")
    with pytest.raises(FileNotFoundError, match="no such version folder"):
        cut_scene(synthetic_root, "v9", name, 1, tmp_path / "a", "fit", "held")
    assert not (tmp_path / "a").exists()
    assert json.loads((synthetic_root / VERSION / "splits.json").read_text()).keys() == {"synth_train", "synth_val"}


def test_the_tool_writes_the_cut_and_names_a_bad_cut_in_one_line(synthetic_root, nusc_synthetic, tmp_path, capsys):
    from perception.cli.cut_scene import main

    name = nusc_synthetic.scene[1]["name"]
    main([str(synthetic_root), VERSION, name, "3", str(tmp_path / "cut"), "--fit-split", "a", "--held-split", "b"])
    assert f"splits 'a' (keyframes 0-2 of {name}) and 'b' (keyframes 3 on)" in capsys.readouterr().out
    assert len(keyframes(NuScenes(version=VERSION, dataroot=str(tmp_path / "cut"), verbose=False), f"{name}-held")) == 1
    with pytest.raises(SystemExit):
        main([str(synthetic_root), VERSION, name, "4", str(tmp_path / "x"), "--fit-split", "a", "--held-split", "b"])
    # (0 and below: the parser's, tests/cli/test_errors.py)
    assert capsys.readouterr().err.strip() == (f"error: scene {name!r} has 4 keyframes: the first held keyframe must "
                                               "be 1 to 3, got 4")


def test_each_sensor_chain_is_cut_once_and_only_before_the_first_held_keyframe(cut, nusc_synthetic):
    # The devkit's tables before and after: the only sample_data links changed are, per channel, the prev of the first
    # held keyframe's record and the next of the record before it; the held part's later sweeps keep their chain.
    name, nusc = cut
    first_held = nusc.get("sample", keyframes(nusc, f"{name}-held")[0])
    expected = set()
    for token in first_held["data"].values():
        expected |= {(token, "prev"), (nusc_synthetic.get("sample_data", token)["prev"], "next")}
    changed = {(record["token"], link) for record in nusc.sample_data for link in ("prev", "next")
               if record[link] != nusc_synthetic.get("sample_data", record["token"])[link]}
    assert changed == expected and len(expected) == 2 * len(first_held["data"])


@pytest.mark.parametrize("links, first, timestamps, message", [
    ({"s0": "s1", "s1": "s2", "s2": "s0"}, "s0", {}, "scene 'scene-x': its samples' next links loop back to "
                                                     "sample s0"),
    ({"s0": "s1", "s1": "gone"}, "s0", {}, "scene 'scene-x': sample s1's next gone is not in the sample table"),
    ({"s0": ""}, "gone", {}, "scene 'scene-x': first_sample_token gone is not in the sample table"),
    ({"s0": "s1", "s1": "s2", "s2": ""}, "s0", {"s2": 400_000},
     r"scene 'scene-x': the timestamps of consecutive samples s1 \(500000\) and s2 \(400000\) do not increase"),
], ids=["a loop", "a dangling next", "a dangling first sample", "a timestamp going back"])
def test_a_broken_chain_of_samples_is_named_before_a_cut(links, first, timestamps, message):
    # A loop walked on for ever (the chain growing); a dangling token was a bare KeyError.
    samples = [LoopGuardedSample(token=token, next=after, timestamp=timestamps.get(token, 500_000 * index))
               for index, (token, after) in enumerate(links.items())]
    tables = {"scene": [{"name": "scene-x", "token": "x", "first_sample_token": first}], "sample": samples,
              "sample_annotation": [], "sample_data": []}
    with pytest.raises(ValueError, match=message):
        cut_scene_tables(tables, "scene-x", 1)


def test_each_keyframe_names_its_own_part_as_its_scene(cut, nusc_synthetic):
    # the held part is a scene record of its own (a new token) and its keyframes point to it; the fit part keeps
    # the original token
    name, nusc = cut
    original = next(scene for scene in nusc_synthetic.scene if scene["name"] == name)
    parts = {part: next(scene for scene in nusc.scene if scene["name"] == f"{name}-{part}") for part in ("fit", "held")}
    assert parts["fit"]["token"] == original["token"] != parts["held"]["token"]
    assert len({scene["token"] for scene in nusc.scene}) == len(nusc.scene) == len(nusc_synthetic.scene) + 1
    for part, scene in parts.items():
        for token in keyframes(nusc, scene["name"]):
            assert nusc.get("sample", token)["scene_token"] == scene["token"], (part, token)


def test_only_the_annotation_links_across_the_cut_are_blanked(cut, nusc_synthetic):
    # From the original tables: an annotation of a held keyframe whose prev is an annotation of a fit keyframe loses
    # that prev, and the fit annotation its next; every other link (within a part, in other scenes) is kept.
    name, nusc = cut
    whole = keyframes(nusc_synthetic, name)
    fit, held = set(whole[:2]), set(whole[2:])
    expected = set()
    for record in nusc_synthetic.sample_annotation:
        if record["sample_token"] in held and record["prev"]:
            if nusc_synthetic.get("sample_annotation", record["prev"])["sample_token"] in fit:
                expected |= {(record["token"], "prev"), (record["prev"], "next")}
    changed = {(record["token"], link) for record in nusc.sample_annotation for link in ("prev", "next")
               if record[link] != nusc_synthetic.get("sample_annotation", record["token"])[link]}
    assert expected and changed == expected
    within_held = [record for record in nusc.sample_annotation if record["sample_token"] == whole[3] and record["prev"]]
    assert within_held  # the held part's own track links exist and were kept


def test_a_cut_keeping_no_keyframe_before_it_is_refused(synthetic_root, nusc_synthetic):
    # keyframe 0 would leave the fit part empty (the command line's parser refuses it too; the function must)
    tables = {name: json.loads((synthetic_root / VERSION / f"{name}.json").read_text())
              for name in ("scene", "sample", "sample_annotation", "sample_data")}
    with pytest.raises(ValueError, match="the first held keyframe must be 1 to 3, got 0"):
        cut_scene_tables(tables, nusc_synthetic.scene[0]["name"], 0)


def test_a_version_without_splits_gets_the_two_parts_only(synthetic_root, nusc_synthetic, tmp_path):
    # a data root whose version folder has no splits.json: the cut writes one naming the two parts only
    source = tiny_world_without_splits(synthetic_root, tmp_path / "source")
    name = nusc_synthetic.scene[0]["name"]
    out = cut_scene(source, VERSION, name, 1, tmp_path / "out", "fit", "held")
    assert json.loads((out / VERSION / "splits.json").read_text()) == {"fit": [f"{name}-fit"],
                                                                        "held": [f"{name}-held"]}


def test_every_sensor_record_of_the_scene_falls_in_exactly_one_part(cut, nusc_synthetic):
    # Replay builds a part's messages from the sensor chains, keeping the records whose sample is in that part. A sweep
    # names its nearest keyframe, so the sweeps of the gap's second half named the held part while chained to the fit
    # part: in neither (33 of 792 records on synthetic-demo's first scene cut at keyframe 2). Each record belongs to
    # the part its timestamp falls in: before the channel's record of the first held keyframe, or from it on.
    name, nusc = cut
    cut_us = {channel: nusc.get("sample_data", token)["timestamp"]
              for channel, token in nusc.get("sample", keyframes(nusc, f"{name}-held")[0])["data"].items()}
    whole = {(message.channel, message.sample_data_token): message.timestamp_us
             for message in scene_messages(nusc_synthetic, name)}
    parts = {part: {(message.channel, message.sample_data_token) for message in scene_messages(nusc, f"{name}-{part}")}
             for part in ("fit", "held")}
    assert {key for key, timestamp in whole.items() if timestamp < cut_us[key[0]]} == parts["fit"]
    assert {key for key, timestamp in whole.items() if timestamp >= cut_us[key[0]]} == parts["held"]
    assert len(cut_us) == 12 and len(whole) > 12 * 4


@pytest.mark.parametrize("splits, message", [
    ({"synth_train": ["synth-0000"], "mine": "synth-0000"},
     "custom split 'mine' must be a list of scene names \\(strings\\), got 'synth-0000'"),
    ([["synth-0000"]], "not a JSON object of split name -> list of scene names"),
], ids=["a split given as a string", "a list for a file"])
def test_a_splits_file_of_another_shape_is_named_before_a_cut(synthetic_root, nusc_synthetic, tmp_path, splits,
                                                              message):
    # A splits.json is an object of split name -> list of scene names (the devkit's custom-split file): the string
    # was rewritten as its characters ("mine": ["s", "y", ...]), the list stopped the cut with an AttributeError.
    source = tiny_world_without_splits(synthetic_root, tmp_path / "source")
    (source / VERSION / "splits.json").write_text(json.dumps(splits))
    with pytest.raises(ValueError, match=f"^{source / VERSION / 'splits.json'}: {message}$"):
        cut_scene(source, VERSION, nusc_synthetic.scene[0]["name"], 1, tmp_path / "out", "fit", "held")
    assert not (tmp_path / "out").exists()
