"""tools/finetune.py end to end on the tiny synthetic world: a LoRA run exports a plain checkpoint that
load_detector reads, with the base model's keys and the parameter counts in its meta; bad requests fail before any
training starts; benchmarks/bench_finetuning_step.py times each method it is given."""
import importlib.util
import json
import os
from pathlib import Path

import cv2
import pytest
import torch
from mmengine.config import Config

from perception.cli.finetune import build_parser, main as finetune
from perception.cli.train import build_config, main as train
from perception.models import checkpoint_meta, load_detector
from perception.paths import REPO_ROOT
from tests.conftest import TINY_WORLD
from tests.engine.data_copies import annotation_free_copy, validation_annotation_free_copy
from tests.engine.kills import SimulatedKill
from tests.engine.test_train import state_at, write_tiny_config


@pytest.fixture(scope="module")
def base(synthetic_root, tmp_path_factory):
    """(config, checkpoint): the tiny config trained for 2 iterations and exported."""
    folder = tmp_path_factory.mktemp("finetune_base")
    config = write_tiny_config(folder, synthetic_root)
    checkpoint = str(folder / "base.pth")
    train([config, "--work-dir", str(folder / "run"), "--max-iters", "2", "--no-validate", "--export", checkpoint])
    return config, checkpoint


def finetune_args(config, checkpoint, root, work_dir, *extra):
    return [config, checkpoint, "--dataroot", str(root), "--version", TINY_WORLD["version"], "--split",
            "synth_train", "--work-dir", str(work_dir), "--max-iters", "2", *extra]


def test_lora_run_exports_a_plain_checkpoint_with_its_parameter_counts(base, synthetic_root, tmp_path):
    config, checkpoint = base
    exported = str(tmp_path / "lora.pth")
    finetune(finetune_args(config, checkpoint, synthetic_root, tmp_path / "run", "--method", "lora", "--rank", "2",
                           "--export", exported))
    state = torch.load(exported, weights_only=True)["state_dict"]
    base_state = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert set(state) == set(base_state)
    meta = checkpoint_meta(exported)
    trained, total = meta["parameters"]["trained"], meta["parameters"]["total"]
    assert 0 < trained < total == sum(tensor.numel() for name, tensor in base_state.items()
                                      if "running_" not in name and "num_batches" not in name)
    assert meta["fine_tuning"]["method"] == "lora" and meta["iteration"] == 2
    assert {"val/nuscenes/NDS", "val/nuscenes/mAP"} <= set(meta["validation"])
    changed = [name for name in state if not torch.equal(state[name], base_state[name])]
    assert all("running_" not in name for name in changed)  # BatchNorm statistics held
    assert any(name.startswith(("encoders.", "fuser.", "decoder.")) for name in changed)  # LoRA updates folded in
    detector = load_detector(config, exported)
    assert not detector.training
    log = "".join(open(os.path.join(folder, name)).read() for folder, _, names in os.walk(tmp_path / "run")
                  for name in names if name.endswith(".log"))
    assert f"{trained:,} of {total:,} parameters trained" in log


def test_a_killed_fine_tune_resumes_where_it_stopped(base, synthetic_root, tmp_path, capsys):
    """LoRA from the base model, 4 iterations: killed after the second, then --resume; the adapted weights, the
    optimizer's steps and the exported model equal an uninterrupted run's."""
    config, checkpoint = base
    lora = ("--method", "lora", "--rank", "2", "--no-validate")

    def run(config_path, work_dir, *extra):  # the later --max-iters wins
        finetune(finetune_args(config_path, checkpoint, synthetic_root, tmp_path / work_dir, "--max-iters", "4",
                               *lora, *extra))

    run(config, "uninterrupted", "--export", str(tmp_path / "uninterrupted.pth"))
    (tmp_path / "killed").mkdir()
    killed = write_tiny_config(tmp_path / "killed", synthetic_root,
                               "custom_hooks = [dict(type='KillAfterIteration', iteration=2)]")
    with pytest.raises(SimulatedKill):
        run(killed, "resumed")
    # another rank or method would load the run's weights with warnings only, and train on (or fail deep inside)
    for other in (("--method", "lora", "--rank", "4"), ("--method", "adapter", "--rank", "2")):
        with pytest.raises(SystemExit):
            finetune(finetune_args(config, checkpoint, synthetic_root, tmp_path / "resumed", *other, "--no-validate",
                                   "--resume"))
        changed = "rank" if "lora" in other else "method"
        message = f"fine_tuning.json: the checkpoints there are of a run with another {changed};"
        assert message in capsys.readouterr().err
    run(config, "resumed", "--resume", "--export", str(tmp_path / "resumed.pth"))
    expected, actual = state_at(str(tmp_path / "uninterrupted"), 4), state_at(str(tmp_path / "resumed"), 4)
    assert actual["meta"]["iter"] == 4 and any(".lora_" in name for name in actual["state_dict"])
    for name, value in expected["state_dict"].items():
        assert torch.allclose(actual["state_dict"][name].float(), value.float(), atol=1e-5), name
    assert {int(state["step"]) for state in actual["optimizer"]["state"].values()} == {4}
    exported = [torch.load(tmp_path / f"{run}.pth", weights_only=True)["state_dict"]
                for run in ("uninterrupted", "resumed")]
    assert all(torch.allclose(exported[1][name], value, atol=1e-5) for name, value in exported[0].items())


