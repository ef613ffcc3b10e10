"""perception.kernel_cache: a cached kernel's folder follows every source file of its package."""
import sys

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
