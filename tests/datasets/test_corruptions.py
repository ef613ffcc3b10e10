"""Each corruption against its definition (what it removes, moves or adds, and how much per severity), on a
hand-built frame whose LiDAR points lie on the HDL-32E beams (ring known) and whose objects hold point clusters."""
from dataclasses import replace

import numpy as np
import pytest
from pyquaternion import Quaternion

from perception.classes import DETECTION_CLASSES
from perception.datasets.corruptions import (
    CORRUPTIONS, SEVERITIES, CorruptFrames, corrupt, frame_rng, parse_cell,
)
from perception.datasets.corruptions import alignment, camera, lidar
from perception.datasets.frame import CameraView, Frame, LidarSweeps, RadarSweeps
from perception.datasets.transforms import GlobalFlip, RandomCorruption
from perception.geometry import (Boxes3D, CameraIntrinsics, EgoPose, RigidTransform, quaternion_to_matrix,
                                 rotation_from_vector)
from perception.sensors import CAMERA_CHANNELS, LIDAR_MOUNT_M, LIDAR_MOUNT_ROTATION_WXYZ, RADAR_CHANNELS

AZIMUTHS = 360
RING_ELEVATIONS_DEG = np.linspace(-30.67, 10.67, 32)  # the HDL-32E data sheet, written independently here
RING_SPACING_DEG = RING_ELEVATIONS_DEG[1] - RING_ELEVATIONS_DEG[0]
RANDOM_CORRUPTIONS = ("points_reducing", "lidar_fog", "lidar_snow", "lidar_rain", "crosstalk", "incomplete_echo",
                      "object_failure", "low_light", "camera_fog", "camera_snow", "motion_blur", "frame_lost",
                      "ghost_targets", "velocity_noise", "spatial_misalignment")


def beam_points(rng, ranges=(5.0, 50.0)) -> tuple:
    """(points (32 * AZIMUTHS, 5), ring of each point): one return per beam and azimuth step of the tilted sensor
    (its beams' elevations in its own axes, LIDAR_MOUNT_ROTATION_WXYZ)."""
    azimuth = np.deg2rad(np.arange(AZIMUTHS) + 0.5)
    elevation = np.deg2rad(RING_ELEVATIONS_DEG)
    az, el = np.meshgrid(azimuth, elevation)
    directions = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(-1, 3)
    distance = rng.uniform(*ranges, len(directions))
    points = np.zeros((len(directions), 5), dtype=np.float32)
    rotation = quaternion_to_matrix(LIDAR_MOUNT_ROTATION_WXYZ)  # sensor axes -> ego axes
    points[:, :3] = np.asarray(LIDAR_MOUNT_M) + (directions * distance[:, None]) @ rotation.T
    points[:, 3] = 100.0
    rings = np.broadcast_to(np.arange(32)[:, None], az.shape).reshape(-1)
    return points, rings


def object_boxes(rng, count=40) -> Boxes3D:
    """``count`` boxes on a ring 10-40 m out, alternately car and pedestrian."""
    angle = rng.uniform(-np.pi, np.pi, count)
    distance = rng.uniform(10, 40, count)
    centers = np.stack([distance * np.cos(angle), distance * np.sin(angle), np.full(count, 0.8)], 1)
    labels = np.array([DETECTION_CLASSES.index("car" if i % 2 == 0 else "pedestrian") for i in range(count)])
    return Boxes3D(centers, np.tile([1.8, 4.5, 1.6], (count, 1)), rng.uniform(-np.pi, np.pi, count),
                   np.zeros((count, 2)), labels, None, np.full(count, -1))


def make_frame(token="sample-a", with_objects=True, seed=0) -> Frame:
    rng = np.random.default_rng(seed)
    points, _ = beam_points(rng)
    boxes = object_boxes(rng) if with_objects else None
    if with_objects:
        cluster = (rng.uniform(-0.4, 0.4, (len(boxes), 30, 3)) * boxes.sizes[:, None, [1, 0, 2]])
        cos, sin = np.cos(boxes.yaws)[:, None], np.sin(boxes.yaws)[:, None]
        x = cluster[..., 0] * cos - cluster[..., 1] * sin
        y = cluster[..., 0] * sin + cluster[..., 1] * cos
        xyz = np.stack([x, y, cluster[..., 2]], -1) + boxes.centers[:, None]
        extra = np.zeros((xyz.shape[0] * xyz.shape[1], 5), dtype=np.float32)
        extra[:, :3], extra[:, 3] = xyz.reshape(-1, 3), 50.0
        points = np.concatenate([points, extra])
    radar_points = np.zeros((300, 7), dtype=np.float32)
    radar_points[:, :2] = rng.uniform(-50, 50, (300, 2))
    radar_points[:, 2], radar_points[:, 3] = 0.5, 5.0
    radar_points[:, 4:6] = rng.normal(0, 3, (300, 2))
    intrinsics = CameraIntrinsics(100.0, 100.0, 80.0, 45.0, 160, 90)
    cameras = {}
    for i, channel in enumerate(CAMERA_CHANNELS):
        # Camera x right, y down, z forward -> ego -y, -z, +x; then turned by 60 deg per camera about +z.
        facing = rotation_from_vector(np.array([0.0, 0.0, np.deg2rad(60 * i)]))
        to_ego = RigidTransform.from_rotation_translation(facing @ np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]]),
                                                          [1.5, 0.0, 1.5])
        image = rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)
        cameras[channel] = CameraView(channel, image, intrinsics, to_ego, 1_000_000)
    return Frame(token, "scene", 1_000_000, EgoPose(1_000_000, RigidTransform.identity()),
                 LidarSweeps(points, 1), RadarSweeps(radar_points, 1), cameras, gt_boxes=boxes)


def frame_arrays(frame: Frame) -> list:
    arrays = [frame.lidar.points, frame.radar.points]
    for view in frame.cameras.values():
        arrays += [view.image, view.camera_to_ego.rotation, view.camera_to_ego.translation]
    return arrays


