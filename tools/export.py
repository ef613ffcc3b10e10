"""ONNX export of a trained detector (see perception.cli.export)."""
from perception.cli.export import main

if __name__ == "__main__":
    main()
