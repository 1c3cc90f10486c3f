"""Seed 002's experiments: fast-gradient and PGD attacks on the train and test sets (§2) and
adversarial training with the training set perturbed afresh each epoch (§3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from saddlepoint.attacks import PGD, Adversary, build_attack
from saddlepoint.data.base import Split
from saddlepoint.defenses import AdversarialTraining
from saddlepoint.evaluate.robustness import STRONGEST_LABEL, strongest_attack
from saddlepoint.experiments.studies.base import Section, StudyContext, Table, Trained
from saddlepoint.experiments.studies.common import (
    MODEL_COLUMNS,
    history_rows,
    model_row,
    plot_table,
    record_training_curves,
)
from saddlepoint.experiments.tasks import task
from saddlepoint.modes import predict_logits
from saddlepoint.viz.grids import adversarial_grid, examples_figure


def _attacks(
    fgsm_eps: float,
    fgm_eps: float,
    pgd_steps: int,
    pgd_linf_step: float,
    pgd_l2_step: float,
) -> dict[str, Adversary]:
    """The seed's four attacks: FGSM, FGM, and PGD in Linf and L2 from x."""
    return {
        f"FGSM eps {fgsm_eps:g}": build_attack("fgsm", eps=fgsm_eps),
        f"FGM eps {fgm_eps:g}": build_attack("fgm", eps=fgm_eps),
        f"PGD Linf eps {fgsm_eps:g}": PGD(
            norm="linf", eps=fgsm_eps, steps=pgd_steps, step=pgd_linf_step, random_start=False
        ),
        f"PGD L2 eps {fgm_eps:g}": PGD(
            norm="l2", eps=fgm_eps, steps=pgd_steps, step=pgd_l2_step, random_start=False
        ),
    }


def _splits(ctx: StudyContext, train_images: int | None, test_images: int | None) -> dict:
    """The evaluation sets: the training images the models saw (first ``train_images``) and the
    test set (first ``test_images``); None means all."""
    train = ctx.training_data().train.head(train_images, "train_images")
    return {"train": train, "test": ctx.data.test.head(test_images, "test_images")}


def _accuracy(attack: Adversary | None, net: nn.Module, split: Split) -> float:
    """Accuracy on ``split`` under ``attack`` (clean when None), in chunks to bound memory."""
    correct, total = 0.0, 0
    for start in range(0, len(split), 2000):
        x = split.images[start : start + 2000]
        y = split.labels[start : start + 2000]
        if attack is None:
            correct += float((predict_logits(net, x).argmax(1) == y).sum())
        else:
            correct += float(attack(net, x, y).metrics()["robust_accuracy"]) * len(y)
        total += len(y)
    return correct / total


def table3_accuracies(
    net: nn.Module,
    split: Split,
    attacks: Mapping[str, Adversary],
    strong: Adversary | None = None,
    strong_images: int = 0,
) -> list[float]:
    """Seed 002's Table 3 cells for ``net`` on ``split``: clean accuracy, accuracy under each of
    ``attacks`` over the whole split, and under ``strong`` on its first ``strong_images`` images
    (NaN when ``strong`` is None, as for the seed's training-set rows)."""
    cells = [_accuracy(None, net, split)]
    cells += [_accuracy(attack, net, split) for attack in attacks.values()]
    if strong is None:
        cells.append(float("nan"))
    else:
        x, y = split.images[:strong_images], split.labels[:strong_images]
        cells.append(float(strong(net, x, y).metrics()["robust_accuracy"]))
    return cells


def training_time(
    trained: Sequence[tuple[str, dict[str, Any]]], images: int, full_images: int
) -> str:
    """A sentence with each model's measured training time (perturbing the training set each
    epoch included) and, when it trained on fewer than ``full_images`` images, the time it would
    take on all of them (epoch time grows with the images, so a reduced run says what the full
    one costs)."""
    parts = []
    for label, meta in trained:
        epochs = meta.get("history", {}).get("epochs", [])
        seconds = sum(float(e.get("seconds", 0.0)) for e in epochs)
        if seconds <= 0:
            continue
        part = f"{label} {seconds / 3600:.2f} h"
        if 0 < images < full_images:
            part += f" (about {seconds * full_images / images / 3600:.1f} h on all {full_images:,})"
        parts.append(part)
    if not parts:
        return ""
    return f"Training time measured here on {images:,} training images: " + ", ".join(parts) + "."


