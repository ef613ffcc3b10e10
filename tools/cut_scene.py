"""Cut a scene in two at a keyframe (see perception.cli.cut_scene)."""
from perception.cli.cut_scene import main

if __name__ == "__main__":
    main()
