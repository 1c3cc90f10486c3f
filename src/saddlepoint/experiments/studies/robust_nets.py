"""Seed 002's experiments: fast-gradient and PGD attacks on the train and test sets (§2) and
adversarial training with the training set perturbed afresh each epoch (§3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from saddlepoint.attacks import PGD, Attack, Ensemble, build_attack
from saddlepoint.data.base import Split
from saddlepoint.defenses import AdversarialTraining
from saddlepoint.evaluate.robustness import STRONGEST_LABEL, strongest_attack
from saddlepoint.experiments.studies.base import Section, StudyContext, Table
from saddlepoint.experiments.studies.common import (
    MODEL_COLUMNS,
    history_rows,
    model_row,
    plot_table,
    record_training_curves,
)
from saddlepoint.modes import predict_logits
from saddlepoint.viz.grids import adversarial_grid, examples_figure


def _attacks(
    fgsm_eps: float,
    fgm_eps: float,
    pgd_steps: int,
    pgd_linf_step: float,
    pgd_l2_step: float,
) -> dict[str, Attack | Ensemble]:
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


def _accuracy(attack: Attack | Ensemble | None, net: nn.Module, split: Split) -> float:
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
    attacks: Mapping[str, Attack | Ensemble],
    strong: Attack | Ensemble | None = None,
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
    params = {
        "model": model,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "schedule": schedule,
        "fgsm_eps": fgsm_eps,
        "fgm_eps": fgm_eps,
        "curve_eps": list(curve_eps),
        "pgd_steps": pgd_steps,
        "pgd_linf_step": pgd_linf_step,
        "pgd_l2_step": pgd_l2_step,
        "train_images": train_images,
        "test_images": test_images,
    }
    net, meta = ctx.model(
        "classifier", model, epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule
    )
    splits = _splits(ctx, train_images, test_images)
    attacks = _attacks(fgsm_eps, fgm_eps, pgd_steps, pgd_linf_step, pgd_l2_step)

    def tables(section: Section) -> None:
        section.tables.append(Table("model", MODEL_COLUMNS, [model_row(model, net, meta)]))
        record_training_curves(ctx, section, history_rows(model, meta), note=f" ({model})")
        names = list(attacks)
        header = ["split", "images", "clean", *names]
        rows = []
        for split, data in splits.items():
            rows.append(
                [split, len(data), _accuracy(None, net, data)]
                + [_accuracy(attacks[name], net, data) for name in names]
            )
        section.tables.append(
            Table("fast-gradient", header[:5], [r[:5] for r in rows], "Table 1: accuracy")
        )
        section.tables.append(
            Table(
                "pgd",
                [*header[:3], *header[5:]],
                [[*r[:3], *r[5:]] for r in rows],
                f"Table 2: accuracy under PGD, {pgd_steps} iterations from x "
                f"(Linf step {pgd_linf_step:g}, L2 step {pgd_l2_step:g})",
            )
        )
        section.text = (
            f"{model} trained {epochs} epochs on {len(ctx.training_data().train)} images of "
            f"{ctx.data.name}; accuracy on the training images it saw and on the test set, "
            "clean and under each attack. 'train' is measured in evaluation mode after "
            "training (Keras reports the running training accuracy instead)."
        )

    ctx.section_with("attacks", "FGSM, FGM and PGD on train and test", params, tables)

    def curve(section: Section) -> None:
        test = splits["test"]
        rows = [
            [e, _accuracy(build_attack("fgsm", eps=e) if e else None, net, test)] for e in curve_eps
        ]
        table = Table("fgsm-vs-eps", ["eps", "accuracy"], rows, "FGSM accuracy on the test set")
        section.tables.append(table)
        plot_table(
            table,
            ctx.figure(section, "fgsm-accuracy-vs-eps.png", "FGSM test accuracy vs eps"),
            x="eps",
            y="accuracy",
            title="FGSM: test accuracy vs eps",
        )
        x, y = test.images[:1], test.labels[:1]
        for e in [e for e in curve_eps if e > 0][:6]:
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

    ctx.section_with("fgsm-eps", "FGSM accuracy versus eps", params, curve)

    def examples(section: Section) -> None:
        test = splits["test"]
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

    ctx.section_with("examples", "Example predictions", params, examples)
    return {}


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
    params = {
        "model": model,
        "epochs": epochs,
        "at_epochs": at_epochs,
        "batch_size": batch_size,
        "lr": lr,
        "schedule": schedule,
        "fgsm_eps": fgsm_eps,
        "pgd_steps": pgd_steps,
        "pgd_step": pgd_step,
        "fraction": fraction,
        "train_images": train_images,
        "test_images": test_images,
        "strong_images": strong_images,
    }
    options: dict[str, Any] = {"batch_size": batch_size, "lr": lr, "schedule": schedule}
    pgd: dict[str, Any] = {"steps": pgd_steps, "step": pgd_step, "random_start": False}
    plans = [
        ("original", epochs, None),
        (
            "FGSM-AT",
            at_epochs,
            AdversarialTraining("fgsm", eps=fgsm_eps, fraction=fraction, regenerate="epoch"),
        ),
        (
            "PGD-AT",
            at_epochs,
            AdversarialTraining("pgd", eps=fgsm_eps, fraction=fraction, regenerate="epoch", **pgd),
        ),
    ]
    splits = _splits(ctx, train_images, test_images)
    attacks = {
        "FGSM": build_attack("fgsm", eps=fgsm_eps),
        "PGD": PGD(norm="linf", eps=fgsm_eps, **pgd),
    }

    strong = strongest_attack("linf", fgsm_eps, seed=ctx.seed)

    def evaluate(label: str, net: nn.Module, split: str, data: Split) -> list[Any]:
        """One row of Table 3: ``net`` on ``split`` clean and under each attack; on the test
        split also the strongest evaluation."""
        evaluation = strong if split == "test" else None
        cells = table3_accuracies(net, data, attacks, evaluation, strong_images)
        return [label, split, len(data), *cells]

    def build(section: Section) -> None:
        models, rows, history, trained = [], [], [], []
        for label, n, defense in plans:
            key = "classifier" if label == "original" else label.lower()
            net, meta = ctx.model(key, model, epochs=n, defense=defense, **options)
            models.append(model_row(label, net, meta))
            history += history_rows(label, meta)
            trained.append((label, meta))
            for split, data in splits.items():
                # each row is kept as it finishes: the strongest evaluation of a network that
                # resists the attack takes about an hour of a core, and a stopped run (a
                # session's end) recomputes only the rows it lacks
                part = {**params, "network": label, "split": split}
                rows.append(
                    ctx.kept(
                        f"table3-{key}-{split}",
                        part,
                        partial(evaluate, label, net, split, data),
                    )
                )
        section.tables.append(Table("models", MODEL_COLUMNS, models, "the three networks"))
        columns = [
            "network",
            "split",
            "images",
            "clean",
            f"FGSM eps {fgsm_eps:g}",
            f"PGD-{pgd_steps} eps {fgsm_eps:g}",
            f"{STRONGEST_LABEL} ({strong_images} test images)",
        ]
        section.tables.append(Table("table3", columns, rows, "Table 3: accuracy"))
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

    ctx.section_with("table3", "Adversarial training, perturbed afresh each epoch", params, build)
    return {}
