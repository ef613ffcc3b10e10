"""The ego-state-only planner and the planning head's ego input: features from the past only, targets from the
logged drive, training lowers the loss, the checkpoint round-trips with weights_only=True and a wrong file is
named."""
import numpy as np
import pytest
import torch

from perception.cli.train_ego_mlp import main as train_main
from perception.datasets.ego_log import keyframe_lidar_pose
from perception.datasets.ego_log import past_ego_poses
from perception.datasets.splits import split_sample_tokens
from perception.decision.learned import EGO_FEATURE_HISTORY_S, ego_mlp_plan, past_ego_features
from perception.engine.ego_mlp import collect_examples, train_ego_mlp
from perception.engine.planning_data import logged_targets
from perception.models.ego_mlp import load_ego_mlp, save_ego_mlp
from perception.maneuvers import Maneuver
from perception.models.planning_types import EGO_FEATURES
from perception.paths import REPO_ROOT
from tests.conftest import TINY_WORLD


class _RaisesOnTheFuture:
    def __init__(self, nusc, limit_us):
        self.nusc, self.limit_us = nusc, limit_us

    def get(self, table, token):
        record = self.nusc.get(table, token)
        if record.get("timestamp", -1) > self.limit_us:
            raise AssertionError(f"read {table} {token} after the keyframe")
        return record


def test_features_read_no_future_record(nusc_synthetic):
    token = nusc_synthetic.get("sample", nusc_synthetic.scene[0]["first_sample_token"])["next"]
    guarded = _RaisesOnTheFuture(nusc_synthetic, keyframe_lidar_pose(nusc_synthetic, token).timestamp_us)
    (features,) = past_ego_features(guarded, [token])  # the ego MLP's and the planning head's input alike
    assert features.shape == (len(EGO_FEATURES),) and features[0] > 1.0  # the ego drives
    # 0.5 s before: behind the ego (x < 0) and logged; 2 s before lies before the log's start (0.5 s of sweeps
    # before the first keyframe, this one 0.5 s after it)
    history = features[4:].reshape(-1, 3)
    assert history[0, 0] < 0 and history[0, 2] == 1.0 and history[3, 2] == 0.0