def fast_gradient(
    ctx: StudyContext,
    *,
    model: str = "small-cnn",
    epochs: int = 40,
    batch_size: int = 32,
    lr: float = 1e-3,
    schedule: str = "constant",
    fgsm_eps: float = 0.031,
    fgm_eps: float = 0.4,
    curve_eps: Sequence[float] = (0.0, 0.005, 0.01, 0.02, 0.031, 0.05, 0.1, 0.2, 0.3),
    pgd_steps: int = 20,
    pgd_linf_step: float = 0.05,
    pgd_l2_step: float = 0.05,
    train_images: int | None = None,
    test_images: int | None = None,
) -> dict:
    """FGSM / FGM and PGD Linf / L2 on the train and test sets; FGSM accuracy vs eps (seed 002 §2).

    The classifier trains ``epochs`` epochs (seed: 40). Table 1 is FGSM at ``fgsm_eps`` and FGM
    at ``fgm_eps``; Table 2 is PGD from x, ``pgd_steps`` steps of ``pgd_linf_step`` (Linf, radius
    fgsm_eps) or ``pgd_l2_step`` along the normalised gradient (L2, radius fgm_eps).
    """
    target = ctx.train(
        "classifier", model, epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule
    )
    sizes = dict(train_images=train_images, test_images=test_images)
    seed_attacks: dict[str, Any] = dict(fgsm_eps=fgsm_eps, fgm_eps=fgm_eps, pgd_steps=pgd_steps)
    seed_attacks |= dict(pgd_linf_step=pgd_linf_step, pgd_l2_step=pgd_l2_step)
    found = ctx.run(split_accuracies, target=target, **sizes, **seed_attacks)
    ctx.section(
        "attacks",
        "FGSM, FGM and PGD on train and test",
        attacks_section,
        target=target,
        model=model,
        epochs=epochs,
        found=found,
        names=list(_attacks(**seed_attacks)),
        pgd=dict(steps=pgd_steps, linf_step=pgd_linf_step, l2_step=pgd_l2_step),
    )
    curve = ctx.run(fgsm_curve, target=target, test_images=test_images, curve_eps=curve_eps)
    ctx.section(
        "fgsm-eps",
        "FGSM accuracy versus eps",
        fgsm_eps_section,
        target=target,
        curve=curve,
        test_images=test_images,
    )
    ctx.section("examples", "Example predictions", predictions_section, target=target, **sizes)
    return {}


@task(version=1)
def split_accuracies(
    ctx: StudyContext,
    target: Trained,
    train_images: int | None,
    test_images: int | None,
    fgsm_eps: float,
    fgm_eps: float,
    pgd_steps: int,
    pgd_linf_step: float,
    pgd_l2_step: float,
) -> list[dict[str, Any]]:
    """Per split: its size, clean accuracy and accuracy under each of the seed's four attacks."""
    net, _ = target.load()
    attacks = _attacks(fgsm_eps, fgm_eps, pgd_steps, pgd_linf_step, pgd_l2_step)
    records = []
    for split, data in _splits(ctx, train_images, test_images).items():
        record = {"split": split, "images": len(data), "clean": _accuracy(None, net, data)}
        records.append(record | {name: _accuracy(a, net, data) for name, a in attacks.items()})
    return records


@task(version=1)
def attacks_section(
    ctx: StudyContext,
    section: Section,
    target: Trained,
    model: str,
    epochs: int,
    found: list[dict[str, Any]],
    names: list[str],
    pgd: dict[str, Any],
) -> None:
    """Seed 002's Tables 1 (FGSM, FGM) and 2 (PGD) with the model and its training curves."""
    net, meta = target.load()
    section.tables.append(Table("model", MODEL_COLUMNS, [model_row(model, net, meta)]))
    record_training_curves(ctx, section, history_rows(model, meta), note=f" ({model})")
    header = ["split", "images", "clean"]
    section.tables.append(
        Table.of("fast-gradient", [*header, *names[:2]], found, "Table 1: accuracy")
    )
    caption = (
        f"Table 2: accuracy under PGD, {pgd['steps']} iterations from x (Linf step "
        f"{pgd['linf_step']:g}, L2 step {pgd['l2_step']:g})"
    )
    section.tables.append(Table.of("pgd", [*header, *names[2:]], found, caption))
    section.text = (
        f"{model} trained {epochs} epochs on {len(ctx.training_data().train)} images of "
        f"{ctx.data.name}; accuracy on the training images it saw and on the test set, "
        "clean and under each attack. 'train' is measured in evaluation mode after "
        "training (Keras reports the running training accuracy instead)."
    )


