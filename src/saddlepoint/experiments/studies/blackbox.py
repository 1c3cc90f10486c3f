"""Black-box attacks (seed 002 §4): random perturbation search and one-pixel probing, with Square
and differential-evolution one-pixel attacks beside them for scale."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from saddlepoint.attacks import Attack, OnePixel, PixelSweep, RandomSearch, Square
from saddlepoint.experiments.studies.base import Section, StudyContext, Table, Trained
from saddlepoint.experiments.studies.common import ATTACK_COLUMNS, attack_row, plot_table
from saddlepoint.experiments.tasks import task
from saddlepoint.validation import check_choice, check_number
from saddlepoint.viz.grids import examples_figure, flip_map_figure

RULES = {
    "kept": "a kept perturbation leaves the ball",
    "stop": "a proposal would leave the ball",
}


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
    norm: str = "linf",
    rule: str = "stop",
    batch_size: int = 64,
    lr: float = 3e-3,
    schedule: str = "onecycle",
) -> dict:
    """Random search (accuracy, queries) over eps; one-pixel flip maps; Square and DE one-pixel.

    The random search bounds the perturbation in ``norm`` ('linf' or 'l2'); ``rule`` says when
    leaving the bound ends it: 'kept' (seed 002 §4.1 as stated: a kept perturbation past the
    bound), 'stop' (a proposal past the bound, before it is queried). A projected variant that
    searches on inside the ball and Square run beside it.
    """
    check_choice("blackbox", "norm", norm, ["linf", "l2"])
    check_choice("blackbox", "rule", rule, ["kept", "stop"])
    check_number("blackbox", "heatmaps", heatmaps, low=0, integer=True)  # 0: no flip maps
    train: dict[str, Any] = {}
    if (batch_size, lr, schedule) != (64, 3e-3, "onecycle"):  # else the recipe of earlier runs
        train = {"batch_size": batch_size, "lr": lr, "schedule": schedule}
    target = ctx.train("target", model, epochs=epochs, **train)
    search = dict(images=images, eps=eps, step=step, queries=queries, norm=norm, rule=rule)
    found = ctx.run(search_records, target=target, **search)
    ctx.section(
        "search",
        "Random perturbation search",
        search_section,
        target=target,
        model=model,
        found=found,
        **search,
    )
    probed = ctx.run(pixel_records, target=target, images=images, colour=colour, queries=queries)
    ctx.section(
        "pixels",
        "One-pixel probing",
        pixels_section,
        target=target,
        probed=probed,
        heatmaps=heatmaps,
        colour=colour,
    )
    return {}


def search_attacks(
    eps: float, step: float, queries: int, norm: str, rule: str
) -> list[tuple[str, Attack]]:
    """The query-only attacks at radius ``eps``: seed 002's rule, the projected variant, Square."""
    return [
        (
            f"random search (stop: {RULES[rule]})",
            RandomSearch(norm=norm, eps=eps, step=step, queries=queries, on_bound=rule),
        ),
        (
            "random search (projected)",
            RandomSearch(norm=norm, eps=eps, step=step, queries=queries, on_bound="project"),
        ),
        ("Square", Square(norm=norm, eps=eps, queries=queries)),
    ]


@task(version=1)
def search_records(
    ctx: StudyContext,
    target: Trained,
    images: int,
    eps: Sequence[float],
    step: float,
    queries: int,
    norm: str,
    rule: str,
) -> list[dict[str, Any]]:
    """Each query-only attack at each radius: accuracy, failures and queries (SEARCH_COLUMNS)."""
    net, _ = target.load()
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
    records = []
    for e in eps:
        for label, attack in search_attacks(e, step, queries, norm, rule):
            result = attack(net, x, y)
            spent = result.queries.float()
            accuracy = result.metrics()["robust_accuracy"]
            failures = int((~result.success).sum())
            values = [label, e, accuracy, failures, float(spent.mean()), float(spent.median())]
            records.append(dict(zip(SEARCH_COLUMNS, values)))
    return records


SEARCH_COLUMNS = ["method", "eps", "accuracy", "failures", "mean queries", "median queries"]


