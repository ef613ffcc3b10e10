"""Augmentation keeps every modality consistent: points stay in their boxes, radar motion stays consistent,
pixels still see the same scene points, and image resize + crop moves projections exactly as the image."""
import cv2
import numpy as np
import pytest
from nuscenes.utils.geometry_utils import points_in_box

from perception.datasets.frame import CameraView, Frame, LidarSweeps, RadarSweeps
from perception.datasets.transforms import (
    Compose, GlobalFlip, GlobalRotation, GlobalScaling, GlobalTranslation, ResizeCropImages, apply_ego_similarity,
    resize_crop_view,
)
from perception.geometry import Boxes3D, CameraIntrinsics, EgoPose, RigidTransform, project_points, rotation_about_z

# Camera axes (x right, y down, z forward) for a camera looking along ego +x: columns are the camera axes in ego.
FORWARD_CAMERA_ROTATION = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _frame(seed: int = 0) -> Frame:
    """A hand-made frame: 3 boxes ahead with 200 LiDAR points in each and 300 around, moving radar points, one
    forward camera 1.5 m up."""
    rng = np.random.default_rng(seed)
    boxes = Boxes3D(np.array([[15.0, 2.0, 0.8], [25.0, -4.0, 1.0], [8.0, 6.0, 0.9]]),
                    np.array([[1.9, 4.5, 1.6], [2.5, 10.0, 3.0], [0.7, 0.8, 1.8]]), np.array([0.3, -1.2, 2.5]),
                    velocities=np.array([[3.0, 0.5], [-8.0, 1.0], [0.2, 1.1]]), labels=[0, 1, 8])
    inside = []
    for corner in boxes.corners():  # points spread inside each box (convex combinations of its corners)
        weights = rng.dirichlet(np.ones(8), 200)
        inside.append(weights @ corner)
    xyz = np.concatenate([*inside, rng.uniform([-40, -40, -2], [40, 40, 4], (300, 3))])
    lidar = np.concatenate([xyz, rng.uniform(0, 255, (len(xyz), 1)), rng.uniform(0, 0.45, (len(xyz), 1))], axis=1)
    radar = np.concatenate([rng.uniform(-50, 50, (40, 2)), rng.uniform(0, 1, (40, 1)), rng.uniform(-5, 20, (40, 1)),
                            rng.uniform(-15, 15, (40, 2)), rng.uniform(-0.02, 0.3, (40, 1))], axis=1)
    camera = CameraView("CAM_FRONT", np.zeros((90, 160, 3), np.uint8),
                        CameraIntrinsics(120.0, 120.0, 80.0, 45.0, 160, 90),
                        RigidTransform.from_rotation_translation(FORWARD_CAMERA_ROTATION, [1.7, 0.0, 1.5]), 0)
    return Frame("sample", "scene", 0, EgoPose(0, RigidTransform.identity()),
                 LidarSweeps(lidar.astype(np.float32), 10), RadarSweeps(radar.astype(np.float32), 6),
                 {"CAM_FRONT": camera}, gt_boxes=boxes)


def _inside(points: np.ndarray, boxes: Boxes3D, wlh_factor: float) -> np.ndarray:
    """(K, N) bool by the devkit's points_in_box."""
    return np.stack([points_in_box(box, points.T, wlh_factor=wlh_factor) for box in boxes.to_devkit()])


def _pixels(frame: Frame, points_ego: np.ndarray):
    view = frame.cameras["CAM_FRONT"]
    return project_points(view.camera_to_ego.inverse().apply(points_ego), view.intrinsics)


