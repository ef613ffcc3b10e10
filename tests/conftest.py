"""Shared test fixtures: the real nuScenes keyframes beside the checkout (skipped with a reason when absent)."""
import pytest

from perception.paths import REAL_FIXTURE_ROOT


@pytest.fixture(scope="session")
def nusc_real():
    """nuscenes-devkit's NuScenes on ../shared/fixtures/nuscenes-real (3 keyframes of scene-0916, v1.0-mini)."""
    if not (REAL_FIXTURE_ROOT / "v1.0-mini").is_dir():
        pytest.skip(f"real nuScenes fixture absent: expected tables at {REAL_FIXTURE_ROOT / 'v1.0-mini'}")
    from nuscenes.nuscenes import NuScenes

    return NuScenes(version="v1.0-mini", dataroot=str(REAL_FIXTURE_ROOT), verbose=False)
