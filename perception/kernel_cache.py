"""Numba kernels cached on disk in a folder per state of the sources they are built from.

Numba checks a cached kernel against its own file only ("changes in symbols defined in a different file" are not
detected: a helper it calls, a constant it reads from another module), so a kernel kept the old code of such a
symbol after its file changed, by an edit or an upgrade. A kernel made by ``cached_kernel`` is cached under
``kernels-<digest of its package's Python files>``, a new folder for every change of them.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable

import numba
from numba.misc.appdirs import AppDirs


def sources_digest(package: Path) -> str:
    """16 hex digits of a SHA-256 over the names and contents of the Python files in the folder ``package``."""
    digest = hashlib.sha256()
    for source in sorted(Path(package).glob("*.py")):
        digest.update(f"{source.name}\0{hashlib.sha256(source.read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()[:16]


def kernel_cache_dir(package: Path) -> str:
    """``kernels-<sources_digest(package)>`` under the user's NUMBA_CACHE_DIR when set, else under
    ``package``/__pycache__ when it is writable, else under Numba's own fallback, its user-wide cache folder."""
    name = f"kernels-{sources_digest(package)}"
    if numba.config.CACHE_DIR:
        return os.path.join(numba.config.CACHE_DIR, name)
    in_tree = Path(package) / "__pycache__" / name
    try:
        in_tree.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=in_tree).close()  # Numba's own test of a cache folder
        return str(in_tree)
    except OSError:
        return os.path.join(AppDirs(appname="numba", appauthor=False).user_cache_dir, name)


def cached_kernel(cache_dir: str, **options) -> Callable:
    """Decorator: ``numba.njit(cache=True, **options)`` with its cache under ``cache_dir`` (kernel_cache_dir; Numba
    reads its CACHE_DIR setting when the kernel is made; the user's setting is restored for every other function)."""
    def make(function: Callable) -> Callable:
        user_setting = numba.config.CACHE_DIR
        numba.config.CACHE_DIR = cache_dir
        try:
            return numba.njit(cache=True, **options)(function)
        finally:
            numba.config.CACHE_DIR = user_setting

    return make
