# fusion_tiny fine-tuned for robustness (issue 18): the shipped checkpoint trained further with corruption
# augmentation (perception.datasets.transforms.RandomCorruption) and FGSM adversarial training
# (perception.models.adversarial). Recipe and commands: README, "Robustness".
_base_ = ["./fusion_tiny.py"]

# Per sensor group, with probability 0.3, one of the group's corruptions at a severity drawn from 1-3 (the
# robustness benchmark's own corruptions; the cross-sensor misalignments are listed under the group they move).
corruption_augmentation = dict(
    type="RandomCorruption", probability=0.3, severities=[1, 2, 3], seed=3,
    corruptions=dict(
        lidar=["beams_reducing", "points_reducing", "limited_fov", "lidar_fog", "lidar_snow", "lidar_rain",
               "crosstalk", "incomplete_echo", "object_failure", "lidar_missing", "temporal_misalignment"],
        camera=["brightness", "low_light", "camera_fog", "camera_snow", "motion_blur", "color_quant", "camera_crash",
                "frame_lost", "frozen_camera", "spatial_misalignment"],
        radar=["radar_missing", "ghost_targets", "velocity_noise"]))
# First: the corruptions read the sensors where they are mounted (the LiDAR's field of view, beams and ranges).
train_transform = [corruption_augmentation] + _base_.train_transform
train_dataloader = dict(dataset=dict(transform=train_transform))
# FGSM on a third of the batches: 2 grey levels on the pixels, 2 % of each point feature's scale.
model = dict(adversarial=dict(method="fgsm", epsilon_pixels=2 / 255, epsilon_points=0.02, probability=0.3, seed=0))
# Fine-tuning schedule: a tenth of fusion_tiny's learning rate, cosine decay, no warm-up (the weights are trained);
# --max-iters of tools/finetune.py / tools/train.py shortens it.
max_iters = 1000
learning_rate = 2e-4
optim_wrapper = dict(optimizer=dict(lr=learning_rate))
param_scheduler = [dict(type="CosineAnnealingLR", by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
                        eta_min_ratio=0.05)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
