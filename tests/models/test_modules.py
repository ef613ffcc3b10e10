"""Shapes, gradients and behaviour of each module and of the whole detector, on tiny grids."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from perception.geometry import EgoPose, RigidTransform, project_points
from perception.models import BEVDecoder, BEVFusionDetector, BEVGrid, ConvFuser, FusionBatch
from perception.models.fuser import stack_features
from perception.models.planning_types import PlanningTargets
from perception.models.encoders import CameraEncoder, LidarEncoder, PillarFeatureNet, RadarEncoder
from perception.models.encoders.pillars import Pillarization
from perception.models.heads import build_targets
from perception.sensors import CAMERA_CHANNELS
from tests.models.helpers import IMAGE_H, IMAGE_W, TINY_CELL, TINY_RANGE, make_frame, tiny_model, tiny_model_config

GRID = BEVGrid(tuple(TINY_RANGE), tuple(TINY_CELL))  # 16 x 16 cells


@pytest.fixture(scope="module")
def batch():
    return FusionBatch.from_frames([make_frame(0), make_frame(1)])


def test_batch_layout(batch):
    assert batch.batch_size == 2
    assert batch.lidar.shape[1] == 6 and set(batch.lidar[:, 0].unique().tolist()) == {0.0, 1.0}
    assert batch.radar.shape[1] == 8
    assert batch.images.shape == (2, 6, 3, IMAGE_H, IMAGE_W) and 0 <= batch.images.min() <= batch.images.max() <= 1
    assert batch.camera_valid.all() and all(p.all() for p in batch.present.values())
    assert batch.intrinsics[0, 0, 0, 0] == 40.0


def test_batch_holds_each_frames_points_and_images_exactly():
    """The points behind their frame's index, the images scaled to [0, 1] as float64 division rounded to float32
    would (every uint8 value in the first image)."""
    frames = [make_frame(0), make_frame(1)]
    first = CAMERA_CHANNELS[0]  # the batch's camera 0
    every_value = np.resize(np.arange(256, dtype=np.uint8), frames[0].cameras[first].image.shape)
    frames[0].cameras[first] = dataclasses.replace(frames[0].cameras[first], image=every_value)
    batch = FusionBatch.from_frames(frames)
    for name in ("lidar", "radar"):
        expected = np.concatenate([np.c_[np.full(len(getattr(f, name).points), i), getattr(f, name).points]
                                   for i, f in enumerate(frames)]).astype(np.float32)
        assert np.array_equal(getattr(batch, name).numpy(), expected)
    assert np.array_equal(batch.images[0, 0].numpy(), (every_value.transpose(2, 0, 1) / 255.0).astype(np.float32))


def test_batch_marks_missing_sensors_and_rejects_mixed_image_sizes():
    frame = make_frame(0)
    no_radar = dataclasses.replace(make_frame(1, cameras=False), radar=None)
    mixed = FusionBatch.from_frames([frame, no_radar])
    assert mixed.present["camera"].tolist() == [True, False]
    assert mixed.present["radar"].tolist() == [True, False]
    assert set(mixed.radar[:, 0].tolist()) == {0.0}
    assert not mixed.camera_valid[1].any() and mixed.images[1].abs().sum() == 0
    small = dataclasses.replace(frame, cameras={c: dataclasses.replace(v, image=v.image[:16]) for c, v in
                                                 list(frame.cameras.items())[:1]})
    with pytest.raises(ValueError, match="one image_size"):
        FusionBatch.from_frames([frame, small])
    four_columns = dataclasses.replace(frame, lidar=dataclasses.replace(frame.lidar, points=frame.lidar.points[:, :4]))
    expected = f"sample {frame.sample_token}: LiDAR points have shape .*, expected \\(N, 5\\) with columns x, y, z"
    with pytest.raises(ValueError, match=expected):
        FusionBatch.from_frames([four_columns])


@pytest.mark.parametrize("sensor, column, value", [("lidar", 3, np.nan), ("radar", 6, np.inf)])
def test_batch_refuses_points_that_are_not_finite(sensor, column, value):
    """A NaN intensity spread through the pillar net to half the heatmap; the readers drop such points at load."""
    frame = make_frame(0)
    points = getattr(frame, sensor).points.copy()
    points[[0, 2], column] = value
    bad = dataclasses.replace(frame, **{sensor: dataclasses.replace(getattr(frame, sensor), points=points)})
    name = {"lidar": "LiDAR", "radar": "radar"}[sensor]
    with pytest.raises(ValueError, match=f"sample {frame.sample_token}: 2 {name} points with NaN or Inf values"):
        FusionBatch.from_frames([frame, bad])


@pytest.mark.parametrize("encoder_type, channels", [(LidarEncoder, 8), (RadarEncoder, 4)])
def test_point_encoders_shapes_and_gradients(batch, encoder_type, channels):
    encoder = encoder_type(GRID, out_channels=channels, max_points_per_pillar=8, max_pillars=300)
    bev, losses = encoder(batch)
    assert bev.shape == (2, channels, 16, 16) and losses == {}
    bev.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters())
    assert any(p.grad.abs().sum() > 0 for p in encoder.parameters())


@pytest.mark.parametrize("encoder_type", [LidarEncoder, RadarEncoder])
@pytest.mark.parametrize("frames", [1, 2])
def test_point_encoders_without_point_gradients_equal_the_row_gathered_pillars(batch, encoder_type, frames):
    """The voxelizer's own pillars (inference) and the pillars gathered from the points by row (when the points need
    gradients) are the same numbers: the encoder's output is identical, for one frame and for a batch."""
    encoder = encoder_type(GRID, out_channels=4, max_points_per_pillar=3, max_pillars=40).eval()  # both limits bind
    points = batch.lidar if encoder_type is LidarEncoder else batch.radar
    points = points[points[:, 0] < frames]
    subset = dataclasses.replace(batch, batch_size=frames, **{encoder.sensor: points})
    with torch.no_grad():
        inference = encoder(subset)[0]
    tracked = points.clone().requires_grad_(True)
    gathered = encoder(dataclasses.replace(subset, **{encoder.sensor: tracked}))[0]
    assert torch.equal(inference, gathered.detach()) and inference.abs().sum() > 0
    gathered.sum().backward()
    assert tracked.grad is not None and tracked.grad[:, 1:].abs().sum() > 0