@task(version=1)
def fgsm_curve(
    ctx: StudyContext, target: Trained, test_images: int | None, curve_eps: Sequence[float]
) -> list[dict[str, float]]:
    """FGSM test accuracy at each eps (clean at 0)."""
    net, _ = target.load()
    test = _splits(ctx, None, test_images)["test"]
    fgsm = {e: build_attack("fgsm", eps=e) if e else None for e in curve_eps}
    return [{"eps": e, "accuracy": _accuracy(fgsm[e], net, test)} for e in curve_eps]


@task(version=1)
def fgsm_eps_section(
    ctx: StudyContext,
    section: Section,
    target: Trained,
    curve: list[dict[str, float]],
    test_images: int | None,
) -> None:
    """FGSM accuracy against eps (seed Fig 7) and one test image at each eps (Fig 8)."""
    table = Table.of("fgsm-vs-eps", ["eps", "accuracy"], curve, "FGSM accuracy on the test set")
    section.tables.append(table)
    plot_table(
        table,
        ctx.figure(section, "fgsm-accuracy-vs-eps.png", "FGSM test accuracy vs eps"),
        x="eps",
        y="accuracy",
        title="FGSM: test accuracy vs eps",
    )
    net, _ = target.load()
    test = _splits(ctx, None, test_images)["test"]
    x, y = test.images[:1], test.labels[:1]
    for e in [r["eps"] for r in curve if r["eps"] > 0][:6]:
        adversarial_grid(
            build_attack("fgsm", eps=e)(net, x, y),
            ctx.figure(section, f"fgsm-eps-{e:g}.png", f"FGSM at eps {e:g}"),
            count=1,
            class_names=ctx.data.class_names,
            prefer_successes=False,
        )
    section.text = (
        "FGSM accuracy as eps grows (the seed's Figure 7) and one test image perturbed at "
        "each eps (Figure 8)."
    )


@task(version=1)
def predictions_section(
    ctx: StudyContext,
    section: Section,
    target: Trained,
    train_images: int | None,
    test_images: int | None,
) -> None:
    """The first test images read correctly and the first misclassified (seed Figs 4-6)."""
    net, _ = target.load()
    test = _splits(ctx, train_images, test_images)["test"]
    with torch.no_grad():
        probabilities = predict_logits(net, test.images).softmax(1)
    right = probabilities.argmax(1) == test.labels
    for name, chosen, caption in (
        ("correct", right, "test images the network classifies correctly"),
        ("misclassified", ~right, "test images the network misclassifies"),
    ):
        index = chosen.nonzero().flatten()[:12]
        if index.numel():
            examples_figure(
                test.images[index],
                test.labels[index],
                probabilities[index],
                ctx.figure(section, f"{name}.png", caption),
                class_names=ctx.data.class_names,
                title=caption,
            )
    section.text = (
        f"The first test images the network reads correctly ({int(right.sum())} of "
        f"{len(right)}) and the first it misclassifies ({int((~right).sum())}), each with "
        "its prediction, confidence and true class (the seed's example figures, Figs 4-6)."
    )


def adversarial_training_study(
    ctx: StudyContext,
    *,
    model: str = "small-cnn",
    epochs: int = 40,
    at_epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    schedule: str = "constant",
    fgsm_eps: float = 0.031,
    pgd_steps: int = 20,
    pgd_step: float = 0.05,
    fraction: float = 1.0,
    train_images: int | None = None,
    test_images: int | None = None,
    strong_images: int = 1000,
) -> dict:
    """FGSM-AT and PGD-AT on a training set perturbed afresh each epoch (seed 002 §3, Table 3).

    Each network has the original's architecture and trains ``at_epochs`` epochs from scratch on
    the training images perturbed against the current weights at the start of every epoch
    (``fraction`` of them; the seed: all). Evaluated clean, under FGSM and under Linf PGD (the
    seed's §2 settings), and -- the number to quote -- under the strongest evaluation.
    """
    options: dict[str, Any] = {"batch_size": batch_size, "lr": lr, "schedule": schedule}
    evaluation = dict(fgsm_eps=fgsm_eps, pgd_steps=pgd_steps, pgd_step=pgd_step)
    sizes = dict(train_images=train_images, test_images=test_images)
    found, networks = [], []
    for label, n, defense in at_plans(fgsm_eps, pgd_steps, pgd_step, fraction, epochs, at_epochs):
        key = "classifier" if label == "original" else label.lower()
        net = ctx.train(key, model, epochs=n, defense=defense, **options)
        networks.append({"label": label, "model": net})
        for split in ("train", "test"):
            # each row is a task: the strongest evaluation of a network that resists the attack
            # takes about an hour of a core, and a stopped run recomputes only the rows it lacks
            found.append(  # on a cluster: every row at once
                ctx.submit(
                    table3_record,
                    target=net,
                    label=label,
                    split=split,
                    strong_images=strong_images,
                    **sizes,
                    **evaluation,
                )
            )
    found = [pending.result() for pending in found]
    ctx.section(
        "table3",
        "Adversarial training, perturbed afresh each epoch",
        table3_section,
        networks=networks,
        found=found,
        epochs=epochs,
        at_epochs=at_epochs,
        fraction=fraction,
        strong_images=strong_images,
        **evaluation,
    )
    return {}


