"""Transfer over surrogate depth and width (seed 000 §3).

Surrogates of the seed's family (2x2 'valid' convolutions, max-pooling, flatten, FC256) vary in
depth (1-4 conv blocks at a fixed width) and in width (filters per block at a fixed depth). Each
crafts FGSM and PGD examples on the test images; the reference target's accuracy and loss on them
measure how well the attack transfers. Grad-CAM maps show where the target looks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from saddlepoint.attacks import PGD, Adversary, build_attack, transfer_attack
from saddlepoint.experiments.studies.base import Section, StudyContext, Table, Trained
from saddlepoint.experiments.studies.common import (
    MODEL_COLUMNS,
    history_rows,
    model_row,
    plot_table,
    record_training_curves,
)
from saddlepoint.experiments.tasks import task
from saddlepoint.models import build_model
from saddlepoint.viz.gradcam import gradcam_figure


def transfer_study(
    ctx: StudyContext,
    *,
    target: str = "reference-cnn",
    depths: Sequence[int] = (1, 2, 3, 4),
    depth_width: int = 64,
    widths: Sequence[int] = (8, 16, 32, 64, 128, 256, 512),
    width_depth: int = 3,
    epochs: int = 2,
    images: int = 1000,
    eps: float = 0.2,
    pgd_steps: int = 20,
    fgsm_eps: float | None = None,
    pgd_step: float | None = None,
    pgd_random_start: bool = True,
    surrogate_pad_to: int | None = None,
) -> dict:
    """Transfer attacks from surrogates of growing depth and width onto a reference target.

    FGSM runs at ``fgsm_eps`` (default eps; seed 000: 2/255), PGD at eps with ``pgd_steps``
    steps of ``pgd_step`` (default 2.5 eps / steps; seed 000: 50 steps of 2/255).
    ``surrogate_pad_to`` zero-pads every surrogate's input to that square size (32: CIFAR-10's,
    where the seed's 4-block surrogate still has a 1x1 map; 28x28 images leave it none).
    """
    padding = {} if surrogate_pad_to is None else {"pad_to": surrogate_pad_to}
    surrogates = [("depth", d, {"depth": d, "width": depth_width, **padding}) for d in depths]
    surrogates += [("width", w, {"depth": width_depth, "width": w, **padding}) for w in widths]
    _check_surrogates_fit(ctx.data.shape, ctx.data.num_classes, surrogates, surrogate_pad_to)
    goal = ctx.train("target", target, epochs=epochs)
    trained = {}
    for _, _, args in surrogates:  # shared by both families where they meet: trained once
        key = f"surrogate-d{args['depth']}-w{args['width']}"
        trained[key] = {
            "args": args,
            "model": ctx.train(key, "surrogate-cnn", epochs=epochs, model_args=args),
        }
    families = dict(depths=depths, depth_width=depth_width, widths=widths, width_depth=width_depth)
    ctx.section(
        "models",
        "Models",
        models_section,
        target=goal,
        architecture=target,
        surrogates=list(trained.values()),
        epochs=epochs,
        **families,
    )
    attacks = dict(
        images=images,
        fgsm_eps=eps if fgsm_eps is None else fgsm_eps,
        eps=eps,
        pgd_steps=pgd_steps,
        step=2.5 * eps / pgd_steps if pgd_step is None else pgd_step,
        random_start=pgd_random_start,
    )
    # each surrogate's rows a task (a stop loses one; on a cluster they run at once)
    keys = [f"surrogate-d{args['depth']}-w{args['width']}" for _, _, args in surrogates]
    calls = [dict(surrogate=trained[key]["model"], target=goal, **attacks) for key in keys]
    found = [
        {"family": family, "value": value, **row}
        for (family, value, _), rows in zip(surrogates, ctx.map(transfer_records, calls))
        for row in rows
    ]
    white = ctx.run(whitebox_records, target=goal, **attacks)
    title = "Transfer attacks over surrogate depth and width"
    ctx.section(
        "transfer", title, transfer_section, target=goal, found=found, white=white, **attacks
    )
    ctx.section(
        "gradcam", "Grad-CAM: clean versus adversarial", gradcam_section, target=goal, **attacks
    )
    return {}


def transfer_attacks(
    fgsm_eps: float, eps: float, pgd_steps: int, step: float, random_start: bool
) -> dict[str, Adversary]:
    """FGSM at ``fgsm_eps`` and PGD at ``eps``, by the names the tables use."""
    return {
        "FGSM": build_attack("fgsm", eps=fgsm_eps),
        f"PGD-{pgd_steps}": PGD(eps=eps, steps=pgd_steps, step=step, random_start=random_start),
    }


TRANSFER_COLUMNS = [
    "family",
    "value",
    "attack",
    "surrogate acc",
    "target acc",
    "target loss",
    "transfer rate",
]


@task(version=1)
def models_section(
    ctx: StudyContext,
    section: Section,
    target: Trained,
    architecture: str,
    surrogates: list[dict[str, Any]],
    epochs: int,
    depths: Sequence[int],
    depth_width: int,
    widths: Sequence[int],
    width_depth: int,
) -> None:
    """Every model's parameters and accuracy, and the surrogates' training curves per family."""
    goal, goal_meta = target.load()
    rows = [model_row(f"target {architecture}", goal, goal_meta)]
    curves = {"depth": history_rows("target", goal_meta), "width": []}
    for surrogate in surrogates:
        args, (net, meta) = surrogate["args"], surrogate["model"].load()
        rows.append(model_row(f"surrogate depth {args['depth']} width {args['width']}", net, meta))
        if args["width"] == depth_width and args["depth"] in depths:
            curves["depth"] += history_rows(f"depth {args['depth']}", meta)
        if args["depth"] == width_depth and args["width"] in widths:
            curves["width"] += history_rows(f"width {args['width']:03d}", meta)
    section.tables.append(Table("models", MODEL_COLUMNS, rows, "parameters and accuracy"))
    for family in ("depth", "width"):
        record_training_curves(
            ctx, section, curves[family], name=family, note=f" (surrogates over {family})"
        )
    count = len(list(depths)) + len(list(widths))
    section.text = (
        f"Target {architecture} and {count} surrogates, each trained {epochs} epochs on "
        f"{ctx.data.name} with the same recipe and seed."
    )


@task(version=2)
def transfer_records(
    ctx: StudyContext,
    surrogate: Trained,
    target: Trained,
    images: int,
    fgsm_eps: float,
    eps: float,
    pgd_steps: int,
    step: float,
    random_start: bool,
) -> list[dict[str, Any]]:
    """Each attack crafted on ``surrogate`` and applied to ``target``."""
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
    (net, _), (goal, _) = surrogate.load(), target.load()
    records = []
    for name, attack in transfer_attacks(fgsm_eps, eps, pgd_steps, step, random_start).items():
        m = transfer_attack(attack, net, goal, x, y).metrics()
        values = [m["surrogate_accuracy"], m["target_accuracy"], m["target_loss"]]
        record = dict(zip(TRANSFER_COLUMNS[2:], [name, *values, m["transfer_rate"]]))
        records.append(record | {"target clean acc": m["target_clean_accuracy"], "images": len(y)})
    return records


@task(version=1)
def whitebox_records(
    ctx: StudyContext,
    target: Trained,
    images: int,
    fgsm_eps: float,
    eps: float,
    pgd_steps: int,
    step: float,
    random_start: bool,
) -> list[dict[str, Any]]:
    """Each attack on the target itself: the white-box reference."""
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
    goal, _ = target.load()
    records = []
    for name, attack in transfer_attacks(fgsm_eps, eps, pgd_steps, step, random_start).items():
        m = attack(goal, x, y).metrics()
        accuracy = m["robust_accuracy"]
        values = ["target itself", 0, name, accuracy, accuracy, m["loss"], 1.0]
        records.append(dict(zip(TRANSFER_COLUMNS, values)))
    return records


@task(version=1)
def transfer_section(
    ctx: StudyContext,
    section: Section,
    target: Trained,
    found: list[dict[str, Any]],
    white: list[dict[str, Any]],
    images: int,
    fgsm_eps: float,
    eps: float,
    pgd_steps: int,
    step: float,
    random_start: bool,
) -> None:
    """The transfer and white-box tables, target accuracy and loss against surrogate depth and
    width, and the most transferable surrogate."""
    caption = (
        f"Linf: FGSM eps {fgsm_eps:g}; PGD eps {eps:g}, {pgd_steps} steps of {step:.4g}"
        f"{' from a random start' if random_start else ' from x'}; "
        f"{len(ctx.data.test.labels[:images])} test images"
    )
    section.tables.append(Table.of("transfer", TRANSFER_COLUMNS, found, caption))
    caption = "white-box reference on the target"
    section.tables.append(Table.of("whitebox", TRANSFER_COLUMNS, white, caption))
    for family, label in (("depth", "conv blocks"), ("width", "filters per block")):
        sub = Table.of("transfer", TRANSFER_COLUMNS, [r for r in found if r["family"] == family])
        for metric in ("target acc", "target loss"):
            plot_table(
                sub,
                ctx.figure(
                    section,
                    f"{family}-{metric.replace(' ', '-')}.png",
                    f"{metric} vs surrogate {family}",
                ),
                x="value",
                y=metric,
                by="attack",
                logx=family == "width",
                title=f"Target {metric} vs surrogate {family} ({label})",
            )
    best = min(found, key=lambda r: float(r["target acc"]))
    pgd_white = next(r for r in white if r["attack"] == f"PGD-{pgd_steps}")
    clean = target.metadata["metrics"]["test"]["accuracy"]
    section.text = (
        f"Clean target accuracy {clean:.4f}. The most transferable examples came from the "
        f"surrogate of {best['family']} {best['value']} with {best['attack']}: target accuracy "
        f"{best['target acc']:.4f} (white-box PGD on the target: {pgd_white['target acc']:.4f})."
    )


@task(version=1)
def gradcam_section(
    ctx: StudyContext,
    section: Section,
    target: Trained,
    images: int,
    fgsm_eps: float,
    eps: float,
    pgd_steps: int,
    step: float,
    random_start: bool,
) -> None:
    """Where the target looks before and after PGD, on the first test images it classifies
    correctly and PGD fools (as in the seed's Figs 21/22)."""
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
    goal, _ = target.load()
    pgd = transfer_attacks(fgsm_eps, eps, pgd_steps, step, random_start)[f"PGD-{pgd_steps}"]
    picked, adversarial, fooled = fooled_examples(pgd, goal, x, y, count=4)
    gradcam_figure(
        goal,
        x[picked],
        adversarial,
        ctx.figure(section, "gradcam.png", "Grad-CAM of the target, clean vs PGD"),
        class_names=ctx.data.class_names,
    )
    which = ", ".join(str(i) for i in picked)
    section.text = (
        "Where the target looks (last conv layer) before and after a PGD attack, on the "
        f"first test images it classifies correctly and PGD fools (test images {which})"
    )
    if fooled < len(picked):
        section.text += (
            f"; only {fooled} of the {len(y)} test images attacked are read correctly and "
            "fooled, so the rest are the first others (not fooled, or wrong before the attack)"
        )
    section.text += "."


def fooled_examples(
    attack: Adversary,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    count: int,
    chunk: int = 100,
) -> tuple[list[int], torch.Tensor, int]:
    """The first ``count`` images that ``model`` classifies correctly and ``attack`` fools
    (attacked ``chunk`` at a time, stopping once enough are found): their indices, their
    adversarial images, and how many are fooled. When fewer are, the first correctly classified
    images that held fill the list, then the first misclassified ones."""
    fooled: dict[int, torch.Tensor] = {}
    held: dict[int, torch.Tensor] = {}
    wrong: dict[int, torch.Tensor] = {}
    for start in range(0, len(y), chunk):
        result = attack(model, x[start : start + chunk], y[start : start + chunk])
        for offset, (correct, success) in enumerate(
            zip(result.clean_correct.tolist(), result.success.tolist(), strict=True)
        ):
            kind = (fooled if success else held) if correct else wrong
            kind[start + offset] = result.adversarial[offset]
        if len(fooled) >= count:
            break
    picked: dict[int, torch.Tensor] = {}
    for kind in (fooled, held, wrong):
        picked.update(list(kind.items())[: count - len(picked)])
    order = sorted(picked)
    return order, torch.stack([picked[i] for i in order]), min(len(fooled), count)


def _check_surrogates_fit(
    shape: tuple[int, int, int],
    num_classes: int,
    surrogates: Sequence[tuple[str, int, dict]],
    pad_to: int | None,
) -> None:
    """Build every surrogate once (no training) so that one too deep for the images fails now,
    naming the study parameter that mends it, not after the shallower ones have trained."""
    for _, _, args in surrogates:
        try:
            build_model("surrogate-cnn", in_shape=shape, num_classes=num_classes, **args)
        except ValueError as error:
            raise ValueError(
                f"transfer study: the surrogate of depth {args['depth']} does not fit "
                f"{shape[1]}x{shape[2]} images (surrogate_pad_to={pad_to!r}): {error} Set the "
                "study parameter surrogate_pad_to (for example 32, CIFAR-10's size, with "
                "--param surrogate_pad_to=32) or use fewer depths."
            ) from None