SCALE = (50.0, 50.0, 5.0, 255.0, 0.5)


def pillar_net_reference(net, pillars, coords, counts) -> np.ndarray:
    """PointPillars' pillar feature net written out pillar by pillar in float64 on the points only: per point
    [columns / scale, xyz - pillar mean, xy - cell centre] -> linear -> batch norm (running statistics) -> ReLU,
    then the max over the pillar's points."""
    weight = net.linear.weight.detach().double().numpy()
    norm = net.norm
    scale = (norm.weight / torch.sqrt(norm.running_var + norm.eps)).detach().double().numpy()
    shift = (norm.bias.detach().double() - norm.running_mean.double() * torch.from_numpy(scale)).numpy()
    x_min, y_min = GRID.point_cloud_range[:2]
    rows = []
    for points, (_, _, y, x), count in zip(pillars.double().numpy(), coords.tolist(), counts.tolist()):
        points = points[:count]
        centre = np.array([(x + 0.5) * GRID.cell_size[0] + x_min, (y + 0.5) * GRID.cell_size[1] + y_min])
        features = np.concatenate([points / np.array(SCALE), points[:, :3] - points[:, :3].mean(0),
                                   points[:, :2] - centre], axis=1)
        rows.append(np.maximum(features @ weight.T * scale + shift, 0.0).max(0))
    return np.stack(rows)


@pytest.mark.parametrize("counts", [[1, 1, 1, 1], [5, 5, 5, 5], [1, 3, 5, 2]])
def test_pillar_net_in_eval_is_pointpillars_max_over_points(counts):
    """Eval takes the max before batch norm and ReLU (negative scales included) on pillars whose padding the
    reference never reads: the reference's numbers, for single points, full pillars and ties."""
    torch.manual_seed(0)
    net = PillarFeatureNet(5, 6).eval()
    with torch.no_grad():
        net.norm.weight.copy_(torch.tensor([1.5, -2.0, 0.0, 0.7, -0.3, 1.0]))
        net.norm.bias.normal_()
        net.norm.running_mean.normal_()
        net.norm.running_var.uniform_(0.5, 2.0)
    counts = torch.tensor(counts)
    pillars = torch.randn(4, 5, 5) * torch.tensor([4.0, 4.0, 1.0, 100.0, 0.2])
    pillars[1, 1] = pillars[1, 0]  # a tie
    pillars[torch.arange(5)[None, :] >= counts[:, None]] = 0.0  # zero padding, as the voxelizer writes it
    coords = torch.tensor([[0, 0, 3, 4], [0, 0, 15, 0], [1, 0, 0, 15], [1, 0, 8, 8]])
    with torch.no_grad():
        output = net(Pillarization(GRID, 5, 4, SCALE).point_features(pillars, coords, counts))
    assert output.shape == (4, 6) and (output[:, 2] == output[0, 2]).all()  # scale 0: the shift alone
    assert np.allclose(output.numpy(), pillar_net_reference(net, pillars, coords, counts), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="points with 4 columns, feature_scale has 5"):
        Pillarization(GRID, 5, 4, SCALE).point_features(pillars[..., :4], coords, counts)


def test_point_features_of_a_grid_with_cells_longer_in_x_than_in_y():
    """Cells 1 m in x by 0.5 m in y from (-8, -8): the cell in row 3, column 4 spans x -4 .. -3 and y -6.5 .. -6,
    its centre (-3.5, -6.25). Two points, (-3.2, -6.4, 0.5) and (-3.8, -6.1, -0.5): mean (-3.5, -6.25, 0); the
    decoration is xyz minus the mean, then xy minus the centre, each point's own columns divided by the scale."""
    grid = BEVGrid((-8.0, -8.0, -3.0, 8.0, 8.0, 3.0), (1.0, 0.5))
    pillars = torch.tensor([[[-3.2, -6.4, 0.5], [-3.8, -6.1, -0.5], [0.0, 0.0, 0.0]]])
    features = Pillarization(grid, 3, 1, (2.0, 2.0, 1.0)).point_features(pillars, torch.tensor([[0, 0, 3, 4]]),
                                                                          torch.tensor([2]))
    expected = [[-1.6, -3.2, 0.5, 0.3, -0.15, 0.5, 0.3, -0.15], [-1.9, -3.05, -0.5, -0.3, 0.15, -0.5, -0.3, 0.15]]
    assert torch.allclose(features[0, :2], torch.tensor(expected), atol=1e-6)
    assert torch.equal(features[0, 2], features[0, 0])  # the padding slot repeats the first point


