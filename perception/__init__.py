"""perception: camera + radar + LiDAR sensor fusion for autonomous driving, on nuScenes-format data.

The package is a layered house: a module imports only from its own package and from the layers below its own
(LAYERS, lowest first; tests/test_architecture.py checks it, and that no two modules import each other):

    leaves     paths, sensors (channels, modalities), classes, maneuvers, timing (stage timer), registry
               (mmengine's), threads (the process's thread policy), plotting (matplotlib for PNG pictures), jsonfile
               (JSON read with errors naming the file, records written whole), kernel_cache (Numba's disk cache,
               a folder per state of a kernel's sources)
    geometry   frames, transforms, calibration, projection, Boxes3D: the conventions
    datasets   nuScenes tables and files -> Frame; the synthetic world generator
    ops        the point-cloud kernels (numpy reference, Numba CPU, Numba CUDA)
    models     the BEV fusion network; detector, the Detector protocol its consumers call
    decision   planner and decision rules
    viz        BEV and camera drawings, video, the dataset preview
    eval       detection and decision metrics, reports; runtime: streaming, replay, benchmark; deploy: ONNX
               export, ONNX Runtime backends, INT8 quantization
    engine     mmengine training adapters
    cli        the tools' main(args)
"""

__version__ = "0.1.0"

LAYERS = (
    ("perception.paths", "perception.sensors", "perception.classes", "perception.maneuvers", "perception.timing",
     "perception.registry", "perception.threads", "perception.plotting", "perception.jsonfile",
     "perception.kernel_cache"),
    ("perception.geometry",),
    ("perception.datasets",),
    ("perception.ops",),
    ("perception.models", "perception.detector"),
    ("perception.decision",),
    ("perception.viz",),
    ("perception.eval", "perception.runtime", "perception.deploy"),
    ("perception.engine",),
    ("perception.cli",),
)
"""The layers, lowest first; each a tuple of its packages or modules (side by side, they do not import each
other)."""
