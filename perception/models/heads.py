"""CenterPoint-style detection head: targets, losses and decoding to ``Boxes3D`` in the ego frame.

Per BEV cell the head predicts one heatmap per class (DETECTION_CLASSES) and, at object centres, a box
regression with channels REGRESSION_CHANNELS plus attribute logits (ATTRIBUTES). Targets put a gaussian on the
class heatmap at each ground-truth centre (radius: CenterPoint's gaussian_radius, in cells) and the box values at
the centre's cell. Decoding: heatmap local maxima, top-k, score threshold, per-class circle NMS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from nuscenes.eval.detection.utils import detection_name_to_rel_attributes
from torch import nn

from perception.classes import ATTRIBUTES, DETECTION_CLASSES
from perception.geometry import Boxes3D
from perception.models.grid import BEVGrid
from perception.ops import circle_nms

REGRESSION_CHANNELS = ("offset_x", "offset_y", "z", "log_width", "log_length", "log_height", "sin_yaw", "cos_yaw",
                       "vx", "vy")
"""Columns of the box regression at a centre cell: sub-cell offset of the centre [cells], centre z [m],
log size [log m] in nuScenes order (width, length, height), sin/cos of yaw, velocity [m/s] in the ego frame."""

NUM_CLASSES = len(DETECTION_CLASSES)
NUM_ATTRIBUTES = len(ATTRIBUTES)

ALLOWED_ATTRIBUTES = torch.tensor(
    [[ATTRIBUTES[a] in detection_name_to_rel_attributes(name) for a in range(NUM_ATTRIBUTES)]
     for name in DETECTION_CLASSES], dtype=torch.bool)
"""(NUM_CLASSES, NUM_ATTRIBUTES) which attributes a class may carry (the devkit's rule); a class with none
(barrier, traffic_cone) decodes to attribute -1."""


def gaussian_radius(length_cells: float, width_cells: float, min_overlap: float = 0.1) -> float:
    """CenterPoint's gaussian_radius [cells] for a box footprint of length x width cells, transcribed as it stands
    (det3d's center_utils.py; mmdetection3d's gaussian.py is the same; both copied from CornerNet): the smallest of
    three quadratic roots. Not an exact IoU bound: its roots are not those of the IoU conditions CornerNet derived
    them from (princeton-vl/CornerNet issue 110). For an 8 x 4-cell box at min_overlap 0.1 it gives 2.4 cells, where
    the largest centre shift, in any direction, keeping IoU >= 0.1 is 3.26."""
    h, w = length_cells, width_cells
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heatmap: np.ndarray, row: int, col: int, radius: int) -> None:
    """Writes max(heatmap, gaussian) in place: a (2r+1)^2 gaussian with sigma (2r+1)/6 peaking at 1 at (row, col)."""
    sigma = (2 * radius + 1) / 6.0
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma * sigma))
    ny, nx = heatmap.shape
    top, bottom = max(0, row - radius), min(ny, row + radius + 1)
    left, right = max(0, col - radius), min(nx, col + radius + 1)
    window = kernel[top - row + radius:bottom - row + radius, left - col + radius:right - col + radius]
    np.maximum(heatmap[top:bottom, left:right], window, out=heatmap[top:bottom, left:right])


@dataclass
class HeadTargets:
    """Training targets of a batch. heatmap (B, NUM_CLASSES, ny, nx) in [0, 1]; indices (B, K) flat cell index
    row * nx + col of each object's centre; mask (B, K) bool, True for real objects; regression (B, K, 10) with
    REGRESSION_CHANNELS; attributes (B, K) int, -1 for none."""

    heatmap: torch.Tensor
    indices: torch.Tensor
    mask: torch.Tensor
    regression: torch.Tensor
    attributes: torch.Tensor


def build_targets(gt_boxes: Sequence[Boxes3D], grid: BEVGrid, max_objects: int = 128, min_radius: int = 2,
                  min_overlap: float = 0.1) -> HeadTargets:
    """Targets for a list of B frames' boxes (ego frame). Boxes whose centre lies outside the grid's xy range are
    ignored; a frame with more than ``max_objects`` boxes in range raises ValueError."""
    ny, nx = grid.shape
    x_min, y_min = grid.point_cloud_range[:2]
    cell_x, cell_y = grid.cell_size
    batch = len(gt_boxes)
    heatmap = np.zeros((batch, NUM_CLASSES, ny, nx), dtype=np.float32)
    indices = np.zeros((batch, max_objects), dtype=np.int64)
    mask = np.zeros((batch, max_objects), dtype=bool)
    regression = np.zeros((batch, max_objects, len(REGRESSION_CHANNELS)), dtype=np.float32)
    attributes = np.full((batch, max_objects), -1, dtype=np.int64)
    for b, boxes in enumerate(gt_boxes):
        col_f = (boxes.centers[:, 0] - x_min) / cell_x
        row_f = (boxes.centers[:, 1] - y_min) / cell_y
        inside = np.flatnonzero((col_f >= 0) & (col_f < nx) & (row_f >= 0) & (row_f < ny))
        if len(inside) > max_objects:
            raise ValueError(f"frame {b} has {len(inside)} boxes in the grid, the head keeps at most {max_objects} "
                             "(raise max_objects)")
        for k, i in enumerate(inside):
            col, row = int(col_f[i]), int(row_f[i])
            width, length, height = boxes.sizes[i]
            radius = gaussian_radius(length / cell_x, width / cell_y, min_overlap)
            draw_gaussian(heatmap[b, boxes.labels[i]], row, col, max(min_radius, int(radius)))
            indices[b, k] = row * nx + col
            mask[b, k] = True
            regression[b, k] = [col_f[i] - col, row_f[i] - row, boxes.centers[i, 2],
                                *np.log(np.maximum(boxes.sizes[i], 1e-3)),
                                math.sin(boxes.yaws[i]), math.cos(boxes.yaws[i]), *boxes.velocities[i]]
            attributes[b, k] = boxes.attributes[i]
    return HeadTargets(*(torch.from_numpy(a) for a in (heatmap, indices, mask, regression, attributes)))


def gaussian_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, gamma: float = 4.0
                        ) -> torch.Tensor:
    """CornerNet's focal loss on a gaussian heatmap, summed and divided by the number of peaks (target == 1).
    logits and target: the same shape; target in [0, 1]."""
    probability = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    positive_loss = -torch.log(probability) * (1 - probability) ** alpha * positive
    negative_loss = -torch.log(1 - probability) * probability ** alpha * (1 - target) ** gamma * (1 - positive)
    return (positive_loss.sum() + negative_loss.sum()) / positive.sum().clamp(min=1.0)


def yaw_axis_loss(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """|sin(predicted yaw - target yaw)| averaged over the objects of ``mask`` (B, K) bool, the predicted yaw read
    from the normalised (sin, cos) pair: predicted and target (B, K, 2) [sin_yaw, cos_yaw]. SECOND's sine-error
    loss: zero for the target's heading and for its opposite, so it teaches a box's axis where the data cannot tell
    front from back. There the L1 on sin and cos alone is minimised by a pair near (0, 0), whose angle is noise
    (parked cars standing across an aisle, facing either way)."""
    unit = predicted / predicted.norm(dim=-1, keepdim=True).clamp(min=1e-3)
    error = (unit[..., 0] * target[..., 1] - unit[..., 1] * target[..., 0]).abs()
    return (error * mask).sum() / mask.sum().clamp(min=1)


def local_peaks(scores: torch.Tensor, threshold: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """scores (C, H, W) -> (values (K,), flat indices (K,) into scores.reshape(-1)) of the cells at or above
    ``threshold`` that equal the maximum of their 3x3 neighbourhood (cells past the border left out, as
    F.max_pool2d(scores, 3, stride=1, padding=1) pads), by descending value (ties: lower index first). The
    neighbourhood is read for those cells only: a handful of a frame's 164k, so ~0.3 ms instead of ~1.4 for the
    whole map's window maximum."""
    channels, height, width = scores.shape
    flat = torch.nonzero(scores.reshape(-1) >= threshold).reshape(-1)
    padded = F.pad(scores, (1, 1, 1, 1), value=float("-inf"))
    channel, row, col = flat // (height * width), flat % (height * width) // width, flat % width
    neighbourhood = torch.stack([padded[channel, row + dy, col + dx] for dy in range(3) for dx in range(3)])
    values = scores.reshape(-1)[flat]
    peak = values == neighbourhood.amax(dim=0)
    values, flat = values[peak], flat[peak]
    order = values.argsort(descending=True, stable=True)
    return values[order], flat[order]


def gather_cells(feature_map: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """(B, C, ny, nx) and (B, K) flat cell indices -> (B, K, C)."""
    batch, channels = feature_map.shape[:2]
    flat = feature_map.reshape(batch, channels, -1)
    return torch.gather(flat, 2, indices[:, None, :].expand(-1, channels, -1)).transpose(1, 2)


class CenterHead(nn.Module):
    """Shared 3x3 conv, then one small branch per output: heatmap (NUM_CLASSES), regression (10 channels,
    REGRESSION_CHANNELS), attribute logits (NUM_ATTRIBUTES), all at the BEV grid's resolution.

    ``regression_weights`` (10,) weight the L1 regression channels; ``axis_weight`` weights yaw_axis_loss (0: not
    computed); ``nms_radius_m`` (NUM_CLASSES,) per-class circle-NMS radius [m] (the project's own, not CenterPoint's
    sqrt(min_radius), which differ for trailer, construction vehicle, bicycle, pedestrian and traffic cone: measured
    in benchmarks/RESULTS.md, "CenterPoint's circle-NMS radii"). ``branch_channels``: the hidden
    width of each branch (heatmap, regression, attribute; a pruned model), ``head_channels`` where not given.
    """

    OUTPUTS = ("heatmap", "regression", "attribute")
    """The outputs of ``forward``, in order; each is the branch of that name."""
    dense_parts = ("shared", *OUTPUTS)
    """The submodules that hold the weights (perception.deploy exports each as a graph)."""

    def __init__(self, in_channels: int, grid: BEVGrid, head_channels: int = 64,
                 regression_weights: Sequence[float] = (1, 1, 1, 1, 1, 1, 1, 1, 0.2, 0.2),
                 heatmap_weight: float = 1.0, regression_weight: float = 0.25, attribute_weight: float = 0.2,
                 axis_weight: float = 0.0,
                 max_objects: int = 128, min_radius: int = 2, top_k: int = 300, score_threshold: float = 0.05,
                 nms_radius_m: Sequence[float] = (2.0, 3.5, 3.2, 1.0, 1.0, 0.5, 0.9, 0.5, 0.5, 1.0),
                 max_boxes: int = 300, branch_channels: Optional[Dict[str, int]] = None):
        super().__init__()
        if len(regression_weights) != len(REGRESSION_CHANNELS) or len(nms_radius_m) != NUM_CLASSES:
            raise ValueError(f"CenterHead: regression_weights needs {len(REGRESSION_CHANNELS)} values and "
                             f"nms_radius_m {NUM_CLASSES}")
        loss_weights = dict(heatmap=heatmap_weight, regression=regression_weight, attribute=attribute_weight,
                            axis=axis_weight)
        negative = {name: weight for name, weight in loss_weights.items() if weight < 0}
        if negative or min(regression_weights) < 0:
            raise ValueError(f"CenterHead: loss weights must not be negative, got {negative or regression_weights}")
        wrong = [f"{name} {value}" for name, value, valid in (
            ("top_k", top_k, top_k >= 1), ("max_boxes", max_boxes, max_boxes >= 1),
            ("score_threshold", score_threshold, 0 <= score_threshold <= 1),
            ("nms_radius_m", list(nms_radius_m), all(radius >= 0 for radius in nms_radius_m))) if not valid]
        if wrong:
            raise ValueError(f"CenterHead: decoding needs top_k >= 1, max_boxes >= 1, 0 <= score_threshold <= 1 and "
                             f"nms_radius_m >= 0, got {', '.join(wrong)}")
        self.grid = grid
        self.shared = nn.Sequential(nn.Conv2d(in_channels, head_channels, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(head_channels), nn.ReLU(inplace=True))

        hidden = {**dict(heatmap=head_channels, regression=head_channels, attribute=head_channels),
                  **(branch_channels or {})}
        if set(hidden) != {"heatmap", "regression", "attribute"}:
            raise ValueError(f"CenterHead: branch_channels names branches other than heatmap, regression, "
                             f"attribute: {sorted(branch_channels)}")

        def branch(name: str, out_channels: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(head_channels, hidden[name], 3, padding=1, bias=False),
                                 nn.BatchNorm2d(hidden[name]), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden[name], out_channels, 1))

        self.heatmap = branch("heatmap", NUM_CLASSES)
        nn.init.constant_(self.heatmap[-1].bias, -2.19)  # prior probability 0.1, as CenterPoint
        self.regression = branch("regression", len(REGRESSION_CHANNELS))
        self.attribute = branch("attribute", NUM_ATTRIBUTES)
        self.register_buffer("regression_weights", torch.tensor(regression_weights, dtype=torch.float32),
                             persistent=False)
        self.register_buffer("nms_radius_m", torch.tensor(nms_radius_m, dtype=torch.float32), persistent=False)
        self.loss_weights = loss_weights
        self.max_objects, self.min_radius = max_objects, min_radius
        self.top_k, self.score_threshold, self.max_boxes = top_k, score_threshold, max_boxes

    def forward(self, bev: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(B, C, ny, nx) -> heatmap (B, NUM_CLASSES, ny, nx) logits, regression (B, 10, ny, nx),
        attribute (B, NUM_ATTRIBUTES, ny, nx) logits."""
        shared = self.shared(bev)
        return {name: getattr(self, name)(shared) for name in self.OUTPUTS}

    def loss(self, outputs: Dict[str, torch.Tensor], gt_boxes: Sequence[Boxes3D]) -> Dict[str, torch.Tensor]:
        """Weighted losses: loss_heatmap (focal), loss_regression (L1 at centres / objects), loss_attribute (CE at
        centres with an attribute), and loss_yaw_axis (yaw_axis_loss) where its weight is not 0."""
        device = outputs["heatmap"].device
        targets = build_targets(gt_boxes, self.grid, self.max_objects, self.min_radius)
        heatmap, indices, mask, regression, attributes = (
            t.to(device) for t in (targets.heatmap, targets.indices, targets.mask, targets.regression,
                                   targets.attributes))
        num_objects = mask.sum().clamp(min=1).float()
        predicted = gather_cells(outputs["regression"].float(), indices)  # (B, K, 10)
        l1 = (predicted - regression).abs() * self.regression_weights * mask[..., None]
        attribute_logits = gather_cells(outputs["attribute"].float(), indices)  # (B, K, NUM_ATTRIBUTES)
        with_attribute = mask & (attributes >= 0)
        if with_attribute.any():
            attribute_loss = F.cross_entropy(attribute_logits[with_attribute], attributes[with_attribute])
        else:
            attribute_loss = attribute_logits.sum() * 0.0
        losses = dict(
            loss_heatmap=self.loss_weights["heatmap"] * gaussian_focal_loss(outputs["heatmap"], heatmap),
            loss_regression=self.loss_weights["regression"] * l1.sum() / num_objects,
            loss_attribute=self.loss_weights["attribute"] * attribute_loss,
        )
        if self.loss_weights["axis"]:
            yaw = slice(REGRESSION_CHANNELS.index("sin_yaw"), REGRESSION_CHANNELS.index("cos_yaw") + 1)
            losses["loss_yaw_axis"] = self.loss_weights["axis"] * yaw_axis_loss(predicted[..., yaw],
                                                                                 regression[..., yaw], mask)
        return losses

    @torch.no_grad()
    def decode(self, outputs: Dict[str, torch.Tensor]) -> List[Boxes3D]:
        """Network outputs -> one Boxes3D per frame in the ego frame: heatmap local maxima (3x3) at or above the
        score threshold (local_peaks), the top_k of them over classes and cells, per-class circle NMS
        (nms_radius_m), at most max_boxes by score."""
        scores_map = torch.sigmoid(outputs["heatmap"].float())
        batch, num_classes, ny, nx = scores_map.shape
        x_min, y_min = self.grid.point_cloud_range[:2]
        cell_x, cell_y = self.grid.cell_size
        allowed = ALLOWED_ATTRIBUTES.to(scores_map.device)
        results = []
        for b in range(batch):
            scores, flat = local_peaks(scores_map[b], self.score_threshold)
            scores, flat = scores[:self.top_k], flat[:self.top_k]
            labels = flat // (ny * nx)
            cells = flat % (ny * nx)
            rows, cols = cells // nx, cells % nx
            values = outputs["regression"][b].float().reshape(len(REGRESSION_CHANNELS), -1)[:, cells].T  # (N, 10)
            x = (cols.float() + values[:, 0]) * cell_x + x_min
            y = (rows.float() + values[:, 1]) * cell_y + y_min
            centers = torch.stack([x, y, values[:, 2]], dim=1)
            sizes = values[:, 3:6].clamp(max=5.0).exp()
            yaws = torch.atan2(values[:, 6], values[:, 7])
            attribute_logits = outputs["attribute"][b].float().reshape(NUM_ATTRIBUTES, -1)[:, cells].T
            attribute_logits = attribute_logits.masked_fill(~allowed[labels], float("-inf"))
            attributes = torch.where(allowed[labels].any(dim=1), attribute_logits.argmax(dim=1),
                                     torch.full_like(labels, -1))
            kept = []
            for label in labels.unique():
                members = torch.nonzero(labels == label).reshape(-1)
                keep_local = circle_nms(centers[members, :2], scores[members], float(self.nms_radius_m[label]))
                kept.append(members[torch.as_tensor(keep_local, dtype=torch.long, device=members.device)])
            order = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.long, device=scores.device)
            order = order[scores[order].argsort(descending=True)][: self.max_boxes]
            results.append(Boxes3D(
                centers=centers[order].cpu().numpy(), sizes=sizes[order].cpu().numpy(), yaws=yaws[order].cpu().numpy(),
                velocities=values[order, 8:10].cpu().numpy(), labels=labels[order].cpu().numpy(),
                scores=scores[order].cpu().numpy(), attributes=attributes[order].cpu().numpy()))
        return results


__all__ = ["ALLOWED_ATTRIBUTES", "CenterHead", "HeadTargets", "REGRESSION_CHANNELS", "build_targets",
           "draw_gaussian", "gather_cells", "gaussian_focal_loss", "gaussian_radius", "local_peaks"]
