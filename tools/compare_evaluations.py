"""Compare evaluations on one split with keyframes resampled (see perception.cli.compare_evaluations)."""
from perception.cli.compare_evaluations import main

if __name__ == "__main__":
    main()
