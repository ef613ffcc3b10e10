"""``FusionBatch``: the typed network input built from a list of ``Frame`` (one per batch element)."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from perception.datasets.frame import LIDAR_COLUMNS, RADAR_COLUMNS, Frame
from perception.geometry import Boxes3D, EgoPose
from perception.models.planning_types import PlanningTargets
from perception.sensors import CAMERA_CHANNELS, SENSOR_GROUPS


@dataclass(frozen=True)
class FusionBatch:
    """B frames as tensors (ego frame of each keyframe; units as in perception.geometry).

    lidar (N, 6) float32 [batch, x, y, z, intensity, time_lag]; radar (M, 8) float32
    [batch, x, y, z, rcs, vx_comp, vy_comp, time_lag]; images (B, N_cams, 3, H, W) float32 RGB in [0, 1], cameras
    in CAMERA_CHANNELS order, zeros where absent; intrinsics (B, N_cams, 3, 3) K in pixels of these images;
    camera_to_ego (B, N_cams, 4, 4); camera_valid (B, N_cams) bool; present: sensor group -> (B,) bool, whether
    the frame has that sensor (not in Frame.missing, data present, at least one point / camera); gt_boxes: the
    frames' ground truth (None when any frame has none); sample_tokens and ego_poses: per frame; ego_state
    (B, len(EGO_FEATURES)) the past ego state and track and planning_targets the logged drive, for the planning head
    (None when the batch carries none).
    """

    batch_size: int
    lidar: torch.Tensor
    radar: torch.Tensor
    images: torch.Tensor
    intrinsics: torch.Tensor
    camera_to_ego: torch.Tensor
    camera_valid: torch.Tensor
    present: Dict[str, torch.Tensor]
    gt_boxes: Optional[List[Boxes3D]]
    sample_tokens: List[str]
    ego_poses: List[EgoPose]
    ego_state: Optional[torch.Tensor] = None
    planning_targets: Optional[PlanningTargets] = None

    def to(self, device) -> "FusionBatch":
        """The same batch with every tensor on ``device``."""
        return replace(
            self, lidar=self.lidar.to(device), radar=self.radar.to(device), images=self.images.to(device),
            intrinsics=self.intrinsics.to(device), camera_to_ego=self.camera_to_ego.to(device),
            camera_valid=self.camera_valid.to(device), present={k: v.to(device) for k, v in self.present.items()},
            ego_state=None if self.ego_state is None else self.ego_state.to(device),
            planning_targets=None if self.planning_targets is None else PlanningTargets(
                *(getattr(self.planning_targets, f.name).to(device) for f in fields(PlanningTargets))))

    @classmethod
    def from_frames(cls, frames: Sequence[Frame], camera_channels: Sequence[str] = CAMERA_CHANNELS
                    ) -> "FusionBatch":
        """Stacks frames. All present camera images must share one size (resize in the loader: image_size), and
        point clouds have the loader's columns (LIDAR_COLUMNS, RADAR_COLUMNS) and finite values; raises ValueError
        naming the sample otherwise."""
        if not frames:
            raise ValueError("FusionBatch.from_frames needs at least one frame")
        lidar, radar = [], []
        present = {sensor: [] for sensor in SENSOR_GROUPS}
        image_size = None
        for frame in frames:
            for name, sweeps, columns in (("LiDAR", frame.lidar, LIDAR_COLUMNS), ("radar", frame.radar, RADAR_COLUMNS)):
                if sweeps is None:
                    continue
                if sweeps.points.ndim != 2 or sweeps.points.shape[1] != len(columns):
                    raise ValueError(f"sample {frame.sample_token}: {name} points have shape {sweeps.points.shape}, "
                                     f"expected (N, {len(columns)}) with columns {', '.join(columns)}")
                if not np.isfinite(sweeps.points).all():
                    bad = int((~np.isfinite(sweeps.points).all(axis=1)).sum())
                    raise ValueError(f"sample {frame.sample_token}: {bad} {name} points with NaN or Inf values "
                                     f"(the file readers drop such points with a NonFinitePointsWarning)")
            for view in frame.cameras.values():
                size = view.image.shape[:2]
                if view.image.ndim != 3 or view.image.shape[2] != 3:
                    raise ValueError(f"sample {frame.sample_token}: {view.channel} image has shape "
                                     f"{view.image.shape}, expected (H, W, 3)")
                if image_size is not None and size != image_size:
                    raise ValueError(f"sample {frame.sample_token}: {view.channel} image is {size[::-1]} (W, H), "
                                     f"others are {image_size[::-1]}; load with one image_size")
                image_size = size
        height, width = image_size if image_size is not None else (32, 32)
        batch, cameras = len(frames), len(camera_channels)
        images = np.zeros((batch, cameras, 3, height, width), dtype=np.float32)
        intrinsics = np.tile(np.eye(3, dtype=np.float32), (batch, cameras, 1, 1))
        camera_to_ego = np.tile(np.eye(4, dtype=np.float32), (batch, cameras, 1, 1))
        camera_valid = np.zeros((batch, cameras), dtype=bool)
        for b, frame in enumerate(frames):
            has_lidar = "lidar" not in frame.missing and frame.lidar is not None and len(frame.lidar.points) > 0
            has_radar = "radar" not in frame.missing and frame.radar is not None and len(frame.radar.points) > 0
            if has_lidar:
                lidar.append((b, frame.lidar.points))
            if has_radar:
                radar.append((b, frame.radar.points))
            for c, channel in enumerate(camera_channels):
                view = frame.cameras.get(channel)
                if view is None or "camera" in frame.missing or channel in frame.missing:
                    continue
                # uint8 / 255 in float32: each of the 256 quotients equals the float64 one rounded to float32
                np.divide(view.image.transpose(2, 0, 1), np.float32(255.0), out=images[b, c], dtype=np.float32)
                intrinsics[b, c] = view.intrinsics.matrix
                camera_to_ego[b, c] = view.camera_to_ego.matrix
                camera_valid[b, c] = True
            present["lidar"].append(has_lidar)
            present["radar"].append(has_radar)
            present["camera"].append(bool(camera_valid[b].any()))
        with_gt = all(frame.gt_boxes is not None for frame in frames)
        return cls(
            batch_size=batch,
            lidar=torch.from_numpy(_with_batch_index(lidar, len(LIDAR_COLUMNS))),
            radar=torch.from_numpy(_with_batch_index(radar, len(RADAR_COLUMNS))),
            images=torch.from_numpy(images),
            intrinsics=torch.from_numpy(intrinsics),
            camera_to_ego=torch.from_numpy(camera_to_ego),
            camera_valid=torch.from_numpy(camera_valid),
            present={sensor: torch.tensor(values, dtype=torch.bool) for sensor, values in present.items()},
            gt_boxes=[frame.gt_boxes for frame in frames] if with_gt else None,
            sample_tokens=[frame.sample_token for frame in frames],
            ego_poses=[frame.ego_pose for frame in frames],
        )


def _with_batch_index(clouds: Sequence[Tuple[int, np.ndarray]], columns: int) -> np.ndarray:
    """(batch index, (N_i, C) points) per frame -> (sum N_i, 1 + C) float32, the batch index in column 0, written
    into one array; (0, 1 + ``columns``) for none."""
    stacked = np.empty((sum(len(points) for _, points in clouds), 1 + columns), dtype=np.float32)
    start = 0
    for index, points in clouds:
        stacked[start:start + len(points), 0] = index
        stacked[start:start + len(points), 1:] = points
        start += len(points)
    return stacked