def test_a_start_killed_before_it_trains_leaves_no_earlier_checkpoint_under_its_settings(base, synthetic_root,
                                                                                         tmp_path, monkeypatch,
                                                                                         capsys):
    """A LoRA run's work dir, then an adapter start there killed as its runner is built: the adapter's settings are
    recorded, so the LoRA run's checkpoint must be gone (its --resume passed the check and loaded LoRA's weights)."""
    config, checkpoint = base
    work_dir = tmp_path / "run"
    finetune(finetune_args(config, checkpoint, synthetic_root, work_dir, "--method", "lora", "--rank", "2",
                           "--max-iters", "1", "--no-validate"))
    assert (work_dir / "last_checkpoint").is_file()

    def killed(cfg):
        raise SimulatedKill("killed while the runner is built")

    monkeypatch.setattr("perception.cli.finetune.run_training", killed)
    adapter = ("--method", "adapter", "--rank", "2", "--max-iters", "1", "--no-validate")
    with pytest.raises(SimulatedKill):
        finetune(finetune_args(config, checkpoint, synthetic_root, work_dir, *adapter))
    assert json.loads((work_dir / "fine_tuning.json").read_text())["method"] == "adapter"
    assert not (work_dir / "last_checkpoint").exists()
    monkeypatch.undo()
    finetune(finetune_args(config, checkpoint, synthetic_root, work_dir, *adapter, "--resume"))
    assert "no checkpoint in" in capsys.readouterr().out