AUGMENTATIONS = {
    "rotation": lambda frame: apply_ego_similarity(frame, rotation_about_z(0.7)),
    "scaling": lambda frame: apply_ego_similarity(frame, np.eye(3), scale=1.08),
    "left-right flip": lambda frame: apply_ego_similarity(frame, np.diag([1.0, -1.0, 1.0])),
    "front-back flip": lambda frame: apply_ego_similarity(frame, np.diag([-1.0, 1.0, 1.0])),
    "translation": lambda frame: apply_ego_similarity(frame, np.eye(3), translation=[0.4, -0.3, 0.2]),
    "all, composed": Compose([GlobalRotation(seed=1), GlobalScaling((0.9, 1.1), seed=2), GlobalFlip(0.5, 0.5, seed=3),
                              GlobalTranslation(seed=4)]),
}


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_points_stay_inside_their_boxes(name):
    frame = _frame()
    augmented = AUGMENTATIONS[name](frame)
    before_strict = _inside(frame.lidar.points[:, :3], frame.gt_boxes, 0.999)
    before_loose = _inside(frame.lidar.points[:, :3], frame.gt_boxes, 1.001)
    after = _inside(augmented.lidar.points[:, :3], augmented.gt_boxes, 1.0)
    assert before_strict.sum() > 550
    assert np.all(after[before_strict]) and not np.any(after[~before_loose])


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_box_corners_move_with_the_scene(name):
    frame = _frame()
    augmented = AUGMENTATIONS[name](frame)
    similarity = augmented.augmentation
    expected = frame.gt_boxes.corners() @ similarity[:3, :3].T + similarity[:3, 3]
    # A mirror reorders the corners: compare each box's corners as a sorted set.
    np.testing.assert_allclose(np.sort(augmented.gt_boxes.corners(), axis=1), np.sort(expected, axis=1), atol=1e-9)
    np.testing.assert_allclose(augmented.gt_boxes.velocities,
                               frame.gt_boxes.velocities @ similarity[:2, :2].T, atol=1e-12)


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_radar_motion_and_lidar_columns_stay_consistent(name):
    frame = _frame()
    augmented = AUGMENTATIONS[name](frame)
    similarity = augmented.augmentation
    before, after = frame.radar.points.astype(np.float64), augmented.radar.points.astype(np.float64)
    # The point's position at its sweep time (p - v dt) maps to the augmented one's.
    at_sweep = before[:, :2] - before[:, 4:6] * before[:, 6:7]
    at_sweep = np.concatenate([at_sweep, before[:, 2:3]], axis=1) @ similarity[:3, :3].T + similarity[:3, 3]
    np.testing.assert_allclose(after[:, :2] - after[:, 4:6] * after[:, 6:7], at_sweep[:, :2], atol=1e-4)
    np.testing.assert_array_equal(after[:, [3, 6]], before[:, [3, 6]])  # rcs, time_lag untouched
    np.testing.assert_array_equal(augmented.lidar.points[:, 3:], frame.lidar.points[:, 3:])


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_camera_pixels_see_the_same_scene_points(name):
    frame = _frame()
    augmented = AUGMENTATIONS[name](frame)
    before = _pixels(frame, frame.lidar.points[:, :3])
    after = _pixels(augmented, augmented.lidar.points[:, :3])
    assert before.visible.sum() > 100
    np.testing.assert_array_equal(after.visible, before.visible)
    np.testing.assert_allclose(after.pixels[before.visible], before.pixels[before.visible], atol=1e-3)
    scale = np.cbrt(abs(np.linalg.det(augmented.augmentation[:3, :3])))
    np.testing.assert_allclose(after.depth[before.visible], scale * before.depth[before.visible], rtol=1e-5)
    # Lifting pixels at the scaled depth lands on the augmented points.
    view = augmented.cameras["CAM_FRONT"]
    rays = np.concatenate([(after.pixels[after.visible] - [view.intrinsics.cx, view.intrinsics.cy])
                           / [view.intrinsics.fx, view.intrinsics.fy], np.ones((after.visible.sum(), 1))], axis=1)
    lifted = view.camera_to_ego.apply(rays * after.depth[after.visible, None])
    np.testing.assert_allclose(lifted, augmented.lidar.points[after.visible, :3], atol=1e-3)


def test_same_seed_same_augmentation_other_seed_other():
    def run(seed):
        return Compose([GlobalRotation(), GlobalScaling(), GlobalFlip(), GlobalTranslation()], seed=seed)(_frame())

    np.testing.assert_array_equal(run(5).lidar.points, run(5).lidar.points)
    assert not np.allclose(run(5).augmentation, run(6).augmentation)


def test_augmentation_rejects_a_transform_that_tilts_z():
    tilt = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="keep \\+z up"):
        apply_ego_similarity(_frame(), tilt)


@pytest.mark.parametrize("seed", range(4))
def test_resize_crop_moves_projections_and_pixels_alike(seed):
    frame = _frame()
    view = frame.cameras["CAM_FRONT"]
    corners = frame.gt_boxes.corners().reshape(-1, 3)
    before = _pixels(frame, corners)
    # Paint a bright 5 x 5 square centred on each visible corner's pixel.
    image = np.zeros_like(view.image)
    marked = [i for i in np.flatnonzero(before.visible)
              if 6 < before.pixels[i, 0] < 154 and 6 < before.pixels[i, 1] < 84][:3]
    assert marked
    for i in marked:
        u, v = np.floor(before.pixels[i]).astype(int)
        image[v - 2:v + 3, u - 2:u + 3] = 255
    frame = Frame(**{**frame.__dict__, "cameras": {"CAM_FRONT": CameraView(**{**view.__dict__, "image": image})}})
    augmented = ResizeCropImages((128, 64), resize_range=(0.8, 1.6), seed=seed)(frame)
    after = _pixels(augmented, corners)
    new = augmented.cameras["CAM_FRONT"]
    assert new.image.shape == (64, 128, 3) and (new.intrinsics.width, new.intrinsics.height) == (128, 64)
    # Pixel-corner convention: u' = (u) * rx - left; a square centred at pixel centre (u0 + 0.5) maps likewise.
    scale_x, scale_y = new.intrinsics.fx / view.intrinsics.fx, new.intrinsics.fy / view.intrinsics.fy
    left = view.intrinsics.cx * scale_x - new.intrinsics.cx
    top = view.intrinsics.cy * scale_y - new.intrinsics.cy
    np.testing.assert_allclose(after.pixels, before.pixels * [scale_x, scale_y] - [left, top], atol=1e-9)
    for i in marked:
        centre = (np.floor(before.pixels[i]) + 0.5) * [scale_x, scale_y] - [left, top]
        u0, v0 = np.floor(centre).astype(int)
        if 3 <= u0 < 125 and 3 <= v0 < 61:  # the square is inside the crop: bright where its centre went
            assert new.image[v0, u0].min() > 150


