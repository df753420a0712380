"""Figures without pyplot: a :class:`matplotlib.figure.Figure` drawn on the Agg canvas when saved, so that
drawing chooses no global backend and keeps no figure alive in pyplot's registry."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None,
             layout: str | None = None, **kwargs: Any) -> tuple[Figure, Any]:
    """``(figure, axes)`` as :func:`matplotlib.pyplot.subplots` gives them, without pyplot."""
    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(nrows, ncols, **kwargs)
