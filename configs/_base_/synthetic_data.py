# Data: the synthetic world (tools/make_synthetic.py writes it under datasets/synthetic), splits synth_train /
# synth_val. Sweeps and image size come from the model's model_inputs (configs/_base_/fusion_model.py), filled in
# when the datasets are built.
dataroot = "datasets/synthetic"
data_version = "v1.0-synth"
drop_sensors = []
# Training augmentation (perception.datasets.transforms, applied to every modality consistently).
train_transform = [
    dict(type="GlobalFlip", left_right_prob=0.5, front_back_prob=0.5, seed=0),
    dict(type="GlobalRotation", angle_range_rad=[-0.3927, 0.3927], seed=1),
    dict(type="GlobalScaling", scale_range=[0.95, 1.05], seed=2),
]

# Training is iteration-based, so the sampler never ends: at the end of a finite sampler's pass mmengine's loop sleeps
# 2 s before restarting the loader, which on a split of a few keyframes (real_fit: 9 batches a pass) is half the time.
train_dataloader = dict(
    batch_size=2,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="collate_fusion_batch"),
    dataset=dict(type="FrameDataset", dataroot=dataroot, version=data_version, split="synth_train",
                 drop=drop_sensors, transform=train_transform),
)
val_dataloader = dict(
    batch_size=2,
    num_workers=1,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="collate_fusion_batch"),
    dataset=dict(type="FrameDataset", dataroot=dataroot, version=data_version, split="synth_val",
                 drop=drop_sensors),
)
# The metric scores the validation dataset's data root, version and split (filled in when the config is built).
val_evaluator = dict(type="NuScenesDetectionMetric")
