"""Command-line entry points: each module has ``main(argv=None)``; ``tools/<name>.py`` and the console
scripts declared in setup.py call them."""
import argparse
from typing import Tuple


def parse_image_size(text: str) -> Tuple[int, int]:
    """'WxH' -> (W, H), as an argparse type."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"image size must look like 800x450 (WxH), got {text!r}") from None
    return width, height
