"""load_detector: shipped checkpoints load with weights_only=True and reproduce the model; bad inputs fail clearly."""
import json

import numpy as np
import pytest
import torch

from perception.models import CHECKPOINT_FORMAT, load_detector
from perception.models.detector import resize_cameras
from tests.models.helpers import IMAGE_H, IMAGE_W, make_frame, tiny_model, tiny_model_config


def write_config(folder) -> str:
    path = folder / "tiny.py"
    path.write_text(f"model = dict(type='BEVFusionDetector', **{json.dumps(tiny_model_config())})\n")
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
    assert len(model.detect([big])) == 1  # no size error: detect resizes


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
    with pytest.raises(Exception, match="weights_only"):
        load_detector(config, pickled)
