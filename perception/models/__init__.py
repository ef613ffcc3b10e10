"""The BEV fusion network (encoders -> fuser -> decoder -> CenterPoint head), registered in mmengine's MODELS,
and ``load_detector`` for the shipped checkpoints."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import NamedTuple, Optional, Tuple, Union

import torch
from mmengine.config import Config

from perception.models.batch import FusionBatch
from perception.models.bevfusion import BEVFusionDetector, FusionBatchPreprocessor
from perception.models.decoder import BEVDecoder
from perception.models.encoders import CameraEncoder, LidarEncoder, RadarEncoder
from perception.models.fuser import ConvFuser
from perception.models.grid import BEVGrid
from perception.models.heads import CenterHead
from perception.jsonfile import as_read_back
from perception.registry import MODELS
from perception.sensors import SENSOR_GROUPS

for _encoder in (CameraEncoder, LidarEncoder, RadarEncoder):
    MODELS.register_module(module=_encoder)

CHECKPOINT_FORMAT = "perception-state-dict-v1"
"""``checkpoint['meta']['format']`` of a shipped checkpoint: {'state_dict': {name: tensor}, 'meta': JSON dict}."""


class ModelInputs(NamedTuple):
    """What a model takes in, as its config's ``model_inputs`` block states it: LiDAR and radar sweeps per frame
    (the keyframe's included), camera image size (W, H) or None, and the sensor groups it reads (SENSOR_GROUPS
    order: the block's ``sensors`` where given, a subset of the config's encoders, else every encoder's group; a
    group with an encoder that the model does not read is never loaded and enters the fuser as missing)."""
    lidar_sweeps: int
    radar_sweeps: int
    image_size: Optional[Tuple[int, int]]
    sensors: Tuple[str, ...]

    def to_meta(self) -> dict:
        """JSON form, as export_checkpoint records it in a checkpoint's meta ('inputs')."""
        return dict(lidar_sweeps=self.lidar_sweeps, radar_sweeps=self.radar_sweeps,
                    image_size=None if self.image_size is None else list(self.image_size), sensors=list(self.sensors))


def model_inputs(config: Union[str, Path, Config]) -> ModelInputs:
    """The config's ``model_inputs`` block: the one source of what the dataloaders load
    (perception.engine.data.apply_model_inputs) and what evaluation, replay and benchmark feed the model.

    Raises ValueError naming the config when the block is missing or incomplete, when the camera encoder's
    image_size differs from the block's, or when its ``sensors`` names a group without an encoder."""
    config = config if isinstance(config, Config) else Config.fromfile(str(config))
    block = config.get("model_inputs")
    missing = [key for key in ("lidar_sweeps", "radar_sweeps", "image_size") if block is None or key not in block]
    if missing:
        raise ValueError(f"{config.filename}: model_inputs lacks {', '.join(missing)} (see "
                         f"configs/_base_/fusion_model.py)")
    image_size = block["image_size"]
    image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
    encoders = config.model.get("encoders", {})
    camera = encoders.get("camera")
    if camera is not None and tuple(camera.get("image_size", ())) != image_size:
        raise ValueError(f"{config.filename}: the camera encoder's image_size {camera.get('image_size')} differs "
                         f"from model_inputs.image_size {block['image_size']}; give both the same variable")
    read = block.get("sensors")
    if read is not None and not set(read) <= set(encoders):
        raise ValueError(f"{config.filename}: model_inputs.sensors {list(read)} names groups without an encoder "
                         f"(encoders: {list(encoders)})")
    sensors = tuple(group for group in SENSOR_GROUPS if group in encoders and (read is None or group in read))
    return ModelInputs(int(block["lidar_sweeps"]), int(block["radar_sweeps"]), image_size, sensors)


def model_config(config: Union[str, Path, Config]) -> dict:
    """The config's ``model`` entry with the sensor groups it reads (model_inputs) as ``sensors``: what
    build_detector and training build. Raises ValueError naming the config when ``model`` sets other sensors
    itself (set them once, in model_inputs)."""
    config = config if isinstance(config, Config) else Config.fromfile(str(config))
    sensors = list(model_inputs(config).sensors)
    if "sensors" in config.model and list(config.model["sensors"]) != sensors:
        raise ValueError(f"{config.filename}: model.sensors {list(config.model['sensors'])} differs from "
                         f"model_inputs' {sensors}; set them once, in model_inputs.sensors")
    return dict(config.model, sensors=sensors)


def build_detector(config: Union[str, Path, Config]) -> BEVFusionDetector:
    """The (untrained) detector of an mmengine config file or Config (its ``model`` entry)."""
    return MODELS.build(model_config(config))


def load_detector(config_path: Union[str, Path], checkpoint_path: Union[str, Path], device: str = "cpu",
                  check_inputs: bool = True) -> BEVFusionDetector:
    """The trained detector (a perception.detector.Detector, in eval mode on ``device``).

    ``checkpoint_path``: a shipped checkpoint ({'state_dict', 'meta'} with plain tensors and JSON-able meta, see
    perception.engine.checkpoint.export_checkpoint), read with torch.load(weights_only=True). Raises
    FileNotFoundError for a missing file, IsADirectoryError for a folder and ValueError naming the file when it is
    unreadable (truncated, not a checkpoint), when the weights do not fit the config, or when its meta records
    inputs ('inputs': sweeps, image size, sensors) other than the config's model_inputs (a checkpoint without them
    is accepted).
    """
    if not Path(config_path).is_file():
        raise FileNotFoundError(f"{config_path}: no such config")
    checkpoint = read_checkpoint(checkpoint_path, device)
    if check_inputs:
        check_trained_inputs(checkpoint, checkpoint_path, config_path)
    detector = build_detector(config_path)
    load_weights(detector, checkpoint["state_dict"], checkpoint_path, config_path)
    return detector.to(device).eval()