def test_pillar_net_in_training_zeroes_the_padding_for_batch_norm():
    """While batch norm learns, the padding slots enter its statistics as zeros whatever they hold (statistics
    worked out over all M x P rows); without counts that is an error."""
    torch.manual_seed(1)
    net = PillarFeatureNet(5, 3).train()
    counts = torch.tensor([1, 3])
    features = torch.randn(2, 4, 10)
    padding = (torch.arange(4)[None, :] >= counts[:, None])[..., None]
    rows = (features * ~padding) @ net.linear.weight.T  # (2, 4, 3), padding rows 0
    mean, var = rows.reshape(-1, 3).mean(0), rows.reshape(-1, 3).var(0, unbiased=False)
    expected = torch.relu((rows - mean) / torch.sqrt(var + net.norm.eps)) * ~padding  # weight 1, bias 0 at init
    for padded in (features, torch.where(padding, 1e3, features)):
        assert torch.allclose(net(padded, counts), expected.max(1).values, atol=1e-5)
    with pytest.raises(ValueError, match="needs the pillars' point counts"):
        net(features)


@pytest.mark.parametrize("encoder_type", [LidarEncoder, RadarEncoder])
def test_point_encoder_in_eval_with_learning_norms_gives_its_net_the_counts(batch, encoder_type):
    """Only the batch norms learning (their statistics re-estimated, the rest in eval): the net is given the counts
    and the statistics move."""
    encoder = encoder_type(GRID, out_channels=4).eval()
    encoder.pillars.norm.train()
    encoder(batch)
    assert encoder.pillars.norm.num_batches_tracked == 1 and encoder.pillars.norm.running_mean.abs().sum() > 0


def test_camera_frustum_points_project_back_to_their_pixels(batch):
    encoder = CameraEncoder(GRID, (IMAGE_W, IMAGE_H), out_channels=4, backbone_widths=[4, 4, 4, 4], fpn_channels=4,
                            depth_range=[1.0, 13.0], depth_bins=6)
    points = encoder.frustum_points_ego(batch.intrinsics, batch.camera_to_ego, (4, 8))  # (B, N, D, h, w, 3)
    assert points.shape == (2, 6, 6, 4, 8, 3)
    frame = make_frame(0)
    for camera_index, view in enumerate(frame.cameras.values()):
        ego_points = points[0, camera_index].reshape(-1, 3).numpy().astype(np.float64)
        camera_points = view.camera_to_ego.inverse().apply(ego_points)
        projection = project_points(camera_points, view.intrinsics)
        rows, cols = np.meshgrid(np.arange(4), np.arange(8), indexing="ij")
        expected = np.stack([(cols + 0.5) * 8, (rows + 0.5) * 8], axis=-1).reshape(1, -1, 2)
        assert np.allclose(projection.pixels.reshape(6, -1, 2), expected, atol=1e-3)
        assert np.allclose(projection.depth.reshape(6, -1), (1 + (np.arange(6) + 0.5) * 2)[:, None], atol=1e-4)


@pytest.mark.parametrize("depth_range, depth_bins, named", [
    ([13.0, 1.0], 6, "depth_range"),  # reversed: no LiDAR point between, every depth target empty, loss_depth -0.0
    ([5.0, 5.0], 6, "depth_range"),  # empty
    ([-1.0, 13.0], 6, "depth_range"),  # frustum points behind the camera
    ([1.0, float("nan")], 6, "depth_range"),
    ([1.0, float("inf")], 6, "depth_range"),  # bins of infinite size
    ([1.0, 13.0], 0, "depth_bins"),  # built, then a ZeroDivisionError in bin_size at the first forward
])
def test_camera_encoder_refuses_an_empty_depth_range_or_no_depth_bins(depth_range, depth_bins, named):
    with pytest.raises(ValueError, match=f"CameraEncoder: {named} "):
        CameraEncoder(GRID, (IMAGE_W, IMAGE_H), out_channels=4, backbone_widths=[4, 4, 4, 4], fpn_channels=4,
                      depth_range=depth_range, depth_bins=depth_bins)


def test_camera_encoder_takes_depths_from_0_m_and_a_single_bin():
    """The least the arithmetic needs: bins from 0 m (their centres, the frustum's depths, lie beyond it) and one."""
    encoder = CameraEncoder(GRID, (IMAGE_W, IMAGE_H), out_channels=4, backbone_widths=[4, 4, 4, 4], fpn_channels=4,
                            depth_range=[0.0, 13.0], depth_bins=1)
    assert encoder.bin_size == 13.0


def test_camera_encoder_shapes_gradients_and_depth_targets(batch):
    encoder = CameraEncoder(GRID, (IMAGE_W, IMAGE_H), out_channels=4, backbone_widths=[4, 8, 8, 8], fpn_channels=8,
                            depth_range=[1.0, 13.0], depth_bins=12).train()
    bev, losses = encoder(batch)
    assert bev.shape == (2, 4, 16, 16) and set(losses) == {"loss_depth"}
    (bev.sum() + losses["loss_depth"]).backward()
    assert encoder.depth_net.weight.grad.abs().sum() > 0
    # one LiDAR point 5.5 m straight ahead of CAM_FRONT (yaw 60 degrees: index 1), on its optical axis
    direction = np.array([np.cos(np.pi / 3), np.sin(np.pi / 3), 0.0])
    point = np.r_[0.0, direction * 5.5 + [0, 0, 1.5], 0.0, 0.0].astype(np.float32)
    single = dataclasses.replace(batch, lidar=torch.from_numpy(point[None]))
    targets = encoder.depth_targets(single, (4, 8))
    hit = (targets[0, 1] >= 0).nonzero().tolist()
    assert hit == [[2, 4]]  # pixel (32, 16) = the principal point -> cell row 16 // 8, col 32 // 8
    assert int(targets[0, 1, 2, 4]) == 4  # (5.5 - 1) / 1 m bins -> bin 4
    assert (targets[0, [0, 2, 3, 4, 5]] == -1).all() and (targets[1] == -1).all()


