"""The main job (`saddlepoint demo`, `make demo`): every part of the toolkit once, small.

Trains the reference model; runs FGSM, PGD (Linf and L2), DeepFool and CW with an image grid
and Grad-CAM maps; a transfer attack from a small surrogate; black-box attacks (Square, random
search) with one-pixel flip maps; a small PGD grid through the sweep engine; fast adversarial
training (FGSM-RS) beside N-FGSM at the same cost; and the gradient-masking audit of the
fast-AT model. Sizes per dataset are in PLANS.
The grid is the attack-grid study's task and the transfer attack the transfer study's, each in
the demo's own table; the other sections are tasks of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from saddlepoint.attacks import PGD, PixelSweep, RandomSearch, Square, build_attack
from saddlepoint.attacks.blackbox.one_pixel import pixel_flip_map
from saddlepoint.defenses import AdversarialTraining, NFGSMTraining
from saddlepoint.evaluate.audit import audit
from saddlepoint.evaluate.robustness import (
    STRONGEST_ATTACK,
    STRONGEST_LABEL,
    strongest_attack,
    worst_case,
)
from saddlepoint.experiments.studies.attacks import grid_records
from saddlepoint.experiments.studies.base import Section, StudyContext, Table, Trained
from saddlepoint.experiments.studies.common import (
    ATTACK_COLUMNS,
    MODEL_COLUMNS,
    attack_row,
    model_row,
    plot_table,
)
from saddlepoint.experiments.studies.transfer import transfer_records
from saddlepoint.experiments.tasks import task
from saddlepoint.train import History
from saddlepoint.viz.gradcam import gradcam_figure
from saddlepoint.viz.grids import adversarial_grid, flip_map_figure


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of the demo for one dataset."""

    model: str
    epochs: int
    eps: float  # Linf
    eps_l2: float
    images: int  # attacked by the white-box attacks
    cw_images: int
    blackbox_images: int
    queries: int
    grid_images: int
    grid_eps: tuple[float, ...]
    grid_step: float
    at_epochs: int
    audit_images: int
    defense_images: int  # the defense table (PGD and the strongest evaluation)
    strong_queries: int = 5000  # Square's budget inside the strongest evaluation (the reference's)


PLANS = {
    "mnist": DemoPlan(
        "mnist-cnn", 2, 0.3, 2.0, 1000, 100, 200, 1000, 500, (0.1, 0.2, 0.3), 0.05, 3, 200, 1000
    ),
    "digits": DemoPlan(
        "cnn", 15, 0.1, 1.0, 359, 100, 200, 500, 359, (0.05, 0.1, 0.2), 0.02, 8, 100, 200
    ),
}


def pgd_reading(pgd: float, worst: float, images: int) -> str:
    """What PGD's number says beside the worst case, chosen by the numbers: an overstatement
    only when PGD leaves more than one image more."""
    if pgd - worst > 1 / max(images, 1) + 1e-9:
        return (
            f"cross-entropy PGD overstates it by {100 * (pgd - worst):.1f} points: the loss "
            "surface of fast adversarial training misleads it (catastrophic overfitting, Wong "
            "et al. 2020)"
        )
    return (
        "here PGD-40 finds as much as the strongest evaluation (no sign of catastrophic "
        "overfitting in this run)"
    )


