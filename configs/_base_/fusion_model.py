# The BEV fusion network (perception.models.BEVFusionDetector). Written once here: the grid (range and cell size;
# the grid shape is derived by perception.models.grid.BEVGrid) and each encoder's width (the fuser's input
# channels are derived from the built encoders). Derived configs pick encoders by name:
#   model = dict(encoders=dict(_delete_=True, lidar={{_base_.lidar_encoder}}))
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
bev_cell_size = [0.8, 0.8]
image_size = [256, 144]  # (W, H) camera input
# What the network takes in, written once: the dataloaders load it (perception.engine.data.apply_model_inputs;
# their datasets do not repeat it), evaluation, replay and benchmark feed it (perception.models.model_inputs), and
# an exported checkpoint records it in its meta. Sweeps per frame include the keyframe's.
model_inputs = dict(lidar_sweeps=5, radar_sweeps=6, image_size=image_size)

lidar_encoder = dict(type="LidarEncoder", out_channels=32, max_points_per_pillar=20, max_pillars=16384)
radar_encoder = dict(type="RadarEncoder", out_channels=16, max_points_per_pillar=10, max_pillars=4000)
camera_encoder = dict(type="CameraEncoder", image_size=image_size, out_channels=24, backbone_widths=[16, 32, 64, 96],
                      fpn_channels=48, depth_range=[1.0, 49.0], depth_bins=32, depth_loss_weight=0.5)

model = dict(
    type="BEVFusionDetector",
    grid=dict(point_cloud_range=point_cloud_range, cell_size=bev_cell_size),
    encoders=dict(lidar=lidar_encoder, radar=radar_encoder, camera=camera_encoder),
    fuser=dict(out_channels=32, modality_dropout=0.1),
    decoder=dict(channels=[32, 64], blocks=[2, 2], out_channels=64),
    # L1 weights of the regression channels (offset x, y, z, log w, l, h, sin, cos, vx, vy): velocity at 0.5 rather
    # than CenterPoint's 0.2, since velocity is where the tiny model lost most NDS (mAVE ~2 m/s at 0.2).
    head=dict(head_channels=32, top_k=300, score_threshold=0.05, max_boxes=300,
              regression_weights=[1, 1, 1, 1, 1, 1, 1, 1, 0.5, 0.5]),
)