def test_camera_geometry_is_computed_once_per_calibration(batch, monkeypatch):
    """The BEV pooling geometry is reused while intrinsics and camera_to_ego stay the same, computed again when they
    change, and the output always equals that of an encoder computing it afresh."""
    from perception.ops import BEVPoolGeometry

    encoder = CameraEncoder(GRID, (IMAGE_W, IMAGE_H), out_channels=4, backbone_widths=[4, 8, 8, 8], fpn_channels=8,
                            depth_range=[1.0, 13.0], depth_bins=6).eval()
    computed = []
    from_points = BEVPoolGeometry.from_points
    monkeypatch.setattr(BEVPoolGeometry, "from_points",
                        staticmethod(lambda *args, **kwargs: computed.append(1) or from_points(*args, **kwargs)))

    def fresh_output(inputs):
        encoder._last_geometry = None
        return encoder(inputs)[0]

    moved = batch.camera_to_ego.clone()
    moved[:, :, 0, 3] += 1.0  # every camera 1 m further forward
    shifted = dataclasses.replace(batch, camera_to_ego=moved)
    with torch.no_grad():
        first, again = encoder(batch)[0], encoder(batch)[0]
        assert len(computed) == 1 and torch.equal(first, again)
        after_move = encoder(shifted)[0]
        assert len(computed) == 2 and not torch.equal(after_move, first)
        assert torch.equal(after_move, fresh_output(shifted))
        assert torch.equal(encoder(batch)[0], fresh_output(batch)) and len(computed) == 5


def test_fuser_missing_sensor_is_a_known_state():
    fuser = ConvFuser({"lidar": 3, "camera": 2}, out_channels=5).eval()

    def fuse(features, present):
        return fuser(*stack_features(features, present, fuser.in_channels, (4, 4)))

    with torch.no_grad():
        fuser.missing_embedding["camera"].fill_(0.7)
    lidar = torch.randn(2, 3, 4, 4)
    present = {"lidar": torch.tensor([True, True]), "camera": torch.tensor([True, False])}
    camera = torch.randn(2, 2, 4, 4)
    out = fuse({"lidar": lidar, "camera": camera}, present)
    assert out.shape == (2, 5, 4, 4)
    # frame 1's camera features are ignored: garbage there changes nothing
    garbage = camera.clone()
    garbage[1] = 1e6
    assert torch.allclose(out, fuse({"lidar": lidar, "camera": garbage}, present))
    # a sensor absent from the whole batch (features None) reads as the same missing state
    absent = {"lidar": present["lidar"], "camera": torch.tensor([False, False])}
    none_out = fuse({"lidar": lidar, "camera": None}, absent)
    zero_out = fuse({"lidar": lidar, "camera": torch.zeros_like(camera)}, absent)
    assert torch.allclose(none_out, zero_out)
    assert torch.allclose(none_out[1], out[1])


def test_modality_dropout_keeps_one_sensor_per_frame():
    torch.manual_seed(0)
    fuser = ConvFuser({"lidar": 1, "radar": 1, "camera": 1}, modality_dropout=0.9)
    present = {"lidar": torch.ones(500, dtype=torch.bool), "radar": torch.ones(500, dtype=torch.bool),
               "camera": torch.tensor([True, False] * 250)}
    stacked = fuser.drop_modalities(torch.stack(list(present.values()), dim=1))
    assert stacked.any(dim=1).all()
    assert not stacked[1::2, 2].any()  # never resurrects an absent sensor
    assert 0.05 < stacked.float().mean() < 0.6
    # a frame with no sensor at all has none to keep (torch.multinomial refuses a row of zeros): it stays without
    none_present = torch.tensor([[False, False, False], [True, True, False]])
    kept = fuser.drop_modalities(none_present)
    assert not kept[0].any() and int(kept[1].sum()) >= 1 and not kept[1, 2]


def test_decoder_shapes_and_gradients():
    decoder = BEVDecoder(6, channels=[8, 12], blocks=[2, 2], out_channels=10)
    bev = torch.randn(2, 6, 16, 12, requires_grad=True)
    out = decoder(bev)
    assert out.shape == (2, 10, 16, 12)
    out.sum().backward()
    assert bev.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="even"):
        decoder(torch.randn(1, 6, 15, 12))


def test_detector_predicts_with_any_subset_of_sensors(batch):
    model = tiny_model().eval()
    garbage = dataclasses.replace(batch, lidar=batch.lidar.clone(), radar=batch.radar.clone(),
                                  images=torch.rand_like(batch.images))
    garbage.lidar[:, 4] = 255.0  # every intensity saturated
    garbage.radar[:, 4:7] = 50.0  # every RCS and velocity off the scale
    for drop in [(), ("camera",), ("lidar", "radar"), ("lidar", "radar", "camera")]:
        present = {sensor: value & (sensor not in drop) for sensor, value in batch.present.items()}
        results = model(dataclasses.replace(batch, present=present), mode="predict")
        assert len(results) == 2
        # a dropped group is not read: garbage in its place changes nothing
        garbled = {sensor: getattr(garbage, name) if sensor in drop else getattr(batch, name)
                   for sensor, name in (("lidar", "lidar"), ("radar", "radar"), ("camera", "images"))}
        again = model(dataclasses.replace(batch, present=present, lidar=garbled["lidar"], radar=garbled["radar"],
                                          images=garbled["camera"]), mode="tensor")
        reference = model(dataclasses.replace(batch, present=present), mode="tensor")
        assert all(torch.equal(again[name], reference[name]) for name in reference), drop


