# fusion_tiny with the learned planning head (issue 17): the shipped detector trained further jointly with the head
# on the logged drive of the synthetic world. The planning targets are in the keyframe's ego frame, so training
# runs without augmentation (a planning dataset refuses a transform).
_base_ = ["./fusion_tiny.py", "./_base_/planning_head.py"]

model = dict(planning={{_base_.planning_head}})
train_dataloader = dict(dataset=dict(transform=None))
# Fine-tuning schedule from the shipped weights: cosine decay from 1e-3, no warm-up; --max-iters / --time-budget-min
# of tools/train.py shorten it.
max_iters = 900
learning_rate = 1e-3
optim_wrapper = dict(optimizer=dict(lr=learning_rate))
param_scheduler = [dict(type="CosineAnnealingLR", by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
                        eta_min_ratio=0.05)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
