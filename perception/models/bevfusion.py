"""``BEVFusionDetector``: encoders keyed by sensor -> fuser -> decoder -> head, as an mmengine model that is also
a ``perception.detector.Detector`` and, with the planning head, a
``perception.models.planning_head.PlanningDetector``."""
from __future__ import annotations

import dataclasses

from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.model import BaseDataPreprocessor, BaseModel
from torch import nn

from perception.datasets.frame import Frame
from perception.geometry import Boxes3D, resize_image
from perception.models.adversarial import AdversarialConfig, AdversarialTraining
from perception.models.batch import FusionBatch
from perception.models.decoder import BEVDecoder
from perception.models.fuser import ConvFuser, stack_features
from perception.models.grid import BEVGrid
from perception.models.heads import CenterHead
from perception.models.planning_head import PlanningHead
from perception.models.planning_types import PlanningOutputs
from perception.registry import MODELS
from perception.timing import StageTimer, stage


def resize_cameras(frame: Frame, image_size: Tuple[int, int]) -> Frame:
    """The frame with every camera image at ``image_size`` (W, H) and its intrinsics scaled to match."""
    views = {}
    for channel, view in frame.cameras.items():
        if view.image.shape[1::-1] != tuple(image_size):
            image, intrinsics = resize_image(view.image, view.intrinsics, image_size)
            view = dataclasses.replace(view, image=image, intrinsics=intrinsics)
        views[channel] = view
    return dataclasses.replace(frame, cameras=views)


@MODELS.register_module()
class FusionBatchPreprocessor(BaseDataPreprocessor):
    """Moves ``{'batch': FusionBatch}`` to the model's device (mmengine's default cannot see into dataclasses).
    ``{'unreadable': UnreadableFrame}`` (a batch with a file the readers reject: perception.engine.data.
    collate_fusion_batch) raises the reader's CorruptFileError here, in the main process."""

    def forward(self, data: dict, training: bool = False) -> dict:
        if "unreadable" in data:
            raise data["unreadable"].error()
        return {"batch": data["batch"].to(self.device)}


