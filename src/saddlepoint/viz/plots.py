"""Line plots with readable defaults, saved as PNG and SVG."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from saddlepoint.viz.style import plt, save_figure


def line_plot(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | os.PathLike[str],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = False,
    svg: bool = True,
) -> Path:
    """One line per entry of ``series`` (label -> (x, y)); writes ``path`` and an SVG twin."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, (x, y) in series.items():
        ax.plot(list(x), list(y), marker="o", label=label)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = Path(path)
    if svg:
        save_figure(fig, path.with_suffix(".svg"), close=False)
    save_figure(fig, path)
    return path
