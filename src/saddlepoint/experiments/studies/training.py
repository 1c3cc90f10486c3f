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
from saddlepoint.experiments.studies.base import Section, StudyContext, Table, Trained
from saddlepoint.experiments.studies.common import (
    CURVE_COLUMNS,
    MODEL_COLUMNS,
    bar_table,
    history_rows,
    model_row,
    record_pgd_curves,
    record_training_curves,
)
from saddlepoint.experiments.tasks import task
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
    head_dropout: bool = True,
    variants: Sequence[str] | None = None,
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
    Dropout follows every conv block and, with ``head_dropout``, the hidden dense layer too.
    ``variants`` runs a subset of OVERFIT_VARIANTS (default: all three per width).
    """
    for name in variants or ():
        check_choice("overfitting", "variants", name, OVERFIT_VARIANTS)
    for name, values in (("dropout_epochs", dropout_epochs), ("early_epochs", early_epochs)):
        if values is not None and len(values) != len(widths):
            raise ValueError(
                f"{name} gives {len(values)} values for {len(widths)} widths {list(widths)}; "
                "give one per width."
            )
    step = 2.5 * eps / steps if pgd_step is None else pgd_step
    pgd = dict(images=images, eps=eps, steps=steps, step=step, alpha=alpha)
    found = []
    for label, arch, options, model_args in overfit_variants(
        widths,
        overtrain_epochs,
        epochs,
        patience,
        dropout,
        dropout_epochs,
        early_epochs,
        schedule,
        lr,
    ):
        if variants is not None and label.split(" ")[1] not in variants:
            continue
        if not head_dropout and model_args:  # else the recipe of earlier runs
            model_args = {**model_args, "head_dropout": False}
        target = ctx.train(label.replace(" ", "-"), arch, model_args=model_args, **options)
        found.append(  # submitted: on a cluster every model trains and is attacked at once
            ctx.submit(
                overfit_record, target=target, label=label, random_start=pgd_random_start, **pgd
            )
        )
    found = [pending.result() for pending in found]
    ctx.section(
        "overfitting",
        "Over-fitting versus robustness",
        overfitting_section,
        found=found,
        random_start=pgd_random_start,
        setup=dict(schedule=schedule, lr=lr, overtrain_epochs=overtrain_epochs, epochs=epochs),
        early=dict(patience=patience, early_epochs=early_epochs, dropout=dropout),
        **pgd,
    )
    return {}


OVERFIT_VARIANTS = ["over-trained", "early-stopped", "dropout"]


def overfit_variants(
    widths: Sequence[str],
    overtrain_epochs: int,
    epochs: int,
    patience: int,
    dropout: float,
    dropout_epochs: Sequence[int] | None,
    early_epochs: Sequence[int] | None,
    schedule: str,
    lr: float,
) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(label, architecture, training options, model arguments) of each width's over-trained,
    early-stopped and dropout models, all with one schedule and learning rate."""
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
            (f"{arch} early-stopped", arch, {**early, **shared}, {}),
            (
                f"{arch} dropout {dropout:g}",
                arch,
                {"epochs": drop_epochs, **shared},
                {"dropout": dropout},
            ),
        ]
    return variants


@task(version=1)
def overfit_record(
    ctx: StudyContext,
    target: Trained,
    label: str,
    images: int,
    eps: float,
    steps: int,
    step: float,
    alpha: float | None,
    random_start: bool,
) -> dict[str, Any]:
    """One model's row, training history, PGD trace (cut where it settles) and PGD result."""
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
    net, meta = target.load()
    attack = PGD(eps=eps, steps=steps, step=step, random_start=random_start, trace=True)
    trace = converged(attack(net, x, y).trace or [], alpha)
    last = trace[-1]
    robust = [label, meta["metrics"]["test"]["accuracy"], last["accuracy"], last["loss"]]
    return {
        "model": dict(zip(MODEL_COLUMNS, model_row(label, net, meta))),
        "history": [dict(zip(CURVE_COLUMNS, row)) for row in history_rows(label, meta)],
        "curve": [{"model": label, **t} for t in trace],
        "robust": dict(zip(ROBUST_COLUMNS, [*robust, last["iteration"]])),
    }


ROBUST_COLUMNS = ["model", "clean acc", "PGD acc", "PGD loss", "PGD iterations"]


