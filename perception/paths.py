"""Where data lives: the repository's data root and the real nuScenes test fixture beside the checkout."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT = REPO_ROOT / "datasets"
"""Real nuScenes goes in DATA_ROOT/nuscenes; generated data is written under DATA_ROOT (git-ignored)."""
REAL_FIXTURE_ROOT = REPO_ROOT.parent / "shared" / "fixtures" / "nuscenes-real"
"""Three real nuScenes keyframes (CC BY-NC-SA): read from here by tests, never copied into the repository."""
REAL_SCENE_FIXTURE_ROOT = REPO_ROOT.parent / "shared" / "fixtures" / "nuscenes-scene0916"
"""All 41 keyframes of scene-0916 (CC BY-NC-SA; splits real_finetune / real_val of v1.0-mini), for fine-tuning on real
data: read in place, never copied, nor a model trained on them, into the repository."""
