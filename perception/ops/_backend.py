"""Backend choice and array plumbing shared by every kernel in perception.ops.

Each public op takes ``backend=None | "reference" | "numba" | "cuda"``. ``None`` picks ``"cuda"`` for torch CUDA
tensors and ``"numba"`` otherwise. A forced backend moves the data where it runs (numpy/CPU tensors go to the GPU
for ``"cuda"``, CUDA tensors come to the host for ``"reference"``/``"numba"``) and the results go back to the
input's type and device, so the same call works with numpy arrays, CPU tensors and CUDA tensors (bev_pool and
pillar_scatter take torch tensors only).

numba.cuda is imported only inside ``cuda_api()``, i.e. on the first CUDA call: importing perception.ops never
initialises CUDA (nor the simulator, which ``NUMBA_ENABLE_CUDASIM=1`` selects before that first import).
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numba
import numpy as np
import torch

from perception.kernel_cache import cached_kernel, kernel_cache_dir

if "NUMBA_THREADING_LAYER_PRIORITY" not in os.environ:  # a user's own setting wins
    # The parallel kernels on OpenMP first (the layer the benchmarks record): Numba's default order tries TBB first
    # and warns when the TBB it finds is older than it supports. Numba picks the layer at its first parallel launch,
    # after every kernel module has imported this one; set in numba's config, not in the environment.
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]

KERNEL_CACHE_DIR = kernel_cache_dir(Path(__file__).parent)
"""Where the CPU kernels' compiled code is cached: a folder per state of perception/ops's sources
(perception.kernel_cache; a kernel kept the old code of a helper it calls from another file, _box_containment,
_grid, _grouping ..., after that file changed; costs: README, "Kernels")."""


def cpu_kernel(**options) -> Callable:
    """Decorator: ``numba.njit(cache=True, **options)`` cached under KERNEL_CACHE_DIR, the one way perception.ops
    compiles its CPU kernels."""
    return cached_kernel(KERNEL_CACHE_DIR, **options)


BACKENDS = ("reference", "numba", "cuda")
CUDA_THREADS = 256
"""Threads per block of every 1D kernel launch."""


PARALLEL_MIN_POINTS = 32768
"""Point-cloud kernels on fewer points run the Numba CPU kernels on one thread. Below this a second thread saves
under 0.15 ms when it is already awake, while waking idle OpenMP workers cost ~7 ms per call on our 2-core VM
(a 2k-point hard_voxelize after 20 ms idle: 7.65 ms on 2 threads, 0.53 ms on one; benchmarks/bench_idle.py)."""


@contextlib.contextmanager
def cpu_threads_for(num_points: int) -> Iterator[None]:
    """Run the Numba CPU kernels inside on one thread when ``num_points`` < PARALLEL_MIN_POINTS, else as set."""
    if num_points >= PARALLEL_MIN_POINTS:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def is_torch(array: Any) -> bool:
    return isinstance(array, torch.Tensor)


def is_cuda_tensor(array: Any) -> bool:
    return isinstance(array, torch.Tensor) and array.is_cuda


def resolve_backend(backend: Optional[str], array: Any) -> str:
    """The backend to run: ``backend`` when given (validated), else "cuda" for a CUDA tensor, else "numba"."""
    if backend is None:
        return "cuda" if is_cuda_tensor(array) else "numba"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    return backend


def as_numpy(array: Any, dtype=None) -> np.ndarray:
    """A C-contiguous host numpy view/copy of a numpy array or torch tensor (detached, moved to the CPU; a strided
    tensor made contiguous by torch, whose copy runs on its threads: a column slice of a LiDAR sweep, 148k x 5,
    in 0.3-0.5 ms against numpy's 1.1)."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().contiguous().numpy()
    return np.ascontiguousarray(array, dtype=dtype)


def like(result: np.ndarray, template: Any) -> Any:
    """``result`` (host numpy) as the type of ``template``: numpy stays numpy, a tensor on template's device."""
    if isinstance(template, torch.Tensor):
        return torch.from_numpy(result).to(template.device)
    return result


# ----------------------------------------------------------------------------------------------------- CUDA


@functools.lru_cache(maxsize=None)
def cuda_api():
    """The numba.cuda module, imported on first use (the simulator when NUMBA_ENABLE_CUDASIM=1 is set)."""
    from numba import cuda

    if not cuda.is_available():
        raise RuntimeError(
            "backend='cuda' needs a CUDA GPU visible to numba (or NUMBA_ENABLE_CUDASIM=1 set before the first "
            "import of numba.cuda); none was found"
        )
    return cuda


FLOAT_DTYPES = (np.float32, np.float64, torch.float32, torch.float64)
"""The kernels' two float types, numpy's and torch's (Numba compiles neither float16 nor bfloat16)."""


def check_float(op: str, name: str, array: Any) -> None:
    """ValueError naming ``op`` and its argument ``name`` unless ``array`` holds float32 or float64."""
    if array.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{op}: {name} must be float32 or float64; got {array.dtype}")


def check_points(op: str, name: str, points: Any) -> None:
    """ValueError naming ``op`` and its argument ``name`` unless ``points`` is a cloud (N, C>=3) [x, y, z, ...] of
    float32 or float64 (check_float)."""
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"{op}: {name} must be (N, C>=3) with columns x, y, z first; got shape {tuple(points.shape)}")
    check_float(op, name, points)


