import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pyquaternion import Quaternion
from scipy.spatial.transform import Rotation, Slerp

from perception.geometry import EgoPose, RigidTransform, SensorCalibration, interpolate_pose, quaternion_to_matrix

finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False)
unit_quaternions = st.tuples(*[st.floats(-1, 1) for _ in range(4)]).filter(
    lambda q: np.linalg.norm(q) > 0.1).map(lambda q: tuple(np.asarray(q) / np.linalg.norm(q)))
transforms = st.builds(
    lambda t, q: RigidTransform.from_nuscenes(t, q), st.tuples(finite, finite, finite), unit_quaternions)
point_sets = st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=20).map(np.array)


@settings(max_examples=60, deadline=None)
@given(transforms, transforms, point_sets)
def test_composition_applies_right_to_left(a, b, points):
    np.testing.assert_allclose((a @ b).apply(points), a.apply(b.apply(points)), atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(unit_quaternions)
def test_rotation_wxyz_is_the_nuscenes_quaternion_up_to_sign(quaternion_wxyz):
    wxyz = RigidTransform.from_nuscenes([0.0, 0.0, 0.0], quaternion_wxyz).rotation_wxyz
    sign = np.sign(np.dot(wxyz, quaternion_wxyz))
    np.testing.assert_allclose(sign * wxyz, quaternion_wxyz, atol=1e-9)
    np.testing.assert_allclose(Quaternion(wxyz).rotation_matrix, Quaternion(quaternion_wxyz).rotation_matrix,
                               atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(transforms, point_sets)
def test_inverse_round_trips(transform, points):
    np.testing.assert_allclose(transform.inverse().apply(transform.apply(points)), points, atol=1e-9)
    np.testing.assert_allclose((transform @ transform.inverse()).matrix, np.eye(4), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(unit_quaternions)
def test_quaternion_matches_pyquaternion(q):
    np.testing.assert_allclose(quaternion_to_matrix(q), Quaternion(q).rotation_matrix, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.lists(unit_quaternions, min_size=1, max_size=8))
def test_a_batch_of_quaternions_matches_pyquaternion(quaternions):
    matrices = quaternion_to_matrix(np.array(quaternions))
    assert matrices.shape == (len(quaternions), 3, 3)
    np.testing.assert_allclose(matrices, [Quaternion(q).rotation_matrix for q in quaternions], atol=1e-12)


def test_a_batch_names_its_first_bad_quaternion():
    with pytest.raises(ValueError, match=r"boxes: rotation quaternion \(row 1\) \[2.0, 0.0, 0.0, 0.0\] is not unit"):
        quaternion_to_matrix([[1.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0], [np.nan, 0.0, 0.0, 1.0]], "boxes")
    with pytest.raises(ValueError, match=r"boxes: rotation quaternion \(row 0\) contains NaN"):
        quaternion_to_matrix([[np.nan, 0.0, 0.0, 1.0]], "boxes")
    with pytest.raises(ValueError, match=r"needs 4 values"):
        quaternion_to_matrix(np.zeros((2, 2, 4)), "boxes")


def test_a_nearly_unit_quaternion_is_normalised_as_pyquaternion_does():
    # 1.0008 x a unit quaternion is within the 1e-3 tolerance: the rotation is the unit quaternion's (pyquaternion
    # normalises), not a matrix stretched by 1.0008^2 ~ 1.0016 (off by ~1.6e-3 in its entries)
    unit = np.array([0.5, -0.3, 0.7, 0.4]) / np.linalg.norm([0.5, -0.3, 0.7, 0.4])
    rotation = quaternion_to_matrix(1.0008 * unit)
    np.testing.assert_allclose(rotation, Quaternion(1.0008 * unit).rotation_matrix, atol=1e-12)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)


def test_a_too_short_quaternion_is_refused_like_a_too_long_one():
    # norm 0.99: 0.01 below 1, beyond the 1e-3 tolerance on the short side as 1.01 is on the long side
    for rotation in ([0.99, 0.0, 0.0, 0.0], [1.01, 0.0, 0.0, 0.0]):
        record = {"translation": [0, 0, 0], "rotation": rotation, "camera_intrinsic": []}
        with pytest.raises(ValueError, match="RADAR_FRONT.*not unit"):
            SensorCalibration.from_record("RADAR_FRONT", record)


def test_hand_worked_transform():
    # 90 degrees about z, then translation (1, 2, 3): (1, 0, 0) -> (0, 1, 0) + t.
    q = [np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]
    transform = RigidTransform.from_nuscenes([1, 2, 3], q)
    np.testing.assert_allclose(transform.apply([[1, 0, 0]]), [[1, 3, 3]], atol=1e-12)
    assert transform.yaw == pytest.approx(np.pi / 2)


def test_interpolation_halfway_hand_worked():
    yaw_quaternion = lambda yaw: [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]  # noqa: E731
    before = EgoPose(1_000_000, RigidTransform.from_nuscenes([0, 0, 0], yaw_quaternion(0.0)))
    after = EgoPose(2_000_000, RigidTransform.from_nuscenes([10, 4, 0], yaw_quaternion(0.4)))
    middle = interpolate_pose(before, after, 1_250_000)
    np.testing.assert_allclose(middle.ego_to_global.translation, [2.5, 1.0, 0.0], atol=1e-12)
    assert middle.ego_to_global.yaw == pytest.approx(0.1)
    assert interpolate_pose(before, after, 1_000_000).ego_to_global.yaw == pytest.approx(0.0, abs=1e-12)
    beyond = interpolate_pose(before, after, 3_000_000)  # linear extrapolation
    np.testing.assert_allclose(beyond.ego_to_global.translation, [20, 8, 0], atol=1e-9)
    assert beyond.ego_to_global.yaw == pytest.approx(0.8)



@settings(max_examples=60, deadline=None)
@given(unit_quaternions, unit_quaternions, st.floats(0, 1))
def test_interpolated_rotation_is_the_slerp_of_pyquaternion(first, second, alpha):
    assume(abs(np.dot(first, second)) > 0.05)  # not nearly half a turn apart, where the shortest way is ambiguous
    assume(abs(np.dot(first, second)) <= 0.9995)  # above, pyquaternion's slerp switches to a normalised lerp
    before = EgoPose(0, RigidTransform.from_nuscenes([0, 0, 0], first))
    after = EgoPose(1_000_000, RigidTransform.from_nuscenes([0, 0, 0], second))
    timestamp_us = int(round(alpha * 1e6))
    expected = Quaternion.slerp(Quaternion(first), Quaternion(second), timestamp_us / 1e6).rotation_matrix
    np.testing.assert_allclose(interpolate_pose(before, after, timestamp_us).ego_to_global.rotation, expected,
                               atol=1e-7)

@settings(max_examples=60, deadline=None)
@given(unit_quaternions, st.tuples(*[st.floats(-1, 1) for _ in range(3)]).filter(lambda v: np.linalg.norm(v) > 0.1),
       st.floats(1e-9, 0.1), st.floats(0, 1))
def test_a_small_turn_is_interpolated_as_scipys_slerp(first, axis, angle_rad, alpha):
    """Where pyquaternion lerps (consecutive ego poses turn by less than a degree), scipy's Slerp is the oracle."""
    start = Rotation.from_quat(np.asarray(first)[[1, 2, 3, 0]])
    end = Rotation.from_rotvec(angle_rad * np.asarray(axis) / np.linalg.norm(axis)) * start
    before = EgoPose(0, RigidTransform.from_rotation_translation(start.as_matrix(), np.zeros(3)))
    after = EgoPose(1_000_000, RigidTransform.from_rotation_translation(end.as_matrix(), np.zeros(3)))
    timestamp_us = int(round(alpha * 1e6))
    expected = Slerp([0.0, 1.0], Rotation.concatenate([start, end]))(timestamp_us / 1e6).as_matrix()
    np.testing.assert_allclose(interpolate_pose(before, after, timestamp_us).ego_to_global.rotation, expected,
                               atol=1e-12)


@pytest.mark.parametrize("half_turn_wxyz, quarter_turn_rotvec", [
    ([0.0, 0.0, 0.0, 1.0], [0.0, 0.0, np.pi / 2]),
    ([0.0, 1.0, 0.0, 0.0], [np.pi / 2, 0.0, 0.0]),
])
def test_halfway_through_a_half_turn_is_a_quarter_turn(half_turn_wxyz, quarter_turn_rotvec):
    # identity -> half a turn about z (x): halfway, a quarter turn about z (x), as scipy's Slerp; the trace of a half
    # turn is -1 and its antisymmetric part 0, so its axis is not in the closed form (either sense of turning is a
    # half turn: compared up to the sign)
    before = EgoPose(0, RigidTransform.identity())
    after = EgoPose(1_000_000, RigidTransform.from_nuscenes([0, 0, 0], half_turn_wxyz))
    middle = interpolate_pose(before, after, 500_000).ego_to_global.rotation
    rotations = Rotation.from_matrix([np.eye(3), after.ego_to_global.rotation])
    np.testing.assert_allclose(middle, Slerp([0.0, 1.0], rotations)(0.5).as_matrix(), atol=1e-12)
    rotvec = Rotation.from_matrix(middle).as_rotvec()
    np.testing.assert_allclose(np.sign(np.dot(rotvec, quarter_turn_rotvec)) * rotvec, quarter_turn_rotvec,
                               atol=1e-12)


@pytest.mark.parametrize("rotation, problem", [
    ([1.0, 0.1, 0.0, 0.0], "not unit"),
    ([float("nan"), 0, 0, 0], "NaN"),
    ([1.0, 0.0, 0.0], "4 values"),
    (["1", 0, 0, 0], "must be numbers"),  # numpy would read the string as the number 1.0
])
def test_bad_calibration_quaternion_names_sensor_and_problem(rotation, problem):
    record = {"translation": [0, 0, 0], "rotation": rotation, "camera_intrinsic": []}
    with pytest.raises(ValueError, match=f"RADAR_FRONT.*{problem}"):
        SensorCalibration.from_record("RADAR_FRONT", record)


@pytest.mark.parametrize("translation, problem", [
    ([0, float("inf"), 0], "NaN or Inf"),
    (["0.5", 0, 0], "must be numbers"),
    ([0, None, 0], "must be numbers"),
    ([0, True, 0], "must be numbers"),
])
def test_bad_translation_rejected(translation, problem):
    record = {"translation": translation, "rotation": [1, 0, 0, 0], "camera_intrinsic": []}
    with pytest.raises(ValueError, match=f"LIDAR_TOP: translation (contains )?{problem}"):
        SensorCalibration.from_record("LIDAR_TOP", record)


@pytest.mark.parametrize("field, value, problem", [
    ("timestamp", "1533151603547590", "timestamp must be an integer"),
    ("timestamp", 1533151603547590.5, "timestamp must be an integer"),
    ("translation", [1.0, "2.0", 0.0], "translation must be numbers"),
])
def test_an_ego_pose_of_other_than_numbers_names_its_token(field, value, problem):
    record = dict({"token": "p1", "timestamp": 1533151603547590, "translation": [1.0, 2.0, 0.0],
                   "rotation": [1.0, 0.0, 0.0, 0.0]}, **{field: value})
    with pytest.raises(ValueError, match=f"ego_pose p1: {problem}"):
        EgoPose.from_record(record)


@pytest.mark.parametrize("field", ["timestamp", "translation", "rotation"])
def test_an_ego_pose_without_a_field_names_its_token_and_the_field(field):
    # a bare KeyError: 'translation' before, where a null value was already named
    record = {"token": "p1", "timestamp": 1533151603547590, "translation": [1.0, 2.0, 0.0],
              "rotation": [1.0, 0.0, 0.0, 0.0]}
    del record[field]
    with pytest.raises(ValueError, match=f"^ego_pose p1: the record has no {field}$"):
        EgoPose.from_record(record)


@pytest.mark.parametrize("fields, named", [(["translation"], "translation"), (["rotation"], "rotation"),
                                           (["translation", "rotation"], "translation, rotation")])
def test_a_calibration_without_a_field_names_its_sensor_and_the_field(fields, named):
    record = {"translation": [0, 0, 0], "rotation": [1, 0, 0, 0], "camera_intrinsic": []}
    for field in fields:
        del record[field]
    with pytest.raises(ValueError, match=f"^RADAR_FRONT: the record has no {named}$"):
        SensorCalibration.from_record("RADAR_FRONT", record)