def frames_equal(a: Frame, b: Frame) -> bool:
    if (a.lidar is None) != (b.lidar is None) or (a.radar is None) != (b.radar is None) or a.missing != b.missing:
        return False
    same = [np.array_equal(a.lidar.points, b.lidar.points)] if a.lidar is not None else []
    same += [np.array_equal(a.radar.points, b.radar.points)] if a.radar is not None else []
    for channel, view in a.cameras.items():
        other = b.cameras[channel]
        same += [np.array_equal(view.image, other.image),
                 np.allclose(view.camera_to_ego.rotation, other.camera_to_ego.rotation, rtol=0, atol=0),
                 np.array_equal(view.camera_to_ego.translation, other.camera_to_ego.translation)]
    return all(same)


@pytest.fixture(scope="module")
def frame():
    return make_frame()


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_every_severity_finite_deterministic_and_input_untouched(frame, name):
    before = [array.copy() for array in frame_arrays(frame)]
    for severity in SEVERITIES:
        out = corrupt(frame, name, severity, seed=3)
        assert frames_equal(out, corrupt(frame, name, severity, seed=3)), (name, severity)
        if out.lidar is not None:
            assert out.lidar.points.dtype == np.float32 and np.isfinite(out.lidar.points).all()
            assert out.lidar.points.shape[1] == 5
        if out.radar is not None:
            assert out.radar.points.dtype == np.float32 and np.isfinite(out.radar.points).all()
        for view in out.cameras.values():
            assert view.image.dtype == np.uint8 and view.image.shape == (90, 160, 3)
            assert np.isfinite(view.camera_to_ego.rotation).all() and np.isfinite(view.camera_to_ego.translation).all()
        if name in RANDOM_CORRUPTIONS:
            assert any(not frames_equal(out, corrupt(frame, name, severity, seed=other))
                       for other in range(4, 8)), (name, severity)
    assert all(np.array_equal(a, b) for a, b in zip(before, frame_arrays(frame))), name


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_absent_sensor_is_left_absent(name):
    bare = replace(make_frame(with_objects=False), lidar=None, radar=None, cameras={},
                   missing=frozenset({"lidar", "radar", "camera"}))
    out = corrupt(bare, name, 2)
    assert out.lidar is None and out.radar is None and out.cameras == {}


def test_registry_and_cells():
    assert len(CORRUPTIONS) == 24 and all(len(c.levels) == 3 for c in CORRUPTIONS.values())
    assert {c.family for c in CORRUPTIONS.values()} == {"LiDAR", "camera", "radar", "across sensors"}
    assert parse_cell("lidar_fog:2") == ("lidar_fog", 2)
    for bad in ("lidar_fog", "lidar_fog:4", "nothing:1"):
        with pytest.raises(ValueError):
            parse_cell(bad)
    assert {n for n, c in CORRUPTIONS.items() if c.sensor == "radar"} == {"radar_missing", "ghost_targets",
                                                                           "velocity_noise"}
    # The frame's draw depends on the token, not on the order frames come in.
    assert frame_rng(0, "a").random() == frame_rng(0, "a").random() != frame_rng(0, "b").random()


