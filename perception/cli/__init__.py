"""Command-line entry points: each module has ``main(argv=None)``; ``tools/<name>.py`` and the console
scripts declared in setup.py call them."""
