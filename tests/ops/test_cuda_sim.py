"""Runs the CUDA kernels' parity cases (cuda_sim_cases.py) under Numba's CUDA simulator in a subprocess: the
simulator has to be selected before numba.cuda is first imported, which this test process may already have done."""
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_cuda_kernels_match_references_in_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         str(Path(__file__).with_name("cuda_sim_cases.py"))],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-3000:]
    assert " passed" in completed.stdout and "skipped" not in completed.stdout.splitlines()[-1], completed.stdout