@MODELS.register_module()
class BEVFusionDetector(BaseModel):
    """A BEV fusion detector over any subset of the sensor groups lidar / radar / camera.

    ``grid``: dict(point_cloud_range=[6], cell_size=[2]) -> BEVGrid, given to every encoder and the head;
    ``encoders``: sensor -> encoder config (type registered in MODELS); the fuser's input channels come from the
    built encoders' ``out_channels``, the decoder's from the fuser's and the head's from the decoder's, so no
    channel count or grid shape is written twice. ``planning``: the PlanningHead's config, None for none (it
    reads the decoder's output and the batch's ego_state; its losses join the detection losses when the batch
    carries planning_targets, and 'predict' adds each frame's PlanningOutputs row as "plan"). ``adversarial``:
    AdversarialConfig's fields, None (the default) for none: in training, mode 'loss' takes its losses on the batch
    perturbed by FGSM / PGD (perception.models.adversarial). ``sensors``: the groups it reads, a subset of the
    encoders' (None: all; build_detector fills it in from the config's model_inputs); a group it does not read is
    missing to the fuser even where a frame carries it.
    """

    def __init__(self, grid: Mapping, encoders: Mapping[str, Mapping], fuser: Mapping, decoder: Mapping,
                 head: Mapping, data_preprocessor: Optional[Mapping] = None, init_cfg: Optional[Mapping] = None,
                 planning: Optional[Mapping] = None, adversarial: Optional[Mapping] = None,
                 sensors: Optional[Sequence[str]] = None):
        super().__init__(data_preprocessor=data_preprocessor or dict(type="FusionBatchPreprocessor"),
                         init_cfg=init_cfg)
        self.grid = BEVGrid.from_config(**grid)
        self.encoders = nn.ModuleDict(
            {sensor: MODELS.build(dict(config), default_args=dict(grid=self.grid))
             for sensor, config in encoders.items()})
        for sensor, encoder in self.encoders.items():
            if encoder.sensor != sensor:
                raise ValueError(f"encoders[{sensor!r}] is a {type(encoder).__name__}, which encodes "
                                 f"{encoder.sensor!r}")
        self.read_sensors = frozenset(self.encoders if sensors is None else sensors)
        if not self.read_sensors <= set(self.encoders):
            raise ValueError(f"sensors {sorted(self.read_sensors)} names groups without an encoder "
                             f"(encoders: {list(self.encoders)})")
        self.fuser = ConvFuser({sensor: e.out_channels for sensor, e in self.encoders.items()}, **fuser)
        self.decoder = BEVDecoder(self.fuser.out_channels, **decoder)
        self.head = CenterHead(self.decoder.out_channels, self.grid, **head)
        self.planning_head = None if planning is None else PlanningHead(self.decoder.out_channels, **planning)
        self.adversarial = None if adversarial is None else AdversarialTraining(AdversarialConfig(**adversarial))
        self.bev_graph: Optional[nn.Module] = None
        """A deployment's one graph of the fuser, decoder and head (perception.deploy.graphs.load_onnx_detector sets
        it): (the fuser's inputs) -> (the decoder's output, None unless the model plans; the head outputs)."""

    @property
    def sensors(self) -> FrozenSet[str]:
        """The sensor groups this detector reads (``sensors``; default every encoder's)."""
        return self.read_sensors

    def dense_modules(self) -> Dict[str, nn.Module]:
        """Module path -> submodule, for the submodules that hold all the weights the network runs with (the
        planning head's too, when the model has one; not the encoders of groups it does not read, which never run)
        and take and return tensors only (what perception.deploy exports as graphs); around them, kernels and glue
        with no weights."""
        parts = {f"encoders.{sensor}.{name}": getattr(encoder, name)
                 for sensor, encoder in self.encoders.items() if sensor in self.read_sensors
                 for name in encoder.dense_parts}
        parts.update(fuser=self.fuser, decoder=self.decoder)
        parts.update({f"head.{name}": getattr(self.head, name) for name in CenterHead.dense_parts})
        if self.planning_head is not None:
            parts.update({f"planning_head.{name}": self.planning_head.get_submodule(name)
                          for name in PlanningHead.dense_parts})
        return parts

    def encode(self, batch: FusionBatch, present: Mapping[str, torch.Tensor], timer: Optional[StageTimer] = None
               ) -> Tuple[Dict[str, Optional[torch.Tensor]], Dict[str, torch.Tensor]]:
        """Each encoder's BEV features (None where no frame of the batch has its sensor by ``present``, sensor ->
        (B,) bool) and auxiliary losses; ``timer`` times each encoder as stage "<sensor>_encoder"."""
        features, losses = {}, {}
        for sensor, encoder in self.encoders.items():
            if not bool(present[sensor].any()):
                features[sensor] = None
                continue
            with stage(timer, f"{sensor}_encoder"):
                features[sensor], encoder_losses = encoder(batch, timer)
            losses.update(encoder_losses)
        return features, losses

    def forward(self, batch: FusionBatch, mode: str = "tensor", timer: Optional[StageTimer] = None):
        """mode 'tensor': head outputs (see CenterHead.forward); 'loss': dict of losses (needs gt_boxes);
        'predict': one dict(sample_token, ego_pose, boxes: Boxes3D, sensors) per frame. ``timer`` times the
        stages of perception.timing.STAGES from the encoders to decode_nms."""
        if mode == "loss" and self.training and self.adversarial is not None:
            batch = self.adversarial(self, batch)
        # the frames that carry each sensor; none for a group this detector does not read
        present = {sensor: flags if sensor in self.read_sensors else torch.zeros_like(flags)
                   for sensor, flags in batch.present.items()}
        features, auxiliary_losses = self.encode(batch, present, timer)
        in_channels = {sensor: encoder.out_channels for sensor, encoder in self.encoders.items()}
        if self.bev_graph is not None:
            with stage(timer, "fuser_decoder_head"):
                decoded, outputs = self.bev_graph(*stack_features(features, present, in_channels, self.grid.shape))
        else:
            with stage(timer, "fuser"):
                fused = self.fuser(*stack_features(features, present, in_channels, self.grid.shape))
            with stage(timer, "decoder"):
                decoded = self.decoder(fused)
            with stage(timer, "head"):
                outputs = self.head(decoded)
        if mode == "tensor":
            return outputs
        if mode == "loss":
            if batch.gt_boxes is None:
                raise ValueError("BEVFusionDetector: mode='loss' needs ground truth in every frame of the batch")
            losses = {**auxiliary_losses, **self.head.loss(outputs, batch.gt_boxes)}
            if self.planning_head is not None and batch.planning_targets is not None:
                losses.update(self.planning_head.loss(self._plan(decoded, batch), batch.planning_targets))
            return losses
        if mode == "predict":
            with stage(timer, "decode_nms"):
                boxes = self.head.decode(outputs)
            results = [dict(sample_token=token, ego_pose=pose, boxes=frame_boxes, sensors=sorted(self.sensors))
                       for token, pose, frame_boxes in zip(batch.sample_tokens, batch.ego_poses, boxes)]
            if self.planning_head is not None and batch.ego_state is not None:
                with stage(timer, "planning_head"):
                    plans = self._plan(decoded, batch)
                for index, result in enumerate(results):
                    result["plan"] = PlanningOutputs(*(getattr(plans, f.name)[index]
                                                       for f in dataclasses.fields(PlanningOutputs)))
            return results
        raise ValueError(f"BEVFusionDetector: unknown mode {mode!r}; use 'tensor', 'loss' or 'predict'")

    def _plan(self, decoded: torch.Tensor, batch: FusionBatch) -> PlanningOutputs:
        if batch.ego_state is None:
            raise ValueError("BEVFusionDetector: the planning head needs the batch's ego_state")
        return self.planning_head(decoded, batch.ego_state)

    @property
    def image_size(self) -> Optional[Tuple[int, int]]:
        """(W, H) the camera encoder expects, None without cameras."""
        camera = self.encoders["camera"] if "camera" in self.encoders else None
        return None if camera is None else camera.image_size

    @torch.no_grad()
    def detect(self, frames: Sequence[Frame], timer: Optional[StageTimer] = None) -> List[Boxes3D]:
        """perception.detector.Detector: boxes in each frame's ego frame. Switches the model to eval mode; camera
        images of another size are resized to ``image_size`` (intrinsics follow). ``timer`` times the model's
        stages (preprocess: resize and tensors; then see ``forward``)."""
        self.eval()
        with stage(timer, "preprocess"):
            batch = self.batch_from_frames(frames)
        return [result["boxes"] for result in self.forward(batch, mode="predict", timer=timer)]

    @property
    def plans(self) -> bool:
        """PlanningDetector: whether the model has the planning head (``planning`` in its config)."""
        return self.planning_head is not None

    @property
    def plan_grid(self) -> Optional[Tuple[int, float]]:
        """PlanningDetector: the planning head's (horizon_steps, step_s); None without one."""
        return None if self.planning_head is None else (self.planning_head.horizon_steps, self.planning_head.step_s)

    @torch.no_grad()
    def detect_and_plan(self, frames: Sequence[Frame], ego_state: np.ndarray, timer: Optional[StageTimer] = None
                        ) -> Tuple[List[Boxes3D], List[PlanningOutputs]]:
        """PlanningDetector: ``detect`` and, from the same forward pass, each frame's PlanningOutputs row (on the
        CPU). ``ego_state``: (len(frames), len(EGO_FEATURES)) from each frame's past poses."""
        if self.planning_head is None:
            raise ValueError("BEVFusionDetector.detect_and_plan: the model has no planning head (model.planning)")
        self.eval()
        with stage(timer, "preprocess"):
            batch = self.batch_from_frames(frames)
            batch = dataclasses.replace(batch, ego_state=torch.as_tensor(
                np.asarray(ego_state, dtype=np.float32), device=self.data_preprocessor.device))
        results = self.forward(batch, mode="predict", timer=timer)
        plans = [PlanningOutputs(*(getattr(result["plan"], f.name).cpu() for f in dataclasses.fields(PlanningOutputs)))
                 for result in results]
        return [result["boxes"] for result in results], plans

    def batch_from_frames(self, frames: Sequence[Frame]) -> FusionBatch:
        """The network input of ``frames`` on the model's device, camera images resized to ``image_size``."""
        if self.image_size is not None:
            frames = [resize_cameras(frame, self.image_size) for frame in frames]
        return FusionBatch.from_frames(frames).to(self.data_preprocessor.device)
