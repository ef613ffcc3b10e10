"""perception.sensors' default sweep counts against nuScenes' sensor rates, and every entry point that loads sweeps
defaulting to them."""
import inspect

from perception.datasets.loader import NuScenesFrames, load_frame
from perception.detector import OracleDetector
from perception.engine.data import FrameDataset
from perception.eval.runner import DataOptions
from perception.runtime.benchmark import run_benchmark
from perception.runtime.replay import ReplayOptions
from perception.runtime.streaming import StreamingState
from perception.sensors import DEFAULT_LIDAR_SWEEPS, DEFAULT_RADAR_SWEEPS


def test_default_sweeps_are_about_a_keyframe_period_of_each_sensor():
    # By hand: 0.5 s at the LiDAR's 20 Hz is 10 sweeps; at the radars' about 13 Hz, 6.5 (6 whole sweeps, 0.46 s).
    assert (DEFAULT_LIDAR_SWEEPS, DEFAULT_RADAR_SWEEPS) == (10, 6)


def test_every_entry_point_defaults_to_the_named_sweep_counts():
    for entry in (load_frame, NuScenesFrames, FrameDataset, StreamingState, run_benchmark, ReplayOptions,
                  DataOptions):
        parameters = inspect.signature(entry).parameters
        assert parameters["lidar_sweeps"].default == DEFAULT_LIDAR_SWEEPS, entry
        assert parameters["radar_sweeps"].default == DEFAULT_RADAR_SWEEPS, entry
    assert (OracleDetector.lidar_sweeps, OracleDetector.radar_sweeps) == (DEFAULT_LIDAR_SWEEPS, DEFAULT_RADAR_SWEEPS)