def demo(ctx: StudyContext) -> dict[str, Any]:
    """Run every section of the demo; returns the headline numbers."""
    plan = PLANS.get(ctx.data.name) or PLANS["digits"]
    eps, n = plan.eps, plan.images
    reference = ctx.train("reference", plan.model, epochs=plan.epochs)
    ctx.section(
        "reference",
        "Reference model",
        reference_section,
        target=reference,
        plan=plan.model,
        epochs=plan.epochs,
    )
    whitebox = dict(eps=eps, eps_l2=plan.eps_l2, images=n, cw_images=plan.cw_images)
    ctx.section("whitebox", "White-box attacks", whitebox_section, target=reference, **whitebox)
    surrogate = ctx.train(
        "surrogate", "surrogate-cnn", epochs=1, model_args={"depth": 2, "width": 32}, seed=1
    )
    attacks = dict(images=n, fgsm_eps=eps, eps=eps, pgd_steps=20, step=eps / 8, random_start=True)
    found = ctx.run(transfer_records, surrogate=surrogate, target=reference, **attacks)
    ctx.section(
        "transfer", "Transfer attack", transfer_section, surrogate=surrogate, found=found, eps=eps
    )
    blackbox = dict(eps=eps, images=plan.blackbox_images, queries=plan.queries)
    ctx.section("blackbox", "Black-box attacks", blackbox_section, target=reference, **blackbox)
    grid = dict(images=plan.grid_images, eps=plan.grid_eps, eta=[plan.grid_step], norms=["linf"])
    grid |= dict(steps=list(range(1, 9)), losses=["ce", "mse"], l2_step="steepest")
    found = ctx.run(grid_records, target=reference, **grid)["records"]  # the attack-grid's task
    records = sorted(map(grid_record, found), key=lambda r: [r[c] for c in GRID_COLUMNS[:4]])
    ctx.section(
        "grid",
        "Small attack grid",
        grid_section,
        found=records,
        images=plan.grid_images,
        step=plan.grid_step,
    )
    defense = AdversarialTraining("fgsm-rs", eps=eps, warmup_epochs=1)
    defended = ctx.train("fast-at", plan.model, epochs=plan.at_epochs, defense=defense)
    fix = NFGSMTraining(eps=eps, warmup_epochs=1)  # the same cost, without the collapse
    fixed = ctx.train("n-fgsm", plan.model, epochs=plan.at_epochs, defense=fix)
    evaluation = dict(evaluation=STRONGEST_ATTACK, strong_queries=plan.strong_queries)
    ctx.section(
        "defense",
        "Fast adversarial training",
        defense_section,
        reference=reference,
        defended=defended,
        fixed=fixed,
        eps=eps,
        epochs=plan.at_epochs,
        images=plan.defense_images,
        **evaluation,
    )
    ctx.section(
        "audit",
        "Gradient-masking audit",
        audit_section,
        target=defended,
        eps=eps,
        images=plan.audit_images,
        queries=plan.queries,
        **evaluation,
    )
    return {"sections": [s.key for s in ctx.runlog.sections()]}


@task(version=1)
def reference_section(
    ctx: StudyContext, section: Section, target: Trained, plan: str, epochs: int
) -> None:
    """The reference model's training curves and accuracy."""
    model, meta = target.load()
    history = History.from_dict(meta["history"])
    history.plot(ctx.figure(section, "training.png", "training curves (train vs validation)"))
    test = meta["metrics"]["test"]
    section.tables.append(
        Table("models", MODEL_COLUMNS, [model_row(plan, model, meta)], "reference model")
    )
    section.text = (
        f"{plan} trained on {ctx.data.name} ({len(ctx.training_data().train)} training "
        f"images) for {epochs} epochs with the default recipe (Adam, one-cycle, batch 64): "
        f"test accuracy {test['accuracy']:.4f}, loss {test['loss']:.4f}."
    )


@task(version=1)
def whitebox_section(
    ctx: StudyContext,
    section: Section,
    target: Trained,
    eps: float,
    eps_l2: float,
    images: int,
    cw_images: int,
) -> None:
    """FGSM, PGD (Linf, L2), DeepFool and CW; a PGD image grid and Grad-CAM maps."""
    model, _ = target.load()
    x, y, names = ctx.data.test.images, ctx.data.test.labels, ctx.data.class_names
    fgsm, pgd = f"FGSM Linf {eps:g}", f"PGD-40 Linf {eps:g}"
    suite: list[tuple[str, str, dict[str, Any], int]] = [
        (fgsm, "fgsm", {"eps": eps}, images),
        (pgd, "pgd", {"eps": eps, "steps": 40}, images),  # step 2.5 eps / 40
        (f"PGD-40 L2 {eps_l2:g}", "pgd", {"norm": "l2", "eps": eps_l2, "steps": 40}, images),
        ("DeepFool L2 (minimal)", "deepfool", {}, images),
        ("CW L2 (minimal)", "cw", {"steps": 100, "search_steps": 6}, cw_images),
    ]
    results = {
        label: build_attack(name, **kwargs)(model, x[:count], y[:count])
        for label, name, kwargs, count in suite
    }
    rows = [attack_row(label, result) for label, result in results.items()]
    section.tables.append(Table("attacks", ATTACK_COLUMNS, rows, "white-box attacks"))
    grid = ctx.figure(section, "pgd-grid.png", "PGD Linf: original, perturbation, adversarial")
    shown = adversarial_grid(results[pgd], grid, count=5, class_names=names)
    gradcam_figure(
        model,
        results[pgd].inputs[shown[:4]],
        results[pgd].adversarial[shown[:4]],
        ctx.figure(section, "gradcam.png", "Grad-CAM of clean and PGD images (last conv)"),
        class_names=names,
    )
    robust = {label: r.metrics()["robust_accuracy"] for label, r in results.items()}
    section.text = (
        f"On {images} test images, PGD-40 at Linf eps {eps:g} leaves {robust[pgd]:.1%} accuracy "
        f"(FGSM: {robust[fgsm]:.1%}). DeepFool and CW find minimal L2 perturbations: their "
        "median L2 norm is the model's typical distance to the decision boundary."
    )


