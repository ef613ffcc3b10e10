# fusion_tiny_planning trained on more logged driving (issue 17): the planning head and the detector jointly on the
# planning worlds of _base_/synthetic_worlds.py (eight worlds), from the detector of configs/fusion_tiny_worlds.py
# (recipe: README, "Decisions"). No augmentation, as in fusion_tiny_planning.
_base_ = ["./fusion_tiny_planning.py", "./_base_/synthetic_worlds.py"]

train_dataloader = dict(dataset=dict(
    _delete_=True, type="ConcatDataset", ignore_keys=["dataroot", "split"],
    datasets=[dict(type="FrameDataset", dataroot=root, version=_base_.data_version, split=split,
                   drop=_base_.drop_sensors, transform=None)
              for root, split in _base_.planning_worlds]))
model = dict(planning=dict(ego_init="work_dirs/ego_mlp_worlds.pth"))
# 1800 iterations for the four worlds' 1140 keyframes, 1.5x that for the eight worlds' 2340.
max_iters = 2700
param_scheduler = [dict(type="CosineAnnealingLR", by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
                        eta_min_ratio=0.05)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