def check_torch(op: str, name: str, array: Any) -> None:
    """ValueError naming ``op`` and its argument ``name`` unless ``array`` is a torch tensor (the differentiable
    ops take tensors only)."""
    if not is_torch(array):
        raise ValueError(f"{op}: {name} must be a torch tensor; got {type(array).__name__}")


def check_integer_cells(op: str, name: str, cells: Any) -> None:
    """ValueError naming ``op`` and its argument ``name`` when the cell coordinates ``cells`` hold floats (a cast to
    int would truncate 0.7 and -0.5 into cell 0 without a word)."""
    if cells.is_floating_point() if is_torch(cells) else np.issubdtype(np.asarray(cells).dtype, np.floating):
        raise ValueError(f"{op}: {name} must be integer cells; got {cells.dtype}")


def whole_number(op: str, name: str, value: Any, least: int) -> int:
    """``value`` as an int; ValueError naming ``op`` and ``name`` unless it is a whole number (an int, or a float
    without a fraction; not a bool or a string) of at least ``least`` (a limit of 2.7 was truncated to 2)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) or \
            not float(value).is_integer() or value < least:
        raise ValueError(f"{op}: {name} must be a whole number >= {least}; got {value!r}")
    return int(value)


def float_dtype(array: Any):
    """np.float64 for a float64 array or tensor, else np.float32 (the kernels' two float types)."""
    return np.float64 if array.dtype in (np.float64, torch.float64) else np.float32


def torch_dtype(numpy_dtype) -> torch.dtype:
    return torch.from_numpy(np.empty(0, dtype=numpy_dtype)).dtype


class CudaCall:
    """Device plumbing for one op call. For a CUDA-tensor template: kernels run on torch's current stream and
    device memory comes from torch's caching allocator (numba's own allocator would cudaMalloc every buffer);
    otherwise (numpy or CPU tensors, the simulator included) numba's default stream and allocator are used and
    results are copied back to the host."""

    def __init__(self, template: Any):
        self.cuda = cuda_api()
        self.template = template
        self.device = template.device if is_cuda_tensor(template) else None
        self.stream = 0
        if self.device is not None:
            self.stream = self.cuda.external_stream(torch.cuda.current_stream(self.device).cuda_stream)

    def upload(self, array: Any, dtype=None):
        """A device array of ``array`` (numpy or tensor, cast to ``dtype`` when given); zero-copy for a CUDA
        tensor that already has that dtype and is contiguous."""
        if self.device is not None:
            tensor = torch.as_tensor(array).detach()
            if dtype is not None:
                tensor = tensor.to(dtype=torch_dtype(dtype))
            return self.cuda.as_cuda_array(tensor.to(self.device).contiguous())
        host = as_numpy(array, dtype)
        if host.size == 0:
            return self.cuda.device_array(host.shape, host.dtype, stream=self.stream)
        return self.cuda.to_device(host, stream=self.stream)

    def empty(self, shape, dtype):
        if self.device is not None:
            return self.cuda.as_cuda_array(torch.empty(shape, dtype=torch_dtype(dtype), device=self.device))
        return self.cuda.device_array(shape, dtype, stream=self.stream)

    def launch(self, kernel, num_threads: int, *args) -> None:
        """Launch a 1D ``kernel`` over ``num_threads`` threads (nothing to do when 0)."""
        if num_threads > 0:
            blocks = math.ceil(num_threads / CUDA_THREADS)
            kernel[blocks, CUDA_THREADS, self.stream](*args)

    def scalar(self, device_array, index: int) -> int:
        """One element copied to the host (synchronises the stream)."""
        return int(device_array[index : index + 1].copy_to_host(stream=self.stream)[0])

    def download(self, device_array) -> Any:
        """``device_array`` as the template's type: a CUDA tensor sharing the memory, else host numpy/tensor."""
        if self.device is not None:
            if device_array.size == 0:
                return torch.empty(device_array.shape, dtype=torch_dtype(device_array.dtype), device=self.device)
            return torch.as_tensor(device_array, device=self.device)
        if device_array.size == 0:
            return like(np.empty(device_array.shape, device_array.dtype), self.template)
        return like(device_array.copy_to_host(stream=self.stream), self.template)