def test_one_training_step_lowers_the_loss(batch):
    torch.manual_seed(0)
    model = tiny_model().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = model(batch, mode="loss")
    assert {"loss_heatmap", "loss_regression", "loss_attribute", "loss_depth"} <= set(losses)
    before = sum(losses.values())
    optimizer.zero_grad()
    before.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None for name, g in grads.items() if not name.startswith("fuser.missing_embedding"))
    optimizer.step()
    after = sum(model(batch, mode="loss").values())
    assert float(after) < float(before)


def test_a_training_step_under_bfloat16_autocast_is_the_float32_step_within_its_rounding(batch):
    """--amp trains under bfloat16 autocast (CUDA; the CPU's autocast stands in here): the pillar nets and the
    camera give bfloat16 features, which the kernels refused (Numba compiles no bfloat16) and the camera's geometry
    ran in bfloat16. Now the kernels get float32 and the geometry runs in float32: the same frustum cells as
    without autocast, the losses within 2 % of float32's, every gradient finite."""
    torch.manual_seed(0)
    model = tiny_model().train()
    reference = model(batch, mode="loss")
    geometry = model.encoders["camera"]._last_geometry[3]
    model.encoders["camera"]._last_geometry = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(batch, mode="loss")
    assert torch.equal(model.encoders["camera"]._last_geometry[3].point_order, geometry.point_order)
    for name, value in reference.items():
        assert float(losses[name]) == pytest.approx(float(value), rel=0.02), name
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for name, p in model.named_parameters()
               if not name.startswith("fuser.missing_embedding"))


def test_overfits_two_frames_to_near_perfect_heatmaps():
    torch.manual_seed(0)
    batch = FusionBatch.from_frames([make_frame(0, cameras=False), make_frame(1, cameras=False)])
    model = tiny_model(sensors=("lidar", "radar")).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = sum(model(batch, mode="loss").values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        outputs = model(batch, mode="tensor")
    targets = build_targets(batch.gt_boxes, model.grid, min_radius=1).heatmap
    assert float((torch.sigmoid(outputs["heatmap"]) - targets).abs().max()) < 0.25
    decoded = model.head.decode(outputs)
    for boxes, gt in zip(decoded, batch.gt_boxes):
        confident = boxes[boxes.scores > 0.5]
        assert sorted(confident.labels.tolist()) == sorted(gt.labels.tolist())
        distances = np.linalg.norm(confident.centers[:, None, :2] - gt.centers[None, :, :2], axis=-1)
        assert distances.min(axis=1).max() < 0.3


def test_detect_times_every_model_stage_without_changing_the_boxes():
    from perception.detector import timed_detect
    from perception.timing import StageTimer

    torch.manual_seed(0)
    model = tiny_model()
    frame = make_frame(0)
    untimed = model.detect([frame])[0]
    timer = StageTimer("cpu")
    timed = timed_detect(model, frame, timer)
    np.testing.assert_array_equal(timed.centers, untimed.centers)
    elapsed = timer.elapsed_ms()
    top_level = ["preprocess", "lidar_encoder", "radar_encoder", "camera_encoder", "fuser", "decoder", "head",
                 "decode_nms"]
    assert set(elapsed) == set(top_level) | {"voxelize", "bev_pool", "detector"}
    assert all(value > 0 for value in elapsed.values())
    # Nested stages lie inside their encoders; the model's stages inside the whole detect call.
    assert elapsed["voxelize"] <= elapsed["lidar_encoder"] + elapsed["radar_encoder"]
    assert elapsed["bev_pool"] <= elapsed["camera_encoder"]
    assert sum(elapsed[name] for name in top_level) <= elapsed["detector"]


def test_a_detector_that_does_not_read_a_group_detects_as_if_it_were_missing():
    # the oracle: the same weights on the frame loaded without its cameras (the fuser's 'missing' embedding)
    torch.manual_seed(0)
    everything = tiny_model().eval()
    no_camera = BEVFusionDetector(**tiny_model_config(), sensors=["lidar", "radar"]).eval()
    no_camera.load_state_dict(everything.state_dict())
    assert no_camera.sensors == {"lidar", "radar"} and everything.sensors == {"lidar", "radar", "camera"}
    with torch.no_grad():
        read = no_camera.detect([make_frame(0)])[0]
        missing = everything.detect([make_frame(0, cameras=False)])[0]
        with_cameras = everything.detect([make_frame(0)])[0]
    np.testing.assert_array_equal(read.centers, missing.centers)
    np.testing.assert_array_equal(read.scores, missing.scores)
    assert not np.array_equal(with_cameras.scores, missing.scores)   # the cameras do change this model's output
    with pytest.raises(ValueError, match="names groups without an encoder"):
        BEVFusionDetector(**tiny_model_config(("lidar",)), sensors=["lidar", "camera"])
    # the submission's meta (the validation metric's) names the groups read, not every encoder's
    batch = FusionBatch.from_frames([make_frame(0)])
    assert [result["sensors"] for result in no_camera(batch, mode="predict")] == [["lidar", "radar"]]


def test_a_frame_is_detected_in_a_batch_as_alone_whatever_sensors_the_other_frames_carry():
    """A frame with cameras batched with one without (the camera group present in one frame of two): each frame's
    head outputs are those it gets alone (within float32 rounding; an untrained model's boxes tie too closely to
    compare their order)."""
    torch.manual_seed(0)
    model = tiny_model().eval()
    frames = [make_frame(0), make_frame(1, cameras=False)]
    with torch.no_grad():
        together = model(FusionBatch.from_frames(frames), mode="tensor")
        alone = [model(FusionBatch.from_frames([frame]), mode="tensor") for frame in frames]
    for index, single in enumerate(alone):
        for name, value in single.items():
            assert torch.allclose(together[name][index], value[0], atol=1e-5), (index, name)


def test_fuser_feeds_the_missing_embedding_where_a_sensor_is_missing_and_the_features_where_present():
    # by hand: the conv reads, per frame, lidar's features (present in both) and camera's where present
    # (frame 0: its features) or the learned 'missing' embedding (frame 1: 0.7, -0.3 in every cell)
    fuser = ConvFuser({"lidar": 1, "camera": 2}, out_channels=3).eval()
    with torch.no_grad():
        fuser.missing_embedding["lidar"].fill_(5.0)
        fuser.missing_embedding["camera"].copy_(torch.tensor([0.7, -0.3]))
    seen = []
    fuser.conv.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].clone()))
    features = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    fuser(features, torch.tensor([[True, True], [True, False]]))
    expected = features.clone()
    expected[1, 1], expected[1, 2] = 0.7, -0.3
    assert torch.equal(seen[0], expected)


