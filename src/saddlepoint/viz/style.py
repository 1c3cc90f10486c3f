"""Matplotlib set-up shared by every figure: headless backend and atomic saving."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from saddlepoint.fileio import atomic_path  # noqa: E402


def save_figure(
    fig: plt.Figure, path: str | os.PathLike[str], dpi: int = 120, *, close: bool = True
) -> None:
    """Save ``fig`` atomically in the format its suffix names (PNG, SVG, PDF), then close it
    (unless ``close`` is False: the figure is saved again in another format)."""
    suffix = os.path.splitext(str(path))[1].lstrip(".") or "png"
    with atomic_path(path) as temp:
        fig.savefig(temp, format=suffix, dpi=dpi, bbox_inches="tight")
    if close:
        plt.close(fig)