TRANSFER_COLUMNS = [
    "attack",
    "images",
    "surrogate acc (white-box)",
    "target clean acc",
    "target acc",
    "target loss",
    "transfer rate",
]


@task(version=1)
def transfer_section(
    ctx: StudyContext,
    section: Section,
    surrogate: Trained,
    found: list[dict[str, Any]],
    eps: float,
) -> None:
    """The transfer study's FGSM and PGD-20 rows for one small surrogate and the reference."""
    other, other_meta = surrogate.load()
    labels = {"FGSM": f"FGSM Linf {eps:g}", "PGD-20": f"PGD-20 Linf {eps:g}"}
    records = [
        {**r, "attack": labels[r["attack"]], "surrogate acc (white-box)": r["surrogate acc"]}
        for r in found
    ]
    row = model_row("surrogate-cnn d2 w32", other, other_meta)
    section.tables.append(Table("models", MODEL_COLUMNS, [row]))
    section.tables.append(Table.of("transfer", TRANSFER_COLUMNS, records, "surrogate -> reference"))
    pgd = records[1]
    section.text = (
        "Examples crafted on a small surrogate (2 conv blocks of 32 filters, 1 epoch) and "
        f"shown to the reference model: PGD's examples leave it {pgd['target acc']:.1%} "
        f"accuracy, against {pgd['surrogate acc (white-box)']:.1%} on the surrogate itself."
    )


@task(version=1)
def blackbox_section(
    ctx: StudyContext, section: Section, target: Trained, eps: float, images: int, queries: int
) -> None:
    """Square, random search and one white pixel at every position; flip maps of four images."""
    model, _ = target.load()
    x, y, names = ctx.data.test.images, ctx.data.test.labels, ctx.data.class_names
    n, q = images, queries
    rows = [
        attack_row(f"Square Linf {eps:g}", Square(eps=eps, queries=q)(model, x[:n], y[:n])),
        attack_row(
            f"random search Linf {eps:g}",
            RandomSearch(eps=eps, queries=q, on_bound="project")(model, x[:n], y[:n]),
        ),
        attack_row("one white pixel (all positions)", PixelSweep()(model, x[:n], y[:n])),
    ]
    table = Table("blackbox", ATTACK_COLUMNS, rows, f"query-only attacks, budget {q}")
    section.tables.append(table)
    maps = torch.stack([pixel_flip_map(model, image, int(c)) for image, c in zip(x[:4], y[:4])])
    flip_map_figure(
        x[:4],
        maps,
        ctx.figure(section, "flips.png", "positions where one white pixel flips the prediction"),
        labels=[names[int(v)] for v in y[:4]],
    )
    square = table.records()[0]
    section.text = (
        f"Attacks that only query the model's scores, {q} queries at most per image: Square "
        f"leaves {square['robust acc']:.1%} accuracy with {square['queries']:.0f} queries on "
        "average."
    )


GRID_COLUMNS = ["eps", "steps", "loss", "random start", "accuracy", "loss value"]


def grid_record(record: dict[str, Any]) -> dict[str, Any]:
    """An attack-grid record in the demo's columns."""
    values = [record["eps"], record["n"], record["loss"], record["omega"] == "omega_rand"]
    return dict(zip(GRID_COLUMNS, [*values, record["accuracy"], record["loss value"]]))


@task(version=1)
def grid_section(
    ctx: StudyContext,
    section: Section,
    found: list[dict[str, Any]],
    images: int,
    step: float,
) -> None:
    """The grid's ten strongest settings, every setting, and accuracy against steps."""
    table = Table.of("grid", GRID_COLUMNS, found, f"PGD grid, step {step:g}")
    top = sorted(found, key=lambda r: r["accuracy"])[:10]
    caption = "top 10 configurations (lowest accuracy)"
    section.tables.append(Table.of("top", GRID_COLUMNS, top, caption))
    section.tables.append(table)
    plot_table(
        table,
        ctx.figure(
            section, "accuracy-vs-steps.png", "accuracy vs steps, mean over losses and starts"
        ),
        x="steps",
        y="accuracy",
        by="eps",
        ci=True,
        title="PGD grid: accuracy vs steps",
    )
    section.text = (
        f"{len(found)} PGD configurations on {images} images, run by the sweep engine: the step "
        "counts share one run, and eps values and random starts share stacked batches. "
        f"The strongest setting leaves {top[0]['accuracy']:.1%} accuracy."
    )


