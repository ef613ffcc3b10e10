"""configs/fusion_tiny_robust.py: fusion_tiny's network with the shipped weights, corruption augmentation in the
train pipeline and the adversarial option, as the config writes them."""
from mmengine.config import Config

from perception.datasets.transforms import Compose, RandomCorruption
from perception.engine.data import build_transform
from perception.models import load_detector
from perception.models.adversarial import AdversarialConfig
from perception.paths import REPO_ROOT

CONFIG = REPO_ROOT / "configs" / "fusion_tiny_robust.py"


def test_robust_config_fine_tunes_the_shipped_network_with_corruptions_and_fgsm():
    config = Config.fromfile(str(CONFIG))
    pipeline = build_transform(config.train_dataloader.dataset.transform)
    assert isinstance(pipeline, Compose)
    corruption = pipeline.transforms[0]  # first: before the global transforms move the sensors
    assert isinstance(corruption, RandomCorruption) and set(corruption.corruptions) == {"lidar", "camera", "radar"}
    assert len(pipeline.transforms) == len(Config.fromfile(str(REPO_ROOT / "configs" / "fusion_tiny.py"))
                                           .train_dataloader.dataset.transform) + 1
    # The adversarial option adds no weight: the shipped checkpoint loads into the robust network as it is.
    detector = load_detector(CONFIG, REPO_ROOT / "checkpoints" / "fusion_tiny.pth")
    assert detector.adversarial.config == AdversarialConfig(method="fgsm", epsilon_pixels=2 / 255, epsilon_points=0.02,
                                                            probability=0.3, seed=0)


def test_adversarial_corruption_training_runs_under_the_runner(synthetic_root, tmp_path, monkeypatch):
    """Two iterations of tools/train.py on the tiny world with PGD on every batch and LiDAR corruptions: the
    attack runs once per iteration and the trained weights stay finite."""
    import torch

    from perception.cli.train import main
    from perception.models import adversarial
    from tests.engine.test_train import state_at, write_tiny_config

    attacked = []
    original = adversarial.adversarial_batch
    def counted(loss_of, batch, config):
        attacked.append(config.method)
        return original(loss_of, batch, config)

    monkeypatch.setattr(adversarial, "adversarial_batch", counted)
    extra = ("model['adversarial'] = dict(method='pgd', steps=2, step_size=0.5, probability=1.0)\n"
             "train_dataloader['dataset']['transform'] = [dict(type='RandomCorruption', probability=1.0, "
             "corruptions=dict(lidar=['beams_reducing', 'lidar_fog']))]")
    config = write_tiny_config(tmp_path, synthetic_root, extra)
    work_dir = str(tmp_path / "run")
    main([config, "--work-dir", work_dir, "--max-iters", "2", "--no-validate"])
    assert attacked == ["pgd", "pgd"]
    weights = state_at(work_dir, 2)["state_dict"]
    assert all(torch.isfinite(value).all() for value in weights.values() if value.is_floating_point())


def test_shipped_robust_checkpoint_is_not_the_shipped_model():
    """checkpoints/fusion_tiny_robust.pth (its card and loading: tests/engine/test_shipped_checkpoints.py) holds
    weights of its own: not the shipped fusion_tiny's."""
    import torch

    robust = torch.load(REPO_ROOT / "checkpoints" / "fusion_tiny_robust.pth", map_location="cpu", weights_only=True)
    assert robust["meta"]["config"] == "configs/fusion_tiny_robust.py"
    base = torch.load(REPO_ROOT / "checkpoints" / "fusion_tiny.pth", map_location="cpu", weights_only=True)
    assert robust["state_dict"].keys() == base["state_dict"].keys()
    assert any(not torch.equal(robust["state_dict"][key], base["state_dict"][key])
               for key in base["state_dict"] if base["state_dict"][key].is_floating_point())
