"""White-box attack studies: the grid search (seed 000 §2), PGD until convergence (seed 000
§4.3.2) and minimal perturbations, FGSM versus DeepFool (seed 003)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch

from saddlepoint.attacks import PGD, build_attack
from saddlepoint.attacks.result import AttackResult
from saddlepoint.defenses import AdversarialTraining
from saddlepoint.experiments.engine import current_rows, run_experiment
from saddlepoint.experiments.spec import parse_spec
from saddlepoint.experiments.store import ResultsStore
from saddlepoint.experiments.studies.base import Section, StudyContext, Table, Trained
from saddlepoint.experiments.studies.common import (
    MODEL_COLUMNS,
    model_row,
    plot_table,
    record_pgd_curves,
)
from saddlepoint.experiments.tasks import task
from saddlepoint.validation import check_choice, check_number
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
    tops = top_radii(eps, norms, top_eps)
    target = ctx.train("target", model, epochs=epochs)
    grid = dict(eps=eps, eta=eta, steps=steps, losses=losses, norms=norms, l2_step=l2_step)
    found = ctx.run(grid_records, target=target, images=images, **grid)
    ctx.section(
        "grid",
        "Attack grid search",
        grid_section,
        target=target,
        model=model,
        images=images,
        found=found,
        tops=tops,
        **grid,
    )
    ctx.section(
        "rescaling",
        "Linf versus L2 at matched radii",
        rescaling_section,
        target=target,
        norms=norms,
        l2_step=l2_step,
        radius=float(figure_eps if figure_eps is not None else max(eps)),
        steps=int(figure_steps if figure_steps is not None else max(steps)),
        eta=figure_eta,
        loss=figure_loss,
    )
    return {}


def top_radii(
    eps: Sequence[float], norms: Sequence[str], top_eps: dict[str, float] | None
) -> dict[str, float]:
    """The Linf-scale radius of each norm's top-10 table: ``top_eps``'s, else the largest eps."""
    tops = {norm: float(max(eps)) for norm in norms}
    for norm, value in (top_eps or {}).items():
        if norm not in norms:
            raise ValueError(f"top_eps names norm {norm!r}; the grid's norms are {list(norms)}.")
        tops[norm] = float(value)
    return tops


def radius_scale(norm: str, p: int) -> float:
    """The L2 radius matching a Linf one: eps_2 = sqrt(p) * eps_inf."""
    return math.sqrt(p) if norm == "l2" else 1.0


def step_scale(norm: str, p: int, l2_step: str) -> float:
    return radius_scale(norm, p) if norm == "l2" and l2_step == "steepest" else 1.0


@task(version=1)
def grid_records(
    ctx: StudyContext,
    target: Trained,
    images: int,
    eps: Sequence[float],
    eta: Sequence[float],
    steps: Sequence[int],
    losses: Sequence[str],
    norms: Sequence[str],
    l2_step: str,
) -> dict[str, Any]:
    """Every grid configuration's loss and accuracy on the first ``images`` test images, as
    records of GRID_COLUMNS, and the seconds the attacks took. The configurations run as a
    sweep whose store (beside this task's result) resumes a stopped grid."""
    p = math.prod(ctx.data.shape)
    started = time.perf_counter()
    current: dict[str, str] = {}  # every norm's configurations, each with its inputs digest
    store_path = ctx.scratch(".sqlite")
    for norm in norms:
        fixed: dict = {"norm": norm, "seed": ctx.seed}
        if norm == "l2" and l2_step == "sign":
            fixed["step_direction"] = "sign"
        grid = {
            "eps": [e * radius_scale(norm, p) for e in eps],
            "step": [s * step_scale(norm, p, l2_step) for s in eta],
            "steps": list(steps),
            "loss": list(losses),
            "random_start": [True, False],
        }
        dataset = {"split": "test", "limit": images, "options": dict(ctx.dataset_options)}
        spec = parse_spec(
            {
                "name": f"grid-{norm}",
                "checkpoints": [str(target.path)],
                "dataset": dataset,  # the options the study loaded (the root is not recorded)
                "attack": "pgd",
                "grid": grid,
                "fixed": fixed,
            }
        )
        run_experiment(spec, store_path, progress=ctx.progress)
        current.update(current_rows(spec))
    seconds = time.perf_counter() - started
    with ResultsStore(store_path) as store:
        rows = [grid_record(r, p, l2_step) for r in store.rows(current)]
    rows.sort(key=lambda r: tuple(str(r[c]) for c in GRID_COLUMNS[:7]))
    return {"records": rows, "seconds": seconds}


def grid_record(row: dict[str, Any], p: int, l2_step: str) -> dict[str, Any]:
    """One sweep row as a record of GRID_COLUMNS (eps and eta also on the Linf scale)."""
    norm = row["param_norm"]
    return {
        "norm": norm,
        "eps_inf": round(row["param_eps"] / radius_scale(norm, p), 6),
        "eps": row["param_eps"],
        "eta": round(row["param_step"] / step_scale(norm, p, l2_step), 6),
        "n": row["param_steps"],
        "loss": row["param_loss"],
        "omega": "omega_rand" if row["param_random_start"] else "omega_0",
        "loss value": row["loss"],
        "accuracy": row["accuracy"],
    }


@task(version=1)
def grid_section(
    ctx: StudyContext,
    section: Section,
    target: Trained,
    model: str,
    images: int,
    found: dict[str, Any],
    tops: dict[str, float],
    eps: Sequence[float],
    eta: Sequence[float],
    steps: Sequence[int],
    losses: Sequence[str],
    norms: Sequence[str],
    l2_step: str,
) -> None:
    """The grid's tables (the model, each norm's top 10 at its radius, every configuration)
    and its figures, from the records."""
    records, p = found["records"], math.prod(ctx.data.shape)
    net, meta = target.load()
    section.tables.append(Table("model", MODEL_COLUMNS, [model_row(model, net, meta)]))
    for norm in norms:
        at = [
            r
            for r in records
            if r["norm"] == norm and math.isclose(r["eps_inf"], tops[norm], rel_tol=1e-4)
        ]
        top = sorted(at, key=lambda r: (r["accuracy"], -r["loss value"]))[:10]  # ties: higher loss
        radius = tops[norm] * radius_scale(norm, p)
        caption = (
            f"top 10 {norm} configurations by accuracy at eps_inf {tops[norm]:.4g} "
            f"({norm} radius {radius:.4g})"
        )
        section.tables.append(Table.of(f"top-{norm}", GRID_COLUMNS, top, caption))
    caption = "every configuration (eps_inf: the Linf-scale eps)"
    section.tables.append(Table.of("grid", GRID_COLUMNS, records, caption))
    for norm in norms:
        grid_figures(ctx, section, norm, [r for r in records if r["norm"] == norm], max(steps))
    accuracy = meta["metrics"]["test"]["accuracy"]
    setup = (
        f"{images} test images of {ctx.data.name} against {model} (clean accuracy {accuracy:.4f})"
    )
    section.text = describe_grid(records, setup, p, l2_step) + projection(
        found["seconds"], len(records), images
    )


def grid_figures(
    ctx: StudyContext, section: Section, norm: str, records: list[dict[str, Any]], n_max: int
) -> None:
    """One norm's accuracy against eps, n and eta (mean over the rest), and one step against
    the full PGD (seed Figs 1/2: FGSM / FGM against PGD)."""
    table = Table.of("grid", GRID_COLUMNS, records)
    for x, label in (("eps_inf", "eps"), ("n", "steps"), ("eta", "step size")):
        plot_table(
            table,
            ctx.figure(section, f"{norm}-accuracy-vs-{x}.png", f"{norm}: accuracy vs {label}"),
            x=x,
            y="accuracy",
            by=["loss", "omega"],
            ci=True,
            title=f"{norm.upper()} PGD: accuracy vs {label} (mean over the rest, 95% CI)",
        )
    ends = [r for r in records if r["n"] in (1, n_max) and r["omega"] == "omega_0"]
    plot_table(
        Table.of("grid", GRID_COLUMNS, ends),
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


def describe_grid(records: list[dict[str, Any]], setup: str, p: int, l2_step: str) -> str:
    """The grid section's prose: its setup, the radii and steps, the strongest configuration."""
    best = min(records, key=lambda r: r["accuracy"])
    how = (
        "every pixel moves by eta per step (a sign step, as the seed)"
        if l2_step == "sign"
        else "each step has L2 length eta * sqrt(p) along the normalised gradient"
    )
    return (
        f"{len(records)} PGD configurations on {setup}. L2 radii are the Linf ones times sqrt(p) "
        f"= {math.sqrt(p):.1f}, so the L2 ball reaches the Linf ball's corners and contains it; "
        f"in L2 {how}. omega_0 starts at x, omega_rand at a uniform draw in the ball. Strongest: "
        f"{best['norm']} eps_inf {best['eps_inf']:g}, eta {best['eta']:g}, n {best['n']}, loss "
        f"{best['loss']}, {best['omega']}: accuracy {best['accuracy']:.4f}. Step counts share one "
        "run and eps and start settings share stacked batches. "
    )


@task(version=1)
def rescaling_section(
    ctx: StudyContext,
    section: Section,
    target: Trained,
    norms: Sequence[str],
    l2_step: str,
    radius: float,
    steps: int,
    eta: float | None,
    loss: str,
) -> None:
    """The same six test images attacked in each norm at matched radii (seed Fig 7)."""
    x, y = ctx.data.test.images[:6], ctx.data.test.labels[:6]
    net, _ = target.load()
    p = math.prod(ctx.data.shape)
    for norm in norms:
        scaled = radius * radius_scale(norm, p)
        if eta is None:
            step, direction = scaled / 4, "steepest"
        else:
            step = eta * step_scale(norm, p, l2_step)
            direction = "sign" if norm == "l2" and l2_step == "sign" else "steepest"
        attack = PGD(
            norm=norm,
            eps=scaled,
            steps=steps,
            step=step,
            loss=loss,
            random_start=False,
            step_direction=direction,
        )
        adversarial_grid(
            attack(net, x, y),
            ctx.figure(section, f"{norm}.png", f"PGD {norm} at radius {scaled:.3g}"),
            count=4,
            class_names=ctx.data.class_names,
        )
    section.text = (
        f"The same images attacked at eps_inf {radius:g} ({steps} steps"
        + (f" of eta {eta:g}" if eta is not None else "")
        + f", {loss.upper()} loss, from x): Linf spreads a faint change over every "
        f"pixel; L2 at sqrt(p) * eps = {radius * math.sqrt(p):.2f} may put larger changes on "
        "fewer pixels."
    )


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
    pgd = dict(images=images, eps=eps, step=step, steps=steps, tol=tol)
    trained = [ctx.train(m, m, epochs=epochs) for m in models]  # on a cluster: all at once
    traces = ctx.map(pgd_trace, [dict(target=target, **pgd) for target in trained])
    ctx.section("convergence", "PGD until convergence", convergence_section, traces=traces, **pgd)
    return {}


@task(version=1)
def pgd_trace(
    ctx: StudyContext, target: Trained, images: int, eps: float, step: float, steps: int, tol: float
) -> dict[str, Any]:
    """PGD on ``target`` until each image's loss settles: the summary record and the mean loss
    and accuracy per iteration."""
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
    net, meta = target.load()
    traced = PGD(eps=eps, steps=steps, step=step, trace=True, tol=tol)(net, x, y)
    evals = traced.grad_evals.float()
    summary = {
        "model": target.name,
        "clean acc": meta["metrics"]["test"]["accuracy"],
        "final acc": traced.metrics()["robust_accuracy"],
        "mean steps to converge": float(evals.mean()),
        "max steps": int(evals.max()),
    }
    curve = [{"model": target.name, **t} for t in traced.trace or []]
    return {"summary": summary, "curve": curve}


@task(version=1)
def convergence_section(
    ctx: StudyContext,
    section: Section,
    traces: list[dict[str, Any]],
    images: int,
    eps: float,
    step: float,
    steps: int,
    tol: float,
) -> None:
    columns = ["model", "clean acc", "final acc", "mean steps to converge", "max steps"]
    summary = [trace["summary"] for trace in traces]
    section.tables.append(
        Table.of("summary", columns, summary, f"PGD Linf eps {eps:g}, tol {tol:g}")
    )
    curve_columns = ["model", "iteration", "loss", "accuracy"]
    curves = Table.of("curves", curve_columns, [r for trace in traces for r in trace["curve"]])
    record_pgd_curves(ctx, section, curves.rows)
    section.text = (
        f"PGD at Linf eps {eps:g} with step {step:g} for up to {steps} iterations; a sample "
        f"stops when its loss changes by less than {tol:g}. Curves average over {images} images."
    )


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
    curve_images: int = 0,
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
    With ``curve_images``, DeepFool's rho_adv on that many test images is measured before
    fine-tuning and after each epoch of it, and drawn over the epochs (the DeepFool paper's
    Fig. 5); 0 measures only the end point.
    """
    check_number("minimal-perturbations", "curve_images", curve_images, low=0, integer=True)
    check_choice("minimal-perturbations", "fgsm_protocol", fgsm_protocol, FGSM_PROTOCOLS)
    check_choice(
        "minimal-perturbations", "finetune_protocol", finetune_protocol, ["mixed", "paper"]
    )
    sweep = dict(images=images, fgsm_eps=fgsm_eps)
    found, tuned, curves, first = [], [], [], None
    watch = "deepfool" if curve_images else None
    for name in models:
        net = ctx.train(name, name, epochs=epochs, lr=lr, schedule=schedule)
        first = first or net
        found.append(ctx.run(minimal_records, target=net, fgsm_protocol=fgsm_protocol, **sweep))
        tune_eps = finetune_fgsm_eps
        if tune_eps is None:
            eps_90 = found[-1]["row"]["FGSM eps (90% misclassified)"]
            tune_eps = eps_90 if math.isfinite(eps_90) else max(fgsm_eps)
        for attack in ("deepfool", "fgsm"):
            defense, tune_lr = finetune_defense(attack, tune_eps, finetune_protocol, lr)
            model = ctx.finetune(
                f"{name}-tuned-{attack}",
                net,
                epochs=finetune_epochs,
                defense=defense,
                lr=tune_lr,
                watch=watch,
                watch_images=curve_images,
            )
            after = ctx.run(deepfool_after, tuned=model, images=images)
            fgsm = tune_eps if attack == "fgsm" else float("nan")
            which = {"classifier": name, "fine-tuned on": attack}
            curves += [{**which, **point} for point in after.pop("curve")]
            tuned.append({**which, "FGSM eps": fgsm, **after})
    ctx.section(
        "minimal",
        "Minimal perturbations: DeepFool versus FGSM",
        minimal_section,
        found=found,
        tuned=tuned,
        curves=curves,
        images=images,
        fgsm_eps=fgsm_eps,
        fgsm_protocol=fgsm_protocol,
        finetune_epochs=finetune_epochs,
        finetune_protocol=finetune_protocol,
    )
    ctx.section(
        "examples", "Examples", examples_section, target=first, images=images, eps=max(fgsm_eps)
    )
    return {}


def finetune_defense(
    attack: str, eps: float, protocol: str, lr: float
) -> tuple[AdversarialTraining, float]:
    """Fine-tuning on ``attack`` and its learning rate: 'paper' (the DeepFool paper) one
    perturbed copy of the training set at half the training ``lr``; 'mixed' half of every batch
    adversarial at 1e-3."""
    if protocol == "paper":
        return AdversarialTraining(attack, eps=eps, regenerate="once"), lr / 2
    return AdversarialTraining(attack, eps=eps, fraction=0.5), 1e-3


@task(version=2)
def minimal_records(
    ctx: StudyContext, target: Trained, images: int, fgsm_eps: Sequence[float], fgsm_protocol: str
) -> dict[str, Any]:
    """DeepFool and the FGSM sweep on ``target``: its row of MINIMAL_COLUMNS and its accuracy
    records (clean, under DeepFool, under FGSM at each eps)."""
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
    net, meta = target.load()
    deepfool = build_attack("deepfool")(net, x, y).metrics()
    sweep = [(e, build_attack("fgsm", eps=e)(net, x, y)) for e in sorted(fgsm_eps)]
    rho_fgsm, eps_90, ms_fgsm = smallest_fgsm(sweep, x, y, fgsm_protocol)
    row = {
        "classifier": target.name,
        "test error": 1 - meta["metrics"]["test"]["accuracy"],
        "rho_adv DeepFool": deepfool["rho_adv"],
        "rho_adv DeepFool (all images)": deepfool["rho_adv_all"],
        "ms/img DeepFool": deepfool["ms_per_sample"],
        "rho_adv fast gradient sign": rho_fgsm,
        "FGSM eps (90% misclassified)": eps_90,
        "ms/img FGSM": ms_fgsm,
    }
    nan = float("nan")
    accuracy = [(target.name, "clean", nan, deepfool["clean_accuracy"])]
    accuracy.append((target.name, "DeepFool", nan, deepfool["robust_accuracy"]))
    accuracy += [(target.name, "FGSM", e, r.metrics()["robust_accuracy"]) for e, r in sweep]
    return {"row": row, "accuracy": [dict(zip(ACCURACY_COLUMNS, a)) for a in accuracy]}


def smallest_fgsm(
    sweep: list[tuple[float, AttackResult]], x: torch.Tensor, y: torch.Tensor, protocol: str
) -> tuple[float, float, float]:
    """rho_adv of FGSM under ``protocol``, its eps (NaN per image) and ms/img."""
    seconds = sum(result.seconds for _, result in sweep)
    ms = 1000 * seconds / len(y)
    if protocol == "misclassify-90":
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


@task(version=3)
def deepfool_after(ctx: StudyContext, tuned: Trained, images: int) -> dict[str, Any]:
    """A fine-tuned model's test error, DeepFool's rho_adv on it, and its rho_adv over the
    fine-tuning epochs where they were measured (CURVE_POINT_COLUMNS; else an empty list)."""
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
    net, meta = tuned.load()
    after = build_attack("deepfool")(net, x, y).metrics()
    error = 1 - meta["metrics"]["test"]["accuracy"]
    curve = [
        dict(zip(CURVE_POINT_COLUMNS, (p["epoch"], p["rho_adv"], p["accuracy"])))
        for p in meta.get("epoch_measures", [])
    ]
    return {
        "test error": error,
        "rho_adv DeepFool after": after["rho_adv"],
        "rho_adv DeepFool after (all images)": after["rho_adv_all"],
        "curve": curve,
    }


@task(version=1)
def minimal_section(
    ctx: StudyContext,
    section: Section,
    found: list[dict[str, Any]],
    tuned: list[dict[str, Any]],
    curves: list[dict[str, Any]],
    images: int,
    fgsm_eps: Sequence[float],
    fgsm_protocol: str,
    finetune_epochs: int,
    finetune_protocol: str,
) -> None:
    """The DeepFool paper's table 1, accuracy under each attack and the fine-tuned models."""
    rows = [f["row"] for f in found]
    section.tables.append(
        Table.of("minimal", MINIMAL_COLUMNS, rows, "the DeepFool paper's table 1 format")
    )
    images = len(ctx.data.test.images[:images])
    accuracy = [r for f in found for r in f["accuracy"]]
    section.tables.append(
        Table.of(
            "accuracy",
            ACCURACY_COLUMNS,
            accuracy,
            f"accuracy on {images} test images, clean and under attack (seed 003: clean "
            "~97%, FGSM 29%, DeepFool 1.04% for the 784-512-10 MLP)",
        )
    )
    how = (
        f"{finetune_epochs} epoch(s) at half the training learning rate on one perturbed "
        "copy of the training set (the DeepFool paper)"
        if finetune_protocol == "paper"
        else f"{finetune_epochs} epoch(s) of fine-tuning, half of each batch adversarial"
    )
    section.tables.append(Table.of("finetuned", TUNED_COLUMNS, tuned, how))
    if curves:
        finetune_curve(ctx, section, curves, how)
    rule = (
        "the one smallest eps of those tried that misclassifies at least 90% of the images, "
        "with the ratio averaged over all images (the DeepFool paper's protocol)"
        if fgsm_protocol == "misclassify-90"
        else "per image the smallest of the eps values tried that flips it, averaged over "
        "the images some eps flips"
    )
    section.text = (
        "rho_adv is the mean ratio ||r||_2 / ||x||_2 of the perturbation that flips each "
        "image, averaged over the correctly classified images the attack broke; the columns "
        "marked (all images) average over every test image as the DeepFool paper does (zero "
        f"where nothing was moved). DeepFool finds it directly; for FGSM it is {rule} "
        f"(eps tried: {', '.join(f'{e:g}' for e in fgsm_eps)}). Larger rho_adv after "
        "fine-tuning means a more robust model."
    )


def finetune_curve(
    ctx: StudyContext, section: Section, curves: list[dict[str, Any]], how: str
) -> None:
    """DeepFool's rho_adv over the fine-tuning epochs, one line per model and fine-tuning
    attack (the DeepFool paper's Fig. 5), and its table."""
    columns = ["classifier", "fine-tuned on", *CURVE_POINT_COLUMNS]
    caption = f"DeepFool over the fine-tuning epochs (epoch 0: before it); {how}"
    table = Table.of("finetune-curve", columns, curves, caption)
    section.tables.append(table)
    plot_table(
        table,
        ctx.figure(section, "finetune-curve.png", "rho_adv of DeepFool over the fine-tuning"),
        x="epoch",
        y="rho_adv DeepFool",
        by=["classifier", "fine-tuned on"],
        title="Robustness over fine-tuning (DeepFool's rho_adv)",
    )


@task(version=1)
def examples_section(
    ctx: StudyContext, section: Section, target: Trained, images: int, eps: float
) -> None:
    """DeepFool's minimal perturbation and FGSM at ``eps`` on four test images (seed Figs 7/8)."""
    net, _ = target.load()
    x, y = ctx.data.test.images[: min(4, images)], ctx.data.test.labels[: min(4, images)]
    for name, attack, caption in (
        ("deepfool", build_attack("deepfool"), f"DeepFool on {target.name}"),
        ("fgsm", build_attack("fgsm", eps=eps), f"FGSM at eps {eps:g} on {target.name}"),
    ):
        adversarial_grid(
            attack(net, x, y),
            ctx.figure(section, f"{name}.png", caption),
            count=4,
            class_names=ctx.data.class_names,
        )
    section.text = (
        f"Examples on {target.name} (the seed's Figs 7/8): DeepFool's minimal perturbation and "
        f"FGSM at eps {eps:g}."
    )


MINIMAL_COLUMNS = [
    "classifier",
    "test error",
    "rho_adv DeepFool",
    "rho_adv DeepFool (all images)",
    "ms/img DeepFool",
    "rho_adv fast gradient sign",
    "FGSM eps (90% misclassified)",
    "ms/img FGSM",
]
ACCURACY_COLUMNS = ["classifier", "attack", "eps", "accuracy"]
TUNED_COLUMNS = [
    "classifier",
    "fine-tuned on",
    "FGSM eps",
    "test error",
    "rho_adv DeepFool after",
    "rho_adv DeepFool after (all images)",
]
CURVE_POINT_COLUMNS = ["epoch", "rho_adv DeepFool", "accuracy under DeepFool"]
FGSM_PROTOCOLS = ["per-image", "misclassify-90"]
