"""Backend choice and lazy loading of perception.ops."""
import subprocess
import sys

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
