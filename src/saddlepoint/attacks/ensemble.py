"""Run several attacks and keep, per sample, the first that breaks it (AutoAttack's scheme).

Each attack only sees the samples still classified correctly after the previous ones, so the
ensemble costs little more than its first attack on a weak model. ``extras['broken_by']`` holds
the index of the attack that broke each sample (-1: none; -2: misclassified before any attack).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import nn

from saddlepoint.attacks.base import Attack
from saddlepoint.attacks.result import AttackResult


class Ensemble:
    """The per-sample strongest of several attacks with one threat model."""

    name = "ensemble"

    def __init__(self, attacks: Sequence[Attack]) -> None:
        if not attacks:
            raise ValueError("The 'attacks' parameter of Ensemble must list at least one attack.")
        budgets = {(a.norm, a.eps) for a in attacks if not a.minimal}
        if len(budgets) > 1:
            raise ValueError(
                "The attacks of an Ensemble must share one threat model (norm and eps). "
                f"Got {sorted(budgets)} instead."
            )
        self.attacks = list(attacks)

    def config(self) -> dict:
        return {"attacks": [{"name": a.name, **a.config()} for a in self.attacks]}

    def __repr__(self) -> str:
        return f"Ensemble({self.attacks!r})"

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        targets: torch.Tensor | None = None,
    ) -> AttackResult:
        start = time.perf_counter()
        merged: AttackResult | None = None
        broken_by = None
        for index, attack in enumerate(self.attacks):
            if merged is None:
                result = attack(model, x, y, targets=targets)
                merged = result
                broken_by = torch.where(result.clean_correct, -1, -2)
                broken_by[result.success & result.clean_correct] = index
                continue
            todo = (~merged.success).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            sub_targets = targets[todo.to(targets.device)] if targets is not None else None
            result = attack(model, merged.inputs[todo], merged.labels[todo], targets=sub_targets)
            won = todo[result.success]
            merged.adversarial[won] = result.adversarial[result.success]
            merged.logits[won] = result.logits[result.success]
            merged.grad_evals[todo] += result.grad_evals
            merged.queries[todo] += result.queries
            broken_by[won] = index
        merged.attack = self.name
        merged.seconds = time.perf_counter() - start
        merged.trace = None
        merged.extras["broken_by"] = broken_by
        return merged
