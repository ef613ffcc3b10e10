"""Backend choice and lazy loading of perception.ops."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from perception.ops import hard_voxelize
from perception.ops._backend import resolve_backend


def test_importing_ops_compiles_nothing_and_leaves_cuda_alone():
    probe = (
        "import sys, perception.ops\n"
        "_grid, _grouping, bev_pool, voxelize = (sys.modules[f'perception.ops.{m}']\n"
        "                                        for m in ('_grid', '_grouping', 'bev_pool', 'voxelize'))\n"
        "assert not [m for m in sys.modules if m.startswith('numba.cuda')], 'numba.cuda imported'\n"
        "compiled = [f for f in (_grid.point_keys_cpu, _grouping.group_keys_cpu, _grouping.group_points_cpu,\n"
        "                        bev_pool._pool_forward_cpu, voxelize._gather_voxels_cpu) if f.signatures]\n"
        "assert not compiled, compiled\n"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


def test_editing_a_helper_file_recompiles_the_kernels_that_call_it(tmp_path):
    """Numba's cache checks only the cached kernel's own file: with the helper ``inside_box`` of
    _box_containment.py made strict, points_in_boxes (points_in_boxes.py) kept its old machine code. In a copy of
    the package: a point on a box's length face (x = length / 2 = 2 m) is inside, faces included ([0]); with
    ``|x| < length / 2`` it is outside ([-1]), and the second run has to compile that."""
    package = Path(sys.modules["perception"].__file__).parent
    shutil.copytree(package, tmp_path / "perception", ignore=shutil.ignore_patterns("__pycache__"))
    probe = ("import numpy as np\n"
             "from perception.ops import points_in_boxes\n"
             "print(points_in_boxes(np.array([[2.0, 0, 0]]), np.array([[0.0, 0, 0, 2, 4, 1, 0]])).tolist())\n")
    environment = {name: value for name, value in os.environ.items() if name != "NUMBA_CACHE_DIR"}
    environment["PYTHONPATH"] = str(tmp_path)

    def first_boxes() -> str:
        completed = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=environment, capture_output=True,
                                   text=True, timeout=300)
        assert completed.returncode == 0, completed.stderr
        return completed.stdout.strip()

    assert first_boxes() == "[0]"
    helper = tmp_path / "perception" / "ops" / "_box_containment.py"
    source = helper.read_text()
    assert source.count("abs(along_length) <= box[5]") == 1
    helper.write_text(source.replace("abs(along_length) <= box[5]", "abs(along_length) < box[5]"))
    assert first_boxes() == "[-1]"


def test_every_cpu_kernel_caches_under_the_folder_of_the_ops_sources():
    """A kernel compiled with numba.njit(cache=True) of its own would be cached by its file alone again; the
    user's Numba cache setting is left as it was for every other function."""
    import numba
    from numba.core.registry import CPUDispatcher

    from perception.ops._backend import KERNEL_CACHE_DIR

    kernels = {kernel for name, module in list(sys.modules.items()) if name.startswith("perception.ops.")
               for kernel in vars(module).values() if isinstance(kernel, CPUDispatcher)}
    elsewhere = [kernel for kernel in kernels if not kernel._cache._cache_path.startswith(KERNEL_CACHE_DIR)]
    assert len(kernels) >= 29 and not elsewhere, (len(kernels), elsewhere)
    assert numba.config.CACHE_DIR == os.environ.get("NUMBA_CACHE_DIR", "")


def test_backend_resolution():
    assert resolve_backend(None, np.zeros(3)) == "numba"
    assert resolve_backend(None, torch.zeros(3)) == "numba"
    assert resolve_backend("reference", torch.zeros(3)) == "reference"
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("cpu", np.zeros(3))


def test_forced_backends_return_the_input_type():
    points = np.random.default_rng(0).uniform(-1, 1, (50, 4)).astype(np.float32)
    for backend in ("reference", "numba"):
        voxels, coords, num_points = hard_voxelize(torch.from_numpy(points), (0.5, 0.5, 0.5), (-1, -1, -1, 1, 1, 1),
                                                   4, 100, backend=backend)
        assert [(type(t), t.dtype) for t in (voxels, coords, num_points)] == [
            (torch.Tensor, torch.float32), (torch.Tensor, torch.int32), (torch.Tensor, torch.int32)], backend


def test_small_inputs_run_the_cpu_kernels_on_one_thread_and_restore_the_setting():
    import numba

    from perception.ops._backend import PARALLEL_MIN_POINTS, cpu_threads_for

    before = numba.get_num_threads()
    with cpu_threads_for(PARALLEL_MIN_POINTS - 1):
        assert numba.get_num_threads() == 1
    with cpu_threads_for(PARALLEL_MIN_POINTS):
        assert numba.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with cpu_threads_for(10):
            raise RuntimeError("inside")
    assert numba.get_num_threads() == before