@task(version=1)
def search_section(
    ctx: StudyContext,
    section: Section,
    target: Trained,
    model: str,
    found: list[dict[str, Any]],
    images: int,
    eps: Sequence[float],
    step: float,
    queries: int,
    norm: str,
    rule: str,
) -> None:
    """The search table, its accuracy and query curves, and the seed's rule at its largest
    radius on twelve images with the predictions (seed 002 Figs 12-14)."""
    caption = f"{norm} bound, at most {queries} queries per image"
    table = Table.of("search", SEARCH_COLUMNS, found, caption)
    section.tables.append(table)
    for column, name, caption, title in (
        (
            "accuracy",
            "accuracy.png",
            "accuracy under query-only attacks vs eps",
            "Accuracy under black-box attacks",
        ),
        (
            "mean queries",
            "queries.png",
            "mean queries per image vs eps",
            "Queries used (stops at success, the bound, or the budget)",
        ),
    ):
        plot_table(
            table, ctx.figure(section, name, caption), x="eps", y=column, by="method", title=title
        )
    net, meta = target.load()
    shown = min(12, images, len(ctx.data.test))
    x, y = ctx.data.test.images[:shown], ctx.data.test.labels[:shown]
    _, seeds_rule = search_attacks(max(eps), step, queries, norm, rule)[0]
    perturbed = seeds_rule(net, x, y)  # any sub-batch gives the same per-image results
    examples_figure(
        perturbed.adversarial,
        perturbed.labels,
        perturbed.logits.softmax(1),
        ctx.figure(
            section,
            "perturbed.png",
            f"randomly perturbed images (seed 002's rule, eps {max(eps):g}) with predictions",
        ),
        class_names=ctx.data.class_names,
        title=f"random search, {norm} eps {max(eps):g}: predictions on the perturbed images",
    )
    section.text = (
        f"Target {model} (clean accuracy {meta['metrics']['test']['accuracy']:.4f}), "
        f"{len(ctx.data.test.images[:images])} test images. Seed 002's rule adds a random {norm} "
        f"step of {step:g}, keeps it if the true-class probability drops, and stops when the "
        f"prediction flips or the perturbation leaves the eps ball ({RULES[rule]}); accuracy "
        "under attack is 1 - successes/total. The projected variant keeps searching inside the "
        "ball; Square is the standard score-based attack."
    )


@task(version=1)
def pixel_records(
    ctx: StudyContext, target: Trained, images: int, colour: float, queries: int
) -> dict[str, Any]:
    """One pixel set to ``colour`` at every position of each image, and differential evolution
    on the first 100: their ATTACK_COLUMNS rows, the seed's one-image count and the shares the
    text quotes."""
    net, _ = target.load()
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
    sweep = PixelSweep(colour=colour)(net, x, y)
    popsize = min(100, max(4, queries // 4))  # DE needs queries > popsize
    evolved = OnePixel(popsize=popsize, queries=queries)(net, x[:100], y[:100])
    rows = [
        attack_row(f"one pixel set to {colour:g}, every position", sweep),
        attack_row("one pixel, differential evolution", evolved),
    ]
    correct = sweep.clean_correct
    flips = sweep.extras["flips"][correct].float()  # misclassified images "flip" everywhere
    first = int(correct.nonzero()[0, 0]) if bool(correct.any()) else None
    positions = int(x[0, 0].numel())
    single = int(sweep.extras["flips"][first]) if first is not None else 0
    one = [] if first is None else [[first, ctx.data.class_names[int(y[first])], single]]
    return {
        "pixels": [dict(zip(ATTACK_COLUMNS, row)) for row in rows],
        "one-image": [
            dict(zip(ONE_IMAGE_COLUMNS, r + [positions, single / positions])) for r in one
        ],
        "correct": int(correct.sum()),
        "some flip": float((flips > 0).float().mean()),
        "mean flips": float(flips.mean()),
        "positions": positions,
        "single": single,
    }


ONE_IMAGE_COLUMNS = ["test image", "label", "flipping positions", "positions", "share"]


@task(version=1)
def pixels_section(
    ctx: StudyContext,
    section: Section,
    target: Trained,
    probed: dict[str, Any],
    heatmaps: int,
    colour: float,
) -> None:
    """The one-pixel tables, flip maps of the first ``heatmaps`` test images, and the text."""
    if heatmaps:
        net, _ = target.load()
        x, y = ctx.data.test.images[:heatmaps], ctx.data.test.labels[:heatmaps]
        flip_map_figure(
            x,
            PixelSweep(colour=colour)(net, x, y).extras["flip_map"],
            ctx.figure(section, "flip-maps.png", "positions where one pixel flips the prediction"),
            labels=[ctx.data.class_names[int(v)] for v in y],
        )
    section.tables.append(Table.of("pixels", ATTACK_COLUMNS, probed["pixels"]))
    caption = (
        "the seed's count: one image, one white pixel at every position (seed 002 §4.2: 298 of "
        "1,024 on CIFAR-10)"
    )
    section.tables.append(Table.of("one-image", ONE_IMAGE_COLUMNS, probed["one-image"], caption))
    positions, single = probed["positions"], probed["single"]
    section.text = (
        f"Every position of each image set to {colour:g} in turn. Of the {probed['correct']} "
        f"correctly classified images, {probed['some flip']:.1%} have at least one flipping "
        f"position; on average {probed['mean flips']:.2f} of {positions} positions flip the "
        f"prediction. The seed counts one image: the first correctly classified test image here "
        f"has {single} of {positions} flipping positions."
    )
