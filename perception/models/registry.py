"""The mmengine registries the project's modules register into (mmengine's root registries, so that a Runner
built from a config finds them once perception.models / perception.engine are imported)."""
from mmengine.registry import DATASETS, FUNCTIONS, METRICS, MODEL_WRAPPERS, MODELS, RUNNERS

__all__ = ["DATASETS", "FUNCTIONS", "METRICS", "MODEL_WRAPPERS", "MODELS", "RUNNERS"]
