"""Runs the CUDA kernels' parity cases (cuda_sim_cases.py) in a subprocess, under Numba's CUDA simulator and, where
a GPU is present, on it (the simulator has to be selected before numba.cuda is first imported, which this test
process may already have done; the GPU compiles what the simulator interprets, fused multiply-adds included)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run_cases(env: dict) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         str(Path(__file__).with_name("cuda_sim_cases.py"))],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-3000:]
    assert " passed" in completed.stdout and "skipped" not in completed.stdout.splitlines()[-1], completed.stdout


def test_cuda_kernels_match_references_in_the_simulator():
    _run_cases(dict(os.environ, NUMBA_ENABLE_CUDASIM="1"))


def _gpu_present() -> bool:
    probe = subprocess.run([sys.executable, "-c", "from numba import cuda; print(cuda.is_available())"],
                           env={k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"},
                           capture_output=True, text=True, timeout=120)
    return probe.stdout.strip() == "True"


def test_cuda_kernels_match_references_on_the_gpu():
    if not _gpu_present():
        pytest.skip("no CUDA GPU here (numba.cuda.is_available() is False); benchmarks/gpu_check.py on one")
    _run_cases({k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"})
