"""Models' robustness benchmarks side by side (see perception.cli.compare_robustness)."""
from perception.cli.compare_robustness import main

if __name__ == "__main__":
    main()
