"""tools/train.py end to end on the tiny synthetic world: validation with the official metrics, export + load,
resume after a crash equal to an uninterrupted run, and torchrun with 2 CPU processes on gloo."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
import torch

from perception.cli.train import main
from perception.datasets.splits import split_sample_tokens
from perception.models import checkpoint_meta, load_detector
from perception.paths import REPO_ROOT
from tests.conftest import TINY_WORLD, tree_under_test_env
from tests.engine.data_copies import annotation_free_copy, validation_annotation_free_copy
from tests.engine.kills import KILLS_IMPORT, SimulatedKill


def write_tiny_config(folder, root, extra: str = "", modality_dropout: float = 0.0, adversarial: str = "None"
                      ) -> str:
    """A derived config: the fusion_tiny base with a 32 x 32 grid, narrow LiDAR + radar, the tiny world
    (``adversarial``: the model's adversarial option as config text)."""
    path = os.path.join(folder, "tiny.py")
    dataset = f"dataroot={str(root)!r}, version={TINY_WORLD['version']!r}, drop=['camera'], transform=None"
    with open(path, "w") as handle:
        handle.write(f"""_base_ = [{str(REPO_ROOT / 'configs' / 'fusion_tiny.py')!r}]
model = dict(grid=dict(point_cloud_range=[-32.0, -32.0, -5.0, 32.0, 32.0, 3.0], cell_size=[2.0, 2.0]),
             encoders=dict(_delete_=True,
                           lidar=dict(type='LidarEncoder', out_channels=8, max_points_per_pillar=8, max_pillars=1500),
                           radar=dict(type='RadarEncoder', out_channels=4, max_points_per_pillar=4, max_pillars=300)),
             fuser=dict(out_channels=16, modality_dropout={modality_dropout}),
             decoder=dict(channels=[16, 16], blocks=[1, 1], out_channels=16), head=dict(head_channels=16),
             adversarial={adversarial})
model_inputs = dict(lidar_sweeps=2, radar_sweeps=2, image_size=None)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict({dataset}))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict({dataset}))
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=10), logger=dict(interval=1))
param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=4)]
randomness = dict(seed=0, deterministic=True)
{extra}
""")
    return path


def state_at(work_dir: str, iteration: int) -> dict:
    return torch.load(os.path.join(work_dir, f"iter_{iteration}.pth"), weights_only=False)


def test_validation_export_and_load(synthetic_root, tmp_path):
    config = write_tiny_config(tmp_path, synthetic_root)
    work_dir, shipped = str(tmp_path / "run"), str(tmp_path / "model.pth")
    main([config, "--work-dir", work_dir, "--max-iters", "2", "--export", shipped])
    record = json.load(open(os.path.join(work_dir, "last_validation.json")))
    validation = record["metrics"]
    assert record["iteration"] == 2 and {"val/nuscenes/NDS", "val/nuscenes/mAP", "val/nuscenes/mAVE"} <= set(validation)
    assert 0.0 <= validation["val/nuscenes/NDS"] <= 1.0
    checkpoint = torch.load(shipped, weights_only=True)  # plain tensors and JSON meta only
    assert set(checkpoint) == {"state_dict", "meta"} and checkpoint["meta"]["iteration"] == 2
    assert checkpoint["meta"]["inputs"] == {"lidar_sweeps": 2, "radar_sweeps": 2, "image_size": None,
                                            "sensors": ["lidar", "radar"]}
    assert checkpoint_meta(shipped)["validation"] == validation
    detector = load_detector(config, shipped)
    assert not detector.training and detector.sensors == frozenset({"lidar", "radar"})
    trained = state_at(work_dir, 2)["state_dict"]
    assert all(torch.equal(detector.state_dict()[name], value) for name, value in trained.items())
    # --export-only with another config than the run's wrote the run's weights under that config's meta, a file
    # neither config loaded
    other_config = other_head_config(tmp_path / "other", synthetic_root)
    with pytest.raises(SystemExit):
        main([other_config, "--work-dir", work_dir, "--export-only", "--export", str(tmp_path / "mixed.pth")])
    assert not os.path.exists(tmp_path / "mixed.pth")


@pytest.mark.parametrize("validation", [False, True])
def test_resume_after_a_kill_equals_an_uninterrupted_run(synthetic_root, tmp_path, validation):
    """With the random draws of training on (modality dropout as the shipped configs have it, adversarial batches
    drawn at probability 0.5): mmengine keeps neither generator; RandomStateHook does. With a validation after the
    checkpoint (its DataLoader draws from torch's generator) too."""
    random_parts = dict(modality_dropout=0.5, adversarial="dict(method='fgsm', probability=0.5, seed=0)")
    every_second = "train_cfg = dict(val_interval=2)" if validation else ""
    validate = [] if validation else ["--no-validate"]
    plain = write_tiny_config(tmp_path, synthetic_root, every_second, **random_parts)
    uninterrupted, resumed = str(tmp_path / "uninterrupted"), str(tmp_path / "resumed")
    main([plain, "--work-dir", uninterrupted, "--max-iters", "4", *validate])
    (tmp_path / "killed").mkdir()
    killed = write_tiny_config(tmp_path / "killed", synthetic_root, every_second + """
custom_hooks = [dict(type='KillAfterIteration', iteration=2)]""", **random_parts)
    with pytest.raises(SimulatedKill):
        main([killed, "--work-dir", resumed, "--max-iters", "4", *validate])
    assert not os.path.exists(os.path.join(resumed, "iter_3.pth"))
    main([plain, "--work-dir", resumed, "--max-iters", "4", "--resume", *validate])
    expected, actual = state_at(uninterrupted, 4), state_at(resumed, 4)
    assert actual["meta"]["iter"] == 4
    for name, value in expected["state_dict"].items():
        assert torch.equal(actual["state_dict"][name], value), name
    exp_state = expected["optimizer"]["state"]
    for key, state in actual["optimizer"]["state"].items():
        assert int(state["step"]) == int(exp_state[key]["step"]) == 4
        assert torch.allclose(state["exp_avg"], exp_state[key]["exp_avg"], atol=1e-5)


def test_a_new_run_in_a_used_work_dir_keeps_nothing_of_the_earlier_one(synthetic_root, tmp_path, capsys):
    """An earlier run's checkpoint pointer and validation belong to it: a new run killed before its first save
    resumes from scratch, not from the earlier run's weights, and its export carries no earlier validation."""
    config = write_tiny_config(tmp_path, synthetic_root)
    work_dir = str(tmp_path / "run")
    main([config, "--work-dir", work_dir, "--max-iters", "1"])  # validates: last_validation.json
    assert os.path.isfile(os.path.join(work_dir, "last_validation.json"))
    (tmp_path / "killed").mkdir()
    killed = write_tiny_config(tmp_path / "killed", synthetic_root,
                               "custom_hooks = [dict(type='KillBeforeTraining')]")
    with pytest.raises(SimulatedKill):
        main([killed, "--work-dir", work_dir, "--max-iters", "2", "--no-validate"])
    capsys.readouterr()
    main([config, "--work-dir", work_dir, "--max-iters", "2", "--no-validate", "--resume", "--export",
          str(tmp_path / "model.pth")])
    assert "--resume: no checkpoint in" in capsys.readouterr().out  # not the first run's iter_1
    assert checkpoint_meta(str(tmp_path / "model.pth"))["validation"] is None
    # resumed with another length: mmengine would restore the run's schedule and train the new length on it
    with pytest.raises(SystemExit):
        main([config, "--work-dir", work_dir, "--max-iters", "3", "--no-validate", "--resume"])
    assert "the run's LR schedule (begin, end, T_max) [(0, 2, None)], this one's [(0, 3, None)]" in \
        capsys.readouterr().err
    # an export path that cannot be written is refused before any training
    with pytest.raises(SystemExit):
        main([config, "--work-dir", str(tmp_path / "never"), "--max-iters", "1", "--export", str(tmp_path)])
    assert "--export" in capsys.readouterr().err and not os.path.exists(tmp_path / "never")


def test_a_truncated_sensor_file_read_in_a_worker_stops_training_with_one_line(synthetic_root, nusc_synthetic,
                                                                               tmp_path, capsys):
    """A DataLoader worker's CorruptFileError came back from torch as a RuntimeError with the worker's traceback
    (torch rebuilds it with one argument; it takes a path and a problem): now the main process raises it, and the
    tool prints its one line, status 1."""
    root = tmp_path / "world"
    shutil.copytree(synthetic_root, root)
    cut = {}
    for token in split_sample_tokens(nusc_synthetic, "synth_train"):  # every keyframe: the first batch meets one
        lidar = nusc_synthetic.get("sample_data", nusc_synthetic.get("sample", token)["data"]["LIDAR_TOP"])
        path = root / lidar["filename"]
        cut[str(path)] = path.stat().st_size - 7
        path.write_bytes(path.read_bytes()[:cut[str(path)]])
    config = write_tiny_config(tmp_path, root)
    with pytest.raises(SystemExit) as stop:
        main([config, "--work-dir", str(tmp_path / "run"), "--max-iters", "1", "--no-validate",
              "--cfg-options", "train_dataloader.num_workers=1"])
    last_line = capsys.readouterr().err.splitlines()[-1]
    path, problem = last_line.removeprefix("error: ").split(": ", 1)
    assert stop.value.code == 1 and last_line.startswith("error: ") and path in cut, last_line
    assert problem.startswith(f"{cut[path]} bytes is not a multiple of 20"), last_line


def other_head_config(folder, root) -> str:
    """write_tiny_config's network with a narrower head (weights of the tiny config do not fit it)."""
    os.makedirs(folder, exist_ok=True)
    path = write_tiny_config(folder, root)
    with open(path) as handle:
        text = handle.read()
    with open(path, "w") as handle:
        handle.write(text.replace("head=dict(head_channels=16)", "head=dict(head_channels=8)"))
    return path


def test_bad_data_and_runs_that_do_not_fit_are_refused_before_the_work_dir_is_touched(synthetic_root, tmp_path,
                                                                                      capsys):
    """A split that does not exist or holds no annotated keyframe (training or validation), validation on every
    scene of the version (no split the devkit scores), a resume with another network or other data than the run's,
    a warm start whose weights do not fit: each refused before training, the earlier run's checkpoint pointer left
    for --resume (mmengine loads mismatched weights with warnings, or fails inside the optimizer)."""
    config = write_tiny_config(tmp_path, synthetic_root)
    other_network = other_head_config(tmp_path / "other", synthetic_root)
    work_dir = str(tmp_path / "run")
    main([config, "--work-dir", work_dir, "--max-iters", "2", "--time-budget-min", "1e-6"])  # stops at iteration 1
    pointer = open(os.path.join(work_dir, "last_checkpoint")).read()
    data = ["--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"]]
    no_val_annotations = validation_annotation_free_copy(synthetic_root, tmp_path / "val_world")
    cases = [
        ([config, "--work-dir", work_dir, "--max-iters", "2", *data, "--split", "nosuch"], "no custom split 'nosuch'"),
        ([config, "--work-dir", work_dir, "--max-iters", "2", "--dataroot", no_val_annotations, "--version",
          TINY_WORLD["version"], "--split", "synth_train", "--val-split", "synth_val"],
         "the validation data, split 'synth_val' of"),
        ([config, "--work-dir", work_dir, "--max-iters", "2", *data, "--split", "synth_train", "--val-split", "all"],
         "not every scene of the version"),  # (the devkit's evaluation failed at the first validation)
        ([config, "--work-dir", work_dir, "--max-iters", "2", "--dataroot",
          annotation_free_copy(synthetic_root, tmp_path), "--version", TINY_WORLD["version"], "--split",
          "synth_train", "--no-validate"], "split 'synth_train' of"),
        ([other_network, "--work-dir", work_dir, "--max-iters", "2", "--resume"], "iter_1.pth: weights do not fit"),
        ([config, "--work-dir", work_dir, "--max-iters", "2", "--resume", *data, "--split", "synth_val"],
         "its run had another train_dataloader.dataset than"),
        ([config, "--work-dir", work_dir, "--max-iters", "2", "--resume", "--cfg-options", "randomness.seed=3"],
         "its run had another randomness than"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit):
            main(argv)
        assert message in capsys.readouterr().err, argv
        assert open(os.path.join(work_dir, "last_checkpoint")).read() == pointer
        assert not os.path.exists(os.path.join(work_dir, "iter_2.pth"))
    shipped = str(tmp_path / "model.pth")
    main([config, "--work-dir", work_dir, "--max-iters", "2", "--resume", "--no-validate", "--export", shipped])
    assert checkpoint_meta(shipped)["iteration"] == 2
    with pytest.raises(SystemExit):  # the README's warm start (load_from) with weights of another network
        main([other_network, "--work-dir", str(tmp_path / "warm"), "--max-iters", "1", "--no-validate",
              "--cfg-options", f"load_from={shipped}"])
    assert f"{shipped}: weights do not fit" in capsys.readouterr().err and not os.path.exists(tmp_path / "warm")


def test_an_export_carries_the_run_s_own_seed_data_inputs_and_validation(synthetic_root, tmp_path, capsys):
    """--export-only records the run as its checkpoint saved its config (it recorded the exporting command's seed,
    data and inputs); a validation of an earlier iteration is not the exported weights' (a resume without
    validating carried it)."""
    config = write_tiny_config(tmp_path, synthetic_root)
    work_dir, shipped = str(tmp_path / "run"), str(tmp_path / "model.pth")
    main([config, "--work-dir", work_dir, "--max-iters", "3", "--time-budget-min", "1e-6", "--dataroot",
          str(synthetic_root), "--version", TINY_WORLD["version"], "--split", "synth_val", "--cfg-options",
          "randomness.seed=5"])  # stops at iteration 1, validated
    main([config, "--work-dir", work_dir, "--export", shipped, "--export-only"])
    meta = checkpoint_meta(shipped)
    assert (meta["seed"], meta["data"]["split"], meta["iteration"]) == (5, "synth_val", 1)
    assert meta["validation"] == json.load(open(os.path.join(work_dir, "last_validation.json")))["metrics"]
    main([config, "--work-dir", work_dir, "--max-iters", "3", "--resume", "--no-validate", "--dataroot",
          str(synthetic_root), "--version", TINY_WORLD["version"], "--split", "synth_val", "--cfg-options",
          "randomness.seed=5", "--export", shipped])
    meta = checkpoint_meta(shipped)
    assert meta["iteration"] == 3 and meta["validation"] is None
    one_sweep = str(tmp_path / "one_sweep")
    main([config, "--work-dir", one_sweep, "--max-iters", "1", "--no-validate", "--cfg-options",
          "model_inputs.lidar_sweeps=1"])
    with pytest.raises(SystemExit):  # trained on one LiDAR sweep: not a model of the config's two
        main([config, "--work-dir", one_sweep, "--export", str(tmp_path / "mixed.pth"), "--export-only"])
    assert "trained on inputs" in capsys.readouterr().err and not os.path.exists(tmp_path / "mixed.pth")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun_train(*args: str) -> subprocess.CompletedProcess:
    """tools/train.py ``args`` in two CPU processes on gloo."""
    env = tree_under_test_env(OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
               "127.0.0.1", "--master_port", str(_free_port()), str(REPO_ROOT / "tools" / "train.py"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)


def test_torchrun_two_cpu_processes_on_gloo(synthetic_root, tmp_path):
    config = write_tiny_config(tmp_path, synthetic_root)
    work_dir = str(tmp_path / "ddp")
    result = _torchrun_train(config, "--work-dir", work_dir, "--max-iters", "2", "--no-validate")
    assert result.returncode == 0, result.stderr[-3000:]
    log = "".join(open(os.path.join(root, name)).read() for root, _, names in os.walk(work_dir)
                  for name in names if name.endswith(".log"))
    assert "world_size: 2" in log or "Distributed launcher: pytorch" in log
    checkpoint = state_at(work_dir, 2)
    assert checkpoint["meta"]["iter"] == 2


def test_torchrun_resumed_after_a_kill_equals_an_uninterrupted_run(synthetic_root, tmp_path):
    """Both processes draw modality dropout from torch's generator, seeded alike (the configs' randomness): each
    resumed process gets rank 0's streams back, which are its own."""
    plain = write_tiny_config(tmp_path, synthetic_root, modality_dropout=0.5)
    (tmp_path / "killed").mkdir()
    killed = write_tiny_config(tmp_path / "killed", synthetic_root, f"""{KILLS_IMPORT}
custom_hooks = [dict(type='KillAfterIteration', iteration=2)]""", modality_dropout=0.5)
    uninterrupted, resumed = str(tmp_path / "uninterrupted"), str(tmp_path / "resumed")
    common = ("--max-iters", "4", "--no-validate")
    result = _torchrun_train(plain, "--work-dir", uninterrupted, *common)
    assert result.returncode == 0, result.stderr[-3000:]
    result = _torchrun_train(killed, "--work-dir", resumed, *common)
    assert "killed after iteration 2" in result.stderr and not os.path.exists(os.path.join(resumed, "iter_3.pth"))
    result = _torchrun_train(plain, "--work-dir", resumed, *common, "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    expected, actual = state_at(uninterrupted, 4), state_at(resumed, 4)
    for name, value in expected["state_dict"].items():
        assert torch.equal(actual["state_dict"][name], value), name


def test_time_budget_ends_training_with_a_saved_last_iteration(synthetic_root, tmp_path):
    config = write_tiny_config(tmp_path, synthetic_root)
    work_dir = str(tmp_path / "budget")
    main([config, "--work-dir", work_dir, "--max-iters", "50", "--no-validate", "--time-budget-min", "1e-6"])
    assert state_at(work_dir, 1)["meta"]["iter"] == 1
    assert not os.path.exists(os.path.join(work_dir, "iter_2.pth"))
    assert open(os.path.join(work_dir, "last_checkpoint")).read().endswith("iter_1.pth")


class _Loop:
    def __init__(self, max_iters: int):
        self._max_iters = max_iters


class _Runner:
    """What the hooks read of mmengine's Runner: the model, the iteration, the loop's length."""

    def __init__(self, model=None, iteration: int = 0, max_iters: int = 50):
        self.model, self.iter, self.train_loop = model, iteration, _Loop(max_iters)

    @property
    def max_iters(self) -> int:
        return self.train_loop._max_iters


def test_random_state_hook_gives_back_every_stream_once_where_the_checkpoint_stood():
    # the oracle: the draws an uninterrupted run makes right after saving, from each of the four streams
    import random
    import types

    import numpy as np

    from perception.engine.hooks import RandomStateHook
    from perception.models.adversarial import AdversarialConfig, AdversarialTraining

    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    runner = _Runner(types.SimpleNamespace(adversarial=AdversarialTraining(AdversarialConfig(seed=3))))
    adversarial = runner.model.adversarial
    checkpoint = {}
    RandomStateHook().before_save_checkpoint(runner, checkpoint)

    def draws():
        return (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random(), adversarial._random.random())

    uninterrupted = [draws(), draws()]
    draws()  # the streams move on (a killed run, a new process)
    hook = RandomStateHook()
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train_iter(runner, 0)
    first = draws()
    hook.before_train_iter(runner, 1)  # given back once only: the second iteration draws on
    assert [first, draws()] == uninterrupted
    old = RandomStateHook()  # a checkpoint of before the hook: nothing to give back, the streams are left alone
    old.after_load_checkpoint(runner, {})
    torch.manual_seed(9)
    expected = torch.rand(3)
    torch.manual_seed(9)
    old.before_train_iter(runner, 0)
    assert torch.equal(torch.rand(3), expected)
    # a validation leaves every stream where it found it: what training draws next is what it would have drawn
    adversarial_state = adversarial.random_state
    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    expected = draws()
    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    adversarial.random_state = adversarial_state
    validating = RandomStateHook()
    validating.before_val(runner)
    draws()  # the validation's own draws (its DataLoader's seed)
    validating.after_val(runner)
    assert draws() == expected


def test_random_state_hook_leaves_the_attack_stream_alone_where_the_checkpoint_kept_none():
    """A resume that adds adversarial training (a resume checks the data and the seed, not the model) from a
    checkpoint of a run without it, whose random_state holds no attack stream: torch's stream is given back, the
    attack draws on from its own seed (setting numpy's generator state to None raised a TypeError)."""
    import types

    from perception.engine.hooks import RandomStateHook
    from perception.models.adversarial import AdversarialConfig, AdversarialTraining

    checkpoint = {}
    torch.manual_seed(5)
    RandomStateHook().before_save_checkpoint(_Runner(types.SimpleNamespace()), checkpoint)
    assert checkpoint["random_state"]["adversarial"] is None
    expected_torch = torch.rand(3)
    expected_attack = AdversarialTraining(AdversarialConfig(seed=3))._random.random()
    adversarial = AdversarialTraining(AdversarialConfig(seed=3))
    runner = _Runner(types.SimpleNamespace(adversarial=adversarial))
    hook = RandomStateHook()
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train_iter(runner, 0)
    assert torch.equal(torch.rand(3), expected_torch) and adversarial._random.random() == expected_attack


def test_random_state_hook_gives_back_the_cuda_generator(monkeypatch):
    """(A GPU run's dropout and modality dropout draw from the CUDA generator, which no checkpoint kept.) The CUDA
    calls stand in for a device: the state saved is the one given back before the first iteration after a resume,
    and a checkpoint saved without one, or read where there is none, leaves it alone."""
    import types

    from perception.engine.hooks import RandomStateHook

    device = {"state": torch.tensor([1, 2, 3], dtype=torch.uint8), "set": []}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda: device["state"].clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state: device["set"].append(state.tolist()))
    runner = _Runner(types.SimpleNamespace())
    checkpoint = {}
    RandomStateHook().before_save_checkpoint(runner, checkpoint)
    device["state"] = torch.tensor([9, 9, 9], dtype=torch.uint8)  # the generator moves on
    hook = RandomStateHook()
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train_iter(runner, 0)
    assert device["set"] == [[1, 2, 3]]
    without = {key: value for key, value in checkpoint["random_state"].items() if key != "cuda"}
    for state, available in ((without, True), (checkpoint["random_state"], False)):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
        hook.after_load_checkpoint(runner, {"random_state": state})
        hook.before_train_iter(runner, 0)
    assert device["set"] == [[1, 2, 3]]


def test_time_budget_makes_the_iteration_that_spends_it_the_last():
    from perception.engine.hooks import TrainTimeBudgetHook

    spent, plenty = TrainTimeBudgetHook(1e-9), TrainTimeBudgetHook(3600.0)
    runner = _Runner(iteration=6, max_iters=50)  # runner.iter 6: the 7th iteration just ended
    for hook in (spent, plenty):
        hook.before_train(runner)
    time.sleep(0.01)  # more than the 1e-9 s budget, by far
    plenty.after_train_iter(runner, 6)
    assert runner.max_iters == 50
    spent.after_train_iter(runner, 6)
    assert runner.max_iters == 7
    last = _Runner(iteration=49, max_iters=50)
    spent.after_train_iter(last, 49)
    assert last.max_iters == 50
    with pytest.raises(ValueError, match="budget_s must be > 0"):
        TrainTimeBudgetHook(0.0)


def test_export_checkpoint_writes_the_runs_weights_and_its_iteration(tmp_path):
    from perception.engine.adapters import RESUME_SCHEME
    from perception.engine.checkpoint import export_checkpoint, read_training_checkpoint, resume_source
    from perception.models import ModelInputs

    weights = {"conv.weight": torch.arange(6.0).reshape(2, 3), "norm.num_batches_tracked": torch.tensor(7)}
    training = tmp_path / "iter_7.pth"
    torch.save({"state_dict": weights, "meta": {"iter": 7, "epoch": 2, "seed": 0}, "optimizer": {}}, training)
    inputs = ModelInputs(3, 2, (704, 256), ("lidar", "camera"))
    meta = export_checkpoint(read_training_checkpoint(str(training)), str(tmp_path / "out" / "model.pth"),
                             dict(config="x.py"), inputs)
    shipped = torch.load(tmp_path / "out" / "model.pth", weights_only=True)
    assert shipped["meta"] == meta
    assert meta["iteration"] == 7 and meta["epoch"] == 2 and meta["config"] == "x.py"
    assert meta["inputs"] == {"lidar_sweeps": 3, "radar_sweeps": 2, "image_size": [704, 256],
                              "sensors": ["lidar", "camera"]}
    assert shipped["state_dict"].keys() == weights.keys()
    assert all(torch.equal(shipped["state_dict"][name], value) for name, value in weights.items())
    assert resume_source(str(tmp_path / "empty")) is None
    (tmp_path / "last_checkpoint").write_text(str(training))
    assert resume_source(str(tmp_path)) == RESUME_SCHEME + str(training)


def test_an_exported_checkpoint_s_meta_is_plain_json_with_the_config_s_format_and_inputs(tmp_path):
    import numpy as np

    from perception.engine.checkpoint import export_checkpoint, read_training_checkpoint, save_checkpoint
    from perception.models import CHECKPOINT_FORMAT, ModelInputs

    # mmengine's meta may hold numpy scalars (tests/engine/test_adapters.py): the iteration and epoch are written as
    # Python ints, so that the file loads with weights_only=True
    training = tmp_path / "iter_7.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": {"iter": np.int64(7), "epoch": np.int64(2)}}, training)
    inputs = ModelInputs(1, 1, None, ("lidar",))
    # the meta given (here a base checkpoint's, with its own format and inputs) does not overrule the format and
    # the inputs of the config exported for
    given = dict(config="x.py", format="perception-state-dict-v0", inputs=dict(lidar_sweeps=10))
    meta = export_checkpoint(read_training_checkpoint(str(training)), str(tmp_path / "model.pth"), given, inputs)
    shipped = torch.load(tmp_path / "model.pth", weights_only=True)["meta"]
    assert shipped == meta and type(meta["iteration"]) is int and type(meta["epoch"]) is int
    assert (meta["iteration"], meta["epoch"], meta["config"], meta["format"]) == (7, 2, "x.py", CHECKPOINT_FORMAT)
    assert meta["inputs"] == {"lidar_sweeps": 1, "radar_sweeps": 1, "image_size": None, "sensors": ["lidar"]}
    for bad in (dict(seed=np.int64(3)), dict(sizes={1, 2})):  # not JSON: refused before any file is written
        with pytest.raises(ValueError, match="save_checkpoint: meta must be JSON-serialisable"):
            save_checkpoint({"w": torch.ones(2)}, str(tmp_path / "bad" / "model.pth"), bad, inputs)
    assert not (tmp_path / "bad").exists()


