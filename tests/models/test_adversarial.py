"""Adversarial training (perception.models.adversarial): budgets, the loss it raises, PGD against FGSM, the
detector's option."""
import dataclasses

import pytest
import torch

from perception.models import BEVFusionDetector, FusionBatch
from perception.models.adversarial import AdversarialConfig, adversarial_batch
from tests.models.helpers import make_frame, tiny_model, tiny_model_config

EPSILON_PIXELS, EPSILON_POINTS = 4.0 / 255.0, 0.05


@pytest.fixture(scope="module")
def batch():
    frames = [make_frame(0), make_frame(1)]
    frames[1] = dataclasses.replace(frames[1], cameras={c: v for c, v in list(frames[1].cameras.items())[:4]})
    return FusionBatch.from_frames(frames)  # frame 1 lacks its last two cameras


def _total_loss(model):
    return lambda inputs: model.parse_losses(model(inputs, mode="loss"))[0]


def _config(**changes) -> AdversarialConfig:
    return AdversarialConfig(**{"epsilon_pixels": EPSILON_PIXELS, "epsilon_points": EPSILON_POINTS, **changes})


def test_fgsm_stays_within_the_budget_and_raises_the_loss(batch):
    torch.manual_seed(0)
    model = tiny_model().train()
    loss_of = _total_loss(model)
    perturbed = adversarial_batch(loss_of, batch, _config(method="fgsm"))
    # Budgets by hand: intensity / 255, RCS / 20, velocities / 10 are what the pillar nets see.
    change = (perturbed.images - batch.images).abs()
    assert change.max() <= EPSILON_PIXELS + 1e-6 and change.max() > EPSILON_PIXELS / 2
    assert perturbed.images.min() >= 0 and perturbed.images.max() <= 1
    assert torch.equal(perturbed.images[1, 4:], batch.images[1, 4:])  # absent cameras stay black
    lidar_change = (perturbed.lidar - batch.lidar).abs().amax(dim=0)
    assert lidar_change[4] == pytest.approx(EPSILON_POINTS * 255.0, rel=1e-5)
    assert torch.equal(perturbed.lidar[:, [0, 1, 2, 3, 5]], batch.lidar[:, [0, 1, 2, 3, 5]])  # batch, xyz, time lag
    radar_change = (perturbed.radar - batch.radar).abs().amax(dim=0)
    assert radar_change[4:7].tolist() == pytest.approx([EPSILON_POINTS * 20.0, EPSILON_POINTS * 10.0,
                                                        EPSILON_POINTS * 10.0], rel=1e-5)
    assert torch.equal(perturbed.radar[:, [0, 1, 2, 3, 7]], batch.radar[:, [0, 1, 2, 3, 7]])
    assert all(p.grad is None for p in model.parameters())  # gradients taken with respect to the inputs only
    with torch.no_grad():
        assert float(loss_of(perturbed)) > float(loss_of(batch))


def test_pgd_with_one_whole_step_is_fgsm_and_more_steps_stay_in_the_budget(batch):
    torch.manual_seed(0)
    model = tiny_model().train()
    fgsm = adversarial_batch(_total_loss(model), batch, _config(method="fgsm"))
    pgd = adversarial_batch(_total_loss(model), batch, _config(method="pgd", steps=1, step_size=1.0))
    for name in ("images", "lidar", "radar"):
        assert torch.equal(getattr(pgd, name), getattr(fgsm, name)), name
    pgd = adversarial_batch(_total_loss(model), batch, _config(method="pgd", steps=3, step_size=0.5))
    assert (pgd.images - batch.images).abs().max() <= EPSILON_PIXELS + 1e-6
    assert (pgd.lidar - batch.lidar).abs().amax(dim=0)[4] <= EPSILON_POINTS * 255.0 + 1e-4  # float32 rounding


def test_a_sensor_the_model_lacks_is_left_alone(batch):
    model = tiny_model(sensors=("lidar",)).train()
    perturbed = adversarial_batch(_total_loss(model), batch, _config())
    assert torch.equal(perturbed.images, batch.images) and torch.equal(perturbed.radar, batch.radar)
    assert not torch.equal(perturbed.lidar, batch.lidar)


def test_the_detector_option_is_off_by_default_and_trains_on_the_perturbed_batch(batch):
    assert tiny_model().adversarial is None
    torch.manual_seed(0)
    clean_model = tiny_model().train()
    adversarial = dict(method="fgsm", epsilon_pixels=EPSILON_PIXELS, epsilon_points=EPSILON_POINTS)
    model = BEVFusionDetector(**tiny_model_config(), adversarial=adversarial).train()
    model.load_state_dict(clean_model.state_dict())
    expected = adversarial_batch(_total_loss(clean_model), batch, AdversarialConfig(**adversarial))
    losses = model(batch, mode="loss")
    for name, value in clean_model(expected, mode="loss").items():
        assert torch.allclose(losses[name], value), name
    never = BEVFusionDetector(**tiny_model_config(), adversarial=dict(adversarial, probability=0.0)).train()
    never.load_state_dict(clean_model.state_dict())
    for name, value in clean_model(batch, mode="loss").items():
        assert torch.allclose(never(batch, mode="loss")[name], value), name


@pytest.mark.parametrize("changes, message", [(dict(method="bim"), "method"), (dict(epsilon_points=-1.0), "budgets"),
                                              (dict(steps=0), "steps"), (dict(probability=1.5), "probability")])
def test_bad_settings_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        AdversarialConfig(**changes)


def test_pgd_keeps_every_step_in_the_image_range(batch):
    """A loss that peaks at 1.002 (hand-worked): from 0.999, steps of 0.5 x 0.01. Kept in [0, 1] after each step,
    the images climb to 1 and stay there; left outside after the first (1.004), the second step would bring them
    back down to 0.999."""
    start = dataclasses.replace(batch, images=torch.full_like(batch.images, 0.999))

    def loss_of(inputs):
        return -((inputs.images - 1.002) ** 2).sum()

    moved = adversarial_batch(loss_of, start, _config(method="pgd", steps=2, step_size=0.5, epsilon_pixels=0.01))
    present = moved.images[start.camera_valid]  # an absent camera has no budget
    assert torch.allclose(present, torch.ones_like(present))
