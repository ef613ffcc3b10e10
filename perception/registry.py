"""The mmengine registries the project's modules register into: mmengine's root registries, so that a Runner built
from a config finds them once perception.models / perception.engine are imported. The one place models and engine
read them from."""
from mmengine.registry import DATASETS, FUNCTIONS, HOOKS, METRICS, MODEL_WRAPPERS, MODELS

__all__ = ["DATASETS", "FUNCTIONS", "HOOKS", "METRICS", "MODEL_WRAPPERS", "MODELS"]
