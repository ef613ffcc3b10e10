"""Which scenes a split holds (perception.datasets.splits), against the devkit's official split lists and a custom
splits.json written here."""
import json
from types import SimpleNamespace

import pytest
from nuscenes.utils.splits import create_splits_scenes

from perception.datasets.splits import scene_sample_tokens, split_scenes
from tests.datasets.helpers import LoopGuardedSample


def test_a_split_lists_its_scenes_in_the_split_order(tmp_path):
    # The version holds scenes in another order than the split lists them: the split's order wins, scenes of the
    # version it does not list are left out, and so are the scenes an official split lists that the version lacks
    # (a custom split naming one is an error: test_a_custom_split_naming_a_scene_the_version_lacks_is_an_error).
    official = create_splits_scenes()["mini_val"]  # the devkit's list: scene-0103, scene-0916
    present = [official[1], "scene-9999", official[0]]
    nusc = SimpleNamespace(scene=[{"name": name} for name in present], dataroot=str(tmp_path), version="v1.0-mini")
    assert split_scenes(nusc, "mini_val") == official
    trainval = SimpleNamespace(scene=nusc.scene, dataroot=str(tmp_path), version="v1.0-trainval")
    assert sorted(split_scenes(trainval, "val")) == sorted(official)  # 150 scenes listed, these 2 present
    (tmp_path / "v1.0-mini").mkdir()
    (tmp_path / "v1.0-mini" / "splits.json").write_text(json.dumps({"backwards": ["scene-9999", official[1]]}))
    assert split_scenes(nusc, "backwards") == ["scene-9999", official[1]]
    assert split_scenes(nusc, "all") == present


def test_an_unknown_split_is_named_with_the_custom_splits_there(tmp_path):
    import pytest

    nusc = SimpleNamespace(scene=[{"name": "synth-0000"}], dataroot=str(tmp_path), version="v1.0-synth")
    (tmp_path / "v1.0-synth").mkdir()
    (tmp_path / "v1.0-synth" / "splits.json").write_text(json.dumps({"synth_val": ["synth-0000"],
                                                                      "synth_train": [], "note": "not a split"}))
    with pytest.raises(ValueError, match=r"splits.json: no custom split 'synth_test' .*; custom splits there: "
                                         r"synth_train, synth_val; official splits: mini_train"):
        split_scenes(nusc, "synth_test")


def _with_splits(tmp_path, splits) -> SimpleNamespace:
    """A version of scenes synth-0000 and synth-0001 whose splits.json holds ``splits``."""
    (tmp_path / "v1.0-synth").mkdir()
    (tmp_path / "v1.0-synth" / "splits.json").write_text(json.dumps(splits))
    return SimpleNamespace(scene=[{"name": "synth-0000"}, {"name": "synth-0001"}], dataroot=str(tmp_path),
                           version="v1.0-synth")


def test_a_custom_split_naming_a_scene_the_version_lacks_is_an_error(tmp_path):
    # A misspelling ("synth-00001") was left out silently: the split measured one scene less.
    nusc = _with_splits(tmp_path, {"synth_val": ["synth-0000", "synth-00001", "synth-9"]})
    with pytest.raises(ValueError, match=f"{tmp_path / 'v1.0-synth' / 'splits.json'}: custom split 'synth_val' names "
                                         f"scenes that v1.0-synth lacks: synth-00001, synth-9$"):
        split_scenes(nusc, "synth_val")


@pytest.mark.parametrize("value", ["synth-0000", {"synth-0000": 1}, None, ["synth-0000", 1], [["synth-0000"]]],
                         ids=["a string", "an object", "null", "a number among the names", "a list among the names"])
def test_a_custom_split_that_is_not_a_list_of_names_is_named_as_such(tmp_path, value):
    # A string, an object or null was reported as "no custom split" although the key is there; a number among the
    # names was passed over, a list among them raised "unhashable type: 'list'" naming no file.
    nusc = _with_splits(tmp_path, {"synth_val": value})
    with pytest.raises(ValueError, match=f"{tmp_path / 'v1.0-synth' / 'splits.json'}: custom split 'synth_val' must "
                                         f"be a list of scene names"):
        split_scenes(nusc, "synth_val")


def test_a_splits_file_that_is_not_an_object_is_named(tmp_path):
    nusc = _with_splits(tmp_path, [["synth-0000"]])
    with pytest.raises(ValueError, match=f"{tmp_path / 'v1.0-synth' / 'splits.json'}: not a JSON object"):
        split_scenes(nusc, "synth_val")


def _scene(links, first="s0", timestamps=None) -> tuple:
    """A scene record named scene-x starting at ``first`` and a nusc.get of the samples ``links`` (token -> next
    token) at 0.5 s steps (or ``timestamps``, token -> [us])."""
    stamps = timestamps or {}
    samples = {token: LoopGuardedSample(token=token, next=after, timestamp=stamps.get(token, 500_000 * index))
               for index, (token, after) in enumerate(links.items())}
    return {"name": "scene-x", "first_sample_token": first}, SimpleNamespace(get=lambda table, token: samples[token])


def test_a_scene_walks_its_samples_in_time_order():
    scene, nusc = _scene({"s0": "s1", "s1": "s2", "s2": ""})
    assert scene_sample_tokens(nusc, scene) == ["s0", "s1", "s2"]


