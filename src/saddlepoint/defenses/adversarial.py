"""Adversarial training: train on examples a registered attack makes against the current model.

Madry et al. (2018) train on PGD examples only (fraction 1); seed 000 mixes 50% adversarial and
50% clean examples per batch; "fast" adversarial training (Wong et al., 2020) uses FGSM from a
random start with step 1.25 eps (the 'fgsm-rs' attack). Seed 002 regenerates a perturbed copy of
the whole training set at the start of each epoch (regenerate='epoch') instead of per batch;
the DeepFool paper fine-tunes on one perturbed copy made before the first epoch ('once').
An eps warm-up grows eps (and the step with it) linearly over the first epochs. Behind a
quantization layer, ``bpda`` makes the training attack use BPDA gradients (else they are zero).
Minimal-norm attacks (DeepFool, CW; seed 003 fine-tunes on DeepFool examples) take no radius:
``eps`` is ignored for them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from saddlepoint.attacks import Adversary
from saddlepoint.attacks.registry import ATTACKS, build_attack
from saddlepoint.data.base import ImageData
from saddlepoint.threat import parse_eps
from saddlepoint.train.defense import TrainingDefense
from saddlepoint.validation import check_choice, check_number, unknown_name_error


class AdversarialTraining(TrainingDefense):
    """Replace ``fraction`` of every batch by adversarial examples from ``attack``."""

    name = "adversarial"

    def __init__(
        self,
        attack: str = "pgd",
        *,
        eps: float | str = 0.3,
        fraction: float = 1.0,
        warmup_epochs: int = 0,
        regenerate: str = "batch",
        bpda: str | None = None,
        **attack_kwargs: Any,
    ) -> None:
        owner = "AdversarialTraining"
        if attack not in ATTACKS:
            raise unknown_name_error("attack", attack, ATTACKS)
        self.attack_name = attack
        self.eps = parse_eps(eps, "eps", owner)
        self.fraction = check_number(owner, "fraction", fraction, low=0, high=1, low_open=True)
        self.warmup_epochs = check_number(
            owner, "warmup_epochs", warmup_epochs, low=0, integer=True
        )
        self.regenerate = check_choice(owner, "regenerate", regenerate, ["batch", "epoch", "once"])
        self.bpda = (
            None if bpda is None else check_choice(owner, "bpda", bpda, ["identity", "smooth"])
        )
        self.attack_kwargs = dict(attack_kwargs)
        self.attack = self._build(1.0)  # validates the arguments now, not mid-training
        self._epoch_set: torch.Tensor | None = None

    def _build(self, scale: float) -> Adversary:
        kwargs = dict(self.attack_kwargs)
        if "step" in kwargs and kwargs["step"] is not None:
            kwargs["step"] = parse_eps(kwargs["step"]) * scale
        if ATTACKS[self.attack_name].minimal:
            return build_attack(self.attack_name, **kwargs)  # DeepFool, CW: no radius to set
        return build_attack(self.attack_name, eps=max(self.eps * scale, 1e-12), **kwargs)

    def config(self) -> dict:
        return {
            "name": self.name,
            "attack": self.attack_name,
            "eps": self.eps,
            "fraction": self.fraction,
            "warmup_epochs": self.warmup_epochs,
            "regenerate": self.regenerate,
            "bpda": self.bpda,
            **self.attack_kwargs,
        }

    def _perturb(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        if self.bpda is None:
            return self.attack.perturb(model, images, labels)
        from saddlepoint.defenses.quantize import bpda

        with bpda(model, self.bpda):
            return self.attack.perturb(model, images, labels)

    def start_epoch(self, model: nn.Module, data: ImageData, epoch: int, epochs: int) -> None:
        scale = min(epoch / self.warmup_epochs, 1.0) if self.warmup_epochs else 1.0
        self.attack = self._build(scale)
        if self.regenerate == "epoch" or (self.regenerate == "once" and epoch == 1):
            images, labels = data.train.images, data.train.labels
            device = next(model.parameters()).device
            parts = []
            for start in range(0, len(images), 1000):
                x = images[start : start + 1000].to(device)
                parts.append(self._perturb(model, x, labels[start : start + 1000].to(device)).cpu())
            self._epoch_set = torch.cat(parts)

    def state(self) -> dict[str, torch.Tensor]:
        # regenerate='once' keeps the set perturbed in epoch 1: a resumed run must train on it
        return {"epoch_set": self._epoch_set} if self._epoch_set is not None else {}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self._epoch_set = state.get("epoch_set")

    def batch(self, model, images, labels, index):
        count = max(1, round(self.fraction * images.shape[0]))
        if self._epoch_set is not None:
            adversarial = self._epoch_set[index[:count]].to(images.device)
        else:
            adversarial = self._perturb(model, images[:count], labels[:count])
        return torch.cat([adversarial, images[count:]]), labels
