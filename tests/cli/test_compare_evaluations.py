"""tools/compare_evaluations.py on two evaluation folders of the tiny world, and its bad inputs."""
import json

import pytest

from perception.cli.compare_evaluations import main
from tests.cli.test_errors import one_error_line
from tests.conftest import TINY_WORLD
from tests.eval.test_resampling import imperfect_evaluation


def data_args(root, split="synth_val") -> list:
    return ["--dataroot", str(root), "--version", TINY_WORLD["version"], "--split", split]


def test_two_folders_side_by_side(nusc_synthetic, synthetic_root, tmp_path):
    folders = [tmp_path / "a", tmp_path / "b"]
    evaluations = []
    for seed, folder in enumerate(folders):
        folder.mkdir()
        evaluations.append(imperfect_evaluation(nusc_synthetic, "synth_val", folder, seed=seed))
    out = tmp_path / "out"
    rows = main([str(folders[0]), str(folders[1]), str(folders[0]), "--names", "first", "second", "again",
                 *data_args(synthetic_root), "--draws", "8", "--out", str(out)])
    first, second, again = rows
    assert [first["name"], second["name"]] == ["first", "second"]
    # the first folder again is scored on the same draws: 0 on every draw, a tie, which counts as not below
    assert list(again["difference_interval"]) == [0.0, 0.0] and again["share_not_below_first"] == 1.0
    assert first["NDS"] == evaluations[0].metrics.nd_score and second["NDS"] == evaluations[1].metrics.nd_score
    assert "difference" not in first
    assert second["difference"] == pytest.approx(second["NDS"] - first["NDS"])
    low, high = second["difference_interval"]
    assert low <= high and 0.0 <= second["share_not_below_first"] <= 1.0
    saved = json.loads((out / "resampled.json").read_text())
    assert saved["rows"][1]["difference_interval"] == [low, high]
    assert "| second |" in (out / "resampled.md").read_text()
    assert (out / "resampled.png").stat().st_size > 0


def test_bad_folders_are_one_line(nusc_synthetic, synthetic_root, tmp_path, capsys):
    (tmp_path / "train").mkdir()
    imperfect_evaluation(nusc_synthetic, "synth_train", tmp_path / "train")
    capsys.readouterr()  # the devkit's progress bars
    line = one_error_line(main, [str(tmp_path / "train"), *data_args(synthetic_root), "--out", str(tmp_path)], capsys)
    # one check, check_submission's (checked_results compared the keyframes with the split first, in other words)
    assert f"{tmp_path / 'train' / 'results_nusc.json'}: 4 of the 4 samples of the split missing" in line
    assert "; samples not in the split (4), e.g. " in line  # synth_val's 4, none predicted; synth_train's 4
    line = one_error_line(main, [str(tmp_path / "none"), *data_args(synthetic_root), "--out", str(tmp_path)], capsys)
    assert f"{tmp_path / 'none' / 'results_nusc.json'}: no such file" in line
    with pytest.raises(SystemExit) as exit_info:  # named by the parser, before any work
        main([str(tmp_path / "train"), "--names", "a", "b", *data_args(synthetic_root), "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "--names: 1 distinct names needed, got ['a', 'b']" in capsys.readouterr().err
    for option, value, message in (("--level", "1", "--level 1.0: a share of the draws, in (0, 1)"),
                                   ("--draws", "0", "argument --draws: the value must be >= 1, got 0")):
        with pytest.raises(SystemExit) as exit_info:  # percentile_interval / keyframe_draws named, not the flags
            main([str(tmp_path / "train"), *data_args(synthetic_root), "--out", str(tmp_path), option, value])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    # a file of the right keyframes that the devkit would stop on with a bare assertion: one line naming it
    (tmp_path / "val").mkdir()
    imperfect_evaluation(nusc_synthetic, "synth_val", tmp_path / "val")
    results = tmp_path / "val" / "results_nusc.json"
    submission = json.loads(results.read_text())
    first = next(boxes for boxes in submission["results"].values() if boxes)
    first[0]["detection_score"] = float("nan")
    results.write_text(json.dumps(submission))
    capsys.readouterr()
    line = one_error_line(main, [str(tmp_path / "val"), *data_args(synthetic_root), "--out", str(tmp_path)], capsys)
    assert f"{results}: sample" in line and "detection_score may not be NaN" in line
