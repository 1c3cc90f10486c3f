"""White-box attack studies: the grid search (seed 000 §2), PGD until convergence (seed 000
§4.3.2) and minimal perturbations, FGSM versus DeepFool (seed 003)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from saddlepoint.attacks import PGD, build_attack
from saddlepoint.defenses import AdversarialTraining
from saddlepoint.experiments.engine import run_experiment
from saddlepoint.experiments.spec import parse_spec
from saddlepoint.experiments.store import ResultsStore
from saddlepoint.experiments.studies.base import Section, StudyContext, Table
from saddlepoint.experiments.studies.common import (
    MODEL_COLUMNS,
    model_row,
    plot_table,
    record_pgd_curves,
)
from saddlepoint.viz.grids import adversarial_grid


def attack_grid(
    ctx: StudyContext,
    *,
    model: str = "grid-cnn",
    epochs: int = 2,
    images: int = 1000,
    eps: Sequence[float] = (0.05, 0.1, 0.2, 0.3),
    eta: Sequence[float] = (0.01, 0.02, 0.04),
    steps: Sequence[int] = tuple(range(1, 9)),
    losses: Sequence[str] = ("ce", "mse"),
    norms: Sequence[str] = ("linf", "l2"),
) -> dict:
    """PGD grid over eps, step eta, steps n, loss and random start, Linf and L2 (seed 000 §2)."""
    net, meta = ctx.model("target", model, epochs=epochs)
    checkpoint = ctx.folder / "models" / "target.safetensors"
    p = math.prod(ctx.data.shape)
    params = {
        "model": model,
        "epochs": epochs,
        "images": images,
        "eps": list(eps),
        "eta": list(eta),
        "steps": list(steps),
        "losses": list(losses),
        "norms": list(norms),
    }

    store_path = ctx.store_path("grid", params)

    def grid(section: Section) -> None:
        for norm in norms:
            scale = math.sqrt(p) if norm == "l2" else 1.0  # eps_2 = sqrt(p) * eps_inf
            spec = parse_spec(
                {
                    "name": f"grid-{norm}",
                    "checkpoints": [str(checkpoint)],
                    "dataset": {"split": "test", "limit": images},
                    "attack": "pgd",
                    "grid": {
                        "eps": [e * scale for e in eps],
                        "step": [s * scale for s in eta],
                        "steps": list(steps),
                        "loss": list(losses),
                        "random_start": [True, False],
                    },
                    "fixed": {"norm": norm, "seed": ctx.seed},
                }
            )
            run_experiment(spec, store_path, progress=ctx.progress)
        with ResultsStore(store_path) as store:
            records = store.rows()
        columns = [
            "norm",
            "omega",
            "eps",
            "eta",
            "n",
            "loss",
            "random start",
            "loss value",
            "accuracy",
        ]
        rows = []
        for r in records:
            scale = math.sqrt(p) if r["param_norm"] == "l2" else 1.0
            rows.append(
                [
                    r["param_norm"],
                    round(r["param_eps"] / scale, 6),
                    r["param_eps"],
                    round(r["param_step"] / scale, 6),
                    r["param_steps"],
                    r["param_loss"],
                    bool(r["param_random_start"]),
                    r["loss"],
                    r["accuracy"],
                ]
            )
        rows.sort(key=lambda r: tuple(str(v) for v in r[:7]))
        table = Table("grid", columns, rows, "every configuration (omega: the Linf-scale eps)")
        section.tables.append(Table("model", MODEL_COLUMNS, [model_row(model, net, meta)]))
        for norm in norms:
            mine = [r for r in rows if r[0] == norm]
            top = sorted(mine, key=lambda r: (r[8], -r[7]))[:10]  # ties: higher loss first
            section.tables.append(
                Table(f"top-{norm}", columns, top, f"top 10 {norm} configurations by accuracy")
            )
        section.tables.append(table)
        for norm in norms:
            sub = Table(table.name, columns, [r for r in rows if r[0] == norm])
            for x, label in (("omega", "eps"), ("n", "steps"), ("eta", "step size")):
                plot_table(
                    sub,
                    ctx.figure(
                        section, f"{norm}-accuracy-vs-{x}.png", f"{norm}: accuracy vs {label}"
                    ),
                    x=x,
                    y="accuracy",
                    by=["loss", "random start"],
                    ci=True,
                    title=f"{norm.upper()} PGD: accuracy vs {label} (mean over the rest, 95% CI)",
                )
        best = min(rows, key=lambda r: r[8])
        section.text = (
            f"{len(rows)} PGD configurations on {images} test images of {ctx.data.name} against "
            f"{model} (clean accuracy {meta['metrics']['test']['accuracy']:.4f}). L2 radii are "
            f"the Linf ones times sqrt(p) = {math.sqrt(p):.1f}, so the L2 ball reaches the Linf "
            f"ball's corners and contains it. Strongest: {best[0]} omega {best[1]:g}, eta {best[3]:g}, "
            f"n {best[4]}, loss {best[5]}, random start {best[6]}: accuracy {best[8]:.4f}. "
            "Step counts share one run and eps and random-start settings share stacked batches."
        )

    ctx.section("grid", "Attack grid search", params, grid)

    def rescaling(section: Section) -> None:
        x, y = ctx.data.test.images[:6], ctx.data.test.labels[:6]
        omega = max(eps)
        for norm in norms:
            radius = omega * (math.sqrt(p) if norm == "l2" else 1.0)
            result = PGD(norm=norm, eps=radius, steps=max(steps), step=radius / 4)(net, x, y)
            adversarial_grid(
                result,
                ctx.figure(section, f"{norm}.png", f"PGD {norm} at radius {radius:.3g}"),
                count=4,
                class_names=ctx.data.class_names,
            )
        section.text = (
            f"The same six images attacked at omega {omega:g}: Linf spreads a faint change over "
            f"every pixel; L2 at sqrt(p) * omega = {omega * math.sqrt(p):.2f} concentrates larger "
            "changes on fewer pixels."
        )

    ctx.section("rescaling", "Linf versus L2 at matched radii", params, rescaling)
    return {}


def convergence(
    ctx: StudyContext,
    *,
    models: Sequence[str] = ("mlp", "small-cnn", "mnist-cnn"),
    epochs: int = 2,
    images: int = 500,
    eps: float = 0.1,
    step: float = 0.005,
    steps: int = 200,
    tol: float = 1e-4,
) -> dict:
    """PGD run until its loss stops changing: loss and accuracy per iteration (seed 000 §4.3.2)."""
    params = {
        "models": list(models),
        "epochs": epochs,
        "images": images,
        "eps": eps,
        "step": step,
        "steps": steps,
        "tol": tol,
    }

    def build(section: Section) -> None:
        x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
        curve_rows, summary = [], []
        for name in models:
            net, meta = ctx.model(name, name, epochs=epochs)
            traced = PGD(eps=eps, steps=steps, step=step, trace=True, tol=tol)(net, x, y)
            curve_rows += [
                [name, t["iteration"], t["loss"], t["accuracy"]] for t in traced.trace or []
            ]
            evals = traced.grad_evals.float()
            summary.append(
                [
                    name,
                    meta["metrics"]["test"]["accuracy"],
                    traced.metrics()["robust_accuracy"],
                    float(evals.mean()),
                    int(evals.max()),
                ]
            )
        columns = ["model", "clean acc", "final acc", "mean steps to converge", "max steps"]
        section.tables.append(
            Table("summary", columns, summary, f"PGD Linf eps {eps:g}, tol {tol:g}")
        )
        record_pgd_curves(ctx, section, curve_rows)
        section.text = (
            f"PGD at Linf eps {eps:g} with step {step:g} for up to {steps} iterations; a sample "
            f"stops when its loss changes by less than {tol:g}. Curves average over {images} images."
        )

    ctx.section("convergence", "PGD until convergence", params, build)
    return {}


def minimal_perturbations(
    ctx: StudyContext,
    *,
    models: Sequence[str] = ("mlp", "mnist-cnn"),
    epochs: int = 2,
    images: int = 1000,
    fgsm_eps: Sequence[float] = (0.05, 0.1, 0.2, 0.3),
    finetune_epochs: int = 1,
) -> dict:
    """FGSM versus DeepFool on an MLP and a CNN, and fine-tuning on each (seed 003)."""
    params = {
        "models": list(models),
        "epochs": epochs,
        "images": images,
        "fgsm_eps": list(fgsm_eps),
        "finetune_epochs": finetune_epochs,
    }
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]

    def smallest_fgsm(net: nn.Module) -> tuple[float, float]:
        """rho_adv of the smallest FGSM eps (of fgsm_eps) that flips each image, and time."""
        best = torch.full((len(y),), float("inf"))
        seconds = 0.0
        for e in sorted(fgsm_eps):
            result = build_attack("fgsm", eps=e)(net, x, y)
            seconds += result.seconds
            rho = result.perturbation.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
            best = torch.where(result.success & best.isinf(), rho, best)
        found = best[best.isfinite()]
        return (float(found.mean()) if len(found) else float("nan")), 1000 * seconds / len(y)

    def build(section: Section) -> None:
        rows, tuned_rows = [], []
        for name in models:
            net, meta = ctx.model(name, name, epochs=epochs)
            deepfool = build_attack("deepfool")(net, x, y).metrics()
            rho_fgsm, ms_fgsm = smallest_fgsm(net)
            error = 1 - meta["metrics"]["test"]["accuracy"]
            rows.append(
                [name, error, deepfool["rho_adv"], deepfool["ms_per_sample"], rho_fgsm, ms_fgsm]
            )
            for attack in ("deepfool", "fgsm"):
                defense = AdversarialTraining(attack, eps=max(fgsm_eps), fraction=0.5)
                tuned, tmeta = ctx.finetune(
                    f"{name}-tuned-{attack}", name, epochs=finetune_epochs, defense=defense
                )
                after = build_attack("deepfool")(tuned, x, y).metrics()
                error_after = 1 - tmeta["metrics"]["test"]["accuracy"]
                tuned_rows.append([name, attack, error_after, after["rho_adv"]])
        columns = [
            "classifier",
            "test error",
            "rho_adv DeepFool",
            "ms/img DeepFool",
            "rho_adv fast gradient sign",
            "ms/img FGSM",
        ]
        section.tables.append(
            Table("minimal", columns, rows, "the DeepFool paper's table 1 format")
        )
        section.tables.append(
            Table(
                "finetuned",
                ["classifier", "fine-tuned on", "test error", "rho_adv DeepFool after"],
                tuned_rows,
                f"{finetune_epochs} epoch(s) of fine-tuning, half of each batch adversarial",
            )
        )
        section.text = (
            "rho_adv is the mean ratio ||r||_2 / ||x||_2 of the perturbation that flips each image. "
            "DeepFool finds it directly; for FGSM it is the smallest of the eps values tried "
            f"({', '.join(f'{e:g}' for e in fgsm_eps)}) that flips the image, averaged over the "
            "images some eps flips. Larger rho_adv after fine-tuning means a more robust model."
        )

    ctx.section("minimal", "Minimal perturbations: DeepFool versus FGSM", params, build)
    return {}
