# fusion_tiny_planning on real keyframe-only nuScenes: the inputs and data of fusion_tiny_real.py with the planning
# head, for fine-tuning a planning checkpoint on real_finetune and grading its decisions on real_val. No augmentation
# (a planning dataset refuses a transform).
_base_ = ["./fusion_tiny_real.py", "./_base_/planning_head.py"]

model = dict(planning={{_base_.planning_head}})
train_dataloader = dict(dataset=dict(transform=None))