def test_every_point_cloud_op_names_a_cloud_of_the_wrong_shape():
    """Each op taking a cloud (N, C>=3) [x, y, z, ...] refuses another shape with its own name."""
    from perception.ops import dynamic_voxelize, points_in_boxes, points_in_boxes_mask

    calls = {
        "hard_voxelize": lambda points: hard_voxelize(points, (1, 1, 1), (0, 0, 0, 2, 2, 2), 1, 1),
        "dynamic_voxelize": lambda points: dynamic_voxelize(points, (1, 1, 1), (0, 0, 0, 2, 2, 2)),
        "points_in_boxes": lambda points: points_in_boxes(points, np.zeros((1, 7))),
        "points_in_boxes_mask": lambda points: points_in_boxes_mask(points, np.zeros((1, 7))),
    }
    for op, call in calls.items():
        for shape in ((4, 2), (12,), (2, 3, 1)):
            with pytest.raises(ValueError, match=rf"^{op}: points must be \(N, C>=3\) with columns x, y, z first; "
                                                 rf"got shape \({', '.join(map(str, shape))},?\)$"):
                call(np.zeros(shape, np.float32))


def test_every_kernel_names_an_input_of_another_float_type_than_its_kernels():
    """Numba compiles neither float16 nor bfloat16 (it failed deep inside the kernel; the reference and the CUDA
    path gave float16 and float32): each op refuses them with its own name and the argument's, before any backend
    runs; the differentiable ones refuse numpy input."""
    from perception.ops import (BEVPoolGeometry, bev_pool, circle_nms, dynamic_voxelize, pillar_scatter,
                                points_in_boxes, points_in_boxes_mask, scatter_points)

    boxes = np.zeros((1, 7))
    geometry = BEVPoolGeometry.from_points(np.zeros((1, 1, 1, 1, 1, 3), np.float32), (-1, -1, -1, 1, 1, 1),
                                           (1, 1, 2))
    calls = {
        "scatter_points: features": lambda dtype: scatter_points(np.ones((2, 1), dtype), np.zeros((2, 3), np.int32)),
        "pillar_scatter: pillar_features": lambda dtype: pillar_scatter(
            torch.ones(2, 1, dtype=dtype), torch.zeros(2, 4, dtype=torch.int32), 1, (1, 1)),
        "bev_pool: context": lambda dtype: bev_pool(torch.ones(1, 1, 1, 1, 1, dtype=dtype),
                                                    torch.ones(1, 1, 1, 1, 2, dtype=dtype), geometry),
        "points_in_boxes: points": lambda dtype: points_in_boxes(np.zeros((2, 3), dtype), boxes),
        "points_in_boxes_mask: points": lambda dtype: points_in_boxes_mask(np.zeros((2, 3), dtype), boxes),
        "hard_voxelize: points": lambda dtype: hard_voxelize(np.zeros((2, 3), dtype), (1, 1, 1), (0, 0, 0, 2, 2, 2),
                                                             1, 1),
        "dynamic_voxelize: points": lambda dtype: dynamic_voxelize(np.zeros((2, 3), dtype), (1, 1, 1),
                                                                   (0, 0, 0, 2, 2, 2)),
        "circle_nms: centers": lambda dtype: circle_nms(np.zeros((2, 2), dtype), np.ones(2), 1.0),
    }
    for name, call in calls.items():
        numpy_call = not name.startswith(("pillar_scatter", "bev_pool"))
        for dtype in ((np.float16, np.int32) if numpy_call else (torch.float16, torch.bfloat16, torch.int32)):
            with pytest.raises(ValueError, match=f"{name} must be float32 or float64"):
                call(dtype)
    with pytest.raises(ValueError, match="pillar_scatter: pillar_features must be a torch tensor; got ndarray"):
        pillar_scatter(np.ones((2, 1), np.float32), np.zeros((2, 4), np.int32), 1, (1, 1))
    depth, context = torch.ones(1, 1, 1, 1, 1), torch.ones(1, 1, 1, 1, 2)  # bev_pool took numpy and gave a tensor
    for name, numpy_depth, numpy_context in (("depth", depth.numpy(), context), ("context", depth, context.numpy())):
        with pytest.raises(ValueError, match=f"^bev_pool: {name} must be a torch tensor; got ndarray$"):
            bev_pool(numpy_depth, numpy_context, geometry)
