"""Transfer over surrogate depth and width (seed 000 §3).

Surrogates of the seed's family (2x2 'valid' convolutions, max-pooling, flatten, FC256) vary in
depth (1-4 conv blocks at a fixed width) and in width (filters per block at a fixed depth). Each
crafts FGSM and PGD examples on the test images; the reference target's accuracy and loss on them
measure how well the attack transfers. Grad-CAM maps show where the target looks.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from saddlepoint.attacks import PGD, Attack, Ensemble, build_attack, transfer_attack
from saddlepoint.experiments.studies.base import Section, StudyContext, Table
from saddlepoint.experiments.studies.common import (
    MODEL_COLUMNS,
    history_rows,
    model_row,
    plot_table,
    record_training_curves,
)
from saddlepoint.models import build_model
from saddlepoint.viz.gradcam import gradcam_figure


def transfer_study(
    ctx: StudyContext,
    *,
    target: str = "reference-cnn",
    depths: Sequence[int] = (1, 2, 3, 4),
    depth_width: int = 64,
    widths: Sequence[int] = (8, 16, 32, 64, 128, 256, 512),
    width_depth: int = 3,
    epochs: int = 2,
    images: int = 1000,
    eps: float = 0.2,
    pgd_steps: int = 20,
    fgsm_eps: float | None = None,
    pgd_step: float | None = None,
    pgd_random_start: bool = True,
    surrogate_pad_to: int | None = None,
) -> dict:
    """Transfer attacks from surrogates of growing depth and width onto a reference target.

    FGSM runs at ``fgsm_eps`` (default eps; seed 000: 2/255), PGD at eps with ``pgd_steps``
    steps of ``pgd_step`` (default 2.5 eps / steps; seed 000: 50 steps of 2/255).
    ``surrogate_pad_to`` zero-pads every surrogate's input to that square size (32: CIFAR-10's,
    where the seed's 4-block surrogate still has a 1x1 map; 28x28 images leave it none).
    """
    params = {
        "target": target,
        "depths": list(depths),
        "depth_width": depth_width,
        "widths": list(widths),
        "width_depth": width_depth,
        "epochs": epochs,
        "images": images,
        "eps": eps,
        "pgd_steps": pgd_steps,
        "fgsm_eps": fgsm_eps,
        "pgd_step": pgd_step,
        "pgd_random_start": pgd_random_start,
    }
    if surrogate_pad_to is not None:  # absent when unset: runs from before it keep their sections
        params["surrogate_pad_to"] = surrogate_pad_to
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
    padding = {} if surrogate_pad_to is None else {"pad_to": surrogate_pad_to}
    surrogates = [("depth", d, {"depth": d, "width": depth_width, **padding}) for d in depths]
    surrogates += [("width", w, {"depth": width_depth, "width": w, **padding}) for w in widths]
    _check_surrogates_fit(ctx.data.shape, ctx.data.num_classes, surrogates, surrogate_pad_to)
    goal, goal_meta = ctx.model("target", target, epochs=epochs)
    fgsm_radius = eps if fgsm_eps is None else fgsm_eps
    step = 2.5 * eps / pgd_steps if pgd_step is None else pgd_step
    attacks = {
        "FGSM": build_attack("fgsm", eps=fgsm_radius),
        f"PGD-{pgd_steps}": PGD(eps=eps, steps=pgd_steps, step=step, random_start=pgd_random_start),
    }

    def surrogate(args: dict) -> tuple:
        key = f"surrogate-d{args['depth']}-w{args['width']}"
        return ctx.model(key, "surrogate-cnn", epochs=epochs, model_args=args)

    def models(section: Section) -> None:
        rows = [model_row(f"target {target}", goal, goal_meta)]
        curves = {"depth": history_rows("target", goal_meta), "width": []}
        unique = {(a["depth"], a["width"]): a for _, _, a in surrogates}
        for args in unique.values():
            net, meta = surrogate(args)
            rows.append(
                model_row(f"surrogate depth {args['depth']} width {args['width']}", net, meta)
            )
            if args["width"] == depth_width and args["depth"] in depths:
                curves["depth"] += history_rows(f"depth {args['depth']}", meta)
            if args["depth"] == width_depth and args["width"] in widths:
                curves["width"] += history_rows(f"width {args['width']:03d}", meta)
        section.tables.append(Table("models", MODEL_COLUMNS, rows, "parameters and accuracy"))
        for family in ("depth", "width"):
            record_training_curves(
                ctx, section, curves[family], name=family, note=f" (surrogates over {family})"
            )
        section.text = (
            f"Target {target} and {len(surrogates)} surrogates, each trained {epochs} epochs on "
            f"{ctx.data.name} with the same recipe and seed."
        )

    ctx.section_with("models", "Models", params, models)

    def transfer(section: Section) -> None:
        columns = [
            "family",
            "value",
            "attack",
            "surrogate acc",
            "target acc",
            "target loss",
            "transfer rate",
        ]
        # every surrogate is loaded before the first kept part, so each part's key names the
        # same model files whether this run also built the models section or resumed after it
        nets = [surrogate(args)[0] for _, _, args in surrogates]

        def attacked(net: nn.Module) -> list[list]:
            rows = []
            for name, attack in attacks.items():
                m = transfer_attack(attack, net, goal, x, y).metrics()
                rows.append(
                    [
                        name,
                        m["surrogate_accuracy"],
                        m["target_accuracy"],
                        m["target_loss"],
                        m["transfer_rate"],
                    ]
                )
            return rows

        def whitebox() -> list[list]:
            rows = []
            for name, attack in attacks.items():
                m = attack(goal, x, y).metrics()
                accuracy = m["robust_accuracy"]
                rows.append(["target itself", 0, name, accuracy, accuracy, m["loss"], 1.0])
            return rows

        # each surrogate's rows are kept as they finish (PGD-50 on the widest takes minutes):
        # a run stopped mid-section recomputes only the surrogates it lacks
        rows = []
        for (family, value, args), net in zip(surrogates, nets, strict=True):
            part = {**params, "surrogate": args}
            kept = ctx.kept(f"transfer-{family}-{value}", part, partial(attacked, net))
            rows += [[family, value, *row] for row in kept]
        white = ctx.kept("transfer-whitebox", params, whitebox)
        caption = (
            f"Linf: FGSM eps {fgsm_radius:g}; PGD eps {eps:g}, {pgd_steps} steps of {step:.4g}"
            f"{' from a random start' if pgd_random_start else ' from x'}; {len(y)} test images"
        )
        table = Table("transfer", columns, rows, caption)
        section.tables.append(table)
        section.tables.append(
            Table("whitebox", columns, white, "white-box reference on the target")
        )
        for family, label in (("depth", "conv blocks"), ("width", "filters per block")):
            sub = Table("transfer", columns, [r for r in rows if r[0] == family])
            for metric in ("target acc", "target loss"):
                plot_table(
                    sub,
                    ctx.figure(
                        section,
                        f"{family}-{metric.replace(' ', '-')}.png",
                        f"{metric} vs surrogate {family}",
                    ),
                    x="value",
                    y=metric,
                    by="attack",
                    logx=family == "width",
                    title=f"Target {metric} vs surrogate {family} ({label})",
                )
        best = min(rows, key=lambda r: float(r[4]))  # column 4: target acc
        section.text = (
            f"Clean target accuracy {goal_meta['metrics']['test']['accuracy']:.4f}. The most "
            f"transferable examples came from the surrogate of {best[0]} {best[1]} with {best[2]}: "
            f"target accuracy {best[4]:.4f} (white-box PGD on the target: {white[1][3]:.4f})."
        )

    ctx.section_with(
        "transfer", "Transfer attacks over surrogate depth and width", params, transfer
    )

    def attention(section: Section) -> None:
        pgd = attacks[f"PGD-{pgd_steps}"]
        picked, adversarial, fooled = fooled_examples(pgd, goal, x, y, count=4)
        gradcam_figure(
            goal,
            x[picked],
            adversarial,
            ctx.figure(section, "gradcam.png", "Grad-CAM of the target, clean vs PGD"),
            class_names=ctx.data.class_names,
        )
        which = ", ".join(str(i) for i in picked)
        section.text = (
            "Where the target looks (last conv layer) before and after a PGD attack, on the "
            f"first test images it classifies correctly and PGD fools (test images {which})"
        )
        if fooled < len(picked):
            section.text += (
                f"; only {fooled} of the {len(y)} test images attacked are read correctly and "
                "fooled, so the rest are the first others (not fooled, or wrong before the attack)"
            )
        section.text += "."

    # the images shown are ones the attack fools, as in the seed's Figs 21/22 (runs recorded
    # with the first four test images, fooled or not, rebuild this section)
    ctx.section_with(
        "gradcam",
        "Grad-CAM: clean versus adversarial",
        {**params, "gradcam_images": "first fooled"},
        attention,
    )
    return {}


def fooled_examples(
    attack: Attack | Ensemble,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    count: int,
    chunk: int = 100,
) -> tuple[list[int], torch.Tensor, int]:
    """The first ``count`` images that ``model`` classifies correctly and ``attack`` fools
    (attacked ``chunk`` at a time, stopping once enough are found): their indices, their
    adversarial images, and how many are fooled. When fewer are, the first correctly classified
    images that held fill the list, then the first misclassified ones."""
    fooled: dict[int, torch.Tensor] = {}
    held: dict[int, torch.Tensor] = {}
    wrong: dict[int, torch.Tensor] = {}
    for start in range(0, len(y), chunk):
        result = attack(model, x[start : start + chunk], y[start : start + chunk])
        for offset, (correct, success) in enumerate(
            zip(result.clean_correct.tolist(), result.success.tolist(), strict=True)
        ):
            kind = (fooled if success else held) if correct else wrong
            kind[start + offset] = result.adversarial[offset]
        if len(fooled) >= count:
            break
    picked: dict[int, torch.Tensor] = {}
    for kind in (fooled, held, wrong):
        picked.update(list(kind.items())[: count - len(picked)])
    order = sorted(picked)
    return order, torch.stack([picked[i] for i in order]), min(len(fooled), count)


def _check_surrogates_fit(
    shape: tuple[int, int, int],
    num_classes: int,
    surrogates: Sequence[tuple[str, int, dict]],
    pad_to: int | None,
) -> None:
    """Build every surrogate once (no training) so that one too deep for the images fails now,
    naming the study parameter that mends it, not after the shallower ones have trained."""
    for _, _, args in surrogates:
        try:
            build_model("surrogate-cnn", in_shape=shape, num_classes=num_classes, **args)
        except ValueError as error:
            raise ValueError(
                f"transfer study: the surrogate of depth {args['depth']} does not fit "
                f"{shape[1]}x{shape[2]} images (surrogate_pad_to={pad_to!r}): {error} Set the "
                "study parameter surrogate_pad_to (for example 32, CIFAR-10's size, with "
                "--param surrogate_pad_to=32) or use fewer depths."
            ) from None