def test_beams_reducing_keeps_every_kth_ring():
    points, rings = beam_points(np.random.default_rng(1))
    base = replace(make_frame(with_objects=False), lidar=LidarSweeps(points, 1))
    for severity, kept_beams in zip(SEVERITIES, (16, 8, 4)):
        out = corrupt(base, "beams_reducing", severity).lidar.points
        expected = points[rings % (32 // kept_beams) == 0]
        assert np.array_equal(out, expected) and len(out) == len(points) * kept_beams // 32


def point_at(elevation_deg: float, horizontal_m: float = 10.0, azimuth_deg: float = 30.0) -> list:
    """A point at this elevation and azimuth in the LiDAR's own frame, ``horizontal_m`` away, in the ego frame
    (pyquaternion's rotation, beside the library's own)."""
    azimuth = np.deg2rad(azimuth_deg)
    in_sensor = [horizontal_m * np.cos(azimuth), horizontal_m * np.sin(azimuth),
                 horizontal_m * np.tan(np.deg2rad(elevation_deg))]
    return list(np.asarray(LIDAR_MOUNT_M) + Quaternion(*LIDAR_MOUNT_ROTATION_WXYZ).rotation_matrix @ in_sensor)


def test_beam_index_of_points_at_known_elevations():
    beams = [0, 1, 15, 30, 31]
    # Each beam's own elevation, then a third of a spacing off it (still nearest), at varied distances.
    points = [point_at(RING_ELEVATIONS_DEG[b], 5.0 + b) for b in beams]
    points += [point_at(RING_ELEVATIONS_DEG[b] + RING_SPACING_DEG / 3, 40.0) for b in beams]
    points += [point_at(RING_ELEVATIONS_DEG[b] - RING_SPACING_DEG / 3, 2.0) for b in beams]
    assert lidar.beam_index(np.array(points)).tolist() == beams * 3


def test_beam_index_reads_the_elevation_in_the_sensors_tilted_frame():
    """The mount is tilted by 1.4 degrees, more than a beam spacing (1.33): read in the ego frame, a beam's points
    fell on the beam above or below depending on the azimuth (the lowest and highest off the fan)."""
    for beam in (0, 15, 31):
        points = [point_at(RING_ELEVATIONS_DEG[beam], 20.0, azimuth) for azimuth in range(0, 360, 45)]
        assert lidar.beam_index(np.array(points)).tolist() == [beam] * 8


def test_beam_index_gives_elevations_off_the_fan_the_end_beam_or_marks_them():
    """More than half a spacing above the highest beam, below the lowest, far above, and just within."""
    points = np.array([point_at(RING_ELEVATIONS_DEG[-1] + 0.6 * RING_SPACING_DEG),
                       point_at(RING_ELEVATIONS_DEG[0] - 0.6 * RING_SPACING_DEG), point_at(60.0),
                       point_at(RING_ELEVATIONS_DEG[-1] + 0.4 * RING_SPACING_DEG)])
    assert lidar.beam_index(points).tolist() == [31, 0, 31, 31]
    assert lidar.beam_index(points, mark_off_fan=True).tolist() == [-1, -1, -1, 31]


def test_points_reducing_drops_the_stated_fraction(frame):
    n = len(frame.lidar.points)
    for severity, fraction in zip(SEVERITIES, (0.7, 0.8, 0.9)):
        kept = corrupt(frame, "points_reducing", severity).lidar.points
        assert abs(1 - len(kept) / n - fraction) < 0.02
        assert np.isin(kept[:, 0], frame.lidar.points[:, 0]).all()


def test_limited_fov_bounds(frame):
    offsets = frame.lidar.points[:, :3] - np.asarray(LIDAR_MOUNT_M)
    azimuth = np.degrees(np.arctan2(offsets[:, 1], offsets[:, 0]))
    counts = []
    for severity, half in zip(SEVERITIES, (90, 60, 30)):
        out = corrupt(frame, "limited_fov", severity).lidar.points
        out_azimuth = np.degrees(np.arctan2(out[:, 1] - LIDAR_MOUNT_M[1], out[:, 0] - LIDAR_MOUNT_M[0]))
        assert np.abs(out_azimuth).max() <= half + 1e-3 and len(out) == np.sum(np.abs(azimuth) <= half)
        counts.append(len(out))
    # Uniform azimuths: +-90 keeps half, +-60 a third, +-30 a sixth of the beam points.
    assert counts[0] > counts[1] > counts[2]


def _ranges(points):
    return np.linalg.norm(points[:, :3].astype(np.float64) - np.asarray(LIDAR_MOUNT_M), axis=1)


def _directions(points):
    offsets = points[:, :3].astype(np.float64) - np.asarray(LIDAR_MOUNT_M)
    return offsets / np.linalg.norm(offsets, axis=1, keepdims=True)


FOG_LEVELS = ((0.02, 0.008), (0.03, 0.008), (0.06, 0.05))  # MultiCorrupt's (alpha, beta), written here again
SPEED_OF_LIGHT = 299_792_458.0


def _fog_power(alpha, reading):
    """Hahner et al.'s fog integral F at the reading range [m] (20 ns pulse, overlap 0.9 -> 1 m), by quad over
    the fog's range r: (2 / c) * integral of sin^2(pi (R - r) / (c tau)) exp(-2 alpha r) xi(r) / r^2 dr."""
    from scipy.integrate import quad

    pulse = SPEED_OF_LIGHT * 20e-9

    def integrand(r):
        return (np.sin(np.pi * (reading - r) / pulse) ** 2 * np.exp(-2 * alpha * r) * min(1.0, (r - 0.9) / 0.1)
                / r ** 2)
    low = max(0.9, reading - pulse)
    return 2 / SPEED_OF_LIGHT * quad(integrand, low, reading, points=[1.0] if low < 1.0 < reading else None)[0]


@pytest.mark.parametrize("alpha", [0.02, 0.03, 0.06])
def test_fog_backscatter_peak_is_the_integral_maximum(alpha):
    peak_range, strength = lidar.fog_backscatter_peak(alpha)
    reading = peak_range + SPEED_OF_LIGHT * 20e-9 / 2  # set back by c tau_h / 2 in the model
    assert strength == pytest.approx(_fog_power(alpha, reading), rel=1e-3)
    assert _fog_power(alpha, reading - 0.1) < strength and _fog_power(alpha, reading + 0.1) < strength
    assert 1.6 < peak_range < 1.75


def _fog_threshold(alpha, beta):
    """R where R^2 exp(2 alpha R) = beta_0 / (beta F) (target and fog peak equal), by Lambert W."""
    from scipy.special import lambertw

    k = np.sqrt(1e-6 / np.pi / (beta * lidar.fog_backscatter_peak(alpha)[1]))
    return lambertw(alpha * k).real / alpha


def test_fog_threshold_ranges_by_hand():
    thresholds = [_fog_threshold(*level) for level in FOG_LEVELS]
    for (alpha, beta), threshold in zip(FOG_LEVELS, thresholds):
        balance = threshold ** 2 * beta * lidar.fog_backscatter_peak(alpha)[1] / (1e-6 / np.pi)
        assert balance == pytest.approx(np.exp(-2 * alpha * threshold))
    # Their code looks the integral up at 0.1 m keys: the first key replaced is 41.7 / 34.6 / 15.9 m.
    assert [np.ceil(10 * t) / 10 for t in thresholds] == [41.7, 34.6, 15.9]


def _rays_frame(ranges, intensities):
    """Points along assorted directions from the LiDAR at ``ranges`` with ``intensities``."""
    count = len(ranges)
    azimuth = np.linspace(0, 2 * np.pi, count, endpoint=False)
    directions = np.stack([np.cos(azimuth), np.sin(azimuth), np.full(count, -0.1)], 1)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    points = np.zeros((count, 5), dtype=np.float32)
    points[:, :3] = np.asarray(LIDAR_MOUNT_M) + directions * np.asarray(ranges)[:, None]
    points[:, 3] = intensities
    return replace(make_frame(with_objects=False), lidar=LidarSweeps(points, 1))


def test_fog_replaces_returns_beyond_the_threshold_and_faint_ones():
    # Severity 1: alpha 0.02, beta 0.008, threshold 41.6 m.
    ranges = [10.0, 30.0, 41.0, 42.5, 60.0, 60.0, 30.0, 0.5]
    intensities = [100, 100, 100, 100, 100, 0, 1, 0.4]
    frame = _rays_frame(ranges, intensities)
    out = corrupt(frame, "lidar_fog", 1).lidar.points
    new_ranges = _ranges(out)
    replaced = np.abs(new_ranges - ranges) > 1e-3
    # 30 m, intensity 1: round(1 * exp(-1.2)) = round(0.30) = 0, outshone by any fog; 0.5 m: inside r_1 = 0.9 m.
    assert replaced.tolist() == [False, False, False, True, True, False, True, False]
    # Kept: round(100 exp(-0.4)) = 67, round(100 exp(-1.2)) = 30, round(100 exp(-1.64)) = 19; 0; round(0.39) = 0.
    assert out[~replaced, 3].tolist() == [67, 30, 19, 0, 0]
    assert np.allclose(_directions(out), _directions(frame.lidar.points), atol=1e-4)
    peak_range, strength = lidar.fog_backscatter_peak(0.02)
    far = np.array([42.5, 60.0, 30.0])
    assert np.allclose(out[replaced, 3], np.array([100, 100, 1]) * far ** 2 * 0.008 * strength / (1e-6 / np.pi),
                       rtol=1e-5)
    # The fog return's range: d R / U, U uniform in [R - 10, R + 10].
    assert (new_ranges[replaced] >= peak_range * far / (far + 10) - 1e-4).all()
    assert (new_ranges[replaced] <= peak_range * far / (far - 10) + 1e-4).all()


def test_fog_return_ranges_follow_the_range_noise():
    out = corrupt(_rays_frame(np.full(4000, 50.0), np.full(4000, 100.0)), "lidar_fog", 3).lidar.points
    peak_range, _ = lidar.fog_backscatter_peak(0.06)
    # E[d 50 / U] for U uniform in [40, 60]: d 50 ln(60 / 40) / 20.
    assert _ranges(out).mean() == pytest.approx(peak_range * 50 * np.log(1.5) / 20, rel=0.01)


def test_a_near_fog_return_stays_in_front_of_its_target():
    """A faint return at 5 m (severity 1: round(0.4 exp(-0.2)) = round(0.33) = 0, outshone by the fog) is replaced
    at min(d R / U, R), U uniform in [max(R - 10, 1), R + 10] = [1, 15]: never behind its target, and at the
    target's range when U < d, with probability (d - 1) / 14 = 0.68 / 14 = 0.049 (d = 1.68 m)."""
    out = corrupt(_rays_frame(np.full(4000, 5.0), np.full(4000, 0.4)), "lidar_fog", 1).lidar.points
    peak_range, _ = lidar.fog_backscatter_peak(0.02)
    new_ranges = _ranges(out)
    assert (new_ranges <= 5.0 + 1e-4).all()
    at_target = np.mean(np.abs(new_ranges - 5.0) < 1e-4)
    assert at_target == pytest.approx((peak_range - 1.0) / 14.0, abs=0.015)  # binomial std 0.0034
    # 0.95 m lies beyond r_1 = 0.9 m, where the receiver starts to see the fog: a faint return there is replaced
    # too, in front of it (only returns within r_1 are kept, as the 0.5 m one above)
    out = corrupt(_rays_frame([0.95] * 50, [0.4] * 50), "lidar_fog", 1).lidar.points
    assert (_ranges(out) <= 0.95 + 1e-4).all() and (np.abs(_ranges(out) - 0.95) > 1e-3).any()
    assert (out[:, 3] > 0).all()  # fog intensity min(255, I R^2 beta F / beta_0) > 0 instead of round(0.39) = 0


def test_fog_moves_more_returns_with_severity(frame):
    shares = [np.mean(np.abs(_ranges(corrupt(frame, "lidar_fog", s).lidar.points) - _ranges(frame.lidar.points))
                      > 1e-3) for s in SEVERITIES]
    assert 0 < shares[0] < shares[1] < shares[2] < 1, shares


def test_snow_flake_returns_within_15_m(frame):
    points, ranges = frame.lidar.points, _ranges(frame.lidar.points)
    for severity, fraction in zip(SEVERITIES, (0.05, 0.1, 0.2)):
        out = corrupt(frame, "lidar_snow", severity).lidar.points
        new_ranges = _ranges(out)
        hit = out[:, 3] == lidar.WEATHER_RETURN_INTENSITY
        assert abs(hit.mean() - fraction) < 0.01
        assert (new_ranges[hit] >= 1 - 1e-4).all()
        assert (new_ranges[hit] <= np.minimum(ranges[hit], 15.0) + 1e-4).all()
        assert np.allclose(_directions(out), _directions(points), atol=1e-4)
        assert np.array_equal(out[~hit], points[~hit])


def test_snow_leaves_returns_within_a_metre_of_the_sensor_alone():
    """Snow places a flake's return in [1 m, min(R, 15 m)] along the ray, so a return at R <= 1 m from the sensor
    (LIDAR_MOUNT_M, not the ego origin: a point at the ego origin is 2.07 m from it) is never hit: there is no
    range to move it to. nuScenes keyframe sweeps hold such returns (the 1 m removal is for past sweeps only).
    At fraction 1 (every return hit): the 0.5 m and 0.99 m returns are kept as they were, the 1.5, 5 and 20 m ones
    become flakes at 1 <= r <= 1.5, 5, 15 m. At the highest severity (0.2) a sweep of returns 0.3-0.9 m out is kept
    whole."""
    frame = _rays_frame([0.5, 0.99, 1.5, 5.0, 20.0], [40.0] * 5)
    points = frame.lidar.points
    assert _ranges(points) == pytest.approx([0.5, 0.99, 1.5, 5.0, 20.0], abs=1e-5)
    out = lidar.snow(frame, 1.0, np.random.default_rng(0), 0).lidar.points
    assert np.array_equal(out[:2], points[:2])
    assert (out[2:, 3] == lidar.WEATHER_RETURN_INTENSITY).all()
    assert (_ranges(out[2:]) >= 1 - 1e-4).all() and (_ranges(out[2:]) <= np.array([1.5, 5.0, 15.0]) + 1e-4).all()
    near, _ = beam_points(np.random.default_rng(1), ranges=(0.3, 0.9))
    near_frame = replace(make_frame(with_objects=False), lidar=LidarSweeps(near, 1))
    assert np.array_equal(corrupt(near_frame, "lidar_snow", SEVERITIES[-1]).lidar.points, near)


def test_rain_loses_returns_with_range(frame):
    ranges = _ranges(frame.lidar.points)
    for severity, (loss, std) in zip(SEVERITIES, ((0.05, 0.02), (0.1, 0.05), (0.2, 0.1))):
        out = corrupt(frame, "lidar_rain", severity).lidar.points
        expected_lost = np.mean(np.minimum(1, loss * ranges / 50))
        assert abs(1 - len(out) / len(ranges) - expected_lost) < 0.01


def test_rain_noise_keeps_a_return_near_the_sensor_where_it_was():
    """nuScenes keeps the firings that return nothing (near the sensor, ~20 % of a real sweep); rain's range noise
    (0.02 m std at severity 1) must not move them out to the 1 m where snow places its flakes."""
    frame = make_frame(with_objects=False)
    near, _ = beam_points(np.random.default_rng(1), ranges=(0.3, 0.9))
    frame = replace(frame, lidar=LidarSweeps(near, 1))
    out = corrupt(frame, "lidar_rain", 1).lidar.points
    assert len(out) > 0.99 * len(near)  # 0.05 lost per 50 m: 0.1 % within a metre
    assert _ranges(out).max() < 1.0 and abs(_ranges(out).mean() - _ranges(near).mean()) < 0.01


def test_rain_noise_never_moves_a_return_through_the_sensor():
    """A return 0.01-0.05 m from the sensor under 0.1 m of range noise (severity 3's) draws a range below 0 about
    a third of the time: it stays on its own ray at range 0 (its offset from the sensor a multiple >= 0 of the one it
    had), not mirrored to the other side. No loss asked, so the rows stay in order."""
    near, _ = beam_points(np.random.default_rng(2), ranges=(0.01, 0.05))
    frame = replace(make_frame(with_objects=False), lidar=LidarSweeps(near, 1))
    out = lidar.rain(frame, (0.0, 0.1), np.random.default_rng(0), 0).lidar.points
    offsets_before, offsets_after = (points[:, :3] - np.asarray(LIDAR_MOUNT_M) for points in (near, out))
    along_ray = np.sum(offsets_after * offsets_before, axis=1) / np.linalg.norm(offsets_before, axis=1)
    assert len(out) == len(near) and along_ray.min() > -1e-6  # float32 stores points ~2 m out to 1e-7 m
    assert np.mean(_ranges(out) < 1e-6) > 0.2  # floored at the sensor


def test_crosstalk_adds_the_stated_share(frame):
    points = frame.lidar.points
    for severity, fraction in zip(SEVERITIES, (0.01, 0.02, 0.04)):
        out = corrupt(frame, "crosstalk", severity).lidar.points
        assert len(out) == len(points) + round(fraction * len(points))
        assert np.array_equal(out[:len(points)], points)


def test_crosstalk_returns_scatter_3_m_in_x_y_and_z():
    # Every point at (10, 0, 0): a spurious return is that point plus N(0, 3 m) on each axis; 0.04 x 20000 = 800 of
    # them at severity 3 (the std of a std estimate over 800 draws: 3 / sqrt(1600) = 0.075 m).
    points = np.zeros((20000, 5), dtype=np.float32)
    points[:, 0], points[:, 3] = 10.0, 100.0
    frame = replace(make_frame(with_objects=False), lidar=LidarSweeps(points, 1))
    added = corrupt(frame, "crosstalk", 3).lidar.points[len(points):]
    assert len(added) == 800
    offsets = added[:, :3] - [10.0, 0.0, 0.0]
    assert np.allclose(offsets.std(axis=0), 3.0, atol=0.3) and np.allclose(offsets.mean(axis=0), 0.0, atol=0.35)
    assert np.array_equal(added[:, 3:], points[:800, 3:])  # intensity and time lag of the copied point


def test_incomplete_echo_thins_vehicles_only(frame):
    inside = frame.gt_boxes.contains(frame.lidar.points)
    on_car = inside[frame.gt_boxes.labels == DETECTION_CLASSES.index("car")].any(0)
    on_other = inside.any(0) & ~on_car
    for severity, fraction in zip(SEVERITIES, (0.75, 0.85, 0.95)):
        out = corrupt(frame, "incomplete_echo", severity).lidar.points
        out_inside = frame.gt_boxes.contains(out)
        out_car = out_inside[frame.gt_boxes.labels == DETECTION_CLASSES.index("car")].any(0)
        assert abs(1 - out_car.sum() / on_car.sum() - fraction) < 0.05
        assert len(out) - out_car.sum() == len(frame.lidar.points) - on_car.sum()
        assert (out_inside.any(0) & ~out_car).sum() == on_other.sum()


def test_object_failure_drops_whole_objects():
    failures = []
    for token in "abcdefgh":
        frame = make_frame(token)
        inside = frame.gt_boxes.contains(frame.lidar.points)
        # Boxes sharing no point with another box: all their points stay or all go.
        alone = ~(inside & (inside.sum(0) > 1)).any(1)
        counts = inside.sum(1)
        out_counts = frame.gt_boxes.contains(corrupt(frame, "object_failure", 2).lidar.points).sum(1)
        assert alone.sum() >= 15 and ((out_counts == 0) | (out_counts == counts))[alone].all()
        failures.append(np.mean(out_counts[alone] == 0))
    assert abs(np.mean(failures) - 0.5) < 0.12


@pytest.mark.parametrize("name", ["object_failure", "incomplete_echo"])
def test_a_moving_vehicle_loses_its_points_of_every_sweep(name):
    """A car driving +x at 10 m/s, seen in the keyframe sweep at x = 20 m and in one 0.5 s older at 15 m (the
    sweeps are merged in the keyframe's ego frame): at probability / fraction 1 both go, a standing car's too,
    the ground stays."""
    car = DETECTION_CLASSES.index("car")
    boxes = Boxes3D([[20.0, 0.0, 1.0], [0.0, 20.0, 1.0]], [[2.0, 4.0, 2.0]] * 2, [0.0, 0.0],
                    velocities=[[10.0, 0.0], [0.0, 0.0]], labels=[car, car])
    rng = np.random.default_rng(0)
    def cloud(center, lag, count=50):
        points = np.zeros((count, 5), dtype=np.float32)
        points[:, :3] = np.asarray(center) + rng.uniform(-0.8, 0.8, (count, 3)) * [1.5, 0.8, 0.8]
        points[:, 4] = lag
        return points
    ground = cloud([0.0, -20.0, 0.0], 0.5)
    points = np.concatenate([cloud([20.0, 0.0, 1.0], 0.0), cloud([15.0, 0.0, 1.0], 0.5),
                             cloud([0.0, 20.0, 1.0], 0.5), ground])
    frame = replace(make_frame(with_objects=False), lidar=LidarSweeps(points, 2), gt_boxes=boxes)
    out = getattr(lidar, name)(frame, 1.0, np.random.default_rng(0), 0).lidar.points
    assert np.array_equal(out, ground)


def test_missing_sensors_are_recorded(frame):
    out = corrupt(frame, "lidar_missing", 1)
    assert out.lidar is None and {"lidar", "LIDAR_TOP"} <= out.missing and out.radar is not None
    out = corrupt(frame, "radar_missing", 3)
    assert out.radar is None and {"radar", *RADAR_CHANNELS} <= out.missing and out.lidar is not None


def test_brightness_matches_the_hsv_shift_by_hand(frame):
    view = frame.cameras["CAM_FRONT"]
    flat = replace(frame, cameras={"CAM_FRONT": replace(view, image=np.full((90, 160, 3), [100, 50, 25], np.uint8))})
    for severity, shift in zip(SEVERITIES, (0.1, 0.3, 0.5)):
        pixel = corrupt(flat, "brightness", severity).cameras["CAM_FRONT"].image[0, 0].astype(float)
        # Same hue and saturation, value 100/255 + shift: every channel scales by (100/255 + shift) / (100/255).
        expected = np.array([100, 50, 25]) * (100 / 255 + shift) / (100 / 255)
        assert np.abs(pixel - expected).max() <= 1.0


def test_camera_degradations_grow_with_severity(frame):
    image = frame.cameras["CAM_FRONT"].image.astype(float)
    means = [corrupt(frame, "low_light", s).cameras["CAM_FRONT"].image.mean() for s in SEVERITIES]
    assert all(abs(m - light * image.mean()) < 2.0 for m, light in zip(means, (0.5, 0.3, 0.15)))
    spreads = [corrupt(frame, "motion_blur", s).cameras["CAM_FRONT"].image.astype(float).std() for s in SEVERITIES]
    assert image.std() > spreads[0] > spreads[1] > spreads[2], spreads
    likeness = [np.corrcoef(image.ravel(), corrupt(frame, "camera_fog", s).cameras["CAM_FRONT"].image.ravel())[0, 1]
                for s in SEVERITIES]
    assert 1 > likeness[0] > likeness[1] > likeness[2], likeness
    snowy = [corrupt(frame, "camera_snow", s).cameras["CAM_FRONT"].image.mean() for s in SEVERITIES]
    assert all(m > image.mean() for m in snowy)


def _flat(frame, rgb):
    view = replace(frame.cameras["CAM_FRONT"], image=np.full((90, 160, 3), rgb, np.uint8))
    return replace(frame, cameras={"CAM_FRONT": view})


def test_low_light_noise_is_photon_and_read_noise_by_hand(frame):
    # A flat image v = 204 / 255 = 0.8 kept at light c: Poisson(100 v c) / 100 + N(0, 0.01), so std
    # sqrt(v c / 100 + 0.01^2) [0-1]: c = 0.5 -> sqrt(0.0041) = 0.0640 = 16.3 levels, c = 0.3 -> sqrt(0.0025) =
    # 0.0500 = 12.8, c = 0.15 -> sqrt(0.0013) = 0.0361 = 9.2 (43 200 pixel values: the std within 1 %).
    flat = _flat(frame, 204)
    for severity, light in zip(SEVERITIES, (0.5, 0.3, 0.15)):
        out = corrupt(flat, "low_light", severity).cameras["CAM_FRONT"].image.astype(float)
        assert out.mean() == pytest.approx(204 * light, abs=0.5)
        assert out.std() == pytest.approx(255 * np.sqrt(0.8 * light / 100 + 0.01 ** 2), rel=0.05), severity
    # A black image has no photons: only the read noise, N(0, 0.01) = N(0, 2.55 levels), rounded and clipped at 0,
    # lifts a pixel to 1 or more when above 0.5 levels: P(Z > 0.5 / 2.55 = 0.196) = 0.422.
    out = corrupt(_flat(frame, 0), "low_light", 1).cameras["CAM_FRONT"].image
    assert np.mean(out > 0) == pytest.approx(0.422, abs=0.02)


class _HighestDraw:
    """A generator stand-in whose uniform(low, high, shape) draws ``high`` everywhere."""

    def uniform(self, low, high, shape):
        return np.full(shape, float(high))


@pytest.mark.parametrize("decay, expected", [(2.0, [[0, 0.8333, 1.0, 0.8333], [0.8333, 0.8333, 1.0, 0.8333]]),
                                             (1.4, [[0, 0.8678, 0.7935, 0.8678], [0.8678, 0.7989, 1.0, 0.7989]])])
def test_plasma_fractal_by_hand(decay, expected):
    """imagecorruptions' diamond-square on 4 x 4, every wibble drawn at its top (w^2 added to each mean): octave 1
    (w = 100, w^2 = 1e4): g22 = 0 + 1e4, g02 = g20 = (2 g22 + 0) / 4 + 1e4 = 1.5e4. Octave 2 (w = 100 / decay,
    e = w^2 = 1e4 / decay^2): the square centres g11 = g13 = g31 = g33 = (0 + 2 x 1.5e4 + 1e4) / 4 + e = 1e4 + e;
    the diamonds g01 = g03 = g10 = g30 = (2 (1e4 + e) + 1.5e4) / 4 + e = 8750 + 1.5 e, g21 = g23 = g12 = g32 =
    (2 (1e4 + e) + 2.5e4) / 4 + e = 11250 + 1.5 e. Divided by the largest: decay 2 (e = 2500): max(1.5e4, 12500,
    15000) = 1.5e4, g01 = g11 = 12500 / 15000 = 0.8333, g12 = g21 = 1; decay 1.4 (e = 5102.04): max 18903.06, g01 =
    16403.06 / 18903.06 = 0.8678, g11 = 15102.04 / 18903.06 = 0.7989, g02 = 15000 / 18903.06 = 0.7935."""
    grid = camera.plasma_fractal(4, decay, _HighestDraw())
    assert np.allclose(grid[[0, 1]], expected, atol=1e-4)
    assert grid[2, 1] == pytest.approx(1.0)
    assert grid[0, 2] == pytest.approx(1.5e4 / max(1.5e4, 11250 + 1.5e4 / decay ** 2))


def test_motion_kernel_at_45_degrees_by_hand():
    # imagecorruptions' taps i = 0..2r at (ceil(i sin a - 0.5), ceil(i cos a - 0.5)) from the centre, weights
    # exp(-i^2 / (2 sigma^2)) normalised. r = 2, sigma = 1, a = 45 deg: i sin a = 0, 0.71, 1.41, 2.12, 2.83 ->
    # offsets 0, 1, 1, 2, 3 on both axes (+row = down, +column = right); weights 1, 0.60653, 0.13534, 0.011109,
    # 0.00033546, sum 1.75331: centre 0.57035, (1, 1) 0.74187 / 1.75331 = 0.42312, (2, 2) 0.006336, (3, 3) 0.000191.
    kernel = camera.motion_kernel(2, 1.0, 45.0)
    centre = kernel.shape[0] // 2
    expected = np.zeros_like(kernel)
    for step, weight in enumerate([0.57035, 0.42312, 0.006336, 0.000191]):
        expected[centre + step, centre + step] = weight
    assert np.allclose(kernel, expected, atol=2e-5)


def test_snow_whitens_towards_one_and_a_half_gray_plus_half_and_adds_the_layer_twice(frame):
    """imagecorruptions' snow, blend b: b x + (1 - b) max(x, 1.5 gray + 0.5), then + layer + layer turned 180 deg.
    Called at levels of our own that make the layer known (snow's signature is level, rng, seed)."""
    # No flake passes threshold 10: layer 0. Pixel (0.2, 0.4, 0.6), gray 0.299 x 0.2 + 0.587 x 0.4 + 0.114 x 0.6 =
    # 0.363, 1.5 x 0.363 + 0.5 = 1.0445 above every channel; blend 0.8: 0.8 x + 0.2089 = (0.3689, 0.5289, 0.6889)
    # = (94.1, 134.9, 175.7) levels.
    coloured = _flat(frame, [51, 102, 153])
    no_flakes = camera.snow(coloured, (0.1, 0.3, 3.0, 10.0, 10, 4.0, 0.8), np.random.default_rng(0), 0)
    assert np.abs(no_flakes.cameras["CAM_FRONT"].image.astype(int) - [94, 135, 176]).max() <= 1
    # A constant layer 0.2 (std 0) above threshold 0.1: zoom and the blur (its kernel sums to 1) keep it 0.2; blend 1
    # keeps a black image black; 0.2 added twice: 0.4 = 102 levels.
    constant = camera.snow(_flat(frame, 0), (0.2, 0.0, 2.0, 0.1, 3, 1.0, 1.0), np.random.default_rng(0), 0)
    assert np.abs(constant.cameras["CAM_FRONT"].image.astype(int) - 102).max() <= 1


def test_fog_on_a_flat_image_by_hand(frame):
    # imagecorruptions' fog on a constant image v: (v + c F) v / (v + c), F in [0, 1], lies in [v^2 / (v + c), v].
    v = 0.6
    view = replace(frame.cameras["CAM_FRONT"], image=np.full((90, 160, 3), round(255 * v), np.uint8))
    flat = replace(frame, cameras={"CAM_FRONT": view})
    for severity, (strength, _) in zip(SEVERITIES, ((1.5, 2.0), (2.5, 1.7), (3.0, 1.4))):
        out = corrupt(flat, "camera_fog", severity).cameras["CAM_FRONT"].image.astype(float) / 255
        assert out.min() >= v * v / (v + strength) - 1 / 255 and out.max() <= v + 1 / 255
        assert out.max() - out.min() > 0.1  # the fractal's patches


def test_motion_kernel_is_a_normalised_line():
    kernel = camera.motion_kernel(10, 3.0, 0.0)
    assert kernel.sum() == pytest.approx(1.0) and np.count_nonzero(kernel) == 21
    centre = kernel.shape[0] // 2
    assert np.count_nonzero(kernel[centre]) == 21  # angle 0: one row, from the centre along +x


def test_color_quantization_bits(frame):
    image = frame.cameras["CAM_FRONT"].image.astype(int)
    for severity, bits in zip(SEVERITIES, (4, 3, 2)):
        out = corrupt(frame, "color_quant", severity).cameras["CAM_FRONT"].image.astype(int)
        assert len(np.unique(out[..., 0])) <= 2 ** bits
        assert np.abs(out - image).max() <= 2 ** (8 - bits) // 2
    # By hand: v -> the middle of its bin of width 16 / 32 / 64.
    values = np.array([0, 63, 64, 200, 255], dtype=np.uint8)
    flat = replace(frame, cameras={"CAM_FRONT": replace(frame.cameras["CAM_FRONT"],
                                                        image=np.broadcast_to(values[:, None], (2, 5, 3)).copy())})
    expected = {1: [8, 56, 72, 200, 248], 2: [16, 48, 80, 208, 240], 3: [32, 32, 96, 224, 224]}
    for severity in SEVERITIES:
        out = corrupt(flat, "color_quant", severity).cameras["CAM_FRONT"].image
        assert out[0, :, 0].tolist() == expected[severity]


def test_camera_crash_blacks_the_same_cameras_on_every_frame():
    frames = [make_frame(token) for token in ("a", "b")]
    for severity, count in zip(SEVERITIES, (1, 3, 5)):
        blacked = []
        for frame in frames:
            out = corrupt(frame, "camera_crash", severity, seed=7)
            black = {c for c, v in out.cameras.items() if not v.image.any()}
            assert len(black) == count
            assert all(np.array_equal(v.image, frame.cameras[c].image) for c, v in out.cameras.items()
                       if c not in black)
            blacked.append(black)
        assert blacked[0] == blacked[1] == set(camera.failed_cameras(count, 7))


def test_frame_lost_rate():
    frames = [make_frame(str(i), with_objects=False) for i in range(60)]
    for severity, probability in zip(SEVERITIES, (0.2, 0.4, 0.6)):
        lost = [not view.image.any() for frame in frames
                for view in corrupt(frame, "frame_lost", severity).cameras.values()]
        # 360 draws: the binomial std is at most 0.026.
        assert abs(np.mean(lost) - probability) < 0.08, (severity, np.mean(lost))


def test_frozen_camera_moves_the_stale_cameras_by_the_ego_motion(frame):
    shift = alignment.ASSUMED_EGO_SPEED_M_S * camera.FROZEN_STALENESS_S
    for severity, count in zip(SEVERITIES, (1, 3, 6)):
        out = corrupt(frame, "frozen_camera", severity)
        moved = [c for c in CAMERA_CHANNELS if not np.allclose(out.cameras[c].camera_to_ego.translation,
                                                               frame.cameras[c].camera_to_ego.translation)]
        assert len(moved) == count
        for c in moved:
            delta = out.cameras[c].camera_to_ego.translation - frame.cameras[c].camera_to_ego.translation
            assert np.allclose(delta, [shift, 0, 0])
            assert np.allclose(out.cameras[c].camera_to_ego.rotation, frame.cameras[c].camera_to_ego.rotation)
            assert np.array_equal(out.cameras[c].image, frame.cameras[c].image)
            assert out.cameras[c].timestamp_us == frame.cameras[c].timestamp_us - 500_000  # 0.5 s stale


def test_radar_ghosts_and_velocity_noise(frame):
    points = frame.radar.points
    for severity, fraction in zip(SEVERITIES, (0.1, 0.25, 0.5)):
        out = corrupt(frame, "ghost_targets", severity).radar.points
        ghosts = out[len(points):]
        assert len(ghosts) == round(fraction * len(points)) and np.array_equal(out[:len(points)], points)
        ratio = np.hypot(ghosts[:, 0], ghosts[:, 1])
        source = [np.argmin(np.abs(points[:, 4] - g[4]) + np.abs(points[:, 5] - g[5])) for g in ghosts]
        ratio /= np.hypot(points[source, 0], points[source, 1])
        assert (ratio >= 1.2 - 1e-4).all() and (ratio <= 2.0 + 1e-4).all()
        assert np.allclose(ghosts[:, 3], points[source, 3] - 10.0)
        assert np.array_equal(ghosts[:, 2], points[source, 2])  # moved in x, y only: the height stays
    for severity, std in zip(SEVERITIES, (0.5, 1.0, 2.0)):
        out = corrupt(frame, "velocity_noise", severity).radar.points
        noise = (out[:, 4:6] - points[:, 4:6]).ravel()
        assert abs(noise.std() - std) < 0.15 * std and np.array_equal(out[:, :4], points[:, :4])
        assert np.array_equal(out[:, 6:], points[:, 6:])  # the time lag keeps its value


def test_spatial_misalignment_magnitudes(frame):
    for severity, (angle, distance) in zip(SEVERITIES, ((1.0, 0.05), (2.0, 0.1), (4.0, 0.2))):
        out = corrupt(frame, "spatial_misalignment", severity)
        for c in CAMERA_CHANNELS:
            before, after = frame.cameras[c].camera_to_ego, out.cameras[c].camera_to_ego
            relative = after.rotation @ before.rotation.T
            turned = np.degrees(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1, 1)))
            assert turned == pytest.approx(angle, abs=1e-6)
            assert np.linalg.norm(after.translation - before.translation) == pytest.approx(distance, abs=1e-9)


