# Cameras alone. LiDAR is still loaded in training: it supervises the depth distribution (never an input).
_base_ = ["./fusion_tiny.py"]
model = dict(encoders=dict(_delete_=True, camera={{_base_.camera_encoder}}), fuser=dict(modality_dropout=0.0))
drop_sensors = ["radar"]
train_dataloader = dict(dataset=dict(drop=drop_sensors))
val_dataloader = dict(dataset=dict(drop=["radar", "lidar"]))
