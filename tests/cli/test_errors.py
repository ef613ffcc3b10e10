"""The tools as a user runs them: a user's mistake (a missing or truncated file, a checkpoint that does not fit the
config, an unknown split or scene) is one line ``error: ...`` and exit status 1; --debug shows the traceback; an
unexpected error keeps its traceback."""
import json
import os
import re
import shutil
import subprocess
import sys

import cv2
import pytest

from perception.cli import benchmark, demo, replay, test, tool_main, train
from perception.paths import REPO_ROOT
from tests.conftest import TINY_WORLD, tree_under_test_env

FUSION_TINY = str(REPO_ROOT / "configs" / "fusion_tiny.py")
LIDAR_ONLY_CHECKPOINT = REPO_ROOT / "checkpoints" / "lidar_only.pth"


def one_error_line(main, argv, capsys) -> str:
    """Runs ``main(argv)``, checks it exits with status 1 printing exactly one line on stderr, returns that line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def data_args(root, split="synth_val") -> list:
    return ["--dataroot", str(root), "--version", TINY_WORLD["version"], "--split", split]


def test_missing_checkpoint_is_one_line_and_debug_shows_the_traceback(synthetic_root, tmp_path):
    command = [sys.executable, str(REPO_ROOT / "tools" / "test.py"), "configs/fusion_tiny.py",
               str(tmp_path / "missing.pth"), *data_args(synthetic_root), "--out", str(tmp_path / "out")]
    env = tree_under_test_env()
    plain = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert plain.returncode == 1
    assert plain.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'missing.pth'}: no such checkpoint (export one with tools/train.py --export)"]
    debug = subprocess.run(command + ["--debug"], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "FileNotFoundError" in debug.stderr


def test_a_folder_given_as_the_checkpoint_is_named_as_one(synthetic_root, tmp_path, capsys):
    """(It read "no such checkpoint": the folder exists.)"""
    line = one_error_line(test.main, [FUSION_TINY, str(tmp_path), *data_args(synthetic_root),
                                      "--out", str(tmp_path / "out")], capsys)
    assert line == f"error: {tmp_path}: a folder, not a checkpoint file (give the .pth file)"


def test_truncated_checkpoint(synthetic_root, tmp_path, capsys):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(LIDAR_ONLY_CHECKPOINT.read_bytes()[:4096])
    line = one_error_line(replay.main, ["configs/lidar_only.py", str(truncated), "--dataroot", str(synthetic_root),
                                        "--version", TINY_WORLD["version"], "--out", str(tmp_path / "out")], capsys)
    assert f"{truncated}: unreadable checkpoint (truncated or corrupt? copy it again)" in line


def test_checkpoint_that_does_not_fit_the_config(synthetic_root, tmp_path, capsys):
    line = one_error_line(test.main, [FUSION_TINY, str(LIDAR_ONLY_CHECKPOINT), *data_args(synthetic_root),
                                      "--out", str(tmp_path)], capsys)
    assert f"{LIDAR_ONLY_CHECKPOINT}: weights do not fit {FUSION_TINY} (give the config it was trained" in line
    # counted and named by kind, a few each (torch's message lists every key: hundreds)
    assert re.search(r"\d+ missing \(encoders\.radar\.[^)]*, \.\.\.\); "
                     r"1 of another shape \(fuser\.conv\.0\.weight", line)
    assert len(line) < 1000


def test_unknown_split_and_scene(synthetic_root, tmp_path, capsys):
    line = one_error_line(test.main, ["--oracle", *data_args(synthetic_root, "no_such_split"), "--out",
                                      str(tmp_path)], capsys)
    assert "no_such_split" in line
    line = one_error_line(replay.main, ["--oracle", "--dataroot", str(synthetic_root), "--version",
                                        TINY_WORLD["version"], "--scene", "scene-none", "--out", str(tmp_path)], capsys)
    assert "no scene 'scene-none'" in line


def test_an_output_path_of_the_wrong_kind_is_refused_before_any_work(synthetic_root, tmp_path, capsys):
    """(test.py ran its whole detection pass before failing on a file given as --out.)"""
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for main, argv in ((test.main, ["--oracle", *data_args(synthetic_root)]),
                       (replay.main, ["--oracle", "--dataroot", str(synthetic_root), "--version",
                                      TINY_WORLD["version"]]),
                       (demo.main, ["--dataroot", str(synthetic_root)])):  # (the demo made its picture first)
        with pytest.raises(SystemExit):
            main([*argv, "--out", str(a_file)])
        assert f"--out {a_file}: exists and is not a folder" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            main([*argv, "--out", str(a_file / "run")])
        assert f"--out {a_file / 'run'}: {a_file} is a file, not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.main([FUSION_TINY, "--json", str(tmp_path)])
    assert f"--json {tmp_path}: exists and is not a file" in capsys.readouterr().err


def test_an_output_path_that_cannot_be_written_is_refused_before_any_work(synthetic_root, tmp_path, capsys):
    """(test.py ran its whole detection pass, then failed with a PermissionError traceback; export, cut_scene and
    compare_evaluations did not check their output at all.) /sys refuses new files even to root."""
    from perception.cli import compare_evaluations, cut_scene, export

    try:
        open("/sys/perception_probe", "w").close()
        pytest.skip("/sys takes files here: no unwritable folder to test with")
    except OSError:
        pass
    out = "/sys/perception_probe/out"
    for main, argv, option in (
            (test.main, ["--oracle", *data_args(synthetic_root), "--out", out], "--out"),
            (export.main, [FUSION_TINY, "x.pth", "--out", out], "--out"),
            (cut_scene.main, [str(synthetic_root), TINY_WORLD["version"], "synth-0000", "1", out, "--fit-split", "a",
                              "--held-split", "b"], "OUT"),
            (compare_evaluations.main, [str(tmp_path), *data_args(synthetic_root), "--out", out], "--out"),
            (benchmark.main, [FUSION_TINY, "--json", out + ".json"], "--json")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert f"{option} {out}" in (error := capsys.readouterr().err) and "cannot write in /sys" in error, error


def test_seeds_below_zero_are_named_by_the_parser(synthetic_root, tmp_path, capsys):
    """(robustness scored its whole clean cell, then failed with numpy's "expected non-negative integer".)"""
    from perception.cli import make_synthetic, robustness

    for main, argv in ((robustness.main, [FUSION_TINY, "x.pth", *data_args(synthetic_root), "--out", str(tmp_path)]),
                       (make_synthetic.main, ["--out", str(tmp_path / "w")])):
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--seed", "-1"])
        assert exit_info.value.code == 2 and "argument --seed: a seed must be >= 0, got -1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        replay.main(["--oracle", "--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"], "--faults",
                     "seed=-1", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "fault seed=-1 is negative" in capsys.readouterr().err


def test_a_synthetic_world_is_not_written_over_other_files(tmp_path, capsys):
    """(A world generated over another left the other's sensor files beside the new tables.)"""
    from perception.cli import make_synthetic

    (tmp_path / "notes.txt").write_text("another world, or anything")
    with pytest.raises(SystemExit) as exit_info:
        make_synthetic.main(["--out", str(tmp_path), "--scenes", "1"])
    assert exit_info.value.code == 2 and f"--out {tmp_path}: holds files already" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # --resume continues an unfinished world only
        make_synthetic.main(["--out", str(tmp_path), "--scenes", "1", "--resume"])
    message = f"--out {tmp_path}: holds files already and no unfinished world to resume"
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    unfinished = tmp_path / "unfinished"
    (unfinished / "scene_records").mkdir(parents=True)
    (unfinished / "scene_records" / "world.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_info:
        make_synthetic.main(["--out", str(unfinished), "--scenes", "1"])
    assert exit_info.value.code == 2 and "holds an unfinished world: add --resume" in capsys.readouterr().err


def test_a_synthetic_world_goes_into_an_empty_folder_and_a_resume_of_another_run_is_refused(tmp_path, capsys,
                                                                                             monkeypatch):
    """An empty --out is no folder that holds files: the world is generated there. --resume continues an unfinished
    world only with its own arguments: one of another seed is refused (its world.json named), nothing generated."""
    from perception.cli import make_synthetic

    generated = []
    monkeypatch.setattr("perception.datasets.synthetic.generate_world",
                        lambda out, *args, **kwargs: generated.append(out) or out)
    (tmp_path / "empty").mkdir()
    make_synthetic.main(["--out", str(tmp_path / "empty"), "--scenes", "1"])
    assert generated == [str(tmp_path / "empty")]
    monkeypatch.undo()
    records = tmp_path / "unfinished" / "scene_records"
    records.mkdir(parents=True)
    world = dict(num_scenes=1, samples_per_scene=1, seed=8, image_size=[32, 18], version="v1.0-synth",
                 population="default")
    (records / "world.json").write_text(json.dumps(world))
    argv = ["--out", str(tmp_path / "unfinished"), "--scenes", "1", "--samples-per-scene", "1", "--image-size",
            "32x18", "--resume"]
    line = one_error_line(make_synthetic.main, [*argv, "--seed", "7"], capsys)
    assert line.endswith("world.json: the scenes recorded there are of a run with another seed; generate into "
                         "another folder")
    assert sorted(os.listdir(tmp_path / "unfinished")) == ["scene_records"]


@pytest.mark.parametrize("tool", ["test", "compare_evaluations", "robustness"])
def test_the_whole_version_is_no_split_the_devkit_evaluates(synthetic_root, tmp_path, capsys, tool):
    """(The loader takes --split all; the devkit refused it after the detection pass, and tools/compare_evaluations.py
    with "Custom split requested, but no valid file found at .../splits.json", about a file no one asked for.)"""
    from perception.cli import compare_evaluations, robustness

    main, leading = {"test": (test.main, ["--oracle"]),
                     "compare_evaluations": (compare_evaluations.main, [str(tmp_path / "evaluation")]),
                     "robustness": (robustness.main, [FUSION_TINY, str(LIDAR_ONLY_CHECKPOINT)])}[tool]
    with pytest.raises(SystemExit) as exit_info:
        main([*leading, *data_args(synthetic_root, split="all"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "--split all: nuscenes-devkit evaluates a split it knows" in \
        capsys.readouterr().err


def test_a_missing_data_root_is_refused_with_the_usage_by_every_tool(tmp_path, capsys):
    """(test, replay, robustness and benchmark each wrote this check; train, finetune, prune, train_ego_mlp, cut_scene,
    compare_evaluations and quantize reached the library's error, status 1 and other wording, or the devkit's bare
    assertion.)"""
    from perception.cli import (compare_evaluations, compare_finetuning, cut_scene, finetune, prune, quantize,
                                robustness, train_ego_mlp)

    nope = tmp_path / "nope"
    data = ["--dataroot", str(nope), "--version", "v1.0-synth"]
    model = [FUSION_TINY, str(tmp_path / "x.pth")]
    for main, argv in (
            (test.main, ["--oracle", *data, "--out", str(tmp_path / "t")]),
            (replay.main, ["--oracle", *data, "--out", str(tmp_path / "r")]),
            (robustness.main, [*model, *data, "--out", str(tmp_path / "rob")]),
            (benchmark.main, [FUSION_TINY, *data, "--json", str(tmp_path / "b.json")]),
            (quantize.main, [FUSION_TINY, str(tmp_path / "float"), *data, "--out", str(tmp_path / "q")]),
            (prune.main, [*model, "--ratio", "0.5", *data, "--out", str(tmp_path / "p")]),
            (train.main, [FUSION_TINY, *data, "--split", "synth_train", "--work-dir", str(tmp_path / "wd")]),
            (finetune.main, [*model, "--method", "full", *data, "--split", "synth_train", "--work-dir",
                             str(tmp_path / "wd")]),
            (train_ego_mlp.main, [*data, "--out", str(tmp_path / "e.pth")]),
            (cut_scene.main, [str(nope), "v1.0-synth", "synth-0000", "1", str(tmp_path / "cut"), "--fit-split", "a",
                              "--held-split", "b"]),
            (compare_evaluations.main, [str(tmp_path), *data, "--split", "synth_val", "--out", str(tmp_path / "c")]),
            (compare_finetuning.main, [*model, *data, "--split", "a", "--val-split", "b", "--max-iters", "1",
                                       "--out", str(tmp_path / "cf")])):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        error = capsys.readouterr().err
        assert exit_info.value.code == 2 and error.startswith("usage: "), (main.__module__, error)
        assert f"error: no nuScenes tables at {nope / 'v1.0-synth'} (give --dataroot / --version" in error, error
    assert not any((tmp_path / name).exists() for name in ("t", "r", "rob", "q", "p", "wd", "cut", "c", "cf"))


def test_a_work_dir_under_a_file_is_refused_with_the_usage(tmp_path, capsys):
    """(tools/train.py --work-dir README.md/wd answered a bare "[Errno 20] Not a directory", status 1.)"""
    from perception.cli import finetune

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for main, argv in ((train.main, [FUSION_TINY]),
                       (finetune.main, [FUSION_TINY, str(LIDAR_ONLY_CHECKPOINT), "--method", "full"])):
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--work-dir", str(a_file / "wd")])
        error = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"--work-dir {a_file / 'wd'}: {a_file} is a file, not a folder" in error


def option_help(main, option: str, capsys) -> str:
    """The --help text of ``main``'s ``option``, on one line."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    block = re.search(rf"^  {option}\b.*?(?=^  -|\Z)", text, re.MULTILINE | re.DOTALL)
    assert block, (main.__module__, option)
    return " ".join(block.group(0).split())


def test_every_data_root_and_version_option_states_its_default(capsys):
    """(Their defaults differ: test and robustness datasets/nuscenes v1.0-trainval, replay the real fixture,
    benchmark, quantize, prune and train the config's; most help texts said none.)"""
    from perception.cli import finetune, make_synthetic, prune, quantize, robustness, train_ego_mlp

    for main in (test.main, replay.main, robustness.main, benchmark.main, quantize.main, prune.main, train.main,
                 finetune.main, demo.main):
        for option in ("--dataroot", "--version"):
            assert "default" in option_help(main, option, capsys), (main.__module__, option)
    for main in (train_ego_mlp.main, make_synthetic.main):  # (its --dataroot is required; the other writes a world)
        assert "default: v1.0-synth" in option_help(main, "--version", capsys), main.__module__


def out_of_range_rows(root, tmp_path) -> list:
    """(tool's main, argv that runs to its first step of work, option, bad value, the parser's message). Before the
    parser checked them, each was refused by the library with status 1 once work had begun (the metadata loaded,
    the model or the float graphs read, the comparison's config built, the scene's tables read) or, with these
    argv, the tool failed there on something else first; the demo's was refused by the benchmark's parser after
    the evaluation and the replay had run."""
    from perception.cli import compare_finetuning, cut_scene, demo, finetune, make_synthetic, quantize, robustness

    data = ["--dataroot", str(root), "--version", TINY_WORLD["version"]]
    model = [FUSION_TINY, str(tmp_path / "missing.pth")]
    least_1, least_0 = "the value must be >= 1, got", "the value must be >= 0, got"
    positive, non_negative = "the value must be finite and > 0, got", "the value must be finite and >= 0, got"
    tested = [test.main, ["--oracle", *data, "--split", "synth_val", "--out", str(tmp_path / "t")]]
    corrupted = [robustness.main, [*model, *data, "--split", "synth_val", "--out", str(tmp_path / "r")]]
    world = [make_synthetic.main, ["--out", str(tmp_path / "w")]]
    quantized = [quantize.main, [FUSION_TINY, str(tmp_path / "float"), "--out", str(tmp_path / "q")]]
    compared = [compare_finetuning.main, [*model, *data, "--split", "synth_train", "--val-split", "synth_val",
                                          "--max-iters", "1", "--out", str(tmp_path / "c")]]
    tuned = [finetune.main, ["configs/none.py", "x.pth", "--method", "lora", "--work-dir", str(tmp_path / "f")]]
    replayed = [replay.main, [*model, *data, "--out", str(tmp_path / "p")]]
    return [
        (*tested, "--batch-size", "0", f"{least_1} 0"),  # after the metadata: "batch_size must be >= 1"
        (*tested, "--workers", "-1", f"{least_0} -1"),
        (*corrupted, "--batch-size", "0", f"{least_1} 0"),
        (*corrupted, "--workers", "-1", f"{least_0} -1"),
        (*world, "--scenes", "0", f"{least_1} 0"),  # "num_scenes must be >= 1", status 1
        (*world, "--samples-per-scene", "0", f"{least_1} 0"),
        (*world, "--workers", "0", f"{least_1} 0"),
        (*quantized, "--calib-frames", "0", f"{least_1} 0"),  # after the float graphs: "the frame count must be"
        (*quantized, "--eval-frames", "-2", f"{least_1} -2"),
        (demo.main, ["--dataroot", str(root), "--out", str(tmp_path / "demo")], "--benchmark-iters", "0",
         f"{least_1} 0"),  # benchmark's parser refused it after the evaluation and the replay
        (*compared, "--adapter-rank", "0", f"{least_1} 0"),
        (compared[0], [*compared[1], "--lora-ranks", "0", "4"], "--lora-ranks", None, f"{least_1} 0"),
        (*tuned, "--rank", "0", f"{least_1} 0"),
        (*tuned, "--lora-alpha", "nan", f"{positive} nan"),
        (cut_scene.main, [str(root), TINY_WORLD["version"], "synth-0000", "0", str(tmp_path / "cut"), "--fit-split",
                          "a", "--held-split", "b"], "first_held_keyframe", None, f"{least_1} 0"),
        (*replayed, "--speed", "0", f"{positive} 0.0"),  # after the model loaded: "speed must be positive"
        (*replayed, "--speed", "inf", f"{positive} inf"),
        (*replayed, "--stale-after-s", "-1", f"{positive} -1.0"),  # in the replay: "stale_after_s must be positive"
        (*replayed, "--sync-window-s", "nan", f"{non_negative} nan"),
        (*replayed, "--deadline-s", "0", f"{positive} 0.0"),
    ]


def test_an_output_folder_is_checked_where_its_files_go(tmp_path, capsys, monkeypatch):
    """check_output_path probes the folder the output goes in, the existing --out itself (a folder that takes no
    files, on a read-only mount say, though its parent takes them); check_own_folder takes an absent or empty folder
    and one holding its tool's record, and refuses one holding other files."""
    import argparse
    import tempfile

    from perception.cli import check_output_path, check_own_folder

    taking_no_files = tmp_path / "read_only"
    taking_no_files.mkdir()
    temporary_file = tempfile.TemporaryFile

    def refusing_one_folder(*args, dir=None, **kwargs):
        if dir == str(taking_no_files):
            raise PermissionError(13, "Permission denied")
        return temporary_file(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", refusing_one_folder)
    parser = argparse.ArgumentParser(prog="tool")
    with pytest.raises(SystemExit) as exit_info:
        check_output_path(parser, "--out", str(taking_no_files))
    assert exit_info.value.code == 2
    assert f"--out {taking_no_files}: cannot write in {taking_no_files} (Permission denied)" in capsys.readouterr().err
    check_output_path(parser, "--out", str(tmp_path / "absent"))
    for folder in (tmp_path / "absent", taking_no_files):  # absent; empty
        check_own_folder(str(folder), "run.json", "test", "wrote")
    (taking_no_files / "run.json").write_text("{}")
    (taking_no_files / "report.md").write_text("")
    check_own_folder(str(taking_no_files), "run.json", "test", "wrote")
    with pytest.raises(ValueError, match=f"--out {tmp_path}: holds files but no run.json"):
        check_own_folder(str(tmp_path), "run.json", "test", "wrote")


def test_numbers_out_of_range_are_refused_before_any_work(synthetic_root, tmp_path, capsys):
    from perception.cli import train_ego_mlp

    for budget in ("-1", "nan"):  # NaN passed every comparison and never ended the run
        with pytest.raises(SystemExit) as exit_info:
            train.main([FUSION_TINY, "--work-dir", str(tmp_path), "--time-budget-min", budget])
        assert exit_info.value.code == 2
        assert (f"error: argument --time-budget-min: the value must be finite and > 0, got {float(budget)}"
                in capsys.readouterr().err)
    with pytest.raises(SystemExit):  # it wrote an untrained checkpoint
        train_ego_mlp.main(["--dataroot", str(synthetic_root), "--out", str(tmp_path / "e.pth"), "--epochs", "0"])
    assert "argument --epochs: the value must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "e.pth").exists()
    # --frames -1 benchmarked all keyframes but the last; --threads 0 was silently the machine's count
    for option in ("--frames", "--threads"):
        with pytest.raises(SystemExit) as exit_info:
            benchmark.main([FUSION_TINY, "x.pth", option, "0", "--json", str(tmp_path / "b.json")])
        assert exit_info.value.code == 2
        assert f"argument {option}: the value must be >= 1, got 0" in capsys.readouterr().err
    # a sync window that is not finite built frames without LiDAR and with radar from seconds later
    with pytest.raises(SystemExit) as exit_info:
        replay.main(["--oracle", "--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"],
                     "--sync-window-s", "nan", "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    assert "argument --sync-window-s: the value must be finite and >= 0, got nan" in capsys.readouterr().err
    # the README's promise: the parser refuses each of these with the usage, status 2, naming the option
    for main, argv, option, value, message in out_of_range_rows(synthetic_root, tmp_path):
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, option, value] if value is not None else argv)
        error = capsys.readouterr().err
        assert exit_info.value.code == 2, (option, value, error)
        assert f"error: argument {option}: {message}" in error, (option, value, error)
    # a display score outside [0, 1] is refused with the replay's other options, before the model loads
    with pytest.raises(SystemExit) as exit_info:
        replay.main([FUSION_TINY, str(tmp_path / "missing.pth"), "--dataroot", str(synthetic_root), "--version",
                     TINY_WORLD["version"], "--display-min-score", "1.5", "--out", str(tmp_path / "p")])
    assert exit_info.value.code == 2
    assert "display_min_score must lie in [0, 1], got 1.5" in capsys.readouterr().err


def test_train_s_own_checks_are_reported_like_every_tool_s(tmp_path, capsys, monkeypatch):
    """(They printed their bare message, without ``error:``, and a number out of range exited with status 1.)"""
    with pytest.raises(SystemExit) as exit_info:
        train.main([FUSION_TINY, "--work-dir", str(tmp_path), "--max-iters", "0"])
    assert exit_info.value.code == 2
    assert "error: argument --max-iters: the value must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        train.main([FUSION_TINY, "--work-dir", str(tmp_path), "--export-only"])
    assert exit_info.value.code == 2 and "error: --export-only needs --export PATH" in capsys.readouterr().err
    line = one_error_line(train.main, [FUSION_TINY, "--work-dir", str(tmp_path / "empty"), "--export-only",
                                       "--export", str(tmp_path / "x.pth")], capsys)
    assert line == f"error: {tmp_path / 'empty'}: no checkpoint to export"
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    line = one_error_line(train.main, [FUSION_TINY, "--work-dir", str(tmp_path), "--amp"], capsys)
    assert line == "error: --amp needs a CUDA GPU (autocast on CPU is not used by this project)"


def test_train_s_data_options_go_together(tmp_path):
    """--dataroot, --version and --split all three or none; --val-split only with them and with validation."""
    import argparse

    from perception.cli.train import check_data_arguments

    def arguments(**given):
        return argparse.Namespace(**dict(dict(dataroot=None, version=None, split=None, val_split=None,
                                              no_validate=False), **given))

    data = dict(dataroot=str(tmp_path), version="v1.0-synth", split="synth_train")
    for given in ({}, data, dict(data, val_split="synth_val")):
        check_data_arguments(arguments(**given))
    with pytest.raises(ValueError, match=r"go together \(got only --dataroot, --version\)"):
        check_data_arguments(arguments(dataroot=str(tmp_path), version="v1.0-synth"))
    with pytest.raises(ValueError, match="--val-split names a split of --dataroot"):
        check_data_arguments(arguments(val_split="synth_val"))
    with pytest.raises(ValueError, match="--no-validate trains without validation"):
        check_data_arguments(arguments(**data, val_split="synth_val", no_validate=True))


def test_each_data_option_given_replaces_the_config_s_own(tmp_path):
    """config_data: --dataroot and --version each over the config's dataroot / data_version, the other kept."""
    import argparse

    from perception.cli import add_data_options, config_data

    for root, version in ((tmp_path / "config_s", "v1.0-synth"), (tmp_path / "config_s", "v9"),
                          (tmp_path / "other", "v1.0-synth")):
        (root / version).mkdir(parents=True, exist_ok=True)
    parser = argparse.ArgumentParser(prog="tool")
    add_data_options(parser)
    config = {"dataroot": str(tmp_path / "config_s"), "data_version": "v1.0-synth"}
    for flags, expected in (([], (tmp_path / "config_s", "v1.0-synth")),
                            (["--version", "v9"], (tmp_path / "config_s", "v9")),
                            (["--dataroot", str(tmp_path / "other")], (tmp_path / "other", "v1.0-synth"))):
        assert config_data(parser, parser.parse_args(flags), config) == (str(expected[0]), expected[1]), flags


def test_faults_that_leave_no_message_are_named(synthetic_root, tmp_path, capsys):
    line = one_error_line(replay.main, ["--oracle", "--dataroot", str(synthetic_root), "--version",
                                        TINY_WORLD["version"], "--faults", "drop=1", "--out", str(tmp_path)], capsys)
    assert "the injected faults (FaultPlan(drop=1.0" in line and "left no message" in line


def test_a_cfg_option_the_model_does_not_take_is_one_line(tmp_path, capsys):
    line = one_error_line(train.main, [FUSION_TINY, "--work-dir", str(tmp_path), "--cfg-options",
                                       "model.head.nosuch=3"], capsys)
    assert "with --cfg-options model.head.nosuch=3: the model does not build" in line and "'nosuch'" in line
    with pytest.raises(SystemExit) as exit_info:  # "not enough values to unpack" before
        train.main([FUSION_TINY, "--work-dir", str(tmp_path), "--cfg-options", "nokey"])
    assert exit_info.value.code == 2 and "--cfg-options nokey: expected key=value" in capsys.readouterr().err


def test_missing_config_is_named_the_same_way_by_every_tool(tmp_path, capsys):
    expected = "error: configs/none.py: no such config (give a file under configs/, e.g. configs/fusion_tiny.py)"
    assert one_error_line(train.main, ["configs/none.py", "--work-dir", str(tmp_path)], capsys) == expected
    assert one_error_line(benchmark.main, ["configs/none.py", "--json", str(tmp_path / "b.json")], capsys) == expected
    assert one_error_line(replay.main, ["configs/none.py", "model.pth", "--dataroot", str(REPO_ROOT),
                                        "--version", ".", "--out", str(tmp_path)], capsys) == expected


def test_unexpected_errors_keep_their_traceback():
    @tool_main
    def broken(argv=None):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        broken([])


def test_a_result_reaches_python_callers_and_the_command_line_exits_0(monkeypatch):
    """Console scripts run ``sys.exit(main())``: a returned dict would be printed and exit with status 1."""
    @tool_main
    def summarise(argv=None):
        return {"argv": argv}

    assert summarise(["--x"]) == {"argv": ["--x"]}
    monkeypatch.setattr(sys, "argv", ["perception-summarise", "--x"])
    with pytest.raises(SystemExit) as exit_info:
        sys.exit(summarise())
    assert exit_info.value.code is None


def test_replay_on_a_cuda_device_without_one_is_refused(synthetic_root, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: the replay would run on it")
    with pytest.raises(SystemExit) as exit_info:  # a traceback from deep in the stage timer before
        replay.main(["--oracle", "--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"], "--device",
                     "cuda", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "--device cuda: torch sees no CUDA device" in capsys.readouterr().err


def test_a_replay_is_not_written_over_another_folder_s_files(synthetic_root, tmp_path, capsys):
    """(It removed frames/ and overwrote summary.json of any --out, even with --no-video --no-mcap.)"""
    mine = tmp_path / "mine"
    (mine / "frames").mkdir(parents=True)
    (mine / "frames" / "holiday.png").write_text("mine")
    (mine / "summary.json").write_text("mine")
    argv = ["--oracle", "--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"], "--quiet",
            "--no-video", "--no-mcap"]
    line = one_error_line(replay.main, [*argv, "--out", str(mine)], capsys)
    assert line.startswith(f"error: --out {mine}: holds files but no replay_run.json (not a folder tools/replay.py "
                           f"wrote")
    assert (mine / "frames" / "holiday.png").read_text() == "mine" and (mine / "summary.json").read_text() == "mine"
    own = tmp_path / "own"
    for again in ([], [], ["--resume"]):  # a replay's own folder is replayed into again, or resumed
        replay.main([*argv, "--out", str(own), *again])
    assert sorted(os.listdir(own)) == ["frames.jsonl", "replay_run.json", "summary.json"]


def test_a_preview_that_cannot_be_written_is_refused_before_the_world_is_generated(tmp_path, capsys, monkeypatch):
    """(--preview NODIR/p.png printed "wrote NODIR/p.png" and wrote nothing; p.txt failed with a cv2.error traceback
    once the whole world was generated.)"""
    from perception.cli import make_synthetic

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    world = ["--scenes", "2", "--samples-per-scene", "2", "--image-size", "32x18"]
    for preview, problem in ((a_file / "p.png", f"{a_file} is a file, not a folder"),
                             (tmp_path, "exists and is not a file"),
                             (tmp_path / "p.txt", "OpenCV writes no picture of that extension")):
        with pytest.raises(SystemExit) as exit_info:
            make_synthetic.main([*world, "--out", str(tmp_path / "w"), "--preview", str(preview)])
        assert exit_info.value.code == 2 and f"--preview {preview}: {problem}" in capsys.readouterr().err
        assert not (tmp_path / "w").exists()  # before any work
    make_synthetic.main([*world, "--out", str(tmp_path / "w"), "--preview", str(tmp_path / "nodir" / "p.png")])
    assert capsys.readouterr().out.endswith(f"wrote {tmp_path / 'nodir' / 'p.png'}\n")
    assert cv2.imread(str(tmp_path / "nodir" / "p.png")).shape[2] == 3  # its folder made, as --out's is
    monkeypatch.setattr("cv2.imwrite", lambda path, picture: False)  # a write that fails (a full disk, say)
    with pytest.raises(SystemExit) as exit_info:
        make_synthetic.main([*world, "--out", str(tmp_path / "w2"), "--preview", str(tmp_path / "p.png")])
    assert exit_info.value.code == 1  # (the world's progress bars before it on stderr)
    last_line = capsys.readouterr().err.splitlines()[-1]
    assert last_line == f"error: {tmp_path / 'p.png'}: OpenCV could not write the preview"


def test_a_resume_knows_the_data_root_however_it_is_named(synthetic_root, tmp_path, capsys, monkeypatch):
    """(An evaluation or robustness run recorded with an absolute data root was refused on resume with the same
    folder named relatively: "another data.dataroot", "another dataroot".)"""
    from perception.cli import robustness

    evaluate = ["--oracle", "--version", TINY_WORLD["version"], "--split", "synth_val", "--no-plots", "--out",
                str(tmp_path / "evaluation")]
    corrupt = [str(REPO_ROOT / "configs" / "lidar_only.py"), str(LIDAR_ONLY_CHECKPOINT), "--version",
               TINY_WORLD["version"], "--split", "synth_val", "--corruptions", "limited_fov", "--severities", "3",
               "--out", str(tmp_path / "robustness")]
    first = test.main([*evaluate, "--dataroot", str(synthetic_root)])[0]
    assert first["nd_score"] == pytest.approx(1.0)  # the oracle's
    robustness.main([*corrupt, "--dataroot", str(synthetic_root)])
    cell = tmp_path / "robustness" / "clean" / "cell.json"
    written = cell.stat().st_mtime_ns
    (tmp_path / "link").symlink_to(synthetic_root)
    monkeypatch.chdir(synthetic_root.parent)
    for named in (synthetic_root.name, str(tmp_path / "link")):  # from another working folder; through a link
        assert test.main([*evaluate, "--dataroot", named, "--resume"])[0]["nd_score"] == first["nd_score"]
        robustness.main([*corrupt, "--dataroot", named])
        assert cell.stat().st_mtime_ns == written  # read back, not run again
    shutil.copytree(synthetic_root, tmp_path / "copy")  # the same files in another folder: other data
    capsys.readouterr()
    for main, argv, refusal in (
            (test.main, [*evaluate, "--resume"], "predictions_run.json: the frames recorded there are of a run with "
                                                 "another data.dataroot; evaluate into another folder, or remove them"),
            (robustness.main, corrupt, "cell.json: the cell's figures are of a run with another dataroot; choose "
                                       "another --out or remove it")):
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--dataroot", str(tmp_path / "copy")])
        assert exit_info.value.code == 1  # (the loader's progress bars before it on stderr)
        assert capsys.readouterr().err.splitlines()[-1].endswith(refusal)


def test_checkpoints_and_other_inputs_are_found_from_any_folder(synthetic_root, tmp_path, capsys, monkeypatch):
    """(Every tool found CONFIG relative to the repository, but only tools/finetune.py CHECKPOINT: the others, run
    from another folder, answered "no such checkpoint". Here each finds a checkpoint that does not fit the config,
    which it says after reading it.)"""
    from perception.cli import compare_evaluations, compare_robustness, export, prune, quantize, robustness

    monkeypatch.chdir(tmp_path)
    data = ["--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"]]
    model = ["configs/fusion_tiny.py", "checkpoints/lidar_only.pth"]
    for main, argv in ((test.main, [*model, *data, "--split", "synth_val", "--out", "t"]),
                       (replay.main, [*model, *data, "--out", "r"]),
                       (benchmark.main, [*model, *data, "--json", "b.json"]),
                       (robustness.main, [*model, *data, "--split", "synth_val", "--out", "rob"]),
                       (export.main, [*model, "--out", "e"]),
                       (prune.main, [*model, *data, "--ratio", "0.5", "--out", "p"])):
        line = one_error_line(main, argv, capsys)
        assert line.startswith(f"error: {LIDAR_ONLY_CHECKPOINT}: weights do not fit"), (main.__module__, line)
    # graphs, a baseline, evaluations and summaries likewise (each named by the repository's path in its error)
    for main, argv, named in (
            (test.main, [*model, *data, "--split", "synth_val", "--backend", "onnxruntime", "--onnx", "checkpoints",
                         "--out", "t"], REPO_ROOT / "checkpoints"),
            (quantize.main, ["configs/fusion_tiny.py", "checkpoints", *data, "--out", "q"], REPO_ROOT / "checkpoints"),
            (robustness.main, [*model, *data, "--split", "synth_val", "--baseline", "README.md", "--out", "rob"],
             REPO_ROOT / "README.md"),
            (compare_evaluations.main, ["checkpoints", *data, "--split", "synth_val", "--out", "c"],
             REPO_ROOT / "checkpoints"),
            (compare_robustness.main, ["README.md"], REPO_ROOT / "README.md")):
        line = one_error_line(main, argv, capsys)
        assert line.startswith(f"error: {named}"), (main.__module__, line)


def test_the_oracle_with_a_model_s_arguments_is_refused(synthetic_root, tmp_path, capsys):
    """(tools/test.py --oracle ... --backend onnxruntime --onnx /tmp gave status 0 and the oracle's scores: CONFIG,
    CHECKPOINT, --backend, --onnx and --zero-shot were ignored; tools/replay.py --oracle likewise.)"""
    data = ["--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"]]
    for main, argv, ignored in (
            (test.main, [FUSION_TINY], "CONFIG"),
            (test.main, [FUSION_TINY, str(LIDAR_ONLY_CHECKPOINT)], "CONFIG, CHECKPOINT"),
            (test.main, ["--backend", "onnxruntime", "--onnx", str(tmp_path)], "--backend, --onnx"),
            (test.main, ["--zero-shot"], "--zero-shot"),
            (replay.main, [FUSION_TINY, str(LIDAR_ONLY_CHECKPOINT)], "CONFIG, CHECKPOINT"),
            (replay.main, ["--backend", "onnxruntime-int8", "--onnx", str(tmp_path)], "--backend, --onnx")):
        with pytest.raises(SystemExit) as exit_info:
            main(["--oracle", *argv, *data, "--out", str(tmp_path / "out")])
        error = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"error: --oracle runs no model: leave out {ignored}\n" in error, error
    assert not (tmp_path / "out").exists()


def test_comparisons_refuse_rows_of_one_name(synthetic_root, tmp_path, capsys):
    """(tools/compare_evaluations.py --names a a wrote two rows named a; compare_robustness refused them.)"""
    from perception.cli import compare_evaluations

    for names in (["a", "a"], ["a"]):
        with pytest.raises(SystemExit) as exit_info:
            compare_evaluations.main([str(tmp_path / "one"), str(tmp_path / "two"), "--names", *names,
                                      "--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"],
                                      "--split", "synth_val", "--out", str(tmp_path / "out")])
        assert exit_info.value.code == 2
        assert f"error: --names: 2 distinct names needed, got {names}" in capsys.readouterr().err
