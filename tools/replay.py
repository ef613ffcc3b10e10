"""Replay a logged drive through the pipeline (see perception.cli.replay)."""
from perception.cli.replay import main

if __name__ == "__main__":
    main()