def test_a_split_of_another_data_root_replaces_a_config_s_several_worlds(synthetic_root, tmp_path, capsys):
    """--dataroot / --version / --split (tools/finetune.py's, and compare_finetuning's scratch row): a config that
    trains on several worlds (a ConcatDataset) trains on that one split (with --cfg-options the scratch row failed
    inside mmengine's ConcatDataset)."""
    from mmengine.config import Config

    data = ["--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"], "--split", "synth_train"]
    work_dir = tmp_path / "run"
    main([str(REPO_ROOT / "configs" / "fusion_tiny_worlds.py"), *data, "--max-iters", "1", "--no-validate",
          "--work-dir", str(work_dir), "--cfg-options", "train_dataloader.num_workers=0",
          "train_dataloader.persistent_workers=False"])
    dataset = Config.fromfile(work_dir / "fusion_tiny_worlds.py").train_dataloader.dataset
    assert (dataset.type, dataset.dataroot, dataset.split) == ("FrameDataset", str(synthetic_root), "synth_train")
    for argv, message in ((data[:4], "--dataroot, --version and --split go together (got only --dataroot, --version)"),
                          (["--val-split", "synth_val"], "--val-split names a split of --dataroot")):
        with pytest.raises(SystemExit):
            main([str(REPO_ROOT / "configs" / "fusion_tiny.py"), *argv, "--work-dir", str(tmp_path / "refused")])
        assert message in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
