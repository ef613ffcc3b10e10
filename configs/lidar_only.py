# LiDAR alone (the comparison for fusion_tiny): same grid, decoder, head and schedule; radar and cameras are not
# loaded.
_base_ = ["./fusion_tiny.py"]
model_inputs = dict(image_size=None)
model = dict(encoders=dict(_delete_=True, lidar={{_base_.lidar_encoder}}), fuser=dict(modality_dropout=0.0))
drop_sensors = ["radar", "camera"]
train_dataloader = dict(dataset=dict(drop=drop_sensors))
val_dataloader = dict(dataset=dict(drop=drop_sensors))