@pytest.mark.parametrize("links, first, timestamps, message", [
    ({"s0": "s1", "s1": "s2", "s2": "s1"}, "s0", None, "scene 'scene-x': its samples' next links loop back to "
                                                       "sample s1"),
    ({"s0": "s0"}, "s0", None, "scene 'scene-x': its samples' next links loop back to sample s0"),
    ({"s0": "s1", "s1": "gone"}, "s0", None, "scene 'scene-x': sample s1's next gone is not in the sample table"),
    ({"s0": ""}, "gone", None, "scene 'scene-x': first_sample_token gone is not in the sample table"),
    ({"s0": "s1", "s1": "s2", "s2": ""}, "s0", {"s2": 500_000},
     r"scene 'scene-x': the timestamps of consecutive samples s1 \(500000\) and s2 \(500000\) do not increase"),
    ({"s0": "s1", "s1": "s2", "s2": ""}, "s0", {"s2": 400_000},
     r"scene 'scene-x': the timestamps of consecutive samples s1 \(500000\) and s2 \(400000\) do not increase"),
], ids=["a loop", "a sample its own next", "a dangling next", "a dangling first sample", "a repeated timestamp",
        "a timestamp going back"])
def test_a_broken_chain_of_samples_names_the_scene_and_the_samples(links, first, timestamps, message):
    # A loop walked on for ever (the list of tokens growing); a dangling token was a bare KeyError; equal timestamps
    # made the devkit's box velocities divide by zero.
    scene, nusc = _scene(links, first, timestamps)
    with pytest.raises(ValueError, match=message):
        scene_sample_tokens(nusc, scene)


def test_a_split_without_a_splits_file_is_unknown_not_malformed(tmp_path):
    # No splits.json beside the tables: a name that is no official split is an unknown custom split (none there),
    # not a splits file of the wrong shape.
    nusc = SimpleNamespace(scene=[{"name": "synth-0000"}], dataroot=str(tmp_path), version="v1.0-synth")
    with pytest.raises(ValueError, match=f"{tmp_path / 'v1.0-synth' / 'splits.json'}: no custom split 'synth_val' "
                                         f"\\(a list of scene names\\); custom splits there: none; official splits: "):
        split_scenes(nusc, "synth_val")


def test_an_official_split_with_no_scene_in_the_version_is_an_error(tmp_path):
    # mini_val lists 2 scenes (the devkit's list), neither of them in this version of 1 scene: an error, not an
    # empty split that measures nothing.
    assert len(create_splits_scenes()["mini_val"]) == 2
    nusc = SimpleNamespace(scene=[{"name": "scene-9999"}], dataroot=str(tmp_path), version="v1.0-mini")
    with pytest.raises(ValueError, match=f"split 'mini_val' has no scene in v1.0-mini at {tmp_path} \\(2 scenes "
                                         f"listed, 1 present\\)"):
        split_scenes(nusc, "mini_val")


def _devkit_evaluates(split: str, version: str) -> bool:
    """Whether nuscenes-devkit's load_gt takes official split ``split`` on ``version`` (its version assertion) for
    tables of one sample, one annotation and no scene of the split."""
    from nuscenes.eval.common.loaders import load_gt
    from nuscenes.eval.detection.data_classes import DetectionBox

    records = {"sample": {"s": {"token": "s", "scene_token": "c"}}, "scene": {"c": {"name": "scene-9999"}}}
    nusc = SimpleNamespace(version=version, attribute=[], sample=list(records["sample"].values()),
                           sample_annotation=[{}], get=lambda table, token: records[table][token])
    try:
        load_gt(nusc, split, DetectionBox)
    except AssertionError as error:
        assert "not compatible with NuScenes version" in str(error)
        return False
    return True


@pytest.mark.parametrize("version", ["v1.0-trainval", "v1.0-mini", "v1.0-test", "v1.0-synth"])
@pytest.mark.parametrize("split", sorted(create_splits_scenes()))
def test_an_official_split_is_taken_on_the_versions_the_devkit_evaluates_it_on(tmp_path, split, version):
    # 'val' on v1.0-mini (scene-0916 is in val and mini_val) ran the whole detection pass, then stopped in the
    # devkit's load_gt with "Requested split val which is not compatible with NuScenes version v1.0-mini"
    listed = create_splits_scenes()[split]
    nusc = SimpleNamespace(scene=[{"name": listed[0]}], dataroot=str(tmp_path), version=version)
    if _devkit_evaluates(split, version):
        assert split_scenes(nusc, split) == [listed[0]]
    else:
        with pytest.raises(ValueError, match=f"split '{split}' is an official split of the nuScenes versions ending "
                                             f"in '[a-z]+', not of {version}: nuscenes-devkit evaluates it on no "
                                             f"other"):
            split_scenes(nusc, split)


def test_a_refused_split_names_the_official_splits_of_the_version(tmp_path):
    nusc = SimpleNamespace(scene=[{"name": "scene-0916"}], dataroot=str(tmp_path), version="v1.0-mini")
    with pytest.raises(ValueError, match=r"\(official splits of v1.0-mini: mini_train, mini_val; a custom one goes "
                                         r"in v1.0-mini/splits.json\)$"):
        split_scenes(nusc, "val")