def check_trained_inputs(checkpoint: dict, checkpoint_path: Union[str, Path], config_path: Union[str, Path]) -> None:
    """ValueError naming both files when ``checkpoint`` (read_checkpoint's, of ``checkpoint_path``) records in its
    meta inputs ('inputs': sweeps, image size, sensors) other than ``config_path``'s model_inputs; a checkpoint
    without them passes."""
    trained_on = checkpoint.get("meta", {}).get("inputs")
    configured = model_inputs(config_path).to_meta()
    if trained_on is not None and trained_on != configured:
        raise ValueError(f"{checkpoint_path}: trained on inputs {trained_on}, but {config_path} gives "
                         f"{configured}; use the config it was trained with "
                         f"({checkpoint['meta'].get('config', 'see its meta')})")


def load_weights(detector: BEVFusionDetector, state_dict: dict, checkpoint_path: Union[str, Path],
                 config_path: Union[str, Path]) -> None:
    """Loads ``state_dict`` (read from ``checkpoint_path``) into ``detector`` (built from ``config_path``) strictly;
    ValueError naming both files when the weights do not fit the network."""
    try:
        detector.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        expected = detector.state_dict()
        problems = {"missing": [name for name in expected if name not in state_dict],
                    "unexpected": [name for name in state_dict if name not in expected],
                    "of another shape": [f"{name} {tuple(state_dict[name].shape)} for {tuple(tensor.shape)}"
                                         for name, tensor in expected.items()
                                         if name in state_dict and state_dict[name].shape != tensor.shape]}
        listed = "; ".join(f"{len(names)} {kind} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
                           for kind, names in problems.items() if names)
        raise ValueError(f"{checkpoint_path}: weights do not fit {config_path} (give the config it was trained "
                         f"with, named in its meta): {listed or error}") from error


def read_checkpoint(checkpoint_path: Union[str, Path], device: str = "cpu") -> dict:
    """torch.load(weights_only=True) of a shipped checkpoint; FileNotFoundError / IsADirectoryError / ValueError
    naming it when it is missing, a folder, unreadable (truncated, corrupt, or pickling more than tensors), not a dict
    with a 'state_dict', or of another CHECKPOINT_FORMAT than its meta's ``format`` (a checkpoint without one is
    read)."""
    if Path(checkpoint_path).is_dir():
        raise IsADirectoryError(f"{checkpoint_path}: a folder, not a checkpoint file (give the .pth file)")
    if not Path(checkpoint_path).is_file():
        raise FileNotFoundError(f"{checkpoint_path}: no such checkpoint (export one with tools/train.py --export)")
    try:
        checkpoint = torch.load(str(checkpoint_path), map_location=device, weights_only=True)
    except Exception as error:  # the unpickler fails on arbitrary bytes in many ways (KeyError, EOFError, ...)
        if isinstance(error, pickle.UnpicklingError) and "Unsupported global" in str(error):
            raise ValueError(f"{checkpoint_path}: not a shipped checkpoint (it pickles more than tensors: an "
                             f"mmengine training checkpoint? export it with tools/train.py CONFIG --work-dir ITS_RUN "
                             f"--export PATH --export-only)") from error
        raise ValueError(f"{checkpoint_path}: unreadable checkpoint (truncated or corrupt? copy it again): "
                         f"{type(error).__name__}: {error}") from error
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{checkpoint_path}: not a perception checkpoint (a {type(checkpoint).__name__}, not a dict)")
    if "state_dict" not in checkpoint:
        raise ValueError(f"{checkpoint_path}: not a perception checkpoint (expected a dict with 'state_dict' and "
                         f"'meta'; export a training checkpoint with tools/train.py --export)")
    written = checkpoint.get("meta", {}).get("format", CHECKPOINT_FORMAT)
    if written != CHECKPOINT_FORMAT:
        raise ValueError(f"{checkpoint_path}: written in checkpoint format {written!r}; this version reads "
                         f"{CHECKPOINT_FORMAT!r}")
    return checkpoint


def checkpoint_meta(checkpoint_path: Union[str, Path]) -> dict:
    """The JSON meta of a shipped checkpoint (training command, data, inputs, iterations, metrics)."""
    return as_read_back(read_checkpoint(checkpoint_path).get("meta", {}))


__all__ = ["BEVDecoder", "BEVFusionDetector", "BEVGrid", "CHECKPOINT_FORMAT", "CameraEncoder", "CenterHead",
           "ConvFuser", "FusionBatch", "FusionBatchPreprocessor", "LidarEncoder", "ModelInputs", "RadarEncoder",
           "build_detector", "model_inputs",
           "checkpoint_meta", "load_detector", "load_weights", "read_checkpoint"]
