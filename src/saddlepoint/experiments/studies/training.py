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
from saddlepoint.experiments.studies.common import (
    MODEL_COLUMNS,
    bar_table,
    history_rows,
    model_row,
    record_pgd_curves,
    record_training_curves,
)
from saddlepoint.models.preprocess import QuantizedModel
from saddlepoint.modes import predict_logits
from saddlepoint.validation import check_choice


def overfitting(
    ctx: StudyContext,
    *,
    widths: Sequence[str] = ("small-cnn", "large-cnn"),
    overtrain_epochs: int = 20,
    epochs: int = 10,
    patience: int = 2,
    dropout: float = 0.3,
    dropout_epochs: Sequence[int] | None = None,
    early_epochs: Sequence[int] | None = None,
    schedule: str = "onecycle",
    lr: float = 3e-3,
    images: int = 500,
    eps: float = 0.1,
    steps: int = 40,
    pgd_step: float | None = None,
    alpha: float | None = None,
    pgd_random_start: bool = True,
) -> dict:
    """Over-trained, early-stopped and dropout variants of two widths; PGD curves per model.

    Every model uses the same learning-rate ``schedule`` and ``lr``, so the variants differ only
    in epochs, early stopping and dropout. The early-stopped model trains up to ``epochs`` and
    stops after ``patience`` epochs without a better validation loss (keeping the best weights).
    ``dropout_epochs`` gives each width's dropout model its own epochs (seed 000: 14 and 17);
    ``early_epochs`` trains each width's early-stopped model exactly that many epochs instead
    (the epochs at which the seed's early stopping ended: 14 and 7).
    PGD (Linf ``eps``, step ``pgd_step``, default 2.5 eps / steps) runs up to ``steps`` steps;
    with ``alpha`` it stops once the mean loss changes by less than alpha between iterates
    (seed 000 §4.3.2), and the accuracy reported is the one at that iterate.
    """
    for name, values in (("dropout_epochs", dropout_epochs), ("early_epochs", early_epochs)):
        if values is not None and len(values) != len(widths):
            raise ValueError(
                f"{name} gives {len(values)} values for {len(widths)} widths {list(widths)}; "
                "give one per width."
            )
    step = 2.5 * eps / steps if pgd_step is None else pgd_step
    params = {
        "widths": list(widths),
        "overtrain_epochs": overtrain_epochs,
        "epochs": epochs,
        "patience": patience,
        "dropout": dropout,
        "dropout_epochs": list(dropout_epochs) if dropout_epochs is not None else None,
        "early_epochs": list(early_epochs) if early_epochs is not None else None,
        "schedule": schedule,
        "lr": lr,
        "images": images,
        "eps": eps,
        "steps": steps,
        "pgd_step": step,
        "alpha": alpha,
        "pgd_random_start": pgd_random_start,
    }
    shared = {"schedule": schedule, "lr": lr}
    variants: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []
    for i, arch in enumerate(widths):
        drop_epochs = epochs if dropout_epochs is None else int(dropout_epochs[i])
        early: dict[str, Any] = (
            {"epochs": epochs, "patience": patience}
            if early_epochs is None
            else {"epochs": int(early_epochs[i])}
        )
        variants += [
            (f"{arch} over-trained", arch, {"epochs": overtrain_epochs, **shared}, {}),
            (
                f"{arch} early-stopped",
                arch,
                {**early, **shared},
                {},
            ),
            (
                f"{arch} dropout {dropout:g}",
                arch,
                {"epochs": drop_epochs, **shared},
                {"dropout": dropout},
            ),
        ]

    def build(section: Section) -> None:
        x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
        rows, curves, robust, history = [], [], [], []
        for label, arch, options, model_args in variants:
            key = label.replace(" ", "-")
            net, meta = ctx.model(key, arch, model_args=model_args, **options)
            rows.append(model_row(label, net, meta))
            history += history_rows(label, meta)
            traced = PGD(
                eps=eps, steps=steps, step=step, random_start=pgd_random_start, trace=True
            )(net, x, y)
            trace = converged(traced.trace or [], alpha)
            curves += [[label, t["iteration"], t["loss"], t["accuracy"]] for t in trace]
            robust.append(
                [
                    label,
                    meta["metrics"]["test"]["accuracy"],
                    trace[-1]["accuracy"],
                    trace[-1]["loss"],
                    trace[-1]["iteration"],
                ]
            )
        section.tables.append(
            Table("models", MODEL_COLUMNS, rows, "train/test loss, accuracy and confidence")
        )
        stop = f"until the mean loss changes by < {alpha:g}" if alpha else f"{steps} steps"
        section.tables.append(
            Table(
                "robust",
                ["model", "clean acc", "PGD acc", "PGD loss", "PGD iterations"],
                robust,
                f"PGD Linf eps {eps:g}, step {step:.4g}, "
                f"{'random start' if pgd_random_start else 'from x'}, {stop} (cap {steps})",
            )
        )
        record_training_curves(ctx, section, history, note=" (the six models)")
        record_pgd_curves(ctx, section, curves, prefix="pgd-", note=f", Linf eps {eps:g}")
        section.text = (
            f"Each width trained three ways with one schedule ({schedule}, lr {lr:g}): "
            f"{overtrain_epochs} epochs (over-trained), "
            + (
                f"early stopping on validation loss (up to {epochs} epochs, patience {patience})"
                if early_epochs is None
                else f"stopped early at {', '.join(map(str, early_epochs))} epochs"
            )
            + f", and dropout {dropout:g}. "
            "Over-fitting shows as a train/test gap and high test confidence; the PGD curves "
            f"show how fast each model's accuracy falls ({stop})."
        )

    ctx.section("overfitting", "Over-fitting versus robustness", params, build)
    return {}


