"""Shared test fixtures: the real nuScenes keyframes beside the checkout (skipped with a reason when absent) and
a tiny synthetic world generated once per test session; the environment of a tool started in a subprocess."""
import os

import pytest

from perception.paths import REAL_FIXTURE_ROOT, REPO_ROOT

TINY_WORLD = dict(num_scenes=2, samples_per_scene=4, seed=0, image_size=(320, 180), version="v1.0-synth")
"""The tiny synthetic world every test shares: 2 scenes x 4 keyframes, small images (splits.json: scene 0 in
synth_train, scene 1 in synth_val)."""
REAL_SCENE_FIXTURE_ROOT = REPO_ROOT.parent / "shared" / "fixtures" / "nuscenes-scene0916"
"""All 41 keyframes of scene-0916 (CC BY-NC-SA; splits real_finetune / real_val of v1.0-mini), for fine-tuning on real
data: read in place, never copied, nor a model trained on them, into the repository."""


def tree_under_test_env(**variables: str) -> dict:
    """os.environ with ``variables`` and PYTHONPATH set to this tree, so that a tool started in a subprocess (its
    script's folder first on sys.path, not the working directory) imports this tree's perception, not the one
    installed in the environment (another checkout's, from a worktree)."""
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT), **variables)


@pytest.fixture(scope="session")
def nusc_real():
    """nuscenes-devkit's NuScenes on ../shared/fixtures/nuscenes-real (3 keyframes of scene-0916, v1.0-mini)."""
    if not (REAL_FIXTURE_ROOT / "v1.0-mini").is_dir():
        pytest.skip(f"real nuScenes fixture absent: expected tables at {REAL_FIXTURE_ROOT / 'v1.0-mini'}")
    from nuscenes.nuscenes import NuScenes

    return NuScenes(version="v1.0-mini", dataroot=str(REAL_FIXTURE_ROOT), verbose=False)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """Data root of the tiny synthetic world (TINY_WORLD), generated once per session."""
    from perception.datasets.synthetic import generate_world

    return generate_world(tmp_path_factory.mktemp("synthetic"), progress=False, **TINY_WORLD)


@pytest.fixture(scope="session")
def nusc_synthetic(synthetic_root):
    """nuscenes-devkit's NuScenes on the tiny synthetic world."""
    from nuscenes.nuscenes import NuScenes

    return NuScenes(version=TINY_WORLD["version"], dataroot=str(synthetic_root), verbose=False)
