"""White-box attack studies: the grid search (seed 000 §2), PGD until convergence (seed 000
§4.3.2) and minimal perturbations, FGSM versus DeepFool (seed 003)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from torch import nn

from saddlepoint.attacks import PGD, build_attack
from saddlepoint.attacks.result import AttackResult
from saddlepoint.defenses import AdversarialTraining
from saddlepoint.experiments.engine import current_rows, run_experiment
from saddlepoint.experiments.spec import parse_spec
from saddlepoint.experiments.store import ResultsStore
from saddlepoint.experiments.studies.base import Section, StudyContext, Table
from saddlepoint.experiments.studies.common import (
    MODEL_COLUMNS,
    model_row,
    plot_table,
    record_pgd_curves,
)
from saddlepoint.validation import check_choice
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
    l2_step: str = "steepest",
    top_eps: dict[str, float] | None = None,
    figure_eps: float | None = None,
    figure_eta: float | None = None,
    figure_steps: int | None = None,
    figure_loss: str = "ce",
) -> dict:
    """PGD grid over eps, step eta, steps n, loss and start omega, Linf and L2 (seed 000 §2).

    Every value is on the Linf scale: the L2 radius is eps * sqrt(p). ``l2_step`` 'sign' moves
    every pixel by eta (seed 000's L2 step, of L2 length eta * sqrt(p)); 'steepest' steps eta *
    sqrt(p) along grad / ||grad||_2. ``top_eps`` fixes the radius of each norm's top-10 table
    (seed: linf 8/255, l2 4/255); by default the largest eps. ``figure_*`` set the Linf-versus-L2
    image comparison (seed Fig 7: eta 1/255, n 20, CE).
    """
    check_choice("attack-grid", "l2_step", l2_step, ["steepest", "sign"])
    net, meta = ctx.model("target", model, epochs=epochs)
    checkpoint = ctx.folder / "models" / "target.safetensors"
    p = math.prod(ctx.data.shape)
    tops = {norm: float(max(eps)) for norm in norms}
    for norm, value in (top_eps or {}).items():
        if norm not in norms:
            raise ValueError(f"top_eps names norm {norm!r}; the grid's norms are {list(norms)}.")
        tops[norm] = float(value)
    params = {
        "model": model,
        "epochs": epochs,
        "images": images,
        "eps": list(eps),
        "eta": list(eta),
        "steps": list(steps),
        "losses": list(losses),
        "norms": list(norms),
        "l2_step": l2_step,
    }

    store_path = ctx.store_path("grid", params)

    def radius_scale(norm: str) -> float:
        return math.sqrt(p) if norm == "l2" else 1.0  # eps_2 = sqrt(p) * eps_inf

    def step_scale(norm: str) -> float:
        return radius_scale(norm) if norm == "l2" and l2_step == "steepest" else 1.0

    def grid(section: Section) -> None:
        started = time.perf_counter()
        current: dict[str, str] = {}  # every norm's configurations, each with its inputs digest
        for norm in norms:
            fixed: dict = {"norm": norm, "seed": ctx.seed}
            if norm == "l2" and l2_step == "sign":
                fixed["step_direction"] = "sign"
            spec = parse_spec(
                {
                    "name": f"grid-{norm}",
                    "checkpoints": [str(checkpoint)],
                    "dataset": {  # the options the study loaded (the root is not recorded)
                        "split": "test",
                        "limit": images,
                        "options": dict(ctx.dataset_options),
                    },
                    "attack": "pgd",
                    "grid": {
                        "eps": [e * radius_scale(norm) for e in eps],
                        "step": [s * step_scale(norm) for s in eta],
                        "steps": list(steps),
                        "loss": list(losses),
                        "random_start": [True, False],
                    },
                    "fixed": fixed,
                }
            )
            run_experiment(spec, store_path, progress=ctx.progress)
            current.update(current_rows(spec))
        attack_seconds = time.perf_counter() - started
        with ResultsStore(store_path) as store:
            records = store.rows(current)
        columns = GRID_COLUMNS
        rows = []
        for r in records:
            norm = r["param_norm"]
            rows.append(
                [
                    norm,
                    round(r["param_eps"] / radius_scale(norm), 6),
                    r["param_eps"],
                    round(r["param_step"] / step_scale(norm), 6),
                    r["param_steps"],
                    r["param_loss"],
                    "omega_rand" if r["param_random_start"] else "omega_0",
                    r["loss"],
                    r["accuracy"],
                ]
            )
        rows.sort(key=lambda r: tuple(str(v) for v in r[:7]))
        table = Table("grid", columns, rows, "every configuration (eps_inf: the Linf-scale eps)")
        section.tables.append(Table("model", MODEL_COLUMNS, [model_row(model, net, meta)]))
        for norm in norms:
            at = [r for r in rows if r[0] == norm and math.isclose(r[1], tops[norm], rel_tol=1e-4)]
            top = sorted(at, key=lambda r: (r[8], -r[7]))[:10]  # ties: higher loss first
            radius = tops[norm] * radius_scale(norm)
            section.tables.append(
                Table(
                    f"top-{norm}",
                    columns,
                    top,
                    f"top 10 {norm} configurations by accuracy at eps_inf {tops[norm]:.4g} "
                    f"({norm} radius {radius:.4g})",
                )
            )
        section.tables.append(table)
        for norm in norms:
            sub = Table(table.name, columns, [r for r in rows if r[0] == norm])
            for x, label in (("eps_inf", "eps"), ("n", "steps"), ("eta", "step size")):
                plot_table(
                    sub,
                    ctx.figure(
                        section, f"{norm}-accuracy-vs-{x}.png", f"{norm}: accuracy vs {label}"
                    ),
                    x=x,
                    y="accuracy",
                    by=["loss", "omega"],
                    ci=True,
                    title=f"{norm.upper()} PGD: accuracy vs {label} (mean over the rest, 95% CI)",
                )
        n_max = max(steps)
        for norm in norms:  # seed Figs 1/2: one step (FGSM / FGM) against the full PGD
            ends = Table(
                table.name,
                columns,
                [r for r in rows if r[0] == norm and r[4] in (1, n_max) and r[6] == "omega_0"],
            )
            plot_table(
                ends,
                ctx.figure(
                    section,
                    f"{norm}-one-step-vs-pgd.png",
                    f"{norm}: one step (n = 1) against PGD (n = {n_max}), from x",
                ),
                x="eps_inf",
                y="accuracy",
                by=["n", "loss"],
                ci=True,
                title=f"{norm.upper()}: n = 1 against n = {n_max}, omega_0 (mean over eta, 95% CI)",
            )
        best = min(rows, key=lambda r: r[8])
        how = (
            "every pixel moves by eta per step (a sign step, as the seed)"
            if l2_step == "sign"
            else "each step has L2 length eta * sqrt(p) along the normalised gradient"
        )
        section.text = (
            f"{len(rows)} PGD configurations on {images} test images of {ctx.data.name} against "
            f"{model} (clean accuracy {meta['metrics']['test']['accuracy']:.4f}). L2 radii are "
            f"the Linf ones times sqrt(p) = {math.sqrt(p):.1f}, so the L2 ball reaches the Linf "
            f"ball's corners and contains it; in L2 {how}. omega_0 starts at x, omega_rand at a "
            f"uniform draw in the ball. Strongest: {best[0]} eps_inf {best[1]:g}, eta {best[3]:g}, "
            f"n {best[4]}, loss {best[5]}, {best[6]}: accuracy {best[8]:.4f}. "
            "Step counts share one run and eps and start settings share stacked batches. "
            + projection(attack_seconds, len(rows), images)
        )

    ctx.section("grid", "Attack grid search", params, grid)

    omega = float(figure_eps if figure_eps is not None else max(eps))
    n_fig = int(figure_steps if figure_steps is not None else max(steps))
    eta_fig = figure_eta
    figure_params = {**params, "figure": [omega, eta_fig, n_fig, figure_loss]}

    def rescaling(section: Section) -> None:
        x, y = ctx.data.test.images[:6], ctx.data.test.labels[:6]
        for norm in norms:
            radius = omega * radius_scale(norm)
            if eta_fig is None:
                step, direction = radius / 4, "steepest"
            else:
                step = eta_fig * step_scale(norm)
                direction = "sign" if norm == "l2" and l2_step == "sign" else "steepest"
            attack = PGD(
                norm=norm,
                eps=radius,
                steps=n_fig,
                step=step,
                loss=figure_loss,
                random_start=False,
                step_direction=direction,
            )
            adversarial_grid(
                attack(net, x, y),
                ctx.figure(section, f"{norm}.png", f"PGD {norm} at radius {radius:.3g}"),
                count=4,
                class_names=ctx.data.class_names,
            )
        section.text = (
            f"The same images attacked at eps_inf {omega:g} ({n_fig} steps"
            + (f" of eta {eta_fig:g}" if eta_fig is not None else "")
            + f", {figure_loss.upper()} loss, from x): Linf spreads a faint change over every "
            f"pixel; L2 at sqrt(p) * eps = {omega * math.sqrt(p):.2f} may put larger changes on "
            "fewer pixels."
        )

    ctx.section("rescaling", "Linf versus L2 at matched radii", figure_params, rescaling)
    return {}


SEED_GRID = (2 * 9 * 9 * 8 * 2 * 2, 10000)  # seed 000 §2: configurations (both norms), images


def projection(seconds: float, configurations: int, images: int) -> str:
    """How long seed 000's full grid would take at this run's measured rate (a resumed run,
    which computed nothing new, projects nothing)."""
    if seconds < 1 or not configurations:
        return ""
    rate = seconds / (configurations * images)
    full = rate * SEED_GRID[0] * SEED_GRID[1]
    return (
        f"Measured here: {seconds:.0f} s for {configurations} configurations x {images} images; "
        f"at that rate seed 000's full grid ({SEED_GRID[0]:,} configurations x "
        f"{SEED_GRID[1]:,} images) takes about {full / 3600:.1f} h on this machine."
    )


GRID_COLUMNS = [
    "norm",
    "eps_inf",
    "eps",
    "eta",
    "n",
    "loss",
    "omega",
    "loss value",
    "accuracy",
]


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
    fgsm_protocol: str = "per-image",
    finetune_protocol: str = "mixed",
    finetune_fgsm_eps: float | None = None,
    lr: float = 3e-3,
    schedule: str = "onecycle",
) -> dict:
    """FGSM versus DeepFool on an MLP and a CNN, and fine-tuning on each (seed 003).

    rho_adv[FGSM]: 'per-image' takes, per image, the smallest eps of ``fgsm_eps`` that flips it;
    'misclassify-90' (the DeepFool paper) takes the one smallest eps of ``fgsm_eps`` that
    misclassifies at least 90% of the images and averages ||r|| / ||x|| over all images.
    Fine-tuning: 'mixed' runs ``finetune_epochs`` at lr 1e-3 with half of every batch
    adversarial; 'paper' (the DeepFool paper) runs them at half the training ``lr`` on one
    perturbed copy of the training set made before the first epoch. FGSM fine-tunes at
    ``finetune_fgsm_eps`` (default: the largest eps, or the 90% eps under 'misclassify-90').
    Accuracy under DeepFool and under FGSM at every eps is reported too (seed 003: 1.04%, 29%).
    """
    check_choice("minimal-perturbations", "fgsm_protocol", fgsm_protocol, FGSM_PROTOCOLS)
    check_choice(
        "minimal-perturbations", "finetune_protocol", finetune_protocol, ["mixed", "paper"]
    )
    params = {
        "models": list(models),
        "epochs": epochs,
        "images": images,
        "fgsm_eps": list(fgsm_eps),
        "finetune_epochs": finetune_epochs,
        "fgsm_protocol": fgsm_protocol,
        "finetune_protocol": finetune_protocol,
        "finetune_fgsm_eps": finetune_fgsm_eps,
        "lr": lr,
        "schedule": schedule,
    }
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]

    def fgsm_sweep(net: nn.Module) -> list[tuple[float, AttackResult]]:
        return [(e, build_attack("fgsm", eps=e)(net, x, y)) for e in sorted(fgsm_eps)]

    def smallest_fgsm(sweep: list[tuple[float, AttackResult]]) -> tuple[float, float, float]:
        """rho_adv of FGSM under the chosen protocol, its eps (NaN per image) and ms/img."""
        seconds = sum(result.seconds for _, result in sweep)
        ms = 1000 * seconds / len(y)
        if fgsm_protocol == "misclassify-90":
            for e, result in sweep:
                wrong = float((result.logits.argmax(1) != y).float().mean())
                if wrong >= 0.9:
                    rho = result.perturbation.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
                    return float(rho.mean()), e, 1000 * result.seconds / len(y)
            return float("nan"), float("nan"), ms
        best = torch.full((len(y),), float("inf"))
        for _, result in sweep:
            rho = result.perturbation.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
            best = torch.where(result.success & best.isinf(), rho, best)
        found = best[best.isfinite()]
        return (float(found.mean()) if len(found) else float("nan")), float("nan"), ms

    def build(section: Section) -> None:
        rows, tuned_rows, accuracy_rows = [], [], []
        for name in models:
            net, meta = ctx.model(name, name, epochs=epochs, lr=lr, schedule=schedule)
            deepfool_result = build_attack("deepfool")(net, x, y)
            deepfool = deepfool_result.metrics()
            sweep = fgsm_sweep(net)
            rho_fgsm, eps_90, ms_fgsm = smallest_fgsm(sweep)
            error = 1 - meta["metrics"]["test"]["accuracy"]
            rows.append(
                [
                    name,
                    error,
                    deepfool["rho_adv"],
                    deepfool["ms_per_sample"],
                    rho_fgsm,
                    eps_90,
                    ms_fgsm,
                ]
            )
            accuracy_rows.append([name, "clean", float("nan"), deepfool["clean_accuracy"]])
            accuracy_rows.append([name, "DeepFool", float("nan"), deepfool["robust_accuracy"]])
            accuracy_rows += [
                [name, "FGSM", e, result.metrics()["robust_accuracy"]] for e, result in sweep
            ]
            tune_eps = finetune_fgsm_eps
            if tune_eps is None:
                tune_eps = eps_90 if math.isfinite(eps_90) else max(fgsm_eps)
            for attack in ("deepfool", "fgsm"):
                if finetune_protocol == "paper":
                    defense = AdversarialTraining(attack, eps=tune_eps, regenerate="once")
                    tune_lr = lr / 2
                else:
                    defense = AdversarialTraining(attack, eps=tune_eps, fraction=0.5)
                    tune_lr = 1e-3
                tuned, tmeta = ctx.finetune(
                    f"{name}-tuned-{attack}",
                    name,
                    epochs=finetune_epochs,
                    defense=defense,
                    lr=tune_lr,
                )
                after = build_attack("deepfool")(tuned, x, y).metrics()
                error_after = 1 - tmeta["metrics"]["test"]["accuracy"]
                tuned_rows.append(
                    [
                        name,
                        attack,
                        tune_eps if attack == "fgsm" else float("nan"),
                        error_after,
                        after["rho_adv"],
                    ]
                )
        columns = [
            "classifier",
            "test error",
            "rho_adv DeepFool",
            "ms/img DeepFool",
            "rho_adv fast gradient sign",
            "FGSM eps (90% misclassified)",
            "ms/img FGSM",
        ]
        section.tables.append(
            Table("minimal", columns, rows, "the DeepFool paper's table 1 format")
        )
        section.tables.append(
            Table(
                "accuracy",
                ["classifier", "attack", "eps", "accuracy"],
                accuracy_rows,
                f"accuracy on {len(y)} test images, clean and under attack (seed 003: clean "
                "~97%, FGSM 29%, DeepFool 1.04% for the 784-512-10 MLP)",
            )
        )
        how = (
            f"{finetune_epochs} epoch(s) at half the training learning rate on one perturbed "
            "copy of the training set (the DeepFool paper)"
            if finetune_protocol == "paper"
            else f"{finetune_epochs} epoch(s) of fine-tuning, half of each batch adversarial"
        )
        section.tables.append(
            Table(
                "finetuned",
                [
                    "classifier",
                    "fine-tuned on",
                    "FGSM eps",
                    "test error",
                    "rho_adv DeepFool after",
                ],
                tuned_rows,
                how,
            )
        )
        rule = (
            "the one smallest eps of those tried that misclassifies at least 90% of the images, "
            "with the ratio averaged over all images (the DeepFool paper's protocol)"
            if fgsm_protocol == "misclassify-90"
            else "per image the smallest of the eps values tried that flips it, averaged over "
            "the images some eps flips"
        )
        section.text = (
            "rho_adv is the mean ratio ||r||_2 / ||x||_2 of the perturbation that flips each "
            f"image. DeepFool finds it directly; for FGSM it is {rule} "
            f"(eps tried: {', '.join(f'{e:g}' for e in fgsm_eps)}). Larger rho_adv after "
            "fine-tuning means a more robust model."
        )

    ctx.section("minimal", "Minimal perturbations: DeepFool versus FGSM", params, build)

    def examples(section: Section) -> None:
        net, _ = ctx.model(models[0], models[0], epochs=epochs, lr=lr, schedule=schedule)
        few_x, few_y = x[:4], y[:4]
        adversarial_grid(
            build_attack("deepfool")(net, few_x, few_y),
            ctx.figure(section, "deepfool.png", f"DeepFool on {models[0]}"),
            count=4,
            class_names=ctx.data.class_names,
        )
        eps = max(fgsm_eps)
        adversarial_grid(
            build_attack("fgsm", eps=eps)(net, few_x, few_y),
            ctx.figure(section, "fgsm.png", f"FGSM at eps {eps:g} on {models[0]}"),
            count=4,
            class_names=ctx.data.class_names,
        )
        section.text = (
            f"Examples on {models[0]} (the seed's Figs 7/8): DeepFool's minimal perturbation and "
            f"FGSM at eps {eps:g}."
        )

    ctx.section("examples", "Examples", params, examples)
    return {}


FGSM_PROTOCOLS = ["per-image", "misclassify-90"]
