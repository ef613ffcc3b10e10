# fusion_tiny's network on real nuScenes keyframes without sweeps: 1 LiDAR sweep and 1 sweep per radar per frame.
# The cameras are not read (model_inputs.sensors): the camera encoder, trained on the synthetic world's renders, costs
# accuracy on real frames, zero-shot and after fine-tuning (benchmarks/RESULTS.md, "The camera on real frames"); it
# stays in the network, so checkpoints of fusion_tiny load and fine-tune, and reading it again is
# sensors=["lidar", "radar", "camera"] (the 1600 x 900 images resized to fusion_tiny's 256 x 144, the same 16:9).
# Data: the scene-0916 fixture beside the checkout (splits real_finetune / real_val of v1.0-mini; the tools take
# --dataroot for another root).
_base_ = ["./fusion_tiny.py"]
model_inputs = dict(lidar_sweeps=1, radar_sweeps=1, sensors=["lidar", "radar"])
dataroot = "../shared/fixtures/nuscenes-scene0916"
data_version = "v1.0-mini"
train_dataloader = dict(dataset=dict(dataroot=dataroot, version=data_version, split="real_finetune"))
val_dataloader = dict(dataset=dict(dataroot=dataroot, version=data_version, split="real_val"))
