"""The generative attacker's training games (seed 004): the attacker against classifiers.

Modes (``train_generative_attack``):
- consecutive: train classifier C1 on clean data, freeze it, then train the attacker to maximize
  C1's cross-entropy;
- alternating: train C1 on clean data for ``clean_epochs``, then alternate one attacker batch and
  one C1 batch on attacked inputs.
A second classifier C2 (same architecture, another seed, clean data only) measures transfer. With
``c2_alongside`` it also takes one clean batch per attacker batch in alternating mode, so that it
trains as many epochs as C1 (seed 004: "always trained for the same number of epochs").

The attacker's objective is C1's cross-entropy (loss='ce', as in seed 004) or, by default, C1's
CW margin clamped at zero (loss='cw'): fooled images stop pulling, and on MNIST at t = 0.16 it
lowers C1's accuracy about twice as fast per epoch as cross-entropy. The attacker network itself
is ``saddlepoint.attacks.generative.PerturbationGenerator``.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from saddlepoint.attacks.generative import PerturbationGenerator
from saddlepoint.data.base import ImageData, Split
from saddlepoint.losses import cw_margin
from saddlepoint.models.preprocess import channel_stats
from saddlepoint.models.registry import build_model
from saddlepoint.modes import predict_logits
from saddlepoint.seeding import resolve_device, seeded
from saddlepoint.train.config import TrainConfig
from saddlepoint.train.trainer import make_optimizer, train_model
from saddlepoint.validation import check_choice, check_number

log = logging.getLogger(__name__)


@dataclass
class GenerativeAttackConfig:
    """Settings of one generative-attack run (seed 004's experiment)."""

    t: float = 0.16
    mode: str = "consecutive"
    classifier: str = "twoconv-bn-cnn"
    classifier_epochs: int = 2
    attacker_epochs: int = 2
    clean_epochs: int = 1
    width: int = 64
    bound: str = "scale"
    batch_size: int = 64
    lr: float = 3e-3
    loss: str = "cw"
    final_norm: bool = False
    c2_alongside: bool = False
    clip: bool = True  # False: attacked images are not clipped to [0, 1] (a reading of seed 004)
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        owner = "GenerativeAttackConfig"
        check_choice(owner, "loss", self.loss, ["ce", "cw"])
        check_choice(owner, "mode", self.mode, ["consecutive", "alternating"])
        check_number(owner, "t", self.t, low=0, low_open=True)
        for name in ("classifier_epochs", "attacker_epochs", "batch_size", "width"):
            check_number(owner, name, getattr(self, name), low=1, integer=True)
        check_number(owner, "clean_epochs", self.clean_epochs, low=0, integer=True)

    @property
    def pretraining_epochs(self) -> int:
        """Clean epochs C1 and C2 train before the attacker starts: all of them in consecutive
        mode, ``clean_epochs`` (at least one) in alternating mode."""
        return self.classifier_epochs if self.mode == "consecutive" else max(self.clean_epochs, 1)

    def pretraining(self) -> TrainConfig:
        """C1's clean pre-training (C2's is the same with seed + 1); ``train_classifier`` with
        this config builds and trains the same network as a run without ``classifiers``."""
        return TrainConfig(
            epochs=self.pretraining_epochs,
            batch_size=self.batch_size,
            seed=self.seed,
            device=str(resolve_device(self.device)),
        )


@dataclass
class GenerativeAttackRun:
    """The trained networks and the per-epoch history of one run."""

    config: GenerativeAttackConfig
    attacker: PerturbationGenerator
    c1: nn.Module
    c2: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)


def _pretrained_classifiers(
    data: ImageData, config: GenerativeAttackConfig, progress: bool
) -> tuple[nn.Module, nn.Module]:
    """C1 and C2 (seeds ``seed`` and ``seed + 1``) trained clean for the mode's pre-training."""
    mean, std = channel_stats(data.train.images)
    pretraining = config.pretraining()
    pair = []
    for seed in (config.seed, config.seed + 1):
        with seeded(seed):
            model = build_model(
                config.classifier,
                in_shape=data.shape,
                num_classes=data.num_classes,
                mean=mean,
                std=std,
            )
        train_model(model, data, replace(pretraining, seed=seed), progress=progress)
        pair.append(model)
    return pair[0], pair[1]


