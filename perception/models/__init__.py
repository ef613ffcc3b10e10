"""The BEV fusion network (encoders -> fuser -> decoder -> CenterPoint head), registered in mmengine's MODELS,
and ``load_detector`` for the shipped checkpoints."""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple, Optional, Tuple, Union

import torch
from mmengine.config import Config

from perception.models.batch import FusionBatch
from perception.models.decoder import BEVDecoder
from perception.models.detector import BEVFusionDetector, FusionBatchPreprocessor
from perception.models.encoders import CameraEncoder, LidarEncoder, RadarEncoder
from perception.models.fuser import ConvFuser
from perception.models.grid import BEVGrid
from perception.models.heads import CenterHead
from perception.models.registry import MODELS

for _encoder in (CameraEncoder, LidarEncoder, RadarEncoder):
    MODELS.register_module(module=_encoder)

CHECKPOINT_FORMAT = "perception-state-dict-v1"
"""``checkpoint['meta']['format']`` of a shipped checkpoint: {'state_dict': {name: tensor}, 'meta': JSON dict}."""


class ModelInputs(NamedTuple):
    """What a model config was trained on: LiDAR and radar sweeps per frame, camera image size (W, H)."""
    lidar_sweeps: int
    radar_sweeps: int
    image_size: Optional[Tuple[int, int]]


def model_inputs(config: Union[str, Path, Config]) -> ModelInputs:
    """The config's ``lidar_sweeps`` / ``radar_sweeps`` / ``image_size`` (the loader's defaults 10 / 6 / none where
    it names none): the inputs to give the model at evaluation, replay and benchmark."""
    config = config if isinstance(config, Config) else Config.fromfile(str(config))
    image_size = config.get("image_size")
    return ModelInputs(int(config.get("lidar_sweeps", 10)), int(config.get("radar_sweeps", 6)),
                       None if image_size is None else (int(image_size[0]), int(image_size[1])))


def build_detector(config: Union[str, Path, Config]) -> BEVFusionDetector:
    """The (untrained) detector of an mmengine config file or Config (its ``model`` entry)."""
    config = config if isinstance(config, Config) else Config.fromfile(str(config))
    return MODELS.build(config.model)


def load_detector(config_path: Union[str, Path], checkpoint_path: Union[str, Path], device: str = "cpu"
                  ) -> BEVFusionDetector:
    """The trained detector (a perception.detector.Detector, in eval mode on ``device``).

    ``checkpoint_path``: a shipped checkpoint ({'state_dict', 'meta'} with plain tensors and JSON-able meta, see
    perception.engine.checkpoint.export_checkpoint), read with torch.load(weights_only=True). Raises
    FileNotFoundError for a missing file and ValueError naming the file when the weights do not fit the config.
    """
    for path in (config_path, checkpoint_path):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
    detector = build_detector(config_path)
    checkpoint = torch.load(str(checkpoint_path), map_location=device, weights_only=True)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{checkpoint_path}: not a perception checkpoint (expected a dict with 'state_dict' and "
                         f"'meta'; export a training checkpoint with tools/train.py --export)")
    try:
        detector.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as error:
        raise ValueError(f"{checkpoint_path}: weights do not fit {config_path}: {error}") from error
    return detector.to(device).eval()


def checkpoint_meta(checkpoint_path: Union[str, Path]) -> dict:
    """The JSON meta of a shipped checkpoint (training command, data, iterations, metrics)."""
    checkpoint = torch.load(str(checkpoint_path), map_location="cpu", weights_only=True)
    return json.loads(json.dumps(checkpoint.get("meta", {})))


__all__ = ["BEVDecoder", "BEVFusionDetector", "BEVGrid", "CHECKPOINT_FORMAT", "CameraEncoder", "CenterHead",
           "ConvFuser", "FusionBatch", "FusionBatchPreprocessor", "LidarEncoder", "ModelInputs", "RadarEncoder",
           "build_detector", "model_inputs",
           "checkpoint_meta", "load_detector"]
