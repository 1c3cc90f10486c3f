"""Black-box attacks (seed 002 §4): random perturbation search and one-pixel probing, with Square
and differential-evolution one-pixel attacks beside them for scale."""

from __future__ import annotations

from collections.abc import Sequence

from saddlepoint.attacks import OnePixel, PixelSweep, RandomSearch, Square
from saddlepoint.experiments.studies.base import Section, StudyContext, Table
from saddlepoint.experiments.studies.common import ATTACK_COLUMNS, attack_row, plot_table
from saddlepoint.viz.grids import flip_map_figure


def blackbox(
    ctx: StudyContext,
    *,
    model: str = "small-cnn",
    epochs: int = 2,
    images: int = 500,
    eps: Sequence[float] = (0.05, 0.1, 0.2, 0.3),
    step: float = 0.02,
    queries: int = 1000,
    heatmaps: int = 6,
    colour: float = 1.0,
) -> dict:
    """Random search (accuracy, queries) over eps; one-pixel flip maps; Square and DE one-pixel."""
    params = {
        "model": model,
        "epochs": epochs,
        "images": images,
        "eps": list(eps),
        "step": step,
        "queries": queries,
        "heatmaps": heatmaps,
        "colour": colour,
    }
    net, meta = ctx.model("target", model, epochs=epochs)
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]

    def search(section: Section) -> None:
        columns = ["method", "eps", "accuracy", "failures", "mean queries", "median queries"]
        rows = []
        for e in eps:
            for label, attack in (
                ("random search (seed 002 rule)", RandomSearch(eps=e, step=step, queries=queries)),
                (
                    "random search (projected)",
                    RandomSearch(eps=e, step=step, queries=queries, on_bound="project"),
                ),
                ("Square", Square(eps=e, queries=queries)),
            ):
                result = attack(net, x, y)
                spent = result.queries.float()
                accuracy = result.metrics()["robust_accuracy"]
                rows.append(
                    [
                        label,
                        e,
                        accuracy,
                        int((~result.success).sum()),
                        float(spent.mean()),
                        float(spent.median()),
                    ]
                )
        table = Table("search", columns, rows, f"Linf, at most {queries} queries per image")
        section.tables.append(table)
        plot_table(
            table,
            ctx.figure(section, "accuracy.png", "accuracy under query-only attacks vs eps"),
            x="eps",
            y="accuracy",
            by="method",
            title="Accuracy under black-box attacks",
        )
        plot_table(
            table,
            ctx.figure(section, "queries.png", "mean queries per image vs eps"),
            x="eps",
            y="mean queries",
            by="method",
            title="Queries used (stops at success, the bound, or the budget)",
        )
        section.text = (
            f"Target {model} (clean accuracy {meta['metrics']['test']['accuracy']:.4f}), {len(y)} "
            f"test images. Seed 002's rule adds a random Linf step of {step:g}, keeps it if the "
            "true-class probability drops, and stops when the prediction flips or the "
            "perturbation leaves the eps ball; accuracy under attack is 1 - successes/total. "
            "The projected variant keeps searching inside the ball; Square is the standard "
            "score-based attack."
        )

    ctx.section("search", "Random perturbation search", params, search)

    def pixels(section: Section) -> None:
        sweep = PixelSweep(colour=colour)(net, x, y)
        names = ctx.data.class_names
        flip_map_figure(
            x[:heatmaps],
            sweep.extras["flip_map"][:heatmaps],
            ctx.figure(section, "flip-maps.png", "positions where one pixel flips the prediction"),
            labels=[names[int(v)] for v in y[:heatmaps]],
        )
        popsize = min(100, max(4, queries // 4))  # DE needs queries > popsize
        evolved = OnePixel(popsize=popsize, queries=queries)(net, x[:100], y[:100])
        section.tables.append(
            Table(
                "pixels",
                ATTACK_COLUMNS,
                [
                    attack_row(f"one pixel set to {colour:g}, every position", sweep),
                    attack_row("one pixel, differential evolution", evolved),
                ],
            )
        )
        correct = sweep.clean_correct
        flips = sweep.extras["flips"][correct].float()  # misclassified images "flip" everywhere
        section.text = (
            f"Every position of each image set to {colour:g} in turn. Of the {int(correct.sum())} "
            f"correctly classified images, {float((flips > 0).float().mean()):.1%} have at least "
            f"one flipping position; on average {float(flips.mean()):.2f} of "
            f"{int(x[0, 0].numel())} positions flip the prediction."
        )

    ctx.section("pixels", "One-pixel probing", params, pixels)
    return {}
