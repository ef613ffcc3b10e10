"""Where data lives: the repository's data root and the real nuScenes test fixture beside the checkout."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT = REPO_ROOT / "datasets"
"""Real nuScenes goes in DATA_ROOT/nuscenes; generated data is written under DATA_ROOT (git-ignored)."""
REAL_FIXTURE_ROOT = REPO_ROOT.parent / "shared" / "fixtures" / "nuscenes-real"
"""Three real nuScenes keyframes (CC BY-NC-SA): read from here by tests, never copied into the repository."""
