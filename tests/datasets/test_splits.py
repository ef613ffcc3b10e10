"""Which scenes a split holds (perception.datasets.splits), against the devkit's official split lists and a custom
splits.json written here."""
import json
from types import SimpleNamespace

from nuscenes.utils.splits import create_splits_scenes

from perception.datasets.splits import split_scenes


def test_a_split_lists_its_scenes_in_the_split_order(tmp_path):
    # The version holds scenes in another order than the split lists them: the split's order wins, scenes it lists
    # that the version lacks are left out, scenes of the version it does not list too.
    official = create_splits_scenes()["mini_val"]  # the devkit's list: scene-0103, scene-0916
    present = [official[1], "scene-9999", official[0]]
    nusc = SimpleNamespace(scene=[{"name": name} for name in present], dataroot=str(tmp_path), version="v1.0-mini")
    assert split_scenes(nusc, "mini_val") == official
    (tmp_path / "v1.0-mini").mkdir()
    (tmp_path / "v1.0-mini" / "splits.json").write_text(json.dumps({"backwards": ["scene-9999", "scene-0000",
                                                                                   official[1]]}))
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
