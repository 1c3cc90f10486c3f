"""The generative attacker (seed 004): consecutive versus alternating training, C1 versus C2,
over the intensity t."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import asdict, replace

import torch
from torch import nn

from saddlepoint.attacks.generative import PerturbationGenerator
from saddlepoint.data import ImageData
from saddlepoint.experiments.studies.base import Section, StudyContext, Table
from saddlepoint.experiments.studies.common import plot_table
from saddlepoint.fileio import write_bytes
from saddlepoint.modes import predict_logits
from saddlepoint.train.generative import GenerativeAttackConfig, train_generative_attack
from saddlepoint.viz.grids import generative_figure

SEED_SCALE = 2 * 7 * 20 * 60000  # seed 004: modes x intensities x attacker epochs x images


def _projection(rows: list[dict], train_images: int, test_images: int) -> str:
    """Seed 004's attacker training at full scale, projected from this run's epochs (the
    classifiers' own training comes on top)."""
    seconds = sum(float(r.get("seconds", 0.0)) for r in rows)
    if seconds <= 0 or not rows:
        return ""
    per_image_epoch = seconds / (len(rows) * train_images)
    return (
        f"Measured here: {seconds:.0f} s for {len(rows)} attacker epochs on {train_images:,} "
        f"training images, each evaluated on {test_images:,} test images; seed 004 at full "
        f"scale (2 modes x 7 t x 20 epochs on 60,000 images) would take about"
        f" {per_image_epoch * SEED_SCALE / 3600:.1f} h of attacker training."
    )


def _classifiers(ctx: StudyContext, config: GenerativeAttackConfig) -> tuple[nn.Module, nn.Module]:
    """C1 and C2 pre-trained clean for ``config``'s mode, as run models (trained once for every
    t of the mode, resumable epoch by epoch, reloaded on a re-run)."""
    pretraining = config.pretraining()
    pair = tuple(
        ctx.model(
            f"{name}-{config.mode}",
            config.classifier,
            epochs=pretraining.epochs,
            seed=config.seed + offset,
            batch_size=pretraining.batch_size,
        )[0]
        for offset, name in enumerate(("c1", "c2"))
    )
    return pair[0], pair[1]


def _trained_attacker(
    ctx: StudyContext,
    data: ImageData,
    config: GenerativeAttackConfig,
    classifiers: tuple[nn.Module, nn.Module],
    recipe: dict,
) -> tuple[list[dict], PerturbationGenerator]:
    """One (mode, t) run's per-epoch rows and attacker: reloaded from
    ``models/attacker-MODE-tT.pt`` when that file holds this recipe, else trained and saved
    there."""
    path = ctx.folder / "models" / f"attacker-{config.mode}-t{config.t:g}.pt"
    attacker = PerturbationGenerator(
        ctx.data.shape,
        t=config.t,
        width=config.width,
        bound=config.bound,
        final_norm=config.final_norm,
        clip=config.clip,
    )
    if path.is_file():
        try:
            kept = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a damaged file: train again, say why
            ctx.say(f"ignoring the unreadable {path.name} ({error!r}); training it again")
            kept = {}
        if isinstance(kept, dict) and kept.get("recipe") == recipe:
            attacker.load_state_dict(kept["attacker"])
            ctx.say(f"attacker {config.mode} t={config.t:g}: kept from an earlier run")
            return kept["history"], attacker.eval()
    run = train_generative_attack(data, config, progress=ctx.progress, classifiers=classifiers)
    attacker.load_state_dict(run.attacker.cpu().state_dict())
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(
        {"recipe": recipe, "history": run.history, "attacker": attacker.state_dict()}, buffer
    )
    write_bytes(path, buffer.getvalue())
    return run.history, attacker.eval()


def _attacker_run(
    ctx: StudyContext,
    data: ImageData,
    config: GenerativeAttackConfig,
    classifiers: tuple[nn.Module, nn.Module],
    examples: torch.Tensor,
) -> tuple[list[dict], torch.Tensor]:
    """One (mode, t) run on ``data`` (its training images and the test images it evaluates
    on): its per-epoch rows and its attacker's output on ``examples`` (the figure's images).
    Both are a kept part of the run (``kept/attacker-MODE-tT.json``, small), so a stopped or
    moved study resumes at the next run even without the attacker's weights, which stay in
    ``models/attacker-MODE-tT.pt`` (tens of MB at the seed's width)."""
    settings = asdict(config)
    del settings["device"]
    if config.clip:  # the default, and every run before the option: their kept parts stay valid
        del settings["clip"]
    part = {
        "config": settings,
        "test_images": len(data.test),
    }

    def compute() -> dict:
        history, attacker = _trained_attacker(ctx, data, config, classifiers, ctx.part_key(part))
        attacked = predict_logits(attacker, examples)  # the attacker's outputs: attacked images
        return {"history": history, "examples": attacked.tolist()}

    kept = ctx.kept(
        f"attacker-{config.mode}-t{config.t:g}", {**part, "examples": len(examples)}, compute
    )
    return kept["history"], torch.tensor(kept["examples"], dtype=examples.dtype)


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
    final_norm: bool = False,
    c2_alongside: bool = False,
    clip: bool = True,
    compare_t: Sequence[float] = (0.04, 0.08),
    images: int | None = None,
) -> dict:
    """Train the attacker network per (mode, t); C1 (attacked) and C2 (transfer) accuracy.

    ``loss`` 'ce' is seed 004's objective (the attacker minimises C1's negative cross-entropy);
    'cw' a clamped margin. ``final_norm`` batch-normalises the attacker's last layer before its
    tanh (seed 004's FSConv4); ``c2_alongside`` trains C2 one clean batch per attacker batch in
    alternating mode (seed 004: C2 gets as many epochs as C1); ``clip`` false leaves the attacked
    images unclipped, up to t outside [0, 1] (seed 004 does not say it clips; offered to test
    that reading, not a valid-image threat model). Figures: accuracy and loss per
    attacker epoch, one curve per t (seed Figs 3-5), and the two modes side by side at each t of
    ``compare_t`` that was run (Fig 6). ``images``: evaluate after each attacker epoch on the
    first N test images only (all by default, as the seed).
    """
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
        "final_norm": final_norm,
        "c2_alongside": c2_alongside,
        "compare_t": list(compare_t),  # which Fig 6 panels are drawn
        "images": images,
    }
    if not clip:  # recorded only when set, so sections recorded before the option stay valid
        params["clip"] = False
    data = replace(ctx.training_data(), test=ctx.data.test.head(images, "images"))

    configs = [
        GenerativeAttackConfig(
            t=intensity,
            mode=mode,
            classifier=classifier,
            classifier_epochs=classifier_epochs,
            attacker_epochs=attacker_epochs,
            clean_epochs=clean_epochs,
            width=width,
            loss=loss,
            final_norm=final_norm,
            c2_alongside=c2_alongside,
            clip=clip,
            seed=ctx.seed,
            device=ctx.device,
        )
        for mode in modes
        for intensity in t
    ]
    first = {config.mode: config for config in reversed(configs)}  # one per mode
    pretrained = {mode: _classifiers(ctx, config) for mode, config in first.items()}

    def build(section: Section) -> None:
        rows, attacked = [], {}
        examples = ctx.data.test.images[:6]
        for config in configs:
            epochs, outputs = _attacker_run(ctx, data, config, pretrained[config.mode], examples)
            rows += epochs
            attacked[(config.mode, config.t)] = outputs
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
        for mode in modes:
            mine = Table(
                "history", columns, [r for r in history.rows if r[columns.index("mode")] == mode]
            )
            for model in ("c1", "c2"):
                plot_table(
                    mine,
                    ctx.figure(
                        section,
                        f"{mode}-{model}-per-epoch.png",
                        f"{model.upper()} attacked accuracy per attacker epoch, {mode}",
                    ),
                    x="epoch",
                    y=f"{model}_attacked_accuracy",
                    by="t",
                    title=f"{model.upper()} attacked test accuracy per epoch ({mode}), per t",
                )
            for model in ("c1", "c2"):  # seed Fig 4: the targeted and the untargeted loss
                plot_table(
                    mine,
                    ctx.figure(
                        section,
                        f"{mode}-{model}-loss.png",
                        f"{model.upper()} attacked loss per epoch, {mode}",
                    ),
                    x="epoch",
                    y=f"{model}_attacked_loss",
                    by="t",
                    logy=True,
                    title=f"{model.upper()} attacked test loss per epoch ({mode}, log scale)",
                )
        if len(modes) > 1:
            for value in [v for v in compare_t if v in t]:
                both = Table(
                    "history", columns, [r for r in history.rows if r[columns.index("t")] == value]
                )
                plot_table(
                    both,
                    ctx.figure(
                        section, f"modes-t{value:g}.png", f"consecutive vs alternating, t {value:g}"
                    ),
                    x="epoch",
                    y="c1_attacked_accuracy",
                    by="mode",
                    title=f"C1 attacked accuracy per epoch at t = {value:g}: both modes",
                )
        generative_figure(
            attacked,
            examples,
            ctx.figure(section, "attacks-per-t.png", "original | perturbation | attacked, per t"),
        )
        section.text = (
            "An encoder-decoder maps each image to a perturbation of intensity at most t. "
            "Consecutive: C1 is trained, frozen, and the attacker learns to fool it. Alternating: "
            "after clean epochs, attacker and C1 take turns batch by batch. C2 (same architecture, "
            "another seed, never shown attacked data) measures how the attack transfers. "
            + (
                ""
                if clip
                else "Attacked images are not clipped to the pixel range (clip = false): a pixel "
                "may end up to t outside it, a reading of seed 004 rather than a valid image. "
            )
            + _projection(rows, len(data.train), len(data.test))
        )

    ctx.section_with("generative", "Generative attacker", params, build)
    return {}