def test_modality_dropout_is_off_in_eval():
    # eval mode must see every present sensor, whatever the dropout: the same output as a fuser without dropout
    torch.manual_seed(0)
    dropping = ConvFuser({"lidar": 2, "radar": 2}, out_channels=3, modality_dropout=0.9).eval()
    plain = ConvFuser({"lidar": 2, "radar": 2}, out_channels=3).eval()
    plain.load_state_dict(dropping.state_dict())
    with torch.no_grad():
        dropping.missing_embedding["lidar"].fill_(9.0)
        dropping.missing_embedding["radar"].fill_(-9.0)
        plain.load_state_dict(dropping.state_dict())
    features, present = torch.randn(64, 4, 2, 2), torch.ones(64, 2, dtype=torch.bool)
    with torch.no_grad():
        assert torch.equal(dropping(features, present), plain(features, present))


def test_batch_reads_nothing_of_a_sensor_the_frame_marks_missing_or_whose_cloud_is_empty():
    # Frame.missing names groups / channels dropped while their data may still be attached: the batch must not
    # read them; an empty cloud is not a present sensor (FusionBatch: "at least one point / camera")
    frame = make_frame(0)
    dropped = dataclasses.replace(make_frame(1), missing=frozenset({"lidar", CAMERA_CHANNELS[2]}))
    empty_radar = dataclasses.replace(frame, radar=dataclasses.replace(frame.radar, points=frame.radar.points[:0]))
    batch = FusionBatch.from_frames([frame, dropped, empty_radar])
    assert batch.present["lidar"].tolist() == [True, False, True]
    assert set(batch.lidar[:, 0].tolist()) == {0.0, 2.0}
    assert batch.present["radar"].tolist() == [True, True, False]
    assert batch.camera_valid[1].tolist() == [True, True, False, True, True, True]
    assert batch.images[1, 2].abs().sum() == 0 and batch.images[1, 3].abs().sum() > 0
    assert torch.equal(batch.camera_to_ego[1, 2], torch.eye(4)) and torch.equal(batch.intrinsics[1, 2], torch.eye(3))
    assert batch.present["camera"].tolist() == [True, True, True]  # five of six cameras: the group is present
    view = dropped.cameras[CAMERA_CHANNELS[3]]
    assert np.array_equal(batch.camera_to_ego[1, 3].numpy(), view.camera_to_ego.matrix.astype(np.float32))
    assert np.array_equal(batch.intrinsics[1, 3].numpy(), view.intrinsics.matrix.astype(np.float32))


def test_stack_features_marks_a_sensor_without_flags_missing():
    # a sensor of the fuser that the batch has no flags for is missing in every frame, its channels zeros
    lidar = torch.ones(2, 1, 2, 2)
    stacked, present = stack_features({"lidar": lidar}, {"lidar": torch.tensor([True, False])},
                                      {"lidar": 1, "camera": 2}, (2, 2))
    assert present.tolist() == [[True, False], [False, False]]
    assert torch.equal(stacked[:, :1], lidar) and not stacked[:, 1:].any()


def test_decoder_neck_is_stage_one_then_stage_two_upsampled():
    # the neck's first out_channels / 2 channels come from stage 1 alone, the rest from stage 2 (upsampled):
    # changing stage 2's weights moves only the second half
    torch.manual_seed(0)
    decoder = BEVDecoder(3, channels=[4, 6], blocks=[1, 1], out_channels=8).eval()
    bev = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        before = decoder(bev)
        decoder.stage2[0].weight.mul_(-1.0)
        after = decoder(bev)
    assert torch.equal(after[:, :4], before[:, :4])
    assert not torch.allclose(after[:, 4:], before[:, 4:])


