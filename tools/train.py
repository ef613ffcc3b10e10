"""Train a detector from an mmengine config (see perception.cli.train)."""
from perception.cli.train import main

if __name__ == "__main__":
    main()
