"""The random sweep count training option: draws in 1..N, repeated per seed, and a frame that reads exactly the
drawn number of newest sweeps (the frame read with every sweep as oracle)."""
import numpy as np
import pytest

from perception.datasets.loader import NuScenesFrames, RandomSweepCounts
from perception.engine.data import FrameDataset
from tests.conftest import TINY_WORLD


def draw(counts: RandomSweepCounts, times: int) -> list:
    return [counts() for _ in range(times)]


def test_drawn_counts_lie_in_1_to_n_and_repeat_per_seed():
    draws = draw(RandomSweepCounts(5, 3, seed=7), 300)
    assert {lidar for lidar, _ in draws} == {1, 2, 3, 4, 5}
    assert {radar for _, radar in draws} == {1, 2, 3}
    assert draw(RandomSweepCounts(5, 3, seed=7), 300) == draws
    assert draw(RandomSweepCounts(5, 3, seed=8), 300) != draws
    assert set(draw(RandomSweepCounts(1, 1, seed=0), 20)) == {(1, 1)}
    with pytest.raises(ValueError, match="sweeps must be >= 1"):
        RandomSweepCounts(0, 3)


def test_frames_read_the_drawn_number_of_newest_sweeps(synthetic_root, nusc_synthetic):
    common = dict(lidar_sweeps=4, radar_sweeps=3, cameras=False, nusc=nusc_synthetic, cache_dir=None,
                  progress=False)
    every_sweep = NuScenesFrames(synthetic_root, TINY_WORLD["version"], "all", **common)
    random_sweeps = NuScenesFrames(synthetic_root, TINY_WORLD["version"], "all", random_sweeps_seed=11, **common)
    draws = RandomSweepCounts(4, 3, seed=11)
    fewer = 0
    for index in range(len(every_sweep)):
        lidar_count, radar_count = draws()
        full, frame = every_sweep[index], random_sweeps[index]
        assert frame.lidar.num_sweeps == min(lidar_count, full.lidar.num_sweeps)
        assert frame.radar.num_sweeps == min(radar_count, full.radar.num_sweeps)
        newest_lags = np.unique(full.lidar.points[:, 4])[:frame.lidar.num_sweeps]
        np.testing.assert_array_equal(frame.lidar.points, full.lidar.points[np.isin(full.lidar.points[:, 4],
                                                                                    newest_lags)])
        assert len(frame.radar.points) <= len(full.radar.points)
        fewer += frame.lidar.num_sweeps < full.lidar.num_sweeps
    assert fewer > 0   # the option did drop sweeps somewhere


def test_frame_dataset_passes_the_seed_from_the_config(synthetic_root):
    dataset = FrameDataset(str(synthetic_root), TINY_WORLD["version"], "all", lidar_sweeps=4, radar_sweeps=3,
                           random_sweeps_seed=3)
    assert (dataset.frames.sweep_counts.lidar_sweeps, dataset.frames.sweep_counts.radar_sweeps) == (4, 3)
    assert dataset.frames.sweep_counts.seed == 3
    assert FrameDataset(str(synthetic_root), TINY_WORLD["version"], "all").frames.sweep_counts is None


def test_random_radar_sweeps_are_each_radars_newest(synthetic_root, nusc_synthetic):
    """Drawn k radar sweeps read each radar's k newest: the time lags (and count) of the devkit's
    from_file_multisweep(nsweeps=k) over the five radars (reading the oldest k had the same num_sweeps)."""
    from nuscenes.utils.data_classes import RadarPointCloud

    from perception.sensors import LIDAR_CHANNEL, RADAR_CHANNELS

    dataset = NuScenesFrames(synthetic_root, TINY_WORLD["version"], "all", lidar_sweeps=1, radar_sweeps=4,
                             cameras=False, nusc=nusc_synthetic, cache_dir=None, progress=False, random_sweeps_seed=5)
    draws = RandomSweepCounts(1, 4, seed=5)
    fewer = 0
    for index in range(len(dataset)):
        radar_count = draws()[1]
        frame = dataset[index]
        sample = nusc_synthetic.get("sample", frame.sample_token)
        devkit = np.concatenate([RadarPointCloud.from_file_multisweep(nusc_synthetic, sample, channel, LIDAR_CHANNEL,
                                                                      nsweeps=radar_count)[1][0]
                                 for channel in RADAR_CHANNELS])
        assert len(frame.radar.points) == len(devkit)
        # the devkit subtracts timestamps in seconds (~1.5e9: rounding ~2e-7 s)
        np.testing.assert_allclose(np.sort(frame.radar.points[:, 6]), np.sort(devkit), rtol=0, atol=1e-6)
        fewer += radar_count < 4
    assert fewer > 0


def test_sweep_counts_below_one_are_refused_for_either_sensor():
    for lidar, radar in ((0, 3), (3, 0), (2, -1)):
        with pytest.raises(ValueError, match=f"sweeps must be >= 1, got lidar {lidar}, radar {radar}"):
            RandomSweepCounts(lidar, radar)