def test_shrinking_a_view_averages_the_pixels_it_merges():
    # vertical stripes one pixel wide (columns 0, 255, 0, ...) on a 12 x 12 view shrunk by 1/3 to 4 x 4 (crop at
    # 0, 0 of the same size): each output pixel covers 3 columns, (0, 255, 0) -> 85 or (255, 0, 255) -> 170, as
    # cv2.resize with INTER_AREA gives; nearest or bilinear sampling would keep single columns (0 / 255)
    image = np.zeros((12, 12, 3), np.uint8)
    image[:, 1::2] = 255
    view = CameraView("CAM_FRONT", image, CameraIntrinsics(12.0, 12.0, 6.0, 6.0, 12, 12),
                      RigidTransform.from_rotation_translation(FORWARD_CAMERA_ROTATION, [1.7, 0.0, 1.5]), 0)
    shrunk = resize_crop_view(view, 1 / 3, 0, 0, (4, 4))
    np.testing.assert_array_equal(shrunk.image[:, :, 0], np.tile([85, 170, 85, 170], (4, 1)))
    np.testing.assert_array_equal(shrunk.image, cv2.resize(image, (4, 4), interpolation=cv2.INTER_AREA))


def test_a_left_right_flip_negates_y_as_mmdetection3d_does():
    # GlobalFlip(1, 0) always mirrors left/right (y -> -y, the docstring and mmdetection3d's horizontal flip), never
    # front/back: LiDAR point (1, 2, 0) -> (1, -2, 0); radar point (3, 4, 0) with velocity (5, 6) -> (3, -4, 0),
    # (5, -6); box at (10, 2, 1), yaw 0.3 rad, velocity (3, 0.5) -> (10, -2, 1), yaw -0.3, velocity (3, -0.5).
    # A mirror of x instead would give (-1, 2, 0) and yaw pi - 0.3.
    lidar = LidarSweeps(np.array([[1.0, 2.0, 0.0, 10.0, 0.0]], np.float32), 1)
    radar = RadarSweeps(np.array([[3.0, 4.0, 0.0, 0.5, 5.0, 6.0, 0.0]], np.float32), 1)
    boxes = Boxes3D(np.array([[10.0, 2.0, 1.0]]), np.array([[2.0, 4.0, 1.5]]), np.array([0.3]),
                    velocities=np.array([[3.0, 0.5]]), labels=[0])
    frame = Frame("sample", "scene", 0, EgoPose(0, RigidTransform.identity()), lidar, radar, {}, gt_boxes=boxes)
    flipped = GlobalFlip(left_right_prob=1.0, front_back_prob=0.0)(frame)
    np.testing.assert_allclose(flipped.lidar.points[0, :3], [1.0, -2.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(flipped.radar.points[0, :3], [3.0, -4.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(flipped.radar.points[0, 4:6], [5.0, -6.0], atol=1e-6)
    np.testing.assert_allclose(flipped.gt_boxes.centers, [[10.0, -2.0, 1.0]], atol=1e-9)
    np.testing.assert_allclose(flipped.gt_boxes.yaws, [-0.3], atol=1e-9)
    np.testing.assert_allclose(flipped.gt_boxes.velocities, [[3.0, -0.5]], atol=1e-9)


def test_the_test_time_crop_offset_is_a_share_of_the_resized_image():
    # BEVDet's test-time crop of a nuScenes 1600 x 900 image to 704 x 256: scale max(704 / 1600, 256 / 900) = 0.44,
    # resized 704 x 396; left = 0.5 x (704 - 704) = 0, top = 1 x (396 - 256) = 140 (the bottom, where the road is).
    # Intrinsics: fx 1266 -> 557.04, cx 800 -> 0.44 x 800 - 0 = 352, cy 450 -> 0.44 x 450 - 140 = 58.
    # A bright patch at original rows 700..799, columns 800..899 -> resized rows 308..352, columns 352..396 ->
    # output rows 168..212, columns 352..396. (Offsets from the original size, 448 and 644, would crop black.)
    image = np.zeros((900, 1600, 3), np.uint8)
    image[700:800, 800:900] = 200
    view = CameraView("CAM_FRONT", image, CameraIntrinsics(1266.0, 1266.0, 800.0, 450.0, 1600, 900),
                      RigidTransform.from_rotation_translation(FORWARD_CAMERA_ROTATION, [1.7, 0.0, 1.5]), 0)
    frame = Frame("sample", "scene", 0, EgoPose(0, RigidTransform.identity()), None, None, {"CAM_FRONT": view})
    test_time = ResizeCropImages((704, 256), resize_range=(1.0, 1.0), left_range=(0.5, 0.5), top_range=(1.0, 1.0))
    new = test_time(frame).cameras["CAM_FRONT"]
    assert new.image.shape == (256, 704, 3) and (new.intrinsics.width, new.intrinsics.height) == (704, 256)
    assert (new.intrinsics.fx, new.intrinsics.cx, new.intrinsics.cy) == pytest.approx((557.04, 352.0, 58.0))
    assert new.image[172:208, 356:392].min() == 200  # the patch's inside, 4 pixels in from its blurred edges
    assert new.image[:160].max() == 0 and new.image[220:].max() == 0 and new.image[:, :344].max() == 0


def test_the_crop_offsets_take_their_own_shares_of_the_free_width_and_height():
    # A 100 x 50 image to 40 x 40 at u = 1.5: cover max(40 / 100, 40 / 50) = 0.8, scale 1.2, resized 120 x 60; free
    # 80 x 20 pixels. left_range 0.25 -> left = 0.25 x 80 = 20; top_range 1 -> top = 1 x 20 = 20. Intrinsics: cx 50 ->
    # 1.2 x 50 - 20 = 40, cy 25 -> 1.2 x 25 - 20 = 10. A bright column at original x 40..49 -> resized 48..59 ->
    # output 28..39; with the top's share for the left (80) the window would start past it.
    image = np.zeros((50, 100, 3), np.uint8)
    image[:, 40:50] = 200
    view = CameraView("CAM_FRONT", image, CameraIntrinsics(100.0, 100.0, 50.0, 25.0, 100, 50),
                      RigidTransform.from_rotation_translation(FORWARD_CAMERA_ROTATION, [1.7, 0.0, 1.5]), 0)
    frame = Frame("sample", "scene", 0, EgoPose(0, RigidTransform.identity()), None, None, {"CAM_FRONT": view})
    crop = ResizeCropImages((40, 40), resize_range=(1.5, 1.5), left_range=(0.25, 0.25), top_range=(1.0, 1.0))
    new = crop(frame).cameras["CAM_FRONT"]
    assert (new.intrinsics.fx, new.intrinsics.cx, new.intrinsics.cy) == pytest.approx((120.0, 40.0, 10.0))
    assert new.image[:, 30:38].min() == 200 and new.image[:, :26].max() == 0


def test_resize_crop_scales_the_intrinsics_by_the_rounded_size():
    # a 10 x 10 view at scale 0.26 becomes round(2.6) = 3 x 3 pixels: the intrinsics scale by the actual 3 / 10,
    # fx 100 -> 30 and cx 5 -> 1.5 (by the nominal 0.26 they would be 26 and 1.3, off the resized pixels)
    view = CameraView("CAM_FRONT", np.zeros((10, 10, 3), np.uint8), CameraIntrinsics(100.0, 100.0, 5.0, 5.0, 10, 10),
                      RigidTransform.from_rotation_translation(FORWARD_CAMERA_ROTATION, [1.7, 0.0, 1.5]), 0)
    resized = resize_crop_view(view, 0.26, 0, 0, (3, 3))
    assert resized.image.shape == (3, 3, 3) and (resized.intrinsics.width, resized.intrinsics.height) == (3, 3)
    assert (resized.intrinsics.fx, resized.intrinsics.fy) == pytest.approx((30.0, 30.0))
    assert (resized.intrinsics.cx, resized.intrinsics.cy) == pytest.approx((1.5, 1.5))


@pytest.mark.parametrize("linear", [np.diag([1.2, 1.0, 1.0]), [[1.0, 0.3, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]],
                         ids=["stretch", "shear"])
def test_augmentation_rejects_an_upright_transform_that_is_not_orthogonal(linear):
    # both keep +z up (last row and column (0, 0, 1)) but distort the xy plane: L L^T != I
    with pytest.raises(ValueError, match="must be orthogonal"):
        apply_ego_similarity(_frame(), linear)
