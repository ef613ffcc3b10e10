import cv2
import numpy as np
import pytest

from perception.geometry import CameraIntrinsics, SensorCalibration, project_points, resize_image

K = [[1000.0, 0.0, 800.0], [0.0, 1000.0, 450.0], [0.0, 0.0, 1.0]]


def test_projection_hand_worked():
    intrinsics = CameraIntrinsics.from_matrix(K, "CAM_FRONT", 1600, 900)
    points = np.array([[1.0, -0.5, 10.0], [0.0, 0.0, 0.5], [0.0, 0.0, -5.0], [100.0, 0.0, 10.0]])
    projection = project_points(points, intrinsics)
    np.testing.assert_allclose(projection.pixels[0], [900.0, 400.0])  # 1000 * 1/10 + 800, 1000 * -0.5/10 + 450
    np.testing.assert_array_equal(projection.in_front, [True, False, False, True])
    np.testing.assert_array_equal(projection.visible, [True, False, False, False])  # u = 10800 is off the image
    assert np.all(np.isnan(projection.pixels[2]))


def test_projection_matches_opencv_with_each_axis_focal_length():
    intrinsics = CameraIntrinsics(1000.0, 800.0, 800.0, 450.0, 1600, 900)
    rng = np.random.default_rng(0)
    points = rng.uniform([-20, -5, 1], [20, 5, 60], size=(100, 3))
    matrix = np.array([[1000.0, 0.0, 800.0], [0.0, 800.0, 450.0], [0.0, 0.0, 1.0]])
    expected, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), matrix, None)
    projection = project_points(points, intrinsics)
    np.testing.assert_allclose(projection.pixels, expected[:, 0], atol=1e-9)
    np.testing.assert_allclose(projection.depth, points[:, 2])


def test_scaling_and_cropping_intrinsics_move_pixels_consistently():
    intrinsics = CameraIntrinsics.from_matrix(K, "CAM_FRONT", 1600, 900)
    point = np.array([[2.0, 1.0, 8.0]])
    u, v = project_points(point, intrinsics).pixels[0]
    scaled = intrinsics.scaled(0.5, 0.5).cropped(100, 50, 600, 350)
    np.testing.assert_allclose(project_points(point, scaled).pixels[0], [u * 0.5 - 100, v * 0.5 - 50])


@pytest.mark.parametrize("matrix, problem", [
    ([[0.0, 0, 800], [0, 0, 450], [0, 0, 1]], "singular"),
    ([[-1000.0, 0, 800], [0, 1000, 450], [0, 0, 1]], "focal lengths must be positive"),
    ([[1000.0, 0, float("nan")], [0, 1000, 450], [0, 0, 1]], "NaN"),
    ([[1000.0, 0, 800], [0, 1000, 450]], "3x3"),
    ([[1000.0, 0, "800"], [0, 1000, 450], [0, 0, 1]], "must be numbers"),
])
def test_bad_intrinsics_name_camera_and_problem(matrix, problem):
    record = {"translation": [0, 0, 0], "rotation": [1, 0, 0, 0], "camera_intrinsic": matrix}
    with pytest.raises(ValueError, match=f"CAM_BACK.*{problem}"):
        SensorCalibration.from_record("CAM_BACK", record, (1600, 900))


def test_resizing_without_the_image_size_is_named():
    intrinsics = CameraIntrinsics.from_matrix([[1000.0, 0, 800], [0, 1000, 450], [0, 0, 1]], "CAM_FRONT")
    with pytest.raises(ValueError, match="CAM_FRONT: image size unknown"):
        resize_image(np.zeros((900, 1600, 3), np.uint8), intrinsics, (800, 450))


def test_the_border_and_the_minimum_depth_are_outside():
    # fx = fy = 64, cx = cy = 32 on a 64 x 64 image; the points at depth 2 m, x = -0.5 / 0.5 m, y = 0 project to
    # u = 64 x -0.25 + 32 = 16 and 48, v = 32 (exact in binary): with border_px = 16 they lie exactly on the
    # border, which is outside (border < u < width - border); 1 mm further in they are inside
    intrinsics = CameraIntrinsics(64.0, 64.0, 32.0, 32.0, 64, 64)
    points = np.array([[-0.5, 0.0, 2.0], [0.5, 0.0, 2.0], [0.0, -0.5, 2.0], [-0.499, 0.0, 2.0]])
    projection = project_points(points, intrinsics, border_px=16.0)
    np.testing.assert_array_equal(projection.pixels[:3], [[16.0, 32.0], [48.0, 32.0], [32.0, 16.0]])
    np.testing.assert_array_equal(projection.visible, [False, False, False, True])
    # depth exactly min_depth is not in front (depth > min_depth); 1 mm more is
    at_limit = project_points(np.array([[0.0, 0.0, 1.5], [0.0, 0.0, 1.501]]), intrinsics, min_depth=1.5)
    np.testing.assert_array_equal(at_limit.in_front, [False, True])


def test_shrinking_averages_the_pixels_it_merges():
    # vertical stripes one pixel wide (columns 0, 255, 0, ...) on a 12 x 12 image shrunk to 4 x 4: each output
    # pixel covers 3 columns, (0, 255, 0) -> 85 or (255, 0, 255) -> 170, as cv2.resize with INTER_AREA gives
    # (bilinear sampling would hit single columns, 255 / 0)
    image = np.zeros((12, 12, 3), np.uint8)
    image[:, 1::2] = 255
    intrinsics = CameraIntrinsics(12.0, 12.0, 6.0, 6.0, 12, 12)
    resized, scaled = resize_image(image, intrinsics, (4, 4))
    np.testing.assert_array_equal(resized[:, :, 0], np.tile([85, 170, 85, 170], (4, 1)))
    np.testing.assert_array_equal(resized, cv2.resize(image, (4, 4), interpolation=cv2.INTER_AREA))
    assert (scaled.width, scaled.height, scaled.fx, scaled.cx) == (4, 4, 4.0, 2.0)


def test_a_non_uniform_resize_scales_each_axis_by_its_own_factor():
    # 1600 x 900 -> (W, H) = (800, 300): x by 800 / 1600 = 1/2, y by 300 / 900 = 1/3;
    # fx 1266.4 -> 633.2, cx 800 -> 400, fy 1266.4 -> 422.133..., cy 450 -> 150
    intrinsics = CameraIntrinsics(1266.4, 1266.4, 800.0, 450.0, 1600, 900)
    resized, scaled = resize_image(np.zeros((900, 1600, 3), np.uint8), intrinsics, (800, 300))
    assert resized.shape == (300, 800, 3) and (scaled.width, scaled.height) == (800, 300)
    assert (scaled.fx, scaled.cx) == pytest.approx((633.2, 400.0))
    assert (scaled.fy, scaled.cy) == pytest.approx((1266.4 * 300 / 900, 150.0))


def test_scaled_image_size_is_rounded_to_the_nearest_pixel():
    # 1600 x 900 by 0.4995: 799.2 -> 799 wide, 449.55 -> 450 high (truncating would give 449)
    scaled = CameraIntrinsics(1000.0, 1000.0, 800.0, 450.0, 1600, 900).scaled(0.4995, 0.4995)
    assert (scaled.width, scaled.height) == (799, 450)