@task(version=1)
def overfitting_section(
    ctx: StudyContext,
    section: Section,
    found: list[dict[str, Any]],
    images: int,
    eps: float,
    steps: int,
    step: float,
    alpha: float | None,
    random_start: bool,
    setup: dict[str, Any],
    early: dict[str, Any],
) -> None:
    """The models' table, PGD results, training and PGD curves, and the text."""
    caption = "train/test loss, accuracy and confidence"
    section.tables.append(Table.of("models", MODEL_COLUMNS, [f["model"] for f in found], caption))
    stop = f"until the mean loss changes by < {alpha:g}" if alpha else f"{steps} steps"
    caption = (
        f"PGD Linf eps {eps:g}, step {step:.4g}, {'random start' if random_start else 'from x'}, "
        f"{stop} (cap {steps})"
    )
    robust = [f["robust"] for f in found]
    section.tables.append(Table.of("robust", ROBUST_COLUMNS, robust, caption))
    history = Table.of("history", CURVE_COLUMNS, [h for f in found for h in f["history"]])
    record_training_curves(ctx, section, history.rows, note=" (the six models)")
    curve = Table.of(
        "curve", ["model", "iteration", "loss", "accuracy"], [c for f in found for c in f["curve"]]
    )
    record_pgd_curves(ctx, section, curve.rows, prefix="pgd-", note=f", Linf eps {eps:g}")
    early_epochs = early["early_epochs"]
    section.text = (
        f"Each width trained three ways with one schedule ({setup['schedule']}, lr "
        f"{setup['lr']:g}): {setup['overtrain_epochs']} epochs (over-trained), "
        + (
            f"early stopping on validation loss (up to {setup['epochs']} epochs, patience "
            f"{early['patience']})"
            if early_epochs is None
            else f"stopped early at {', '.join(map(str, early_epochs))} epochs"
        )
        + f", and dropout {early['dropout']:g}. "
        "Over-fitting shows as a train/test gap and high test confidence; the PGD curves "
        f"show how fast each model's accuracy falls ({stop})."
    )


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
    adversarial_epochs: int | None = None,
    decay_on: str = "all",
    models: Sequence[str] | None = None,
) -> dict:
    """Reference, noisy training, quantization, adversarial training and both, naive and honest.

    Every model is ``model`` with ``model_args`` (seed 000: dropout), trained ``epochs`` at
    ``batch_size`` with L2 penalty ``weight_decay`` on ``decay_on`` ('all' parameters or the
    'kernels'); the adversarially trained ones ``adversarial_epochs`` (default: ``epochs``).
    ``models`` runs a subset of DEFENSE_MODELS (default: all of them). The attack is PGD at
    Linf ``eps`` with ``attack_steps`` steps of ``attack_step`` (default eps / 30; seed 000: 0.1
    at eps 0.05).
    ``adversarial`` 'fast' trains on FGSM from a random start (Wong et al.); 'pgd' on the study's
    PGD attack; ``at_fraction`` of each batch is adversarial (seed 000: 0.5). For quantized
    models a third number attacks the classifier without its quantization layer and applies the
    examples to the full model (the seed's protocol), beside naive and BPDA PGD. The robust
    accuracy column adds the strongest evaluation (``strong_steps`` per APGD run, Square with
    ``strong_queries``: the reference AutoAttack's 100 and 5,000 by default).
    """
    check_choice("defenses", "adversarial", adversarial, ["fast", "pgd"])
    for name in models or ():
        check_choice("defenses", "models", name, DEFENSE_MODELS)
    step = eps / 30 if attack_step is None else attack_step
    evaluation = dict(images=images, eps=eps, attack_steps=attack_steps, step=step)
    checks = dict(audit_images=audit_images, audit_steps=audit_steps, audit_queries=audit_queries)
    strong = dict(strong_steps=strong_steps, strong_queries=strong_queries)
    found = []
    for label, args, defense in defense_plans(
        noise, quantize, model_args, eps, adversarial, at_fraction, attack_steps, step
    ):
        key = label.split(" (")[0].replace(" ", "-").replace("&", "and")
        if models is not None and key not in models:
            continue
        recipe = defense_recipe(
            defense, epochs, adversarial_epochs, weight_decay, batch_size, decay_on
        )
        target = ctx.train(key, model, model_args=args, defense=defense, **recipe)
        # each model's row is a task of its own: its evaluation can take an hour
        record = ctx.submit(  # on a cluster every model is trained and evaluated at once
            defense_record,
            target=target,
            label=label,
            evaluation_name=STRONGEST_ATTACK,  # a stronger evaluation re-runs the rows
            **evaluation,
            **checks,
            **strong,
        )
        found.append(record)
    found = [pending.result() for pending in found]
    ctx.section(
        "defenses", "Defenses, naive and honest", defenses_section, found=found, **evaluation
    )
    return {}


