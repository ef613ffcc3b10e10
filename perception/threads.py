"""The process's one thread policy: how many threads torch, Numba, ONNX Runtime, OpenCV and numpy's BLAS use, and
how their idle workers wait. The tools apply it at start-up (``apply_thread_policy``, through perception.cli.tool_main);
benchmarks/bench_threads.py compares it with the alternatives (benchmarks/RESULTS.md, "Thread policy").

The policy: every pool gets the CPUs this process may use (``os.sched_getaffinity``), and no pool's idle workers
spin for long: ``OMP_WAIT_POLICY=PASSIVE`` for the OpenMP runtimes of torch's and Numba's pools, with a short spin
(``GOMP_SPINCOUNT``, OPENMP_SPIN_COUNT) before a worker sleeps, and ONNX Runtime's intra-op pool with spinning
off. On a 2-core host a spinning pool holds a core that the other pool's next parallel region needs: by default the
end-to-end p99 was ~2x p50 on an idle machine, ~1.25x with passive waiting (for ~10 ms of median), and under load
spinning made frames >10x slower. OpenCV (image decoding and resizing in the loader) runs on one thread, so that it
adds no third pool, and so does numpy's BLAS (OpenBLAS, whose idle workers spin after each call). The BLAS pool and
the short spin go together (benchmarks/RESULTS.md, "numpy's BLAS on one thread"): the BLAS workers' spinning after
the loader's matrix products held a core while the next frame's INT8 graphs ran, and kept it awake for torch's;
without it torch's sleeping workers woke too late, which the short spin restores.

OMP_WAIT_POLICY and GOMP_SPINCOUNT are read when the OpenMP runtime starts, i.e. when torch is first imported:
``set_openmp_environment`` runs from perception.cli's package import, before any tool imports torch. A value
already in the environment is kept (the user's choice wins), as is ``--threads`` given to a tool. The BLAS pool is
set at run time (threadpoolctl), so it holds wherever numpy was imported first.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Optional

OPENMP_WAIT_POLICY = "PASSIVE"
OPENMP_SPIN_COUNT = "3000"
"""GOMP_SPINCOUNT: the rounds libgomp's workers (torch's and Numba's OpenMP here) spin before they sleep, which
libgomp takes over the passive policy: ~30 us (10,000 rounds spin ~0.1 ms), enough to keep a core awake between the
parallel regions of one stage (benchmarks/RESULTS.md, "numpy's BLAS on one thread")."""


OPENMP_ENVIRONMENT = {"OMP_WAIT_POLICY": OPENMP_WAIT_POLICY, "GOMP_SPINCOUNT": OPENMP_SPIN_COUNT}
"""The policy's OpenMP variables, read by the runtimes once, at load."""


def set_openmp_environment() -> None:
    """Sets OPENMP_ENVIRONMENT's variables unless the environment names them (effective only before torch
    loads)."""
    for name, value in OPENMP_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def available_cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class ThreadPolicy:
    """Threads per pool: torch intra-op, Numba, ONNX Runtime intra-op, OpenCV, numpy's BLAS."""

    torch_threads: int
    numba_threads: int
    onnxruntime_threads: int
    opencv_threads: int
    blas_threads: int


_applied: Optional[ThreadPolicy] = None


def apply_thread_policy(threads: Optional[int] = None) -> ThreadPolicy:
    """Sets the pools of this process to the policy (module docstring); ``threads`` overrides the CPU count.
    Returns what was set; ``onnxruntime_session_options`` uses it for the sessions made afterwards. Numba's pool
    has at most NUMBA_NUM_THREADS threads (fixed when Numba loads): above that it keeps its maximum, with a
    warning."""
    global _applied
    import cv2
    import numba
    import torch
    from threadpoolctl import threadpool_limits

    count = threads or available_cpus()
    if count < 1:
        raise ValueError(f"threads must be >= 1, got {count}")
    policy = ThreadPolicy(torch_threads=count, numba_threads=min(count, numba.config.NUMBA_NUM_THREADS),
                          onnxruntime_threads=count, opencv_threads=1, blas_threads=1)
    if policy.numba_threads < count:
        warnings.warn(f"threads {count}: Numba's pool has at most {policy.numba_threads} (NUMBA_NUM_THREADS), so it "
                      f"uses {policy.numba_threads}; the other pools use {count}", stacklevel=2)
    set_openmp_environment()
    torch.set_num_threads(policy.torch_threads)
    numba.set_num_threads(policy.numba_threads)
    cv2.setNumThreads(policy.opencv_threads)
    threadpool_limits(policy.blas_threads, user_api="blas")  # numpy's OpenBLAS, for the rest of the process
    _applied = policy
    return policy


def onnxruntime_session_options():
    """onnxruntime.SessionOptions under the policy: the applied intra-op thread count (all CPUs when none was
    applied), one inter-op thread, sequential execution, no spinning of idle workers. Chosen side by side with
    torch in one process (benchmarks/bench_onnxruntime_sessions.py): spinning workers hold the cores torch's and
    Numba's pools need (end to end 2.4x slower on 2 cores); one intra-op thread cost 9 % of detector p50 for an
    unchanged tail."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = _applied.onnxruntime_threads if _applied is not None else available_cpus()
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options
