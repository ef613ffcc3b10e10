"""Fine-tune a trained detector on another domain (see perception.cli.finetune)."""
from perception.cli.finetune import main

if __name__ == "__main__":
    main()
