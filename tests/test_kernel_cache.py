"""perception.kernel_cache: a cached kernel's folder follows every source file of its package."""
import os
import sys
import tempfile

import numba
from numba.misc.appdirs import AppDirs

from perception.kernel_cache import kernel_cache_dir, sources_digest


def test_the_digest_follows_every_python_file_of_the_package_and_nothing_else(tmp_path):
    (tmp_path / "kernels.py").write_text("from .constants import WIDTH\n")
    (tmp_path / "constants.py").write_text("WIDTH = 3.5\n")
    first = sources_digest(tmp_path)
    (tmp_path / "notes.txt").write_text("not a source")
    assert sources_digest(tmp_path) == first
    (tmp_path / "constants.py").write_text("WIDTH = 3.75\n")  # a constant a kernel reads from another file
    changed = sources_digest(tmp_path)
    assert changed != first and kernel_cache_dir(tmp_path).endswith(f"kernels-{changed}")


def test_the_synthetic_world_s_kernels_cache_under_the_generator_s_sources():
    """(They read LANE_WIDTH_M and Material from layout.py, which Numba compiles in as constants: with Numba's own
    cache an edit of layout.py kept the old values in the lane paint, and a world generated after it differed from
    a fresh checkout's.)"""
    from numba.core.registry import CPUDispatcher

    from perception.datasets.synthetic import shading

    kernels = [kernel for kernel in vars(shading).values() if isinstance(kernel, CPUDispatcher)]
    package = sys.modules["perception.datasets.synthetic"].__path__[0]
    assert len(kernels) == 9
    assert all(kernel._cache._cache_path.startswith(shading.KERNEL_CACHE_DIR) for kernel in kernels)
    assert shading.KERNEL_CACHE_DIR == kernel_cache_dir(package)


def test_the_folder_is_under_numba_cache_dir_when_set_else_in_the_package_else_numba_s_user_wide_folder(
        tmp_path, monkeypatch):
    """README, "Kernels": under NUMBA_CACHE_DIR when set, else in the package's __pycache__, else (not writable: an
    installed read-only package) in Numba's own user-wide folder (AppDirs' user_cache_dir, as Numba's
    _UserWideCacheLocator finds it). Root writes anywhere, so the write test is made to fail as it fails there."""
    package = tmp_path / "package"
    package.mkdir()
    (package / "kernels.py").write_text("WIDTH = 3.5\n")
    name = f"kernels-{sources_digest(package)}"
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "user_cache"))
    assert kernel_cache_dir(package) == str(tmp_path / "user_cache" / name)
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    assert kernel_cache_dir(package) == str(package / "__pycache__" / name)

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    assert kernel_cache_dir(package) == os.path.join(AppDirs(appname="numba", appauthor=False).user_cache_dir, name)
