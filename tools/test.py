"""Offline evaluation with the official nuScenes metrics (see perception.cli.test)."""
from perception.cli.test import main

if __name__ == "__main__":
    main()
