"""INT8 post-training quantization of exported graphs (see perception.cli.quantize)."""
from perception.cli.quantize import main

if __name__ == "__main__":
    main()
