"""The generative attacker (seed 004): consecutive versus alternating training, C1 versus C2,
over the intensity t."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from saddlepoint.attacks.generative import PerturbationGenerator
from saddlepoint.experiments.studies.base import Section, StudyContext, Table, Trained
from saddlepoint.experiments.studies.common import plot_table
from saddlepoint.experiments.tasks import task
from saddlepoint.modes import predict_logits
from saddlepoint.train.generative import GenerativeAttackConfig, train_generative_attack
from saddlepoint.viz.grids import generative_figure

SEED_SCALE = 2 * 7 * 20 * 60000  # seed 004: modes x intensities x attacker epochs x images


def _projection(rows: list[dict], train_images: int, test_images: int) -> str:
    """Seed 004's attacker training at full scale, projected from this run's epochs (the
    classifiers' own training comes on top)."""
    seconds = sum(float(r.get("seconds", 0.0)) for r in rows)
    if seconds <= 0 or not rows:
        return ""
    per_image_epoch = seconds / (len(rows) * train_images)
    return (
        f"Measured here: {seconds:.0f} s for {len(rows)} attacker epochs on {train_images:,} "
        f"training images, each evaluated on {test_images:,} test images; seed 004 at full "
        f"scale (2 modes x 7 t x 20 epochs on 60,000 images) would take about"
        f" {per_image_epoch * SEED_SCALE / 3600:.1f} h of attacker training."
    )


def _classifiers(ctx: StudyContext, config: GenerativeAttackConfig) -> dict[str, Trained]:
    """C1 and C2 pre-trained clean for ``config``'s mode, as run models (trained once for every
    t of the mode, resumable epoch by epoch)."""
    pretraining = config.pretraining()
    return {
        name: ctx.train(
            f"{name}-{config.mode}",
            config.classifier,
            epochs=pretraining.epochs,
            seed=config.seed + offset,
            batch_size=pretraining.batch_size,
        )
        for offset, name in enumerate(("c1", "c2"))
    }


@task(version=1)
def attacker_run(
    ctx: StudyContext,
    c1: Trained,
    c2: Trained,
    settings: dict[str, Any],
    images: int | None,
    examples: int,
) -> dict[str, Any]:
    """One (mode, t) run: the attacker trained against C1 (C2 beside it), its per-epoch rows,
    and its attacked versions of the first ``examples`` test images (the figure's). The weights
    go to ``models/attacker-MODE-tT.pt`` for whoever wants them (tens of MB at the seed's
    width); resuming needs only this task's result."""
    config = GenerativeAttackConfig(**settings, device=ctx.device)
    data = replace(ctx.training_data(), test=ctx.data.test.head(images, "images"))
    classifiers = (c1.load()[0], c2.load()[0])
    run = train_generative_attack(data, config, progress=ctx.progress, classifiers=classifiers)
    attacker = PerturbationGenerator(
        ctx.data.shape,
        t=config.t,
        width=config.width,
        bound=config.bound,
        final_norm=config.final_norm,
        clip=config.clip,
    )
    attacker.load_state_dict(run.attacker.cpu().state_dict())
    buffer = io.BytesIO()
    torch.save(
        {"settings": settings, "history": run.history, "attacker": attacker.state_dict()}, buffer
    )
    ctx.storage.write_bytes(f"models/attacker-{config.mode}-t{config.t:g}.pt", buffer.getvalue())
    attacked = predict_logits(attacker.eval(), ctx.data.test.images[:examples])
    return {"history": run.history, "examples": attacked.tolist()}


def generative(
    ctx: StudyContext,
    *,
    t: Sequence[float] = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64),
    modes: Sequence[str] = ("consecutive", "alternating"),
    classifier: str = "twoconv-bn-cnn",
    classifier_epochs: int = 2,
    attacker_epochs: int = 2,
    clean_epochs: int = 1,
    width: int = 64,
    loss: str = "cw",
    final_norm: bool = False,
    c2_alongside: bool = False,
    clip: bool = True,
    compare_t: Sequence[float] = (0.04, 0.08),
    images: int | None = None,
    bound: str = "scale",
    lr: float = 3e-3,
) -> dict:
    """Train the attacker network per (mode, t); C1 (attacked) and C2 (transfer) accuracy.

    ``loss`` 'ce' is seed 004's objective (the attacker minimises C1's negative cross-entropy);
    'cw' a clamped margin. ``final_norm`` batch-normalises the attacker's last layer before its
    tanh (seed 004's FSConv4); ``c2_alongside`` trains C2 one clean batch per attacker batch in
    alternating mode (seed 004: C2 gets as many epochs as C1); ``clip`` false leaves the attacked
    images unclipped, up to t outside [0, 1] (seed 004 does not say it clips; offered to test
    that reading, not a valid-image threat model). Figures: accuracy and loss per
    attacker epoch, one curve per t (seed Figs 3-5), and the two modes side by side at each t of
    ``compare_t`` that was run (Fig 6). ``images``: evaluate after each attacker epoch on the
    first N test images only (all by default, as the seed). ``bound`` 'scale' bounds the
    perturbation by t * tanh, 'clamp' clamps it to [-t, t]; ``lr`` is the Adam learning rate.
    """
    configs: list[dict[str, Any]] = [
        dict(
            t=intensity,
            mode=mode,
            classifier=classifier,
            classifier_epochs=classifier_epochs,
            attacker_epochs=attacker_epochs,
            clean_epochs=clean_epochs,
            width=width,
            loss=loss,
            final_norm=final_norm,
            bound=bound,
            lr=lr,
            c2_alongside=c2_alongside,
            clip=clip,
            seed=ctx.seed,
        )
        for mode in modes
        for intensity in t
    ]
    pairs = [_classifiers(ctx, GenerativeAttackConfig(**settings)) for settings in configs]
    calls = [dict(pair, settings=s, images=images, examples=6) for pair, s in zip(pairs, configs)]
    runs = ctx.map(attacker_run, calls)  # on a cluster, every attacker trains at once
    ctx.section(
        "generative",
        "Generative attacker",
        generative_section,
        configs=configs,
        runs=runs,
        images=images,
        compare_t=compare_t,
    )
    return {}


