"""The robustness benchmark over corruptions and severities (see perception.cli.robustness)."""
from perception.cli.robustness import main

if __name__ == "__main__":
    main()
