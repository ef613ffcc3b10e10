# Runtime: logging, checkpoints (kept for --resume), seeds, and the CPU-capable DDP wrapper
# (perception.engine.adapters).
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=10),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=100, max_keep_ckpts=2, save_last=True),
    sampler_seed=dict(type="DistSamplerSeedHook"),
)
log_processor = dict(by_epoch=False, window_size=10)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
               dist_cfg=dict(backend="gloo"))
model_wrapper_cfg = dict(type="DeviceAwareDistributedDataParallel", broadcast_buffers=False,
                         find_unused_parameters=True)
randomness = dict(seed=0, deterministic=False)
log_level = "INFO"
default_scope = None
