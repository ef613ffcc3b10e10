"""Per-stage latency benchmark of the pipeline (see perception.cli.benchmark)."""
from perception.cli.benchmark import main

if __name__ == "__main__":
    main()