@task(version=1)
def generative_section(
    ctx: StudyContext,
    section: Section,
    configs: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    images: int | None,
    compare_t: Sequence[float],
) -> None:
    """The final and per-epoch tables, accuracy against t, per-epoch accuracy and loss, both
    modes side by side (seed Figs 3-6) and the attacked examples per t."""
    rows = [row for run in runs for row in run["history"]]
    examples = ctx.data.test.images[:6]
    attacked = {
        (c["mode"], c["t"]): torch.tensor(run["examples"], dtype=examples.dtype)
        for c, run in zip(configs, runs, strict=True)
    }
    modes = list(dict.fromkeys(c["mode"] for c in configs))
    t = list(dict.fromkeys(c["t"] for c in configs))
    attacker_epochs, clip = configs[0]["attacker_epochs"], configs[0]["clip"]
    data = replace(ctx.training_data(), test=ctx.data.test.head(images, "images"))
    final = [r for r in rows if r["epoch"] == attacker_epochs]
    section.tables.append(Table.of("final", HEADLINE, final, "after the last attacker epoch"))
    section.tables.append(Table.of("history", list(rows[0]), rows, "per epoch"))
    for mode in modes:
        accuracy_figures(ctx, section, mode, [r for r in final if r["mode"] == mode], len(t) > 1)
        epoch_figures(ctx, section, mode, [r for r in rows if r["mode"] == mode])
    if len(modes) > 1:
        for value in [v for v in compare_t if v in t]:
            plot_table(
                Table.of("history", list(rows[0]), [r for r in rows if r["t"] == value]),
                ctx.figure(
                    section, f"modes-t{value:g}.png", f"consecutive vs alternating, t {value:g}"
                ),
                x="epoch",
                y="c1_attacked_accuracy",
                by="mode",
                title=f"C1 attacked accuracy per epoch at t = {value:g}: both modes",
            )
    generative_figure(
        attacked,
        examples,
        ctx.figure(section, "attacks-per-t.png", "original | perturbation | attacked, per t"),
    )
    section.text = (
        "An encoder-decoder maps each image to a perturbation of intensity at most t. "
        "Consecutive: C1 is trained, frozen, and the attacker learns to fool it. Alternating: "
        "after clean epochs, attacker and C1 take turns batch by batch. C2 (same architecture, "
        "another seed, never shown attacked data) measures how the attack transfers. "
        + (
            ""
            if clip
            else "Attacked images are not clipped to the pixel range (clip = false): a pixel "
            "may end up to t outside it, a reading of seed 004 rather than a valid image. "
        )
        + _projection(rows, len(data.train), len(data.test))
    )


HEADLINE = [
    "mode",
    "t",
    "c1_clean_accuracy",
    "c1_attacked_accuracy",
    "c2_clean_accuracy",
    "c2_attacked_accuracy",
]


def accuracy_figures(
    ctx: StudyContext, section: Section, mode: str, final: list[dict[str, Any]], logx: bool
) -> None:
    """C1's and C2's clean and attacked test accuracy against t after the last epoch."""
    for model in ("c1", "c2"):
        long = [
            {"t": r["t"], "kind": kind, "accuracy": r[f"{model}_{kind}_accuracy"]}
            for r in final
            for kind in ("clean", "attacked")
        ]
        plot_table(
            Table.of("long", ["t", "kind", "accuracy"], long),
            ctx.figure(section, f"{mode}-{model}.png", f"{model.upper()} accuracy vs t, {mode}"),
            x="t",
            y="accuracy",
            by="kind",
            logx=logx,
            title=f"{model.upper()} test accuracy vs intensity t ({mode})",
        )


def epoch_figures(
    ctx: StudyContext, section: Section, mode: str, rows: list[dict[str, Any]]
) -> None:
    """Per attacker epoch, one curve per t: C1's and C2's attacked accuracy, and their attacked
    loss (seed Fig 4: the targeted and the untargeted loss)."""
    mine = Table.of("history", list(rows[0]), rows)
    for model in ("c1", "c2"):
        plot_table(
            mine,
            ctx.figure(
                section,
                f"{mode}-{model}-per-epoch.png",
                f"{model.upper()} attacked accuracy per attacker epoch, {mode}",
            ),
            x="epoch",
            y=f"{model}_attacked_accuracy",
            by="t",
            title=f"{model.upper()} attacked test accuracy per epoch ({mode}), per t",
        )
    for model in ("c1", "c2"):
        plot_table(
            mine,
            ctx.figure(
                section,
                f"{mode}-{model}-loss.png",
                f"{model.upper()} attacked loss per epoch, {mode}",
            ),
            x="epoch",
            y=f"{model}_attacked_loss",
            by="t",
            logy=True,
            title=f"{model.upper()} attacked test loss per epoch ({mode}, log scale)",
        )