@task(version=1)
def defense_section(
    ctx: StudyContext,
    section: Section,
    reference: Trained,
    defended: Trained,
    fixed: Trained,
    eps: float,
    epochs: int,
    images: int,
    evaluation: str,
    strong_queries: int,
) -> None:
    """PGD and the robust accuracy of the reference, the fast-AT model and the N-FGSM one (the
    strongest evaluation, named by ``evaluation`` so that a new one re-runs this)."""
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
    models = [("reference", *reference.load()), ("fast AT", *defended.load())]
    models.append(("N-FGSM", *fixed.load()))
    table = defense_table(models, x, y, eps, seed=ctx.seed, strong_queries=strong_queries)
    section.tables.append(table)
    pgd_column, robust_column = table.columns[2], table.columns[3]
    before, after, nfgsm = table.records()
    pgd, worst = after[pgd_column], after[robust_column]
    section.text = (
        f"Fast adversarial training (FGSM with random start, eps {eps:g}, warm-up 1 epoch, "
        f"{epochs} epochs) leaves {pgd:.1%} accuracy under PGD-40 with two "
        f"restarts and {worst:.1%} under the worst case of that and {STRONGEST_LABEL} "
        f"(reference model: {before[robust_column]:.1%}), at a clean accuracy of "
        f"{after['clean acc (test)']:.1%}, on the first {len(y)} test images. The second number "
        f"is the robust accuracy; {pgd_reading(pgd, worst, len(y))}. N-FGSM (de Jorge et al., "
        "2022: noise of twice eps, one step of eps, not projected back onto the ball), trained "
        f"the same {epochs} epochs at the same cost, leaves {nfgsm[pgd_column]:.1%} under PGD "
        f"and {nfgsm[robust_column]:.1%} robust accuracy at a clean accuracy of "
        f"{nfgsm['clean acc (test)']:.1%}."
    )


@task(version=1)
def audit_section(
    ctx: StudyContext,
    section: Section,
    target: Trained,
    eps: float,
    images: int,
    queries: int,
    evaluation: str,
    strong_queries: int,
) -> None:
    """The gradient-masking audit of the defended model, its checks and its verdict."""
    model, _ = target.load()
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
    report = audit(
        model, x, y, eps=eps, queries=queries, seed=ctx.seed, strong_queries=strong_queries
    )
    rows = [
        [
            check.name,
            "pass" if check.passed else "FAIL",
            ", ".join(f"{k} {v:.3f}" for k, v in check.numbers.items()),
        ]
        for check in report.checks
    ]
    section.tables.append(Table("audit", ["check", "result", "numbers"], rows))
    failed = [check for check in report.checks if not check.passed]
    why = "; ".join(f"{c.name} ({c.meaning})" for c in failed)
    passed = f"{len(report.checks) - len(failed)}/{len(report.checks)}"
    section.tables.append(
        Table(
            "audit-summary",
            ["robust accuracy", "reached by", "checks passed", "failed"],
            [[report.robust_accuracy, report.robust_attack, passed, why]],
            "the lowest robust accuracy of every attack the audit ran at eps",
        )
    )
    section.text = (
        f"The gradient-masking audit of the fast-AT model on the first {len(y)} test images at "
        f"Linf eps {eps:g}: robust accuracy {report.robust_accuracy:.1%} "
        f"({report.robust_attack}). " + "".join(f"Note: {note}. " for note in report.notes)
    )
    if not failed:
        section.text += (
            "It passes every check: its robustness is not an artefact of attacks failing."
        )
    else:
        section.text += (
            f"It fails {len(failed)} check(s): {why}. Quote the audit's robust accuracy, not "
            "PGD-40's, for this model."
        )


def defense_table(
    models: Sequence[tuple[str, nn.Module, dict[str, Any]]],
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    seed: int = 0,
    pgd_steps: int = 40,
    strong_steps: int = 100,
    strong_queries: int = 5000,
) -> Table:
    """Clean accuracy, PGD-40 with two restarts, and the robust accuracy (the per-sample worst
    case of that PGD and the strongest evaluation) for each (label, model, metadata)."""
    pgd = PGD(eps=eps, steps=pgd_steps, restarts=2, early_stop=True, seed=seed)
    strong = strongest_attack("linf", eps, seed=seed, steps=strong_steps, queries=strong_queries)
    pgd_label = f"PGD-{pgd_steps}x2 Linf {eps:g}"
    robust_label = f"robust accuracy (worst of PGD and {STRONGEST_LABEL})"
    records = []
    for label, net, metadata in models:
        pgd_result = pgd(net, x, y)
        robust = worst_case({pgd_label: pgd_result, STRONGEST_LABEL: strong(net, x, y)})
        records.append(
            {
                "model": label,
                "clean acc (test)": metadata["metrics"]["test"]["accuracy"],
                pgd_label: pgd_result.metrics()["robust_accuracy"],
                robust_label: robust.accuracy,
            }
        )
    columns = ["model", "clean acc (test)", pgd_label, robust_label]
    return Table.of("defense", columns, records, "reference vs adversarially trained")
