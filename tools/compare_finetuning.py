"""Compare zero-shot, scratch and fine-tuning methods on the same frames (see perception.cli.compare_finetuning)."""
from perception.cli.compare_finetuning import main

if __name__ == "__main__":
    main()
