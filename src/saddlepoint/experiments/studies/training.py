"""Studies of how training shapes robustness: over-fitting (seed 000 §4) and defenses
(seed 000 §5, seed 002 §3), evaluated honestly (BPDA, the audit) beside the naive numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from saddlepoint.attacks import PGD
from saddlepoint.defenses import AdversarialTraining, NoiseTraining, bpda
from saddlepoint.evaluate.audit import audit
from saddlepoint.evaluate.robustness import (
    STRONGEST_ATTACK,
    STRONGEST_LABEL,
    strongest_attack,
    worst_case,
)
from saddlepoint.experiments.studies.base import Section, StudyContext, Table
from saddlepoint.experiments.studies.common import MODEL_COLUMNS, model_row, record_pgd_curves


def overfitting(
    ctx: StudyContext,
    *,
    widths: Sequence[str] = ("small-cnn", "large-cnn"),
    overtrain_epochs: int = 20,
    epochs: int = 10,
    patience: int = 2,
    dropout: float = 0.3,
    images: int = 500,
    eps: float = 0.1,
    steps: int = 40,
) -> dict:
    """Over-trained, early-stopped and dropout variants of two widths; PGD curves per model."""
    params = {
        "widths": list(widths),
        "overtrain_epochs": overtrain_epochs,
        "epochs": epochs,
        "patience": patience,
        "dropout": dropout,
        "images": images,
        "eps": eps,
        "steps": steps,
    }
    variants: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []
    for arch in widths:
        variants += [
            (
                f"{arch} over-trained",
                arch,
                {"epochs": overtrain_epochs, "schedule": "constant"},
                {},
            ),
            (f"{arch} early-stopped", arch, {"epochs": epochs, "patience": patience}, {}),
            (f"{arch} dropout {dropout:g}", arch, {"epochs": epochs}, {"dropout": dropout}),
        ]

    def build(section: Section) -> None:
        x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
        rows, curves, robust = [], [], []
        for label, arch, options, model_args in variants:
            key = label.replace(" ", "-")
            net, meta = ctx.model(key, arch, model_args=model_args, **options)
            rows.append(model_row(label, net, meta))
            traced = PGD(eps=eps, steps=steps, step=2.5 * eps / steps, trace=True)(net, x, y)
            curves += [
                [label, t["iteration"], t["loss"], t["accuracy"]] for t in traced.trace or []
            ]
            robust.append(
                [label, meta["metrics"]["test"]["accuracy"], traced.metrics()["robust_accuracy"]]
            )
        section.tables.append(
            Table("models", MODEL_COLUMNS, rows, "train/test loss, accuracy and confidence")
        )
        section.tables.append(
            Table("robust", ["model", "clean acc", f"PGD-{steps} acc"], robust, f"Linf eps {eps:g}")
        )
        record_pgd_curves(ctx, section, curves, prefix="pgd-", note=f", Linf eps {eps:g}")
        section.text = (
            f"Each width trained three ways: {overtrain_epochs} epochs at a constant learning "
            f"rate (over-trained), early stopping on validation loss (patience {patience}), and "
            f"dropout {dropout:g}. Over-fitting shows as a train/test gap and high test "
            "confidence; the PGD curves show how fast each model's accuracy falls."
        )

    ctx.section("overfitting", "Over-fitting versus robustness", params, build)
    return {}


def defenses(
    ctx: StudyContext,
    *,
    model: str = "mnist-cnn",
    epochs: int = 4,
    eps: float = 0.3,
    noise: float = 0.3,
    quantize: str = "tanh:8",
    images: int = 500,
    audit_images: int = 200,
    strong_steps: int = 100,
) -> dict:
    """Reference, noisy training, quantization, adversarial training and both, naive and honest."""
    params = {
        "model": model,
        "epochs": epochs,
        "eps": eps,
        "noise": noise,
        "quantize": quantize,
        "images": images,
        "audit_images": audit_images,
        "evaluation": STRONGEST_ATTACK,  # a stronger evaluation re-runs the section
        "strong_steps": strong_steps,
    }
    fast_at = AdversarialTraining("fgsm-rs", eps=eps, warmup_epochs=1)
    fast_at_bpda = AdversarialTraining("fgsm-rs", eps=eps, warmup_epochs=1, bpda="identity")
    plans = [
        ("reference", {}, None),
        (f"noisy training (gaussian {noise:g})", {}, NoiseTraining("gaussian", scale=noise)),
        (f"quantized ({quantize})", {"quantize": quantize}, None),
        ("adversarial training (fast)", {}, fast_at),
        ("quantized & adversarial training", {"quantize": quantize}, fast_at_bpda),
    ]

    def build(section: Section) -> None:
        x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
        attack = PGD(eps=eps, steps=40, step=eps / 30, restarts=1)
        strong = strongest_attack("linf", eps, seed=ctx.seed, steps=strong_steps)
        rows = []
        for label, model_args, defense in plans:
            key = label.split(" (")[0].replace(" ", "-").replace("&", "and")
            net, meta = ctx.model(key, model, epochs=epochs, model_args=model_args, defense=defense)
            naive = attack(net, x, y).metrics()["robust_accuracy"]
            with bpda(net):
                honest_result = attack(net, x, y)
                robust = worst_case({"PGD-40": honest_result, STRONGEST_LABEL: strong(net, x, y)})
                checks = audit(
                    net,
                    x[:audit_images],
                    y[:audit_images],
                    eps=eps,
                    queries=500,
                    strong_steps=strong_steps,
                )
            failed = [c.name for c in checks.checks if not c.passed]
            rows.append(
                [
                    label,
                    meta["metrics"]["test"]["accuracy"],
                    naive,
                    honest_result.metrics()["robust_accuracy"],
                    robust.accuracy,
                    "pass" if not failed else "FAIL: " + ", ".join(failed),
                ]
            )
        columns = [
            "model",
            "clean acc",
            "naive PGD-40",
            "BPDA PGD-40",
            f"robust accuracy (BPDA, worst of PGD-40 and {STRONGEST_LABEL})",
            "audit (BPDA)",
        ]
        section.tables.append(
            Table("defenses", columns, rows, f"Linf eps {eps:g}, {images} images")
        )
        section.text = (
            "Naive PGD differentiates through the model as it is; quantization has no gradient "
            "there, so naive PGD fails and the model looks robust. BPDA replaces the quantizer's "
            "gradient by the identity's (straight-through), so BPDA PGD-40 attacks the model "
            "itself. The robust-accuracy column is the per-sample worst case of BPDA "
            f"PGD-40 and {STRONGEST_LABEL} (APGD on cross-entropy, then on the targeted DLR margin "
            "towards each of the top 9 wrong classes, then on the DLR margin, each on the images "
            "still robust): the number to quote, since a cross-entropy attack alone overstates "
            "the robustness of fast adversarial training. The audit runs under "
            "BPDA too. For models without a quantizer the naive and BPDA columns agree."
        )

    ctx.section("defenses", "Defenses, naive and honest", params, build)
    return {}
