"""Generates the synthetic nuScenes-format world (see perception.cli.make_synthetic)."""
from perception.cli.make_synthetic import main

if __name__ == "__main__":
    main()
