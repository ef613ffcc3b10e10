"""Test helpers: a writable copy of the real fixture's tables (sensor files linked, not copied); a sample record
that fails a walk round a loop."""
import os
import shutil
from pathlib import Path

from perception.paths import REAL_FIXTURE_ROOT

REAL_VERSION = "v1.0-mini"
REAL_SPLIT = "mini_val"


def real_fixture_copy(destination: Path, copied_channels=()) -> Path:
    """A dataroot with the real fixture's tables copied (free to edit) and its sample folders symlinked, except
    ``copied_channels`` whose files are copied (free to corrupt)."""
    shutil.copytree(REAL_FIXTURE_ROOT / REAL_VERSION, destination / REAL_VERSION)
    os.symlink(REAL_FIXTURE_ROOT / "maps", destination / "maps")
    (destination / "samples").mkdir()
    for channel_dir in (REAL_FIXTURE_ROOT / "samples").iterdir():
        target = destination / "samples" / channel_dir.name
        if channel_dir.name in copied_channels:
            shutil.copytree(channel_dir, target)
            for path in target.iterdir():
                path.chmod(0o644)
        else:
            os.symlink(channel_dir, target)
    return destination


class LoopGuardedSample(dict):
    """A sample record whose ``next`` may be read 100 times only: a walk round a loop fails instead of running on."""

    reads = 0

    def __getitem__(self, key):
        if key == "next":
            self.reads += 1
            assert self.reads <= 100, f"sample {self['token']}: next read over and over (a walk round a loop)"
        return super().__getitem__(key)