def _evaluate(
    attacker: PerturbationGenerator,
    c1: nn.Module,
    c2: nn.Module,
    split: Split,
    batch_size: int = 500,
) -> dict[str, float]:
    """Clean and attacked accuracy and loss of C1 and C2 on ``split``."""
    device = next(attacker.parameters()).device
    attacker.eval()
    with torch.no_grad():
        attacked = torch.cat(
            [
                attacker(split.images[i : i + batch_size].to(device)).cpu()
                for i in range(0, len(split), batch_size)
            ]
        )
    row = {}
    for name, model in (("c1", c1), ("c2", c2)):
        for kind, images in (("clean", split.images), ("attacked", attacked)):
            logits = predict_logits(model, images)
            row[f"{name}_{kind}_accuracy"] = float(
                (logits.argmax(1) == split.labels).float().mean()
            )
            row[f"{name}_{kind}_loss"] = float(F.cross_entropy(logits, split.labels))
    return row


def _attacker_step(
    attacker: PerturbationGenerator,
    c1: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    loss_name: str = "ce",
) -> float:
    """One attacker update: maximize C1's cross-entropy (or its CW margin, clamped at 0 so that
    fooled images stop pulling) on the attacked images."""
    attacker.train()
    c1.eval()
    for p in c1.parameters():
        p.requires_grad_(False)
    try:
        logits = c1(attacker(images))
        if loss_name == "ce":
            loss = -F.cross_entropy(logits, labels)
        else:
            loss = -cw_margin(logits, labels).clamp_max(0).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    finally:
        for p in c1.parameters():
            p.requires_grad_(True)
    return -float(loss.detach())


def train_generative_attack(
    data: ImageData,
    config: GenerativeAttackConfig | None = None,
    *,
    progress: bool = True,
    classifiers: tuple[nn.Module, nn.Module] | None = None,
) -> GenerativeAttackRun:
    """Train C1, C2 and the attacker as configured; evaluate on the test split after each
    attacker epoch (rows of ``history``).

    ``classifiers``: C1 and C2 already pre-trained as ``config.pretraining()`` says (seeds
    ``seed`` and ``seed + 1``); copies are used, so one pair serves every t of a mode."""
    config = config or GenerativeAttackConfig()
    device = resolve_device(config.device)
    if classifiers is not None:
        c1, c2 = (copy.deepcopy(c).to(device) for c in classifiers)
    else:
        c1, c2 = _pretrained_classifiers(data, config, progress)
    with seeded(config.seed + 2, device):
        attacker = PerturbationGenerator(
            data.shape,
            t=config.t,
            width=config.width,
            bound=config.bound,
            final_norm=config.final_norm,
            clip=config.clip,
        ).to(device)
    attack_optimizer = torch.optim.Adam(attacker.parameters(), lr=config.lr)
    c1_optimizer = (
        make_optimizer(c1, TrainConfig(lr=config.lr)) if config.mode == "alternating" else None
    )
    c2_optimizer = (
        make_optimizer(c2, TrainConfig(lr=config.lr))
        if config.mode == "alternating" and config.c2_alongside
        else None
    )
    run = GenerativeAttackRun(config, attacker, c1, c2)
    generator = torch.Generator().manual_seed(config.seed)
    with seeded(config.seed + 3, device):
        for epoch in range(1, config.attacker_epochs + 1):
            start = time.perf_counter()
            batches = data.train.batches(config.batch_size, shuffle=True, generator=generator)
            bar = tqdm(
                batches,
                total=-(-len(data.train) // config.batch_size),
                desc=f"attacker epoch {epoch}",
                disable=not progress,
                leave=False,
                mininterval=0.5,
            )
            for images, labels in bar:
                images, labels = images.to(device), labels.to(device)
                attack_loss = _attacker_step(
                    attacker, c1, attack_optimizer, images, labels, config.loss
                )
                if c1_optimizer is not None:
                    attacker.eval()
                    with torch.no_grad():
                        attacked = attacker(images)
                    c1.train()
                    loss = F.cross_entropy(c1(attacked), labels)
                    c1_optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    c1_optimizer.step()
                if c2_optimizer is not None:  # C2: one more clean batch, as C1 takes one
                    c2.train()
                    loss = F.cross_entropy(c2(images), labels)
                    c2_optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    c2_optimizer.step()
                bar.set_postfix(c1_loss=f"{attack_loss:.3f}")
            row = {
                "epoch": epoch,
                "t": config.t,
                "mode": config.mode,
                **_evaluate(attacker, c1, c2, data.test),
            }
            row["seconds"] = time.perf_counter() - start
            run.history.append(row)
            message = (
                f"t={config.t:g} {config.mode} epoch {epoch}: C1 {row['c1_clean_accuracy']:.3f} -> "
                f"{row['c1_attacked_accuracy']:.3f}, C2 {row['c2_clean_accuracy']:.3f} -> {row['c2_attacked_accuracy']:.3f}"
            )
            if progress:
                tqdm.write(message)
            else:
                log.info(message)
    c1.eval()
    attacker.eval()
    return run
