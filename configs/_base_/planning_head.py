# The learned planning head (issue 17, perception.models.planning_head): 6 waypoints at 0.5 s. Its ego branch
# starts from the ego-state-only MLP (ego_init: train it first with tools/train_ego_mlp.py; read before training
# only, not at inference); its BEV branch starts as a zero correction. Recipe: README, "Decisions".
planning_head = dict(horizon_steps=6, step_s=0.5, ego_init="work_dirs/ego_mlp.pth")
