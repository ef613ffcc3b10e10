"""Camera encoder: a small CNN backbone + FPN, an LSS depth-distribution lift, BEV pooling onto the grid.

Each image's stride-8 features predict a softmax over ``depth_bins`` depths and ``out_channels`` context features per
cell; their outer product lives on a frustum of 3D points (cell centre pixel x bin depth) taken into the ego frame
with the camera's calibration, and ``perception.ops.bev_pool`` sums it into BEV cells, forming each product as it
sums it. With LiDAR in the batch, training adds a depth loss: the LiDAR points projected into each image give the
nearest depth per cell, a cross-entropy target for the depth distribution (BEVDepth's supervision).
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from perception.models.grid import BEVGrid
from perception.ops import BEVPoolGeometry, bev_pool
from perception.timing import StageTimer, stage

IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def conv_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class ImageBackboneFPN(nn.Module):
    """(N, 3, H, W) RGB images in [0, 1] -> (N, out_channels, H / 8, W / 8): normalisation by IMAGE_MEAN /
    IMAGE_STD, four stride-2 stages (strides 2, 4, 8, 16) and an FPN that adds the upsampled stride-16 map to the
    stride-8 one."""

    stride = 8

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128), out_channels: int = 64):
        super().__init__()
        w1, w2, w3, w4 = widths
        self.stage1 = nn.Sequential(conv_block(3, w1, 2), conv_block(w1, w1))
        self.stage2 = nn.Sequential(conv_block(w1, w2, 2), conv_block(w2, w2))
        self.stage3 = nn.Sequential(conv_block(w2, w3, 2), conv_block(w3, w3))
        self.stage4 = nn.Sequential(conv_block(w3, w4, 2), conv_block(w4, w4))
        self.lateral8 = nn.Conv2d(w3, out_channels, 1)
        self.lateral16 = nn.Conv2d(w4, out_channels, 1)
        self.output = conv_block(out_channels, out_channels)
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        stride8 = self.stage3(self.stage2(self.stage1((images - self.mean) / self.std)))
        stride16 = self.stage4(stride8)
        top_down = F.interpolate(self.lateral16(stride16), size=stride8.shape[-2:], mode="bilinear",
                                 align_corners=False)
        return self.output(self.lateral8(stride8) + top_down)


class CameraEncoder(nn.Module):
    """``FusionBatch`` images (B, N, 3, H, W) + calibration -> (B, out_channels, ny, nx) on ``grid``.

    image_size (W, H): the input resolution it is trained for (consumers resize to it: BEVFusionDetector.detect).
    depth_range (min, max) m along the optical axis, 0 <= min < max, split into ``depth_bins`` (>= 1) equal bins
    (frustum points at bin centres). ``depth_loss_weight`` > 0 enables LiDAR depth supervision in training.
    """

    sensor = "camera"
    dense_parts = ("backbone", "depth_net", "bev_conv")
    """The submodules that hold the weights (perception.deploy exports each as a graph)."""

    def __init__(self, grid: BEVGrid, image_size: Tuple[int, int], out_channels: int = 32,
                 backbone_widths: Sequence[int] = (16, 32, 64, 128),
                 fpn_channels: int = 64, depth_range: Tuple[float, float] = (1.0, 49.0), depth_bins: int = 48,
                 depth_loss_weight: float = 1.0):
        super().__init__()
        if len(depth_range) != 2 or not 0 <= depth_range[0] < depth_range[1] < math.inf:
            raise ValueError(f"CameraEncoder: depth_range {list(depth_range)} must be (min, max) m with "
                             "0 <= min < max, both finite")
        if not depth_bins >= 1:
            raise ValueError(f"CameraEncoder: depth_bins must be >= 1, got {depth_bins}")
        self.grid = grid
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.out_channels = out_channels
        self.depth_bins = depth_bins
        self.depth_min, self.depth_max = float(depth_range[0]), float(depth_range[1])
        self.depth_loss_weight = depth_loss_weight
        self.backbone = ImageBackboneFPN(backbone_widths, fpn_channels)
        self.depth_net = nn.Conv2d(fpn_channels, depth_bins + out_channels, 1)
        self.bev_conv = conv_block(out_channels, out_channels)
        # (intrinsics, camera_to_ego, feature_hw, geometry) of the last call: see bev_geometry
        self._last_geometry: Optional[Tuple[torch.Tensor, torch.Tensor, Tuple[int, int], BEVPoolGeometry]] = None

    @property
    def bin_size(self) -> float:
        return (self.depth_max - self.depth_min) / self.depth_bins

    def frustum_points_ego(self, intrinsics: torch.Tensor, camera_to_ego: torch.Tensor, feature_hw: Tuple[int, int]
                           ) -> torch.Tensor:
        """intrinsics (B, N, 3, 3), camera_to_ego (B, N, 4, 4) -> (B, N, D, h, w, 3) [x, y, z] m in the ego frame:
        each feature cell's centre pixel at each depth-bin centre. Each pixel's ray (its point at depth 1) is
        rotated into the ego frame once and scaled by the depths: h x w rotations, not D x h x w."""
        h, w = feature_hw
        device = intrinsics.device
        stride = ImageBackboneFPN.stride
        depths = self.depth_min + (torch.arange(self.depth_bins, device=device) + 0.5) * self.bin_size  # (D,)
        v = (torch.arange(h, device=device) + 0.5) * stride
        u = (torch.arange(w, device=device) + 0.5) * stride
        fx, fy = intrinsics[..., 0, 0], intrinsics[..., 1, 1]  # (B, N)
        cx, cy = intrinsics[..., 0, 2], intrinsics[..., 1, 2]
        expand = (slice(None), slice(None), None, None)
        x = (u[None, None, None, :] - cx[expand]) / fx[expand]  # (B, N, 1, w)
        y = (v[None, None, :, None] - cy[expand]) / fy[expand]  # (B, N, h, 1)
        rays_camera = torch.stack(torch.broadcast_tensors(x, y, torch.ones_like(x)), dim=-1)  # (B, N, h, w, 3)
        rotation, translation = camera_to_ego[..., :3, :3], camera_to_ego[..., :3, 3]
        rays = torch.einsum("bnij,bnhwj->bnhwi", rotation, rays_camera)
        return depths[None, None, :, None, None, None] * rays[:, :, None] + translation[:, :, None, None, None, :]

    def bev_geometry(self, intrinsics: torch.Tensor, camera_to_ego: torch.Tensor, feature_hw: Tuple[int, int]
                     ) -> BEVPoolGeometry:
        """Where each frustum point of these cameras goes on the BEV grid (intrinsics (B, N, 3, 3), camera_to_ego
        (B, N, 4, 4)); computed again only when these or the feature size differ from the last call's. The loader's
        camera_to_ego carries the ego's motion between each image and the LiDAR sweep, so a moving car pays for it
        every frame (~1.2 ms for fusion_tiny's 110k frustum points on 2 cores, benchmarks/RESULTS.md)."""
        last = self._last_geometry
        if (last is not None and last[2] == tuple(feature_hw)
                and (last[0].device, last[0].dtype) == (intrinsics.device, intrinsics.dtype)
                and torch.equal(last[0], intrinsics) and torch.equal(last[1], camera_to_ego)):
            return last[3]
        geometry = BEVPoolGeometry.from_points(self.frustum_points_ego(intrinsics, camera_to_ego, feature_hw),
                                               self.grid.point_cloud_range, self.grid.pillar_size)
        self._last_geometry = (intrinsics.detach().clone(), camera_to_ego.detach().clone(), tuple(feature_hw),
                               geometry)
        return geometry

    def forward(self, batch, timer: Optional[StageTimer] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """-> (B, out_channels, ny, nx) and, in training with LiDAR present, {'loss_depth': ...}; ``timer`` times
        the BEV pooling, with the frustum geometry when the calibration changed (stage "bev_pool")."""
        images = batch.images  # (B, N, 3, H, W) float in [0, 1]
        b, n = images.shape[:2]
        features = self.depth_net(self.backbone(images.flatten(0, 1)))  # (B*N, D + C, h, w)
        h, w = features.shape[-2:]
        depth_logits = features[:, : self.depth_bins]
        depth = depth_logits.softmax(dim=1)
        context = features[:, self.depth_bins:]
        valid = batch.camera_valid.reshape(b * n, 1, 1, 1).to(context.dtype)
        context = (context * valid).permute(0, 2, 3, 1).reshape(b, n, h, w, self.out_channels)
        depth = depth.reshape(b, n, self.depth_bins, h, w)
        with stage(timer, "bev_pool"):
            # Under bfloat16 autocast (--amp) the geometry is computed in float32 (bfloat16 keeps 8 bits: 0.25 m at
            # 50 m) and the kernel gets float32 (context comes bfloat16, depth, a softmax, float32; Numba compiles
            # neither bfloat16 nor mixed types)
            with torch.autocast(images.device.type, enabled=False):
                geometry = self.bev_geometry(batch.intrinsics, batch.camera_to_ego, (h, w))
            pooled = bev_pool(depth.float(), context.float(), geometry)
        bev = self.bev_conv(pooled)
        losses = {}
        if self.training and self.depth_loss_weight > 0 and batch.lidar is not None and len(batch.lidar):
            losses["loss_depth"] = self.depth_loss_weight * self.depth_loss(
                depth_logits.reshape(b, n, self.depth_bins, h, w), batch)
        return bev, losses

    def depth_targets(self, batch, feature_hw: Tuple[int, int]) -> torch.Tensor:
        """(B, N, h, w) long: the depth bin of the nearest point of the keyframe's LiDAR sweep (time_lag 0: no
        motion smear) projected into each feature cell, -1 where no point falls or the camera is missing."""
        h, w = feature_hw
        stride = ImageBackboneFPN.stride
        b, n = batch.images.shape[:2]
        nearest = torch.full((b, n, h * w), float("inf"), device=batch.images.device)
        keyframe_sweep = batch.lidar[:, 5] == 0
        with torch.autocast(batch.images.device.type, enabled=False):  # geometry in float32 under --amp
            for frame in range(b):
                xyz = batch.lidar[keyframe_sweep & (batch.lidar[:, 0] == frame), 1:4]  # (P, 3) ego
                rotation, translation = batch.camera_to_ego[frame, :, :3, :3], batch.camera_to_ego[frame, :, :3, 3]
                camera_points = torch.einsum("pj,nji->npi", xyz, rotation) - torch.einsum(
                    "nj,nji->ni", translation, rotation)[:, None, :]  # (N, P, 3) = R^T (p - t)
                k = batch.intrinsics[frame]  # (N, 3, 3)
                z = camera_points[..., 2]
                u = k[:, None, 0, 0] * camera_points[..., 0] / z.clamp(min=1e-3) + k[:, None, 0, 2]
                v = k[:, None, 1, 1] * camera_points[..., 1] / z.clamp(min=1e-3) + k[:, None, 1, 2]
                col, row = torch.floor(u / stride).long(), torch.floor(v / stride).long()
                keep = ((z > self.depth_min) & (z < self.depth_max) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
                        & batch.camera_valid[frame][:, None])
                camera_index = torch.arange(n, device=z.device)[:, None].expand_as(z)
                cells = (camera_index * (h * w) + row * w + col)[keep]
                nearest[frame].view(-1).scatter_reduce_(0, cells, z[keep], reduce="amin")
        bins = torch.floor((nearest - self.depth_min) / self.bin_size)
        return torch.where(torch.isfinite(nearest), bins, torch.full_like(bins, -1)).long().reshape(b, n, h, w)

    def depth_loss(self, depth_logits: torch.Tensor, batch) -> torch.Tensor:
        """Cross-entropy of depth_logits (B, N, D, h, w) against depth_targets, over cells with a target."""
        targets = self.depth_targets(batch, depth_logits.shape[-2:])
        has_target = targets >= 0
        if not has_target.any():
            return depth_logits.sum() * 0.0
        logits = depth_logits.permute(0, 1, 3, 4, 2)[has_target]  # (K, D)
        return F.cross_entropy(logits.float(), targets[has_target])
