"""Train the ego-state-only planner (see perception.cli.train_ego_mlp)."""
from perception.cli.train_ego_mlp import main

if __name__ == "__main__":
    main()