def defense_recipe(
    defense: Any,
    epochs: int,
    adversarial_epochs: int | None,
    weight_decay: float,
    batch_size: int,
    decay_on: str,
) -> dict[str, Any]:
    """How one defended model trains: its epochs (``adversarial_epochs`` for the adversarially
    trained ones, when given), batch size and L2 penalty (``decay_on`` only where not 'all',
    so the recipes of earlier runs keep their keys)."""
    recipe: dict[str, Any] = {"epochs": epochs, "weight_decay": weight_decay}
    recipe["batch_size"] = batch_size
    if isinstance(defense, AdversarialTraining) and adversarial_epochs is not None:
        recipe["epochs"] = adversarial_epochs
    if decay_on != "all":
        recipe["decay_on"] = decay_on
    return recipe


DEFENSE_MODELS = [
    "reference",
    "noisy-training",
    "quantized",
    "adversarial-training",
    "quantized-and-adversarial-training",
]


def defense_plans(
    noise: float,
    quantize: str,
    model_args: dict[str, Any] | None,
    eps: float,
    adversarial: str,
    at_fraction: float,
    attack_steps: int,
    step: float,
) -> list[tuple[str, dict[str, Any], Any]]:
    """(label, model arguments, training defense) of the reference, noisy training,
    quantization, adversarial training and quantization with adversarial training (through
    the identity: BPDA)."""
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
    return [
        ("reference", base_args, None),
        (f"noisy training (gaussian {noise:g})", base_args, NoiseTraining("gaussian", scale=noise)),
        (f"quantized ({quantize})", quantized, None),
        (at_label, base_args, adv),
        ("quantized & adversarial training", quantized, adv_bpda),
    ]


@task(version=1)
def defense_record(
    ctx: StudyContext,
    target: Trained,
    label: str,
    evaluation_name: str,
    images: int,
    eps: float,
    attack_steps: int,
    step: float,
    audit_images: int,
    audit_steps: int,
    audit_queries: int,
    strong_steps: int,
    strong_queries: int,
) -> dict[str, Any]:
    """One defended model, naive and honest: naive PGD, PGD crafted without the quantizer,
    BPDA PGD, the worst case of BPDA PGD and the strongest evaluation, and the audit."""
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
    net, meta = target.load()
    attack = PGD(eps=eps, steps=attack_steps, step=step, restarts=1)
    strong = strongest_attack(
        "linf", eps, seed=ctx.seed, steps=strong_steps, queries=strong_queries
    )
    naive = attack(net, x, y).metrics()["robust_accuracy"]
    without = float("nan")
    if isinstance(net, QuantizedModel):
        crafted = attack(net.model, x, y).adversarial
        without = float((predict_logits(net, crafted).argmax(1) == y).float().mean())
    with bpda(net):
        honest = attack(net, x, y)
        robust = worst_case({f"PGD-{attack_steps}": honest, STRONGEST_LABEL: strong(net, x, y)})
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
    return {
        "model": label,
        "clean": meta["metrics"]["test"]["accuracy"],
        "naive": naive,
        "without": without,
        "bpda": honest.metrics()["robust_accuracy"],
        "robust": robust.accuracy,
        "audit": "pass" if not failed else "FAIL: " + ", ".join(failed),
    }


def defense_columns(n: int) -> dict[str, str]:
    """The defenses table's column for each field of a defense record (PGD with n steps)."""
    return {
        "model": "model",
        "clean": "clean acc",
        "naive": f"naive PGD-{n}",
        "without": f"PGD-{n} without the quantizer",
        "bpda": f"BPDA PGD-{n}",
        "robust": f"robust accuracy (BPDA, worst of PGD-{n} and {STRONGEST_LABEL})",
        "audit": "audit (BPDA)",
    }


@task(version=1)
def defenses_section(
    ctx: StudyContext,
    section: Section,
    found: list[dict[str, Any]],
    images: int,
    eps: float,
    attack_steps: int,
    step: float,
) -> None:
    """The defenses table, its bar chart and the text on naive and honest numbers."""
    n, columns = attack_steps, defense_columns(attack_steps)
    records = [{columns[k]: v for k, v in record.items()} for record in found]
    caption = f"Linf eps {eps:g}, PGD {n} steps of {step:.4g}, {images} images"
    table = Table.of("defenses", list(columns.values()), records, caption)
    section.tables.append(table)
    bar_table(
        table,
        ctx.figure(section, "accuracy.png", "clean and attacked accuracy per defense"),
        label="model",
        columns=[columns[k] for k in ("clean", "naive", "without", "robust")],
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
