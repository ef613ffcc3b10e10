"""The one place adapting mmengine to this project and to CPU-only torch: adapters (launcher, DDP wrapper),
resume/export of checkpoints, the dataset/collate and the official-metric Metric used by tools/train.py."""
from perception.engine.adapters import (RESUME_SCHEME, DeviceAwareDistributedDataParallel, end_distributed,
                                       init_distributed_from_env, load_own_resume_file)
from perception.engine.checkpoint import export_checkpoint, resume_source, save_checkpoint
from perception.engine.hooks import RandomStateHook, TrainTimeBudgetHook
from perception.engine.data import (FrameDataset, apply_model_inputs, build_transform, collate_fusion_batch,
                                    evaluate_validation_data)
from perception.engine.metric import NuScenesDetectionMetric

__all__ = ["DeviceAwareDistributedDataParallel", "FrameDataset", "NuScenesDetectionMetric", "RESUME_SCHEME",
           "RandomStateHook", "TrainTimeBudgetHook", "apply_model_inputs", "build_transform", "collate_fusion_batch",
           "end_distributed", "evaluate_validation_data", "export_checkpoint", "init_distributed_from_env",
           "load_own_resume_file", "resume_source", "save_checkpoint"]
