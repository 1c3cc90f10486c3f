"""The main job (`saddlepoint demo`, `make demo`): every part of the toolkit once, small.

Trains the reference model; runs FGSM, PGD (Linf and L2), DeepFool and CW with an image grid
and Grad-CAM maps; a transfer attack from a small surrogate; black-box attacks (Square, random
search) with one-pixel flip maps; a small PGD grid through the sweep engine; a fast adversarial
training; and the gradient-masking audit of the defended model. Sizes per dataset are in PLANS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from saddlepoint.attacks import PGD, PixelSweep, RandomSearch, Square, build_attack
from saddlepoint.attacks import transfer_attack as run_transfer
from saddlepoint.attacks.blackbox.one_pixel import pixel_flip_map
from saddlepoint.defenses import AdversarialTraining
from saddlepoint.evaluate.audit import audit
from saddlepoint.evaluate.robustness import (
    STRONGEST_ATTACK,
    STRONGEST_LABEL,
    strongest_attack,
    worst_case,
)
from saddlepoint.experiments.spec import parse_spec
from saddlepoint.experiments.store import ResultsStore
from saddlepoint.experiments.studies.base import Section, StudyContext, Table
from saddlepoint.experiments.studies.common import (
    ATTACK_COLUMNS,
    MODEL_COLUMNS,
    attack_row,
    model_row,
    plot_table,
)
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
    x, y = ctx.data.test.images, ctx.data.test.labels
    names = ctx.data.class_names
    model, meta = ctx.model("reference", plan.model, epochs=plan.epochs)
    eps = plan.eps

    def reference(section: Section) -> None:
        history = History.from_dict(meta["history"])
        history.plot(ctx.figure(section, "training.png", "training curves (train vs validation)"))
        test = meta["metrics"]["test"]
        section.tables.append(
            Table("models", MODEL_COLUMNS, [model_row(plan.model, model, meta)], "reference model")
        )
        section.text = (
            f"{plan.model} trained on {ctx.data.name} ({len(ctx.training_data().train)} training "
            f"images) for {plan.epochs} epochs with the default recipe (Adam, one-cycle, batch 64): "
            f"test accuracy {test['accuracy']:.4f}, loss {test['loss']:.4f}."
        )

    ctx.section_with("reference", "Reference model", {"plan": plan.model}, reference)

    def whitebox(section: Section) -> None:
        n, n_cw = plan.images, plan.cw_images
        suite: list[tuple[str, str, dict[str, Any], int]] = [
            (f"FGSM Linf {eps:g}", "fgsm", {"eps": eps}, n),
            (f"PGD-40 Linf {eps:g}", "pgd", {"eps": eps, "steps": 40}, n),  # step 2.5 eps / 40
            (
                f"PGD-40 L2 {plan.eps_l2:g}",
                "pgd",
                {"norm": "l2", "eps": plan.eps_l2, "steps": 40},
                n,
            ),
            ("DeepFool L2 (minimal)", "deepfool", {}, n),
            ("CW L2 (minimal)", "cw", {"steps": 100, "search_steps": 6}, n_cw),
        ]
        rows = []
        for label, name, kwargs, count in suite:
            result = build_attack(name, **kwargs)(model, x[:count], y[:count])
            rows.append(attack_row(label, result))
            if name == "pgd" and "Linf" in label:
                pgd_result = result
        section.tables.append(Table("attacks", ATTACK_COLUMNS, rows, "white-box attacks"))
        grid = ctx.figure(section, "pgd-grid.png", "PGD Linf: original, perturbation, adversarial")
        shown = adversarial_grid(pgd_result, grid, count=5, class_names=names)
        gradcam_figure(
            model,
            pgd_result.inputs[shown[:4]],
            pgd_result.adversarial[shown[:4]],
            ctx.figure(section, "gradcam.png", "Grad-CAM of clean and PGD images (last conv)"),
            class_names=names,
        )
        robust = {r[0]: r[3] for r in rows}
        section.text = (
            f"On {n} test images, PGD-40 at Linf eps {eps:g} leaves "
            f"{robust[suite[1][0]]:.1%} accuracy (FGSM: {robust[suite[0][0]]:.1%}). DeepFool and "
            "CW find minimal L2 perturbations: their median L2 norm is the model's typical "
            "distance to the decision boundary."
        )

    ctx.section_with("whitebox", "White-box attacks", {"plan": repr(plan)}, whitebox)

    def transfer(section: Section) -> None:
        surrogate, smeta = ctx.model(
            "surrogate", "surrogate-cnn", epochs=1, model_args={"depth": 2, "width": 32}, seed=1
        )
        n = plan.images
        rows = []
        for label, attack in (
            (f"FGSM Linf {eps:g}", build_attack("fgsm", eps=eps)),
            (f"PGD-20 Linf {eps:g}", PGD(eps=eps, steps=20, step=eps / 8)),
        ):
            m = run_transfer(attack, surrogate, model, x[:n], y[:n]).metrics()
            rows.append(
                [
                    label,
                    n,
                    m["surrogate_accuracy"],
                    m["target_clean_accuracy"],
                    m["target_accuracy"],
                    m["target_loss"],
                    m["transfer_rate"],
                ]
            )
        columns = [
            "attack",
            "images",
            "surrogate acc (white-box)",
            "target clean acc",
            "target acc",
            "target loss",
            "transfer rate",
        ]
        section.tables.append(
            Table("models", MODEL_COLUMNS, [model_row("surrogate-cnn d2 w32", surrogate, smeta)])
        )
        section.tables.append(Table("transfer", columns, rows, "surrogate -> reference"))
        section.text = (
            "Examples crafted on a small surrogate (2 conv blocks of 32 filters, 1 epoch) and "
            f"shown to the reference model: PGD's examples leave it {rows[1][4]:.1%} accuracy, "
            f"against {rows[1][2]:.1%} on the surrogate itself."
        )

    ctx.section_with("transfer", "Transfer attack", {"plan": repr(plan)}, transfer)

    def blackbox(section: Section) -> None:
        n, q = plan.blackbox_images, plan.queries
        rows = [
            attack_row(f"Square Linf {eps:g}", Square(eps=eps, queries=q)(model, x[:n], y[:n])),
            attack_row(
                f"random search Linf {eps:g}",
                RandomSearch(eps=eps, queries=q, on_bound="project")(model, x[:n], y[:n]),
            ),
            attack_row("one white pixel (all positions)", PixelSweep()(model, x[:n], y[:n])),
        ]
        section.tables.append(
            Table("blackbox", ATTACK_COLUMNS, rows, f"query-only attacks, budget {q}")
        )
        images = x[:4]
        maps = torch.stack(
            [pixel_flip_map(model, image, int(label)) for image, label in zip(images, y[:4])]
        )
        flip_map_figure(
            images,
            maps,
            ctx.figure(
                section, "flips.png", "positions where one white pixel flips the prediction"
            ),
            labels=[names[int(v)] for v in y[:4]],
        )
        section.text = (
            f"Attacks that only query the model's scores, {q} queries at most per image: Square "
            f"leaves {rows[0][3]:.1%} accuracy with {rows[0][10]:.0f} queries on average."
        )

    ctx.section_with("blackbox", "Black-box attacks", {"plan": repr(plan)}, blackbox)

    def grid(section: Section) -> None:
        from saddlepoint.experiments.engine import current_rows, run_experiment

        checkpoint = ctx.folder / "models" / "reference.safetensors"
        spec = parse_spec(
            {
                "name": "demo-grid",
                "checkpoints": [str(checkpoint)],
                "dataset": {"split": "test", "limit": plan.grid_images},
                "attack": "pgd",
                "grid": {
                    "eps": list(plan.grid_eps),
                    "steps": list(range(1, 9)),
                    "loss": ["ce", "mse"],
                    "random_start": [True, False],
                },
                "fixed": {"step": plan.grid_step, "seed": ctx.seed},
            }
        )
        store_path = ctx.store_path("grid", {"plan": repr(plan)})
        run_experiment(spec, store_path, progress=ctx.progress)
        with ResultsStore(store_path) as store:
            records = store.rows(current_rows(spec))
        columns = ["eps", "steps", "loss", "random start", "accuracy", "loss value"]
        rows = [
            [
                r["param_eps"],
                r["param_steps"],
                r["param_loss"],
                bool(r["param_random_start"]),
                r["accuracy"],
                r["loss"],
            ]
            for r in records
        ]
        rows.sort(key=lambda r: (r[0], r[1], r[2], r[3]))
        table = Table("grid", columns, rows, f"PGD grid, step {plan.grid_step:g}")
        top = sorted(rows, key=lambda r: r[4])[:10]
        section.tables.append(Table("top", columns, top, "top 10 configurations (lowest accuracy)"))
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
            f"{len(rows)} PGD configurations on {plan.grid_images} images, run by the sweep engine: "
            "the step counts share one run, and eps values and random starts share stacked batches. "
            f"The strongest setting leaves {top[0][4]:.1%} accuracy."
        )

    ctx.section_with("grid", "Small attack grid", {"plan": repr(plan)}, grid)

    defense = AdversarialTraining("fgsm-rs", eps=eps, warmup_epochs=1)
    defended, dmeta = ctx.model("fast-at", plan.model, epochs=plan.at_epochs, defense=defense)

    def adversarial_training(section: Section) -> None:
        n = plan.defense_images
        models = [("reference", model, meta), ("fast AT", defended, dmeta)]
        table = defense_table(
            models, x[:n], y[:n], eps, seed=ctx.seed, strong_queries=plan.strong_queries
        )
        section.tables.append(table)
        rows = table.rows
        pgd, worst = rows[1][2], rows[1][3]
        section.text = (
            f"Fast adversarial training (FGSM with random start, eps {eps:g}, warm-up 1 epoch, "
            f"{plan.at_epochs} epochs) leaves {pgd:.1%} accuracy under PGD-40 with two "
            f"restarts and {worst:.1%} under the worst case of that and {STRONGEST_LABEL} "
            f"(reference model: {rows[0][3]:.1%}), at a clean accuracy of {rows[1][1]:.1%}, on "
            f"the first {n} test images. The second number is the robust accuracy; "
            f"{pgd_reading(pgd, worst, n)}."
        )

    evaluation = {"plan": repr(plan), "evaluation": STRONGEST_ATTACK}  # a new one re-runs these
    ctx.section_with("defense", "Fast adversarial training", evaluation, adversarial_training)

    def audit_section(section: Section) -> None:
        n = plan.audit_images
        report = audit(
            defended,
            x[:n],
            y[:n],
            eps=eps,
            queries=plan.queries,
            seed=ctx.seed,
            strong_queries=plan.strong_queries,
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
        summary = [
            [
                report.robust_accuracy,
                report.robust_attack,
                f"{len(report.checks) - len(failed)}/{len(report.checks)}",
                "; ".join(f"{c.name} ({c.meaning})" for c in failed),
            ]
        ]
        section.tables.append(
            Table(
                "audit-summary",
                ["robust accuracy", "reached by", "checks passed", "failed"],
                summary,
                "the lowest robust accuracy of every attack the audit ran at eps",
            )
        )
        section.text = (
            f"The gradient-masking audit of the fast-AT model on the first {n} test images at "
            f"Linf eps {eps:g}: robust accuracy {report.robust_accuracy:.1%} "
            f"({report.robust_attack}). " + "".join(f"Note: {note}. " for note in report.notes)
        )
        if not failed:
            section.text += (
                "It passes every check: its robustness is not an artefact of attacks failing."
            )
        else:
            section.text += (
                f"It fails {len(failed)} check(s): "
                + "; ".join(f"{c.name} ({c.meaning})" for c in failed)
                + ". Quote the audit's robust accuracy, not PGD-40's, for this model."
            )

    ctx.section_with("audit", "Gradient-masking audit", evaluation, audit_section)
    return {"sections": [s.key for s in ctx.log.sections()]}


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
    rows = []
    for label, net, metadata in models:
        pgd_result = pgd(net, x, y)
        robust = worst_case({pgd_label: pgd_result, STRONGEST_LABEL: strong(net, x, y)})
        rows.append(
            [
                label,
                metadata["metrics"]["test"]["accuracy"],
                pgd_result.metrics()["robust_accuracy"],
                robust.accuracy,
            ]
        )
    columns = [
        "model",
        "clean acc (test)",
        pgd_label,
        f"robust accuracy (worst of PGD and {STRONGEST_LABEL})",
    ]
    return Table("defense", columns, rows, "reference vs adversarially trained")