def test_camera_depth_target_is_the_nearest_keyframe_point_of_a_present_camera(batch):
    # on CAM_FRONT's optical axis (index 1, yaw 60 degrees, 1.5 m up; 1 m bins from 1 m): frame 0 has points at
    # 5.5 m and 9.5 m of the keyframe sweep and one at 3.5 m of an older sweep (time lag 0.05 s, smeared by the
    # ego's motion) -> the nearest keyframe point, 5.5 m: bin 4. Frame 1 has the 5.5 m point but CAM_FRONT absent.
    encoder = CameraEncoder(GRID, (IMAGE_W, IMAGE_H), out_channels=4, backbone_widths=[4, 4, 4, 4], fpn_channels=4,
                            depth_range=[1.0, 13.0], depth_bins=12)
    direction = np.array([np.cos(np.pi / 3), np.sin(np.pi / 3), 0.0])
    rows = [np.r_[frame, direction * depth + [0, 0, 1.5], 0.0, lag]
            for frame, depth, lag in ((0, 5.5, 0.0), (0, 9.5, 0.0), (0, 3.5, 0.05), (1, 5.5, 0.0))]
    valid = batch.camera_valid.clone()
    valid[1, 1] = False
    points = dataclasses.replace(batch, lidar=torch.tensor(np.array(rows), dtype=torch.float32), camera_valid=valid)
    targets = encoder.depth_targets(points, (4, 8))
    assert (targets[0, 1] >= 0).nonzero().tolist() == [[2, 4]] and int(targets[0, 1, 2, 4]) == 4
    assert (targets[1] == -1).all()


def test_camera_depth_bins_floor_from_depth_min_and_end_at_depth_max(batch):
    """Camera k looks along yaw k * 60 degrees from 1.5 m up, f = 40 px, principal point (32, 16); 1 m bins from
    1 m to 13 m. A point imaged at pixel (36, 20), the centre of feature cell (row 2, col 4), at 5.9 m from CAM_FRONT
    (camera 1) lies in bin floor(4.9) = 4; at 12.9 m from camera 4 in the last bin, 11; one at 13.2 m, at pixel
    (36, 28) of CAM_FRONT (cell row 3; no other camera sees it), beyond the last bin, has no target. By hand, with
    logit k for bin k in every cell, the depth loss is the mean over the two targets of logsumexp(0 .. 11) - k:
    logsumexp(0 .. 11) - 7.5."""
    encoder = CameraEncoder(GRID, (IMAGE_W, IMAGE_H), out_channels=4, backbone_widths=[4, 4, 4, 4], fpn_channels=4,
                            depth_range=[1.0, 13.0], depth_bins=12)

    def imaged(camera, depth, u, v):
        """The ego point at ``depth`` along camera ``camera``'s axis imaged at pixel (u, v), at batch index 0."""
        yaw = camera * np.pi / 3
        forward, right = np.array([np.cos(yaw), np.sin(yaw), 0.0]), np.array([np.sin(yaw), -np.cos(yaw), 0.0])
        xyz = depth * (forward + right * (u - 32) / 40) + [0.0, 0.0, 1.5 - depth * (v - 16) / 40]
        return np.r_[0, xyz, 0.0, 0.0]

    rows = [imaged(1, 5.9, 36, 20), imaged(4, 12.9, 36, 20), imaged(1, 13.2, 36, 28)]
    points = dataclasses.replace(batch, lidar=torch.tensor(np.array(rows), dtype=torch.float32))
    targets = encoder.depth_targets(points, (4, 8))
    assert (targets[0] >= 0).nonzero().tolist() == [[1, 2, 4], [4, 2, 4]] and (targets[1] == -1).all()
    assert int(targets[0, 1, 2, 4]) == 4 and int(targets[0, 4, 2, 4]) == 11
    logits = torch.arange(12, dtype=torch.float32)[None, None, :, None, None].expand(2, 6, 12, 4, 8)
    expected = math.log(sum(math.exp(k) for k in range(12))) - (4 + 11) / 2
    assert float(encoder.depth_loss(logits, points)) == pytest.approx(expected, rel=1e-6)


def test_camera_encoder_reads_nothing_of_an_absent_camera(batch):
    # an absent camera (camera_valid False) adds nothing to the BEV: whatever its image holds, the same output
    torch.manual_seed(0)
    encoder = CameraEncoder(GRID, (IMAGE_W, IMAGE_H), out_channels=4, backbone_widths=[4, 4, 4, 4], fpn_channels=4,
                            depth_range=[1.0, 13.0], depth_bins=6).eval()
    valid = batch.camera_valid.clone()
    valid[0, 1] = False
    black = batch.images.clone()
    black[0, 1] = 0.0
    noise = black.clone()
    noise[0, 1] = torch.rand_like(noise[0, 1])
    with torch.no_grad():
        dark = encoder(dataclasses.replace(batch, images=black, camera_valid=valid))[0]
        noisy = encoder(dataclasses.replace(batch, images=noise, camera_valid=valid))[0]
        seen = encoder(dataclasses.replace(batch, images=noise))[0]
    assert torch.equal(dark, noisy)
    assert not torch.allclose(seen, noisy)  # the same camera present does change the BEV


def test_camera_depth_loss_scales_with_its_weight_and_zero_turns_it_off(batch):
    # the same weights, depth_loss_weight 1 and 0.25: the second's loss_depth is a quarter of the first's
    torch.manual_seed(0)
    kwargs = dict(out_channels=4, backbone_widths=[4, 4, 4, 4], fpn_channels=4, depth_range=[1.0, 13.0],
                  depth_bins=6)
    full = CameraEncoder(GRID, (IMAGE_W, IMAGE_H), **kwargs).train()
    quarter = CameraEncoder(GRID, (IMAGE_W, IMAGE_H), depth_loss_weight=0.25, **kwargs).train()
    off = CameraEncoder(GRID, (IMAGE_W, IMAGE_H), depth_loss_weight=0.0, **kwargs).train()
    quarter.load_state_dict(full.state_dict())
    off.load_state_dict(full.state_dict())
    loss = float(full(batch)[1]["loss_depth"])
    assert loss > 0 and float(quarter(batch)[1]["loss_depth"]) == pytest.approx(0.25 * loss, rel=1e-5)
    assert off(batch)[1] == {}