def test_temporal_misalignment_shifts_lidar_by_ego_motion(frame):
    for severity, delay in zip(SEVERITIES, (0.1, 0.25, 0.5)):
        out = corrupt(frame, "temporal_misalignment", severity).lidar.points
        delta = out[:, :3].astype(np.float64) - frame.lidar.points[:, :3]
        assert np.allclose(delta, [alignment.ASSUMED_EGO_SPEED_M_S * delay, 0, 0], atol=1e-4)
        assert np.array_equal(out[:, 3:], frame.lidar.points[:, 3:])


def test_corrupt_frames_transform_and_random_corruption(frame):
    assert frames_equal(CorruptFrames("limited_fov", 2, 5)(frame), corrupt(frame, "limited_fov", 2, 5))
    always = RandomCorruption({"lidar": ["limited_fov"]}, probability=1.0, severities=[3], seed=1)
    assert frames_equal(always(frame), corrupt(frame, "limited_fov", 3))
    never = RandomCorruption({"lidar": ["limited_fov"], "camera": ["camera_crash"]}, probability=0.0)
    assert frames_equal(never(frame), frame)
    mixed = [RandomCorruption({"lidar": ["points_reducing", "lidar_fog"], "camera": ["motion_blur"],
                               "radar": ["velocity_noise"]}, probability=0.5, seed=2) for _ in range(2)]
    outs = [[m(frame) for _ in range(6)] for m in mixed]
    assert all(frames_equal(a, b) for a, b in zip(*outs))  # same seed, same draws
    assert sum(not frames_equal(o, frame) for o in outs[0]) >= 3
    with pytest.raises(ValueError, match="lidar"):
        RandomCorruption({"lidar": ["motion_blur"]})
    with pytest.raises(ValueError, match="unknown corruption"):
        RandomCorruption({"camera": ["no_such"]})
    with pytest.raises(ValueError, match="severities"):
        RandomCorruption({"camera": ["motion_blur"]}, severities=[4])
    # after a flip the LiDAR's forward field of view would be cut around what was behind it
    flipped = GlobalFlip(left_right_prob=0.0, front_back_prob=1.0)(frame)
    with pytest.raises(ValueError, match="RandomCorruption after a global transform"):
        always(flipped)


