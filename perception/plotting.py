"""matplotlib for the tools' PNG pictures: a leaf module, so that any layer may draw."""
from __future__ import annotations


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display needed), imported on first use (it takes
    a second or two, which tools that draw nothing should not pay)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    return matplotlib.pyplot