def test_bad_requests_fail_before_training(base, synthetic_root, tmp_path, capsys):
    config, checkpoint = base
    other_network = str(tmp_path / "wider.py")
    with open(other_network, "w") as handle:
        handle.write(f"_base_ = [{config!r}]\nmodel = dict(head=dict(head_channels=8))\n")
    cases = [
        (finetune_args(other_network, checkpoint, synthetic_root, tmp_path / "a", "--method", "full"),
         "weights do not fit"),
        (finetune_args(config, checkpoint, synthetic_root, tmp_path / "b", "--method", "prompt"),
         "unknown fine-tuning method 'prompt'"),
        (finetune_args(config, checkpoint, synthetic_root, tmp_path / "c", "--method", "lora", "--rank", "99"),
         "rank 99 is larger than layer"),
        (finetune_args(config, checkpoint, synthetic_root, tmp_path / "h", "--method", "head", "--rank", "4"),
         "rank applies to lora and adapter, not to 'head'"),
        (finetune_args(config, checkpoint, annotation_free_copy(synthetic_root, tmp_path), tmp_path / "d",
                       "--method", "head"),
         "has no annotated keyframe"),
        (finetune_args(config, checkpoint, synthetic_root, tmp_path / "e", "--method", "lora",
                       "--quantization-aware"),
         "quantization-aware training applies to full and head, not to 'lora'"),
        ([config, checkpoint, "--dataroot", str(synthetic_root), "--work-dir", str(tmp_path / "f"), "--method", "full"],
         "--dataroot, --version and --split go together"),
        (finetune_args(config, checkpoint, validation_annotation_free_copy(synthetic_root, tmp_path / "g_world"),
                       tmp_path / "g", "--method", "head", "--val-split", "synth_val"),
         "the validation data, split 'synth_val' of "),
        (finetune_args(config, checkpoint, synthetic_root, tmp_path / "i", "--method", "head", "--val-split",
                       "synth_val", "--no-validate"),
         "--val-split names the validation data; --no-validate trains without validation"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            finetune(argv)
        assert exit_info.value.code == 1
        assert message in capsys.readouterr().err
        work_dir = argv[argv.index("--work-dir") + 1]
        assert not any(name.endswith(".pth") for _, _, names in os.walk(work_dir) for name in names)


def test_a_bad_request_into_a_run_s_work_dir_leaves_it_to_resume(base, synthetic_root, tmp_path, capsys):
    """Errors found while building the model (a rank above a layer's, weights that do not fit) come before the work
    dir is touched: the earlier run's fine_tuning.json and last_checkpoint stay, and --resume goes on from it."""
    config, checkpoint = base
    work_dir = tmp_path / "run"
    lora = ("--method", "lora", "--rank", "2", "--no-validate")
    finetune(finetune_args(config, checkpoint, synthetic_root, work_dir, *lora))
    recorded = {name: (work_dir / name).read_bytes() for name in ("fine_tuning.json", "last_checkpoint")}
    other_network = str(tmp_path / "wider.py")
    with open(other_network, "w") as handle:
        handle.write(f"_base_ = [{config!r}]\nmodel = dict(head=dict(head_channels=8))\n")
    for argv, message in ((finetune_args(config, checkpoint, synthetic_root, work_dir, "--method", "lora", "--rank",
                                         "99", "--no-validate"), "rank 99 is larger than layer"),
                          (finetune_args(other_network, checkpoint, synthetic_root, work_dir, *lora),
                           "weights do not fit")):
        with pytest.raises(SystemExit):
            finetune(argv)
        assert message in capsys.readouterr().err
        assert {name: (work_dir / name).read_bytes() for name in recorded} == recorded
    finetune(finetune_args(config, checkpoint, synthetic_root, work_dir, *lora, "--resume"))
    assert "starting from scratch" not in capsys.readouterr().out


def test_the_checkpoint_and_data_are_found_from_another_folder_as_the_config_is(synthetic_root, monkeypatch,
                                                                                 tmp_path, capsys):
    """Relative to the repository when not found where the tool runs: the checkpoint (rank 99 fails after the
    weights load) and the config's data root."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        finetune(finetune_args("configs/fusion_tiny.py", "checkpoints/fusion_tiny.pth", synthetic_root,
                               tmp_path / "w", "--method", "lora", "--rank", "99", "--no-validate"))
    assert "rank 99 is larger than layer" in capsys.readouterr().err
    cfg = build_config(build_parser().parse_args(["configs/fusion_tiny.py", "checkpoints/fusion_tiny.pth",
                                                  "--method", "full"]))
    assert {cfg[loader].dataset.dataroot for loader in ("train_dataloader", "val_dataloader")} == {
        str(REPO_ROOT / "datasets" / "synthetic")}


def test_a_config_that_trains_on_several_worlds_fine_tunes_on_the_split_given(base, synthetic_root, tmp_path):
    # a ConcatDataset config (configs/fusion_tiny_worlds.py's form) with --dataroot / --version / --split: one
    # FrameDataset of that split, with the first world's settings
    config, checkpoint = base
    worlds = str(tmp_path / "worlds.py")
    with open(worlds, "w") as handle:
        handle.write(f"_base_ = [{config!r}]\n"
                     f"train_dataloader = dict(dataset=dict(_delete_=True, type='ConcatDataset', "
                     f"datasets=[dict(type='FrameDataset', dataroot='elsewhere', version='v0', split='nowhere', "
                     f"drop=['camera'], transform=None)] * 2))\n")
    exported = tmp_path / "worlds.pth"
    finetune(finetune_args(worlds, checkpoint, synthetic_root, tmp_path / "run", "--method", "head", "--no-validate",
                           "--max-iters", "1", "--export", str(exported)))
    data = checkpoint_meta(str(exported))["data"]
    assert (data["type"], data["dataroot"], data["split"]) == ("FrameDataset", str(synthetic_root), "synth_train")


def test_comparison_table_covers_every_run_on_the_same_frames(base, synthetic_root, tmp_path, monkeypatch):
    from perception.cli.compare_finetuning import COLUMNS, main as compare

    trained_with, checkpoint = base
    config = str(tmp_path / "keyframes.py")  # the new domain's inputs: 1 sweep each, the base trained on 2
    with open(config, "w") as handle:
        handle.write(f"_base_ = [{trained_with!r}]\nmodel_inputs = dict(lidar_sweeps=1, radar_sweeps=1)\n")
    out = tmp_path / "comparison"
    arguments = [config, checkpoint, "--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"],
                 "--split", "synth_train", "--val-split", "synth_val", "--max-iters", "1", "--lora-ranks", "1", "2",
                 "--adapter-rank", "2", "--learning-rate", "adapter=0.004", "--seed", "5", "--draws", "3",
                 "--out", str(out)]
    rows = compare(arguments)
    names = ["zero-shot", "scratch", "full", "head", "lora r1", "lora r2", "adapter r2"]
    assert [entry["name"] for entry in rows] == names
    table = json.load(open(out / "table.json"))
    assert table["rows"] == rows
    # every run trained with the seed given, the adapter's at the rate given, the others at the config's (the
    # work dir's dumped config)
    config_rate = Config.fromfile(config).optim_wrapper.optimizer.lr
    for name in names[1:]:
        used = Config.fromfile(out / name.replace(" ", "_") / "work" / "keyframes.py")
        assert used.optim_wrapper.optimizer.lr == (0.004 if name.startswith("adapter") else config_rate)
        assert used.randomness.seed == 5
    assert table["caption"].endswith(f"learning rate {config_rate:g}, adapter 0.004; seed 5.")
    for entry in rows:
        evaluation = json.load(open(out / entry["name"].replace(" ", "_") / "evaluation" / "metrics.json"))
        assert entry["NDS"] == evaluation["nd_score"] and entry["car_AP"] == evaluation["class_ap"]["car"]
        assert entry["truck_AP"] == (evaluation["class_ap"]["truck"] if evaluation["num_gt"]["truck"] else None)
        assert evaluation["run"]["split"] == "synth_val"
        assert (evaluation["run"]["lidar_sweeps"], evaluation["run"]["radar_sweeps"]) == (1, 1)
    total = rows[1]["total_parameters"]
    assert rows[0]["trained_parameters"] is None and rows[1]["trained_parameters"] == total
    assert rows[2]["trained_parameters"] == total > rows[3]["trained_parameters"]
    assert rows[4]["trained_parameters"] < rows[5]["trained_parameters"] < total  # rank 1 < rank 2
    assert all(entry["total_parameters"] == total for entry in rows[1:])
    assert rows[0]["iterations"] is None and all(entry["iterations"] == 1 for entry in rows[1:])  # --max-iters 1
    picture = cv2.imread(str(out / "table.png"))
    assert picture is not None and picture.shape[1] > 600
    markdown = (out / "table.md").read_text()
    assert all(column in markdown for column in COLUMNS)
    scored = [entry["name"] for entry in rows if entry["NDS"] is not None]
    assert "full" in scored
    # header, rule, one line per run; then the same for the scored runs with the keyframes resampled
    assert markdown.count("\n| ") == len(names) + 2 + len(scored) + 2
    resampled = table["resampled"]
    assert [entry["name"] for entry in resampled] == ["full"] + [name for name in scored if name != "full"]
    for entry in resampled[1:]:
        by_name = {row["name"]: row["NDS"] for row in rows}
        assert entry["difference"] == pytest.approx(by_name[entry["name"]] - by_name["full"])
    assert "NDS - full" in markdown

    # Started again with the same arguments it resumes: finished runs are read, not run again; a run whose saved
    # settings differ (here head's, as if an earlier start had another budget) is run again.
    models = {entry["name"]: out / entry["name"].replace(" ", "_") / "model.pth" for entry in rows[1:]}
    written = {name: os.stat(path).st_mtime_ns for name, path in models.items()}
    saved = json.load(open(out / "head" / "row.json"))
    saved["settings"]["max_iters"] = 99
    json.dump(saved, open(out / "head" / "row.json", "w"))
    json.dump(saved["settings"], open(out / "head" / "started.json", "w"))
    again = compare(arguments)
    assert [entry["name"] for entry in again] == names
    assert {name for name, path in models.items() if os.stat(path).st_mtime_ns != written[name]} == {"head"}
    assert [entry for entry in again if entry["name"] != "head"] == [entry for entry in rows if entry["name"] != "head"]
    assert json.load(open(out / "head" / "row.json"))["settings"]["max_iters"] == 1

    # another rate for one method runs that method's rows again, and only those
    written = {name: os.stat(path).st_mtime_ns for name, path in models.items()}
    compare([*arguments, "--learning-rate", "head=0.004"])
    assert {name for name, path in models.items() if os.stat(path).st_mtime_ns != written[name]} == {"head"}

    # a row killed after its model was exported (trained.json), before its row.json (in its evaluation): the model
    # is evaluated again, not trained further (one its budget had stopped went on to --max-iters)
    exported = os.stat(models["full"]).st_mtime_ns
    os.remove(out / "full" / "row.json")
    again = {entry["name"]: entry for entry in compare(arguments)}
    assert os.stat(models["full"]).st_mtime_ns == exported
    assert again["full"] == dict(rows[2], resumed=True) and "resumed: since then" in (out / "table.md").read_text()
    # one killed while it trained resumes its training from the checkpoint it left, when the start it left it has
    # the same settings (started.json); under other settings it trains from the start
    os.remove(out / "full" / "row.json")
    os.remove(out / "full" / "trained.json")
    again = {entry["name"]: entry for entry in compare(arguments)}
    assert again["full"]["resumed"] and os.stat(models["full"]).st_mtime_ns != exported
    assert "resumed" not in again["head"]
    os.remove(out / "full" / "row.json")
    started = json.load(open(out / "full" / "started.json"))
    json.dump(dict(started, seed=6), open(out / "full" / "started.json", "w"))
    assert "resumed" not in {entry["name"]: entry for entry in compare(arguments)}["full"]

    # a start with other settings killed in a row's evaluation leaves no row of the settings before (nor is its own
    # trained.json read under other settings): the next start trains the row again
    from perception.cli.test import run as evaluate

    def killed_in_full_s_evaluation(argv):
        if os.path.basename(os.path.dirname(argv[argv.index("--out") + 1])) == "full":
            raise SimulatedKill("killed in the evaluation")
        return evaluate(argv)

    with monkeypatch.context() as patch:
        patch.setattr("perception.cli.test.run", killed_in_full_s_evaluation)
        with pytest.raises(SimulatedKill):
            compare([*arguments, "--max-iters", "2"])
    assert not (out / "full" / "row.json").exists()
    exported = os.stat(models["full"]).st_mtime_ns
    assert "resumed" not in {entry["name"]: entry for entry in compare(arguments)}["full"]
    assert os.stat(models["full"]).st_mtime_ns != exported


def test_comparison_at_several_seeds_sets_each_row_against_full_and_scratch_seed_by_seed(base, synthetic_root,
                                                                                        tmp_path):
    from perception.cli.compare_finetuning import main as compare

    trained_with, checkpoint = base
    out = tmp_path / "seeds"
    summary = compare([trained_with, checkpoint, "--dataroot", str(synthetic_root), "--version",
                       TINY_WORLD["version"], "--split", "synth_train", "--val-split", "synth_val", "--max-iters", "1",
                       "--lora-ranks", "1", "2", "--adapter-rank", "2", "--seeds", "3", "4", "--draws", "0",
                       "--out", str(out)])
    tables = {seed: {entry["name"]: entry for entry in json.load(open(out / f"seed_{seed}" / "table.json"))["rows"]}
              for seed in (3, 4)}
    assert [entry["name"] for entry in summary] == list(tables[3]) == list(tables[4])
    assert json.load(open(out / "seeds.json"))["rows"] == summary
    for seed, rows in tables.items():
        assert rows["zero-shot"]["trained_parameters"] is None
        for name in ("scratch", "full", "adapter r2"):
            used = Config.fromfile(out / f"seed_{seed}" / name.replace(" ", "_") / "work" / Path(trained_with).name)
            assert used.randomness.seed == seed
    for entry in summary:
        name = entry["name"]
        assert entry["seeds"] == [3, 4]
        assert entry["NDS"] == [tables[3][name]["NDS"], tables[4][name]["NDS"]]
        assert entry["car_AP"] == [tables[3][name]["car_AP"], tables[4][name]["car_AP"]]
        assert entry["NDS_mean"] == pytest.approx((entry["NDS"][0] + entry["NDS"][1]) / 2)
        for key, reference in (("NDS_minus_full", "full"), ("NDS_minus_scratch", "scratch")):
            assert entry[key] == pytest.approx([tables[seed][name]["NDS"] - tables[seed][reference]["NDS"]
                                                for seed in (3, 4)])
    markdown = (out / "seeds.md").read_text()
    assert markdown.startswith(json.load(open(out / "seeds.json"))["caption"]) and "; seeds 3, 4." in markdown
    assert "| model | NDS, seed 3 / 4 | NDS mean | NDS - full | NDS - scratch |" in markdown
    assert markdown.count("\n| ") == len(summary) + 2


def _scores(name, nds, car_ap):
    """A comparison row of hand-made scores (the other metrics unset), trained on 1,234 of 49,360 parameters."""
    from perception.cli.compare_finetuning import AP_KEYS, TP_ERRORS

    return dict(dict.fromkeys(("mAP", *AP_KEYS, *TP_ERRORS)), name=name, NDS=nds, car_AP=car_ap,
                trained_parameters=1234, total_parameters=49360, iterations=7, training_minutes=2.34)


def test_seed_rows_by_hand():
    """Seeds 3 and 4: each row's NDS and car AP at both, their means, and its NDS minus full's and scratch's at the
    same seed; None where a seed did not score a row, for its mean and its differences there."""
    from perception.cli.compare_finetuning import seed_rows

    tables = {3: [_scores("scratch", 0.25, 0.5), _scores("full", 0.5, 0.75), _scores("head", 0.375, None)],
              4: [_scores("scratch", 0.125, 0.25), _scores("full", 0.625, 0.5), _scores("head", None, 0.125)]}
    summary = {entry["name"]: entry for entry in seed_rows(tables)}
    assert list(summary) == ["scratch", "full", "head"]
    assert summary["full"] == dict(name="full", seeds=[3, 4], NDS=[0.5, 0.625], NDS_mean=0.5625, car_AP=[0.75, 0.5],
                                   car_AP_mean=0.625, NDS_minus_full=[0.0, 0.0], NDS_minus_scratch=[0.25, 0.5])
    assert summary["head"] == dict(name="head", seeds=[3, 4], NDS=[0.375, None], NDS_mean=None, car_AP=[None, 0.125],
                                   car_AP_mean=None, NDS_minus_full=[-0.125, None], NDS_minus_scratch=[0.125, None])


def test_comparison_table_row_by_hand():
    """NDS, mAP, the four AP columns and the five TP errors (n/a where not defined), then the parameters trained
    with their share, 1,234 / 49,360 = 2.5 %, the iterations and the minutes (zero-shot: none trained)."""
    from perception.cli.compare_finetuning import table_markdown

    zero_shot = dict(_scores("zero-shot", 0.25, None), trained_parameters=None, total_parameters=None,
                     iterations=None, training_minutes=None)
    lines = table_markdown([zero_shot, _scores("lora r4", 0.5, 0.75)], "Caption.").splitlines()
    assert lines[4:] == ["| zero-shot | 0.250 | " + "n/a | " * 10 + "0 |  |  |",
                         "| lora r4 | 0.500 | n/a | 0.750 | " + "n/a | " * 8 + "1,234 (2.5 %) | 7 | 2.3 |"]


@pytest.mark.parametrize("seeds, message", [(["--seed", "1", "--seeds", "2", "3"], "not allowed with argument"),
                                            (["--seeds", "2", "2"], "--seeds 2 2: each seed once"),
                                            (["--seed", "-1"], "argument --seed: a seed must be >= 0, got -1"),
                                            (["--lora-ranks", "8", "8"], "--lora-ranks 8 8: two different ranks"),
                                            (["--draws", "-1"], "argument --draws: the value must be >= 0, got -1")])
def test_comparison_refuses_seeds_it_cannot_tell_apart(seeds, message, capsys):
    from perception.cli.compare_finetuning import main as compare

    with pytest.raises(SystemExit) as exit_info:
        compare(["config.py", "model.pth", "--dataroot", "d", "--version", "v", "--split", "a", "--val-split", "b",
                 "--max-iters", "1", *seeds])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("value, message", [("adaptor=0.01", "the method must be one of full, head, lora, adapter"),
                                            ("lora", "the rate after '=' must be a number"),
                                            ("lora=-1", "the rate must be above 0")])
def test_comparison_refuses_a_learning_rate_it_cannot_apply(value, message, capsys):
    from perception.cli.compare_finetuning import main as compare

    with pytest.raises(SystemExit) as exit_info:
        compare(["config.py", "model.pth", "--dataroot", "d", "--version", "v", "--split", "a", "--val-split", "b",
                 "--max-iters", "1", "--learning-rate", value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("budget, message", [(["--max-iters", "0"], "--max-iters: the value must be >= 1"),
                                             (["--max-iters", "1", "--time-budget-min", "0"],
                                              "--time-budget-min: the value must be finite and > 0")])
def test_comparison_refuses_a_budget_of_nothing_before_the_zero_shot_row(budget, message, capsys):
    from perception.cli.compare_finetuning import main as compare

    with pytest.raises(SystemExit) as exit_info:
        compare(["config.py", "model.pth", "--dataroot", "d", "--version", "v", "--split", "a", "--val-split", "b",
                 *budget])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_real_keyframe_config_fine_tunes_and_evaluates_on_the_real_scene(tmp_path):
    from perception.cli.test import run as evaluate
    from perception.paths import REPO_ROOT
    from tests.conftest import REAL_SCENE_FIXTURE_ROOT

    if not (REAL_SCENE_FIXTURE_ROOT / "v1.0-mini").is_dir():
        pytest.skip(f"real scene fixture absent: expected tables at {REAL_SCENE_FIXTURE_ROOT / 'v1.0-mini'}")
    config = str(REPO_ROOT / "configs" / "fusion_tiny_real.py")
    exported = str(tmp_path / "adapter.pth")
    finetune([config, str(REPO_ROOT / "checkpoints" / "fusion_tiny.pth"), "--dataroot", str(REAL_SCENE_FIXTURE_ROOT),
              "--version", "v1.0-mini", "--split", "real_finetune", "--method", "adapter", "--work-dir",
              str(tmp_path / "run"), "--max-iters", "1", "--no-validate", "--export", exported])
    assert checkpoint_meta(exported)["inputs"] == {"lidar_sweeps": 1, "radar_sweeps": 1, "image_size": [256, 144],
                                                   "sensors": ["lidar", "radar"]}
    metrics = evaluate([config, exported, "--dataroot", str(REAL_SCENE_FIXTURE_ROOT), "--version", "v1.0-mini",
                        "--split", "real_val", "--out", str(tmp_path / "evaluation"), "--no-plots"])[0]
    assert metrics["frames_evaluated"] == 12
    assert (metrics["run"]["lidar_sweeps"], metrics["run"]["radar_sweeps"]) == (1, 1)
    assert metrics["run"]["image_size"] == [256, 144]
    assert metrics["run"]["sensors"] == ["lidar", "radar"]   # the config does not read the cameras


@pytest.mark.parametrize("ranks, status, message", [
    (["--lora-ranks", "1", "99"], 1, "rank 99 is larger than layer"),
    (["--lora-ranks", "1", "2", "--adapter-rank", "0"], 2, "argument --adapter-rank: the value must be >= 1, got 0")])
def test_comparison_checks_every_rows_request_before_any_run(base, synthetic_root, tmp_path, ranks, status, message,
                                                             capsys):
    # a rank the last rows cannot take once failed only when their turn came, after the others had trained; a rank
    # below 1 is now the parser's (status 2), one too large for a layer the rows' check's (status 1)
    from perception.cli.compare_finetuning import main as compare

    config, checkpoint = base
    with pytest.raises(SystemExit) as exit_info:
        compare([config, checkpoint, "--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"], "--split",
                 "synth_train", "--val-split", "synth_val", "--max-iters", "1", *ranks, "--out", str(tmp_path / "t")])
    assert exit_info.value.code == status and message in capsys.readouterr().err
    assert not (tmp_path / "t").exists() or os.listdir(tmp_path / "t") == []  # no row ran, not even zero-shot's


def test_step_benchmark_times_each_method_it_is_given(base, synthetic_root, capsys):
    script = REPO_ROOT / "benchmarks" / "bench_finetuning_step.py"
    spec = importlib.util.spec_from_file_location("bench_finetuning_step", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    config, checkpoint = base
    times = bench.main([config, checkpoint, "--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"],
                        "--split", "synth_train", "--methods", "full", "adapter", "--rank", "2", "--steps", "2",
                        "--batches", "1"])
    assert {method: len(samples) for method, samples in times.items()} == {"full": 2, "adapter": 2}
    assert all(sample > 0 for samples in times.values() for sample in samples)
    table = capsys.readouterr().out
    assert "| full | " in table and "| 1.00x |" in table and "| adapter | " in table
