"""perception: camera + radar + LiDAR sensor fusion for autonomous driving, on nuScenes-format data."""
import os

# Numba's parallel kernels on OpenMP first (the layer the benchmarks record); Numba's default order tries TBB
# first and warns when the TBB it finds is older than it supports. Read when numba is imported; a user's own
# setting wins.
os.environ.setdefault("NUMBA_THREADING_LAYER_PRIORITY", "omp tbb workqueue")

__version__ = "0.1.0"
