"""configs/fusion_base.py (the real-nuScenes, GPU-sized config) trains a few iterations on the CPU and validates on
the real fixture, its dataloaders asking the loader for the sweep counts the config declares."""
import json
import os

import perception.engine.data
from perception.cli.train import main as train
from perception.datasets.loader import NuScenesFrames
from perception.models import model_inputs
from perception.paths import REAL_FIXTURE_ROOT, REPO_ROOT

CONFIG = str(REPO_ROOT / "configs" / "fusion_base.py")


def test_fusion_base_trains_and_validates_on_real_keyframes(nusc_real, tmp_path, monkeypatch):
    requested = []

    class RecordingFrames(NuScenesFrames):
        def __init__(self, dataroot, version, split, lidar_sweeps, radar_sweeps, **kwargs):
            requested.append((split, lidar_sweeps, radar_sweeps))
            super().__init__(dataroot, version, split, lidar_sweeps=lidar_sweeps, radar_sweeps=radar_sweeps,
                             **kwargs)

    monkeypatch.setattr(perception.engine.data, "NuScenesFrames", RecordingFrames)
    data = dict(dataroot=str(REAL_FIXTURE_ROOT), version="v1.0-mini", split="mini_val")
    options = [f"{loader}.{key}={value}" for loader in ("train_dataloader", "val_dataloader")
               for key, value in (("batch_size", 1), ("num_workers", 0), ("persistent_workers", False))]
    options += [f"{loader}.dataset.{key}={value}" for loader in ("train_dataloader", "val_dataloader")
                for key, value in data.items()]
    work_dir = str(tmp_path / "run")
    train([CONFIG, "--work-dir", work_dir, "--max-iters", "2", "--cfg-options", *options])
    declared = model_inputs(CONFIG)
    assert (declared.lidar_sweeps, declared.radar_sweeps) == (10, 6)
    # the data check's, then the train and val loaders' (each loaded at the declared sweeps)
    assert sorted(set(requested)) == [("mini_val", 10, 6)] and len(requested) == 4
    validation = json.load(open(os.path.join(work_dir, "last_validation.json")))
    assert validation["iteration"] == 2 and 0.0 <= validation["metrics"]["val/nuscenes/NDS"] <= 1.0
    assert os.path.isfile(os.path.join(work_dir, "iter_2.pth"))