def test_training_lowers_the_loss_and_the_checkpoint_round_trips(nusc_synthetic, tmp_path):
    tokens = [sample["token"] for sample in nusc_synthetic.sample]
    features, targets = collect_examples(nusc_synthetic, tokens)
    assert targets.trajectory_valid.any() and not targets.trajectory_valid.all()  # 1.5 s scenes: the end is masked
    assert (targets.maneuver == -1).all()  # too short for a 3 s label: counted as unlabelled
    assert not targets.lane_change_valid.any()  # the ego MLP does not judge feasibility
    assert logged_targets(nusc_synthetic, tokens[:2]).lane_change_valid.all()  # the planning head does
    untrained, before = train_ego_mlp(features, targets, epochs=0)
    model, after = train_ego_mlp(features, targets, epochs=50)
    assert after["loss_plan_trajectory"] < before["loss_plan_trajectory"]
    path = save_ego_mlp(model, tmp_path / "ego.pth", dict(split="test"))
    loaded = load_ego_mlp(path)
    trajectory, maneuver = ego_mlp_plan(loaded, past_ego_poses(nusc_synthetic, tokens[0], EGO_FEATURE_HISTORY_S))
    with torch.no_grad():
        expected = model(features[:1]).trajectory[0].numpy()
    assert np.allclose(trajectory, expected) and isinstance(maneuver, Maneuver)
    torch.save({"weights": 1}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other.pth: not an ego-MLP checkpoint"):
        load_ego_mlp(tmp_path / "other.pth")
    for name, content in (("text.pth", b"hello\n"), ("empty.pth", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=f"{name}: not an ego-MLP checkpoint \\([A-Za-z]+Error: "):
            load_ego_mlp(tmp_path / name)


def test_the_command_trains_on_several_worlds_paired_in_order(synthetic_root, nusc_synthetic, tmp_path):
    root = str(synthetic_root)
    summary = train_main(["--dataroot", root, "--split", "synth_train", "--dataroot", root, "--split", "synth_val",
                          "--version", TINY_WORLD["version"], "--epochs", "2", "--out", str(tmp_path / "ego.pth")])
    assert summary["frames"] == sum(len(split_sample_tokens(nusc_synthetic, split))
                                    for split in ("synth_train", "synth_val"))
    assert summary["data"] == [f"{root}:synth_train", f"{root}:synth_val"]
    card = torch.load(tmp_path / "ego.pth", map_location="cpu", weights_only=True)["meta"]
    assert card["command"] == f"python tools/train_ego_mlp.py --dataroot {root} --split synth_train --dataroot " \
        f"{root} --split synth_val --version {TINY_WORLD['version']} --epochs 2 --out {tmp_path / 'ego.pth'}"
    with pytest.raises(SystemExit):  # two data roots, one split
        train_main(["--dataroot", root, "--dataroot", root, "--split", "synth_val", "--out", str(tmp_path / "x.pth")])


def test_a_relative_out_is_written_where_the_command_runs(synthetic_root, tmp_path, monkeypatch, capsys):
    # it was resolved against the repository (an input path's rule), writing there from anywhere
    monkeypatch.chdir(tmp_path)
    train_main(["--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"], "--epochs", "1", "--out",
                "relative_ego.pth"])
    assert (tmp_path / "relative_ego.pth").is_file()
    assert not (REPO_ROOT / "relative_ego.pth").exists()
    # an --out that names a folder is refused before the examples are read (it failed after training)
    with pytest.raises(SystemExit):
        train_main(["--dataroot", str(synthetic_root), "--version", TINY_WORLD["version"], "--epochs", "1",
                    "--out", str(tmp_path)])
    assert f"--out {tmp_path}: exists and is not a file" in capsys.readouterr().err


def test_feasibility_targets_read_the_lane_map(nusc_synthetic, monkeypatch):
    """The planning head's feasibility targets need the neighbouring lane on the keyframe's lane map: with a map of
    the ego's own lane alone (hand-built, straight along the ego's x axis), no lane change is feasible, whatever the
    traffic; the tiny world's own map lets some be."""
    from perception.datasets.lane_map import LaneCentres
    from perception.eval import logged_drive

    tokens = [sample["token"] for sample in nusc_synthetic.sample]
    assert logged_targets(nusc_synthetic, tokens).lane_change_ok.any()
    one_lane = LaneCentres((np.array([[-80.0, 0.0], [80.0, 0.0]]),), 3.5)
    monkeypatch.setattr(logged_drive, "keyframe_lanes", lambda nusc, token, global_to_frame: one_lane)
    assert not logged_targets(nusc_synthetic, tokens).lane_change_ok.any()


def test_feasibility_targets_are_the_rule_planners_left_then_right(nusc_synthetic):
    """lane_change_ok (N, 2) is (left, right), row by row the rule planner's gap check on the keyframe's ground truth
    with its map's lanes, computed here again from the same inputs. The tiny world has a keyframe where only one
    side is free (the right), so a swap shows."""
    from perception.datasets.ground_truth import sample_ground_truth
    from perception.datasets.lane_map import keyframe_lanes
    from perception.decision import EgoState, decide

    tokens = [sample["token"] for sample in nusc_synthetic.sample]
    expected = []
    for token in tokens:
        truth = sample_ground_truth(nusc_synthetic, token, keyframe_lidar_pose(nusc_synthetic, token).ego_to_global)
        past = past_ego_poses(nusc_synthetic, token)
        lanes = keyframe_lanes(nusc_synthetic, token, past[-1].ego_to_global.inverse())
        decision = decide(truth.boxes, EgoState.from_poses(past), lanes=lanes)
        expected.append([float(decision.lane_change_left_ok), float(decision.lane_change_right_ok)])
    expected = np.array(expected)
    assert (expected[:, 0] != expected[:, 1]).any()  # a one-sided case occurs
    np.testing.assert_array_equal(logged_targets(nusc_synthetic, tokens).lane_change_ok.numpy(), expected)


def test_targets_follow_the_planner_config(nusc_synthetic):
    """The trajectory targets are at the given config's step times (here 1 s and 2 s), each the LIDAR_TOP ego pose
    of the keyframe that many seconds later (the tiny world's keyframes are 0.5 s apart) in the keyframe's ego
    frame, worked with the devkit's records and pyquaternion; a step past the scene's end is masked and finite
    (a NaN target would poison a masked loss: NaN x 0 is NaN). Feasibility is the given config's gap check: a
    50 m bumper-to-bumper gap no neighbour in the tiny world leaves, where the default config finds some."""
    from pyquaternion import Quaternion

    from perception.decision import PlannerConfig

    tokens = [sample["token"] for sample in nusc_synthetic.sample]
    config = PlannerConfig(horizon_steps=2, step_s=1.0, lane_change_min_gap_m=50.0)
    targets = logged_targets(nusc_synthetic, tokens, config)
    assert targets.trajectory.shape == (len(tokens), 2, 2) and torch.isfinite(targets.trajectory).all()

    def ego_pose(token):
        return nusc_synthetic.get("ego_pose", nusc_synthetic.get("sample_data", nusc_synthetic.get(
            "sample", token)["data"]["LIDAR_TOP"])["ego_pose_token"])

    for row, token in enumerate(tokens):
        later = token
        for step in range(2):
            for _ in range(2):  # two keyframes: 1 s
                later = later and nusc_synthetic.get("sample", later)["next"]
            assert bool(targets.trajectory_valid[row, step]) == bool(later), (row, step)
            if later:
                now, then = ego_pose(token), ego_pose(later)
                local = Quaternion(now["rotation"]).inverse.rotate(np.subtract(then["translation"], now["translation"]))
                np.testing.assert_allclose(targets.trajectory[row, step].numpy(), local[:2], atol=1e-3)
    assert targets.trajectory_valid[:, 0].any() and not targets.trajectory_valid[:, 1].any()  # 1.5 s scenes
    assert logged_targets(nusc_synthetic, tokens).lane_change_ok.any() and not targets.lane_change_ok.any()