def test_batch_reads_nothing_of_a_radar_or_camera_group_the_frame_marks_missing():
    # the groups 'radar' and 'camera' in Frame.missing, their data still attached (as a transform that blanks a
    # group may leave it): no radar row, no camera image, intrinsics or pose of that frame; the group is absent
    frame = make_frame(0)
    blanked = dataclasses.replace(make_frame(1), missing=frozenset({"radar", "camera"}))
    batch = FusionBatch.from_frames([frame, blanked])
    assert batch.present["radar"].tolist() == [True, False] and set(batch.radar[:, 0].tolist()) == {0.0}
    assert len(batch.radar) == len(frame.radar.points)
    assert batch.present["camera"].tolist() == [True, False] and batch.present["lidar"].tolist() == [True, True]
    assert batch.camera_valid.tolist() == [[True] * 6, [False] * 6] and batch.images[1].abs().sum() == 0
    assert torch.equal(batch.camera_to_ego[1], torch.eye(4).expand(6, 4, 4))
    assert torch.equal(batch.intrinsics[1], torch.eye(3).expand(6, 3, 3))


def test_batch_keeps_the_frames_order_and_ground_truth_only_when_every_frame_has_it():
    # tokens, poses and boxes follow the list (here not in token order); one frame without ground truth (an
    # unannotated split) makes the whole batch's None, never a list with a hole
    first, second = make_frame(0, token="b"), make_frame(1, token="a")
    second = dataclasses.replace(second, ego_pose=EgoPose(5, RigidTransform.from_rotation_translation(
        np.eye(3), [7.0, 0.0, 0.0])))
    batch = FusionBatch.from_frames([first, second])
    assert batch.sample_tokens == ["b", "a"] and [pose.timestamp_us for pose in batch.ego_poses] == [0, 5]
    assert batch.ego_poses[1].ego_to_global.translation.tolist() == [7.0, 0.0, 0.0]
    assert [boxes is frame.gt_boxes for boxes, frame in zip(batch.gt_boxes, (first, second))] == [True, True]
    for frames in ([first, dataclasses.replace(second, gt_boxes=None)], [dataclasses.replace(first, gt_boxes=None)]):
        assert FusionBatch.from_frames(frames).gt_boxes is None


def test_batch_orders_cameras_as_asked():
    # camera_channels picks and orders the batch's cameras: (CAM_BACK, CAM_FRONT) puts CAM_BACK's image, K and
    # pose at camera 0; a channel the frame lacks is an invalid slot
    frame = make_frame(0)
    asked = ("CAM_BACK", "CAM_FRONT", "CAM_NOWHERE")
    batch = FusionBatch.from_frames([frame], camera_channels=asked)
    assert batch.images.shape == (1, 3, 3, IMAGE_H, IMAGE_W) and batch.camera_valid.tolist() == [[True, True, False]]
    for c, channel in enumerate(asked[:2]):
        view = frame.cameras[channel]
        assert np.array_equal(batch.images[0, c].numpy(), (view.image.transpose(2, 0, 1) / 255.0).astype(np.float32))
        assert np.array_equal(batch.camera_to_ego[0, c].numpy(), view.camera_to_ego.matrix.astype(np.float32))


def test_batch_refuses_no_frames_images_not_rgb_and_another_width():
    frame = make_frame(0)
    with pytest.raises(ValueError, match="needs at least one frame"):
        FusionBatch.from_frames([])
    channel = CAMERA_CHANNELS[1]
    for image in (np.zeros((IMAGE_H, IMAGE_W, 4), np.uint8), np.zeros((IMAGE_H, IMAGE_W), np.uint8)):
        rgba = dataclasses.replace(frame, cameras={**frame.cameras, channel: dataclasses.replace(
            frame.cameras[channel], image=image)})
        with pytest.raises(ValueError, match=f"sample {frame.sample_token}: {channel} image has shape "
                                             f"\\({IMAGE_H}, {IMAGE_W}.*expected \\(H, W, 3\\)"):
            FusionBatch.from_frames([rgba])
    # same height, other width (the size check compared the height alone)
    narrow = dataclasses.replace(frame, cameras={channel: dataclasses.replace(
        frame.cameras[channel], image=frame.cameras[channel].image[:, :IMAGE_W // 2])})
    with pytest.raises(ValueError, match=f"is \\({IMAGE_W // 2}, {IMAGE_H}\\) \\(W, H\\), others are "
                                         f"\\({IMAGE_W}, {IMAGE_H}\\); load with one image_size"):
        FusionBatch.from_frames([frame, narrow])


def test_batch_to_moves_every_tensor():
    # the "meta" device stands for an accelerator: a tensor left behind stays on "cpu"
    targets = PlanningTargets(torch.zeros(1, 6, 2), torch.ones(1, 6, dtype=torch.bool),
                              torch.zeros(1, dtype=torch.long), torch.zeros(1, 2), torch.ones(1, 2, dtype=torch.bool))
    batch = dataclasses.replace(FusionBatch.from_frames([make_frame(0)]), ego_state=torch.zeros(1, 3),
                                planning_targets=targets)
    moved = batch.to("meta")
    tensors = [getattr(moved, f.name) for f in dataclasses.fields(moved) if isinstance(getattr(moved, f.name),
                                                                                      torch.Tensor)]
    tensors += list(moved.present.values())
    tensors += [getattr(moved.planning_targets, f.name) for f in dataclasses.fields(PlanningTargets)]
    assert len(tensors) == 7 + 3 + 5 and all(t.device.type == "meta" for t in tensors)