def at_plans(
    fgsm_eps: float, pgd_steps: int, pgd_step: float, fraction: float, epochs: int, at_epochs: int
) -> list[tuple[str, int, AdversarialTraining | None]]:
    """(label, epochs, defense) of the original network, FGSM-AT and PGD-AT, each adversarial
    one on ``fraction`` of the training set perturbed afresh every epoch."""
    pgd: dict[str, Any] = {"steps": pgd_steps, "step": pgd_step, "random_start": False}
    perturbed: dict[str, Any] = dict(eps=fgsm_eps, fraction=fraction, regenerate="epoch")
    return [
        ("original", epochs, None),
        ("FGSM-AT", at_epochs, AdversarialTraining("fgsm", **perturbed)),
        ("PGD-AT", at_epochs, AdversarialTraining("pgd", **perturbed, **pgd)),
    ]


@task(version=1)
def table3_record(
    ctx: StudyContext,
    target: Trained,
    label: str,
    split: str,
    train_images: int | None,
    test_images: int | None,
    strong_images: int,
    fgsm_eps: float,
    pgd_steps: int,
    pgd_step: float,
) -> dict[str, Any]:
    """One row of Table 3: the network on ``split`` clean, under FGSM and PGD, and (test split
    only) under the strongest evaluation on its first ``strong_images`` images."""
    net, _ = target.load()
    data = _splits(ctx, train_images, test_images)[split]
    attacks: dict[str, Adversary] = {
        "FGSM": build_attack("fgsm", eps=fgsm_eps),
        "PGD": PGD(norm="linf", eps=fgsm_eps, steps=pgd_steps, step=pgd_step, random_start=False),
    }
    strong = strongest_attack("linf", fgsm_eps, seed=ctx.seed) if split == "test" else None
    cells = table3_accuracies(net, data, attacks, strong, strong_images)
    return dict(zip(TABLE3_FIELDS, [label, split, len(data), *cells]))


TABLE3_FIELDS = ["network", "split", "images", "clean", "FGSM", "PGD", "strongest"]


@task(version=1)
def table3_section(
    ctx: StudyContext,
    section: Section,
    networks: list[dict[str, Any]],
    found: list[dict[str, Any]],
    epochs: int,
    at_epochs: int,
    fraction: float,
    strong_images: int,
    fgsm_eps: float,
    pgd_steps: int,
    pgd_step: float,
) -> None:
    """Seed 002's Table 3, the networks and their training curves, and the training times."""
    models, history, trained = [], [], []
    for network in networks:
        net, meta = network["model"].load()
        models.append(model_row(network["label"], net, meta))
        history += history_rows(network["label"], meta)
        trained.append((network["label"], meta))
    section.tables.append(Table("models", MODEL_COLUMNS, models, "the three networks"))
    columns = dict(zip(TABLE3_FIELDS[:4], TABLE3_FIELDS[:4]))
    columns |= {"FGSM": f"FGSM eps {fgsm_eps:g}", "PGD": f"PGD-{pgd_steps} eps {fgsm_eps:g}"}
    columns["strongest"] = f"{STRONGEST_LABEL} ({strong_images} test images)"
    records = [{columns[k]: v for k, v in record.items()} for record in found]
    section.tables.append(Table.of("table3", list(columns.values()), records, "Table 3: accuracy"))
    record_training_curves(ctx, section, history, note=" (original and adversarially trained)")
    section.text = (
        f"The original network trains {epochs} epochs on clean images; FGSM-AT and PGD-AT "
        f"train {at_epochs} epochs from scratch, each epoch on a copy of the training set "
        f"perturbed against the current weights ({fraction:.0%} of the images; Linf eps "
        f"{fgsm_eps:g}; PGD {pgd_steps} steps of {pgd_step:g} from x). The last column is the "
        "strongest evaluation the toolkit has, on the first test images: FGSM and a "
        "20-step PGD overstate the robustness of FGSM-trained networks. "
        + training_time(trained, len(ctx.training_data().train), len(ctx.data.train))
    ).strip()