def test_corruption_augmentation_from_a_config_entry(frame):
    # As a config's train pipeline lists it (perception.engine.data.build_transform).
    from perception.engine.data import build_transform

    pipeline = build_transform([dict(type="RandomCorruption", corruptions=dict(lidar=["limited_fov"]),
                                     probability=1.0, severities=[1], seed=0)])
    assert frames_equal(pipeline(frame), corrupt(frame, "limited_fov", 1))


def test_every_cell_on_a_loaded_frame_is_finite(synthetic_root):
    # A frame as the loader gives it (several sweeps, time lags, radar of 5 sensors, resized images).
    from perception.datasets.loader import NuScenesFrames
    from tests.conftest import TINY_WORLD

    loaded = NuScenesFrames(str(synthetic_root), TINY_WORLD["version"], "synth_val", lidar_sweeps=3, radar_sweeps=2,
                            image_size=(128, 72), cache_dir=None, progress=False)[1]
    for name in CORRUPTIONS:
        for severity in SEVERITIES:
            out = corrupt(loaded, name, severity)
            arrays = [] if out.lidar is None else [out.lidar.points]
            arrays += [] if out.radar is None else [out.radar.points]
            arrays += [v.camera_to_ego.translation for v in out.cameras.values()]
            assert all(np.isfinite(a).all() for a in arrays), (name, severity)
            assert all(v.image.shape == (72, 128, 3) for v in out.cameras.values())
