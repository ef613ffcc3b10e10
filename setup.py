"""perception: camera + radar + LiDAR sensor fusion for autonomous driving (install: see README.md)."""
from setuptools import find_packages, setup

# Exact pins: the versions the test suite runs on. nuscenes-devkit 1.2.0 needs numpy < 2; torch 2.13.0 is the
# CPU build on these machines (pip takes it from the local disk).
INSTALL_REQUIRES = [
    "torch==2.13.0",
    "nuscenes-devkit==1.2.0",
    "numpy==1.26.4",
    "scipy==1.17.1",
    "numba==0.68.1",
    "open3d==0.20.0",
    "opencv-python-headless==4.11.0.86",
    "mmengine==0.10.7",
    "tqdm==4.70.1",
    # numpy's BLAS pool set to one thread at run time by the thread policy (perception.threads); already pulled in
    # by the devkit's scikit-learn, pinned at the version tested.
    "threadpoolctl==3.8.0",
    # Replay recordings that Foxglove opens: the MCAP writer/reader and Foxglove's own schemas (protobuf).
    "mcap==1.6.0",
    "mcap-protobuf-support==0.6.0",
    "foxglove-schemas-protobuf==0.4.0",
    "protobuf==7.36.2",
    # LoRA for tools/finetune.py (its Conv2d / Linear layers and merge), with the transformers and accelerate it
    # imports, pinned at the versions tested.
    "peft==0.21.2",
    "transformers==5.24.0",
    "accelerate==1.16.0",
    # Structured channel pruning for tools/prune.py (perception.deploy.prune): dependency graph, L1 group-norm
    # importance, MAC counting; 1.6.1 tested with torch 2.13. Imported only by the pruning code.
    "torch-pruning==1.6.1",
]
# ONNX export and the ONNX Runtime backends (perception.deploy). onnx 1.19.1, not >= 1.20: those pull ml_dtypes 0.7,
# which needs numpy 2 (nuscenes-devkit needs numpy < 2); ml_dtypes pinned at 0.5.4, which works with numpy 1.26.
DEPLOY_REQUIRES = [
    "onnx==1.19.1",
    "ml_dtypes==0.5.4",
    "onnxruntime==1.32.0",
]
TEST_REQUIRES = [
    "pytest==9.2.0",
    "pytest-xdist==3.8.0",
    "hypothesis==6.170.17",
    "spconv==2.3.8",  # CPU build: the reference that hard voxelization is compared with
]

TOOLS = ["demo", "test", "train", "replay", "benchmark", "make_synthetic", "finetune", "compare_finetuning",
         "robustness", "compare_robustness", "export", "quantize", "prune", "train_ego_mlp", "cut_scene",
         "compare_evaluations"]

setup(
    name="perception",
    version="0.1.0",
    description="Camera + radar + LiDAR BEV fusion on nuScenes-format data",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["perception", "perception.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={"deploy": DEPLOY_REQUIRES, "test": TEST_REQUIRES + DEPLOY_REQUIRES},
    entry_points={"console_scripts": [f"perception-{name}=perception.cli.{name}:main" for name in TOOLS]},
)
