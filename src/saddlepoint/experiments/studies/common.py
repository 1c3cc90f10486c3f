"""Pieces several studies use: attack tables, model tables, plots drawn from recorded tables."""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from torch import nn

from saddlepoint.attacks.result import AttackResult
from saddlepoint.models import count_parameters
from saddlepoint.runlog import Table
from saddlepoint.viz.style import plt, save_figure

ATTACK_COLUMNS = [
    "attack",
    "images",
    "clean acc",
    "robust acc",
    "loss",
    "L2 median",
    "Linf max",
    "rho_adv",
    "ms/img",
    "grad evals",
    "queries",
]


def attack_row(name: str, result: AttackResult) -> list[Any]:
    """One row of ATTACK_COLUMNS for ``result``."""
    m = result.metrics()
    return [
        name,
        int(m["n"]),
        m["clean_accuracy"],
        m["robust_accuracy"],
        m["loss"],
        m["l2_median"],
        m["linf_max"],
        m["rho_adv"],
        m["ms_per_sample"],
        m["grad_evals_mean"],
        m["queries_mean"],
    ]


def model_row(name: str, model: nn.Module, metadata: dict[str, Any]) -> list[Any]:
    """name, parameters, epochs, train/test loss and accuracy, test mean confidence."""
    metrics = metadata["metrics"]
    history = metadata.get("history", {}).get("epochs", [])
    last = history[-1] if history else {}
    test = metrics["test"]
    return [
        name,
        count_parameters(model),
        len(history),
        last.get("train_loss", float("nan")),
        last.get("train_accuracy", float("nan")),
        test["loss"],
        test["accuracy"],
        test["mean_confidence"],
    ]


MODEL_COLUMNS = [
    "model",
    "params",
    "epochs",
    "train loss",
    "train acc",
    "test loss",
    "test acc",
    "test mean conf",
]


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% confidence interval."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, 1.96 * math.sqrt(var / n)


def plot_table(
    table: Table,
    path: str | os.PathLike[str],
    *,
    x: str,
    y: str,
    by: str | Sequence[str] | None = None,
    title: str = "",
    logx: bool = False,
    logy: bool = False,
    ci: bool = False,
) -> None:
    """Plot column ``y`` against ``x`` from a recorded table, one line per value of ``by``.
    With ``ci``, rows sharing (by, x) are averaged and drawn with a 95% confidence band."""
    keys = [by] if isinstance(by, str) else list(by or [])
    groups: dict[tuple, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in table.records():
        value = record[y]
        if _missing(value):
            continue
        groups[tuple(record[k] for k in keys)][record[x]].append(float(value))
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for group, points in sorted(groups.items(), key=lambda item: str(item[0])):
        xs = sorted(points)
        stats = [mean_ci(points[v]) for v in xs]
        means = [s[0] for s in stats]
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, group)) or y
        (line,) = ax.plot(xs, means, marker="o", label=label)
        if ci:
            low = [m - h for m, h in stats]
            high = [m + h for m, h in stats]
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.15)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y + (" (mean, 95% CI)" if ci else ""))
    ax.set_title(title or f"{y} vs {x}", fontsize=10)
    ax.grid(alpha=0.3)
    if keys:
        ax.legend(fontsize=7)
    save_figure(fig, path)


def bar_table(
    table: Table,
    path: str | os.PathLike[str],
    *,
    label: str,
    columns: Sequence[str],
    names: Sequence[str] | None = None,
    ylabel: str = "accuracy",
    title: str = "",
) -> None:
    """Grouped bars from a recorded table: one group per row (named by column ``label``), one
    bar per entry of ``columns`` (legend ``names``, default the column names); a missing or NaN
    cell draws no bar, so a column that applies to some rows only stays readable."""
    records = table.records()
    names = list(names or columns)
    if len(names) != len(columns):
        raise ValueError(f"bar_table: {len(names)} names for {len(columns)} columns.")
    width = 0.8 / max(len(columns), 1)
    fig, ax = plt.subplots(figsize=(max(6.4, 1.3 * len(records)), 4.0))
    tallest = 0.0
    for i, (column, name) in enumerate(zip(columns, names)):
        xs, heights = [], []
        for j, record in enumerate(records):
            value: Any = record.get(column)
            if _missing(value):
                continue
            xs.append(j + (i - (len(columns) - 1) / 2) * width)
            heights.append(float(value))
        ax.bar(xs, heights, width=width, label=name)
        tallest = max([tallest, *heights])
    ax.set_xticks(range(len(records)))
    ax.set_xticklabels([str(r[label]) for r in records], fontsize=7, rotation=25, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.0 if tallest <= 1 else None)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, path)


def _missing(value: Any) -> bool:
    """A table cell with nothing to draw: None or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def record_pgd_curves(
    ctx: Any, section: Any, rows: list[list[Any]], *, prefix: str = "", note: str = ""
) -> None:
    """Add a (model, iteration, loss, accuracy) table of PGD traces to ``section`` and plot its
    loss and accuracy per iteration, one line per model."""
    curves = Table("curves", ["model", "iteration", "loss", "accuracy"], rows)
    section.tables.append(curves)
    for column in ("loss", "accuracy"):
        plot_table(
            curves,
            ctx.figure(section, f"{prefix}{column}.png", f"PGD {column} per iteration"),
            x="iteration",
            y=column,
            by="model",
            title=f"PGD {column} per iteration{note}",
        )


CURVE_COLUMNS = ["model", "epoch", "train loss", "train acc", "val loss", "val acc"]


def history_rows(label: str, metadata: dict[str, Any]) -> list[list[Any]]:
    """Rows of CURVE_COLUMNS for one model's recorded training history."""
    epochs = metadata.get("history", {}).get("epochs", [])
    return [
        [
            label,
            e["epoch"],
            e["train_loss"],
            e["train_accuracy"],
            e["val_loss"],
            e["val_accuracy"],
        ]
        for e in epochs
    ]


def record_training_curves(
    ctx: Any, section: Any, rows: list[list[Any]], *, name: str = "training", note: str = ""
) -> None:
    """Add a table of per-epoch training curves (CURVE_COLUMNS) to ``section`` and plot its
    validation accuracy and loss per epoch, one line per model (the seeds' training figures)."""
    curves = Table(f"{name}-curves", CURVE_COLUMNS, rows, f"per-epoch training history{note}")
    section.tables.append(curves)
    for column in ("val acc", "val loss", "train acc", "train loss"):
        plot_table(
            curves,
            ctx.figure(
                section, f"{name}-{column.replace(' ', '-')}.png", f"{column} per epoch{note}"
            ),
            x="epoch",
            y=column,
            by="model",
            title=f"{column} per epoch{note}",
        )
