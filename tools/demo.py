"""The main job on the embedded default data (see perception.cli.demo)."""
from perception.cli.demo import main

if __name__ == "__main__":
    main()
