"""Point-cloud and BEV kernels: each with a plain reference, a Numba CPU kernel and a Numba CUDA kernel.

Every public function takes ``backend=None | "reference" | "numba" | "cuda"``: None runs "cuda" for torch CUDA
tensors and "numba" otherwise; results come back as the input's type (numpy / torch) and device, but for
``bev_pool`` and ``pillar_scatter``, the network's differentiable layers, which take and return torch tensors.
Nothing is compiled at import time (Numba compiles on first use and caches to disk) and numba.cuda is imported only
by the first CUDA call. Voxel coordinates and units: perception.geometry's conventions.
"""
from perception.ops._backend import BACKENDS
from perception.ops.bev_pool import BEVPoolGeometry, bev_pool
from perception.ops.circle_nms import circle_nms
from perception.ops.pillar_scatter import pillar_scatter
from perception.ops.points_in_boxes import points_in_boxes, points_in_boxes_mask
from perception.ops.scatter import scatter_points
from perception.ops.voxelize import dynamic_voxelize, hard_voxelize, hard_voxelize_batch

__all__ = [
    "BACKENDS",
    "BEVPoolGeometry",
    "bev_pool",
    "circle_nms",
    "dynamic_voxelize",
    "hard_voxelize",
    "hard_voxelize_batch",
    "pillar_scatter",
    "points_in_boxes",
    "points_in_boxes_mask",
    "scatter_points",
]
