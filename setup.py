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
    # Replay recordings that Foxglove opens: the MCAP writer/reader and Foxglove's own schemas (protobuf).
    "mcap==1.6.0",
    "mcap-protobuf-support==0.6.0",
    "foxglove-schemas-protobuf==0.4.0",
    "protobuf==7.36.2",
]
TEST_REQUIRES = [
    "pytest==9.2.0",
    "pytest-xdist==3.8.0",
    "hypothesis==6.170.17",
    "spconv==2.3.8",  # CPU build: the reference that hard voxelization is compared with
]

TOOLS = ["demo", "test", "train", "replay", "benchmark", "make_synthetic"]

setup(
    name="perception",
    version="0.1.0",
    description="Camera + radar + LiDAR BEV fusion on nuScenes-format data",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["perception", "perception.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": TEST_REQUIRES},
    entry_points={"console_scripts": [f"perception-{name}=perception.cli.{name}:main" for name in TOOLS]},
)
