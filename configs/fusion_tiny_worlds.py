# fusion_tiny trained further on more of the synthetic world (issue 16: the shipped model on a world of an unseen seed
# within 0.05 NDS of synth_val): the worlds of _base_/synthetic_worlds.py, from v3's weights; its result ships as
# checkpoints/fusion_tiny.pth (v4; recipe: README, "BEV fusion network and training"). Same model, so it loads
# with configs/fusion_tiny.py.
_base_ = ["./fusion_tiny.py", "./_base_/synthetic_worlds.py"]

train_dataloader = dict(dataset=dict(
    _delete_=True, type="ConcatDataset", ignore_keys=["dataroot", "split"],
    datasets=[dict(type="FrameDataset", dataroot=root, version=_base_.data_version, split=split,
                   drop=_base_.drop_sensors, transform=_base_.train_transform)
              for root, split in _base_.training_worlds]))
# Fine-tuning schedule from the shipped weights: a quarter of fusion_tiny's learning rate, cosine decay, no warm-up.
max_iters = 3000
learning_rate = 5e-4
optim_wrapper = dict(optimizer=dict(lr=learning_rate))
param_scheduler = [dict(type="CosineAnnealingLR", by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
                        eta_min_ratio=0.05)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
