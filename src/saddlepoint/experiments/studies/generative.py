"""The generative attacker (seed 004): consecutive versus alternating training, C1 versus C2,
over the intensity t."""

from __future__ import annotations

from collections.abc import Sequence

from saddlepoint.experiments.studies.base import Section, StudyContext, Table
from saddlepoint.experiments.studies.common import plot_table
from saddlepoint.train.generative import GenerativeAttackConfig, train_generative_attack
from saddlepoint.viz.grids import generative_figure


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
) -> dict:
    """Train the attacker network per (mode, t); C1 (attacked) and C2 (transfer) accuracy."""
    params = {
        "t": list(t),
        "modes": list(modes),
        "classifier": classifier,
        "classifier_epochs": classifier_epochs,
        "attacker_epochs": attacker_epochs,
        "clean_epochs": clean_epochs,
        "width": width,
        "loss": loss,
        "train_limit": ctx.train_limit,
    }

    def build(section: Section) -> None:
        rows, attackers = [], {}
        for mode in modes:
            for intensity in t:
                config = GenerativeAttackConfig(
                    t=intensity,
                    mode=mode,
                    classifier=classifier,
                    classifier_epochs=classifier_epochs,
                    attacker_epochs=attacker_epochs,
                    clean_epochs=clean_epochs,
                    width=width,
                    loss=loss,
                    seed=ctx.seed,
                    device=ctx.device,
                )
                run = train_generative_attack(ctx.training_data(), config, progress=ctx.progress)
                rows += run.history
                attackers[(mode, intensity)] = run.attacker.cpu()
        columns = list(rows[0])
        history = Table("history", columns, [[r[c] for c in columns] for r in rows], "per epoch")
        final = [r for r in rows if r["epoch"] == attacker_epochs]
        headline = [
            "mode",
            "t",
            "c1_clean_accuracy",
            "c1_attacked_accuracy",
            "c2_clean_accuracy",
            "c2_attacked_accuracy",
        ]
        table = Table(
            "final",
            headline,
            [[r[c] for c in headline] for r in final],
            "after the last attacker epoch",
        )
        section.tables += [table, history]
        for mode in modes:
            for model in ("c1", "c2"):
                sub = Table("final", headline, [row for row in table.rows if row[0] == mode])
                long = Table(
                    "long",
                    ["t", "kind", "accuracy"],
                    [
                        [row[1], kind, row[headline.index(f"{model}_{kind}_accuracy")]]
                        for row in sub.rows
                        for kind in ("clean", "attacked")
                    ],
                )
                plot_table(
                    long,
                    ctx.figure(
                        section, f"{mode}-{model}.png", f"{model.upper()} accuracy vs t, {mode}"
                    ),
                    x="t",
                    y="accuracy",
                    by="kind",
                    logx=len(t) > 1,
                    title=f"{model.upper()} test accuracy vs intensity t ({mode})",
                )
        generative_figure(
            attackers,
            ctx.data.test.images[:6],
            ctx.figure(section, "attacks-per-t.png", "original | perturbation | attacked, per t"),
        )
        section.text = (
            "An encoder-decoder maps each image to a perturbation of intensity at most t. "
            "Consecutive: C1 is trained, frozen, and the attacker learns to fool it. Alternating: "
            "after clean epochs, attacker and C1 take turns batch by batch. C2 (same architecture, "
            "another seed, never shown attacked data) measures how the attack transfers."
        )

    ctx.section("generative", "Generative attacker", params, build)
    return {}
