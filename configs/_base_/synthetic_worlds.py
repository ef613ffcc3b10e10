# Training on more of the synthetic world (issues 16 and 17): the seed-7 world's synth_train plus every scene of three
# more worlds, each generated like datasets/synthetic with seeds 101-103 (README, "BEV fusion network and
# training"). Seed 7's synth_val and the seed-11 world stay unseen: they measure the models trained on these.
training_worlds = [("datasets/synthetic", "synth_train")] + [
    (f"datasets/synthetic_seed{seed}", split) for seed in (101, 102, 103) for split in ("synth_train", "synth_val")]
# The planning model's logged driving (issue 17): those worlds and four more of seeds 104-107, generated alike.
planning_worlds = training_worlds + [
    (f"datasets/synthetic_seed{seed}", split) for seed in (104, 105, 106, 107)
    for split in ("synth_train", "synth_val")]
