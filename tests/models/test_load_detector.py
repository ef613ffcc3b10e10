"""load_detector: shipped checkpoints load with weights_only=True and reproduce the model; bad inputs fail clearly."""
import json

import numpy as np
import pytest
import torch

from perception.models import CHECKPOINT_FORMAT, load_detector, model_inputs
from perception.models.bevfusion import resize_cameras
from tests.models.helpers import IMAGE_H, IMAGE_W, make_frame, tiny_model, tiny_model_config


TINY_INPUTS = dict(lidar_sweeps=3, radar_sweeps=2, image_size=[IMAGE_W, IMAGE_H])


def write_config(folder) -> str:
    path = folder / "tiny.py"
    path.write_text(f"model = dict(type='BEVFusionDetector', **{json.dumps(tiny_model_config())})\n"
                    f"model_inputs = {TINY_INPUTS!r}\n")
    return str(path)


def test_round_trip_gives_the_same_detections(tmp_path):
    torch.manual_seed(0)
    model = tiny_model().eval()
    with torch.no_grad():  # a non-trivial head so that some boxes pass the threshold
        model.head.heatmap[-1].bias.fill_(0.5)
    checkpoint = str(tmp_path / "model.pth")
    torch.save({"state_dict": model.state_dict(), "meta": {"format": CHECKPOINT_FORMAT}}, checkpoint)
    detector = load_detector(write_config(tmp_path), checkpoint)
    assert not detector.training and detector.sensors == frozenset({"lidar", "radar", "camera"})
    frames = [make_frame(0), make_frame(1)]
    expected, actual = model.detect(frames), detector.detect(frames)
    assert len(expected[0]) > 0
    for a, b in zip(expected, actual):
        assert np.allclose(a.centers, b.centers) and np.array_equal(a.labels, b.labels)


def test_detect_resizes_images_to_the_trained_size():
    frame = make_frame(0)
    big = resize_cameras(frame, (IMAGE_W * 2, IMAGE_H * 2))
    assert next(iter(big.cameras.values())).image.shape == (IMAGE_H * 2, IMAGE_W * 2, 3)
    back = resize_cameras(big, (IMAGE_W, IMAGE_H))
    view, original = back.cameras["CAM_FRONT"], frame.cameras["CAM_FRONT"]
    assert view.image.shape == original.image.shape
    assert view.intrinsics.fx == pytest.approx(original.intrinsics.fx)
    model = tiny_model().eval()
    model.head.heatmap[-1].bias.data.fill_(0.5)  # boxes pass the score threshold
    (resized_here,), (by_detect,) = model.detect([resize_cameras(big, (IMAGE_W, IMAGE_H))]), model.detect([big])
    assert len(by_detect) > 0  # detect resizes to the trained size: the same boxes as a frame resized beforehand
    np.testing.assert_allclose(by_detect.centers, resized_here.centers, atol=1e-5)
    np.testing.assert_array_equal(by_detect.labels, resized_here.labels)


def test_bad_checkpoints_fail_clearly(tmp_path):
    config = write_config(tmp_path)
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_detector(config, tmp_path / "absent.pth")
    other = tiny_model(sensors=("lidar",))
    wrong = str(tmp_path / "wrong.pth")
    torch.save({"state_dict": other.state_dict(), "meta": {}}, wrong)
    with pytest.raises(ValueError, match="do not fit"):
        load_detector(config, wrong)
    pickled = str(tmp_path / "pickled.pth")
    torch.save({"state_dict": {}, "meta": {"array": np.arange(3)}}, pickled)
    with pytest.raises(ValueError, match=r"pickled.pth: not a shipped checkpoint \(it pickles more than tensors: an "
                       r"mmengine training checkpoint\? export it with tools/train.py"):
        load_detector(config, pickled)  # as an mmengine training checkpoint does (its message hub, its history)
    truncated = tmp_path / "truncated.pth"
    torch.save({"state_dict": tiny_model().state_dict(), "meta": {}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated.pth: unreadable checkpoint"):
        load_detector(config, truncated)
    for name, content in (("text.pth", b"hello\n"), ("empty.pth", b"")):  # the unpickler raised KeyError / EOFError
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=f"{name}: unreadable checkpoint .*: [A-Za-z]+Error"):
            load_detector(config, tmp_path / name)
    future = str(tmp_path / "future.pth")
    torch.save({"state_dict": tiny_model().state_dict(), "meta": {"format": "perception-state-dict-v2"}}, future)
    with pytest.raises(ValueError, match="future.pth: written in checkpoint format 'perception-state-dict-v2'"):
        load_detector(config, future)


def test_checkpoint_trained_on_other_inputs_is_refused_unless_zero_shot(tmp_path):
    config = write_config(tmp_path)
    state_dict = tiny_model().state_dict()
    configured = dict(TINY_INPUTS, sensors=["lidar", "radar", "camera"])
    assert model_inputs(config).to_meta() == configured
    same, other = str(tmp_path / "same.pth"), str(tmp_path / "other.pth")
    torch.save({"state_dict": state_dict, "meta": {"inputs": configured}}, same)
    assert load_detector(config, same).sensors == frozenset(configured["sensors"])
    torch.save({"state_dict": state_dict, "meta": {"inputs": dict(configured, lidar_sweeps=10)}}, other)
    with pytest.raises(ValueError, match=r"other\.pth: trained on inputs .*'lidar_sweeps': 10.*tiny\.py gives"):
        load_detector(config, other)
    zero_shot = load_detector(config, other, check_inputs=False)  # the same network, evaluated at config's inputs
    assert all(torch.equal(zero_shot.state_dict()[name], value) for name, value in state_dict.items())
