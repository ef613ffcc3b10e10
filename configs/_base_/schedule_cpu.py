# Optimiser and schedule, counted in iterations (resume restores all of it). use_amp: bfloat16 autocast on CUDA
# (tools/train.py --amp turns it on; refused without a GPU).
max_iters = 2000
val_interval = 1000
learning_rate = 2e-3
use_amp = False

optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=learning_rate, weight_decay=0.01),
                     clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=100, end=max_iters, T_max=max_iters - 100,
         eta_min_ratio=0.05),
]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type="ValLoop")