def converged(trace: list[dict[str, Any]], alpha: float | None) -> list[dict[str, Any]]:
    """The PGD trace up to the first iterate whose mean loss differs from the previous one's
    by less than ``alpha`` (all of it without alpha, or when the loss never settles)."""
    if not alpha:
        return trace
    for i in range(1, len(trace)):
        if abs(trace[i]["loss"] - trace[i - 1]["loss"]) < alpha:
            return trace[: i + 1]
    return trace


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
    strong_queries: int = 5000,
    audit_steps: int = 40,
    audit_queries: int = 500,
    model_args: dict[str, Any] | None = None,
    weight_decay: float = 0.0,
    batch_size: int = 64,
    attack_steps: int = 40,
    attack_step: float | None = None,
    adversarial: str = "fast",
    at_fraction: float = 1.0,
) -> dict:
    """Reference, noisy training, quantization, adversarial training and both, naive and honest.

    Every model is ``model`` with ``model_args`` (seed 000: dropout), trained ``epochs`` at
    ``batch_size`` with L2 penalty ``weight_decay``. The attack is PGD at Linf ``eps`` with
    ``attack_steps`` steps of ``attack_step`` (default eps / 30; seed 000: 0.1 at eps 0.05).
    ``adversarial`` 'fast' trains on FGSM from a random start (Wong et al.); 'pgd' on the study's
    PGD attack; ``at_fraction`` of each batch is adversarial (seed 000: 0.5). For quantized
    models a third number attacks the classifier without its quantization layer and applies the
    examples to the full model (the seed's protocol), beside naive and BPDA PGD. The robust
    accuracy column adds the strongest evaluation (``strong_steps`` per APGD run, Square with
    ``strong_queries``: the reference AutoAttack's 100 and 5,000 by default).
    """
    check_choice("defenses", "adversarial", adversarial, ["fast", "pgd"])
    step = eps / 30 if attack_step is None else attack_step
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
        "strong_queries": strong_queries,
        "audit_steps": audit_steps,
        "audit_queries": audit_queries,
        "model_args": model_args or {},
        "weight_decay": weight_decay,
        "batch_size": batch_size,
        "attack_steps": attack_steps,
        "attack_step": step,
        "adversarial": adversarial,
        "at_fraction": at_fraction,
    }
    if adversarial == "fast":
        at_kwargs: dict[str, Any] = {"warmup_epochs": 1}
        at_name, at_label = "fgsm-rs", "adversarial training (fast)"
    else:
        at_kwargs = {"steps": attack_steps, "step": step}
        at_name, at_label = "pgd", "adversarial training (PGD)"
    if at_fraction < 1:
        at_label = at_label[:-1] + f", {at_fraction:.0%} of each batch)"
    adv = AdversarialTraining(at_name, eps=eps, fraction=at_fraction, **at_kwargs)
    adv_bpda = AdversarialTraining(
        at_name, eps=eps, fraction=at_fraction, bpda="identity", **at_kwargs
    )
    base_args = dict(model_args or {})
    quantized = {**base_args, "quantize": quantize}
    plans = [
        ("reference", base_args, None),
        (f"noisy training (gaussian {noise:g})", base_args, NoiseTraining("gaussian", scale=noise)),
        (f"quantized ({quantize})", quantized, None),
        (at_label, base_args, adv),
        ("quantized & adversarial training", quantized, adv_bpda),
    ]
    train_options: dict[str, Any] = {"weight_decay": weight_decay, "batch_size": batch_size}

    def build(section: Section) -> None:
        x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
        attack = PGD(eps=eps, steps=attack_steps, step=step, restarts=1)
        strong = strongest_attack(
            "linf", eps, seed=ctx.seed, steps=strong_steps, queries=strong_queries
        )
        rows = []
        for label, args, defense in plans:
            key = label.split(" (")[0].replace(" ", "-").replace("&", "and")
            net, meta = ctx.model(
                key, model, epochs=epochs, model_args=args, defense=defense, **train_options
            )

            def evaluate(net: Any = net, meta: dict = meta, label: str = label) -> list:
                naive = attack(net, x, y).metrics()["robust_accuracy"]
                without = float("nan")
                if isinstance(net, QuantizedModel):
                    crafted = attack(net.model, x, y).adversarial
                    without = float((predict_logits(net, crafted).argmax(1) == y).float().mean())
                with bpda(net):
                    honest_result = attack(net, x, y)
                    robust = worst_case(
                        {f"PGD-{attack_steps}": honest_result, STRONGEST_LABEL: strong(net, x, y)}
                    )
                    checks = audit(
                        net,
                        x[:audit_images],
                        y[:audit_images],
                        eps=eps,
                        queries=audit_queries,
                        steps=audit_steps,
                        strong_steps=strong_steps,
                        strong_queries=strong_queries,
                    )
                failed = [c.name for c in checks.checks if not c.passed]
                return [
                    label,
                    meta["metrics"]["test"]["accuracy"],
                    naive,
                    without,
                    honest_result.metrics()["robust_accuracy"],
                    robust.accuracy,
                    "pass" if not failed else "FAIL: " + ", ".join(failed),
                ]

            # each model's row is kept as it finishes: its evaluation can take an hour
            rows.append(ctx.kept(f"defenses-{key}", {**params, "label": label}, evaluate))
        n = attack_steps
        columns = [
            "model",
            "clean acc",
            f"naive PGD-{n}",
            f"PGD-{n} without the quantizer",
            f"BPDA PGD-{n}",
            f"robust accuracy (BPDA, worst of PGD-{n} and {STRONGEST_LABEL})",
            "audit (BPDA)",
        ]
        table = Table(
            "defenses",
            columns,
            rows,
            f"Linf eps {eps:g}, PGD {n} steps of {step:.4g}, {images} images",
        )
        section.tables.append(table)
        bar_table(
            table,
            ctx.figure(section, "accuracy.png", "clean and attacked accuracy per defense"),
            label="model",
            columns=[columns[1], columns[2], columns[3], columns[5]],
            names=[
                "clean",
                f"naive PGD-{n}",
                f"PGD-{n} without the quantizer",
                "robust accuracy (BPDA, worst case)",
            ],
            title=f"Accuracy per defense, Linf eps {eps:g}",
        )
        section.text = (
            "Naive PGD differentiates through the model as it is; quantization has no gradient "
            "there, so naive PGD fails and the model looks robust. 'Without the quantizer' crafts "
            "PGD on the classifier alone and applies it to the quantized model (a transfer from "
            "the same weights). BPDA replaces the quantizer's gradient by the identity's "
            f"(straight-through), so BPDA PGD-{n} attacks the model itself. The robust-accuracy "
            f"column is the per-sample worst case of BPDA PGD-{n} and {STRONGEST_LABEL}, each "
            "attack of it run on the images the previous ones left: the number to quote, since a "
            "cross-entropy attack alone overstates the robustness of fast adversarial training. "
            "The audit runs under BPDA too. For models without a quantizer the naive and BPDA "
            "columns agree."
        )

    ctx.section("defenses", "Defenses, naive and honest", params, build)
    return {}
