# LiDAR + radar, no cameras (cameras are not loaded).
_base_ = ["./fusion_tiny.py"]
model_inputs = dict(image_size=None)
model = dict(encoders=dict(_delete_=True, lidar={{_base_.lidar_encoder}}, radar={{_base_.radar_encoder}}))
drop_sensors = ["camera"]
train_dataloader = dict(dataset=dict(drop=drop_sensors))
val_dataloader = dict(dataset=dict(drop=drop_sensors))
