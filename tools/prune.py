"""Structured channel pruning of the detector (see perception.cli.prune)."""
from perception.cli.prune import main

if __name__ == "__main__":
    main()
