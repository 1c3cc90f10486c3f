"""Keep each sample's strongest result over restarts: a success beats a failure, and among
equals the higher objective wins (shared by PGD and APGD)."""

from __future__ import annotations

import torch


class StrongestSoFar:
    """The per-sample best adversarial point, its logits, objective value and success."""

    def __init__(self, x: torch.Tensor) -> None:
        n = x.shape[0]
        self.adversarial = x.clone()
        self.logits: torch.Tensor | None = None
        self.value = torch.full((n,), float("-inf"), device=x.device)
        self.success = torch.zeros(n, dtype=torch.bool, device=x.device)

    def pending(self, early_stop: bool) -> torch.Tensor:
        """Indices still worth attacking: all of them, or (early stop) those not yet broken."""
        index = torch.arange(len(self.success), device=self.success.device)
        return index[~self.success] if early_stop else index

    def update(
        self,
        index: torch.Tensor,
        adversarial: torch.Tensor,
        logits: torch.Tensor,
        value: torch.Tensor,
        success: torch.Tensor,
    ) -> None:
        """Offer a run's results for the samples at ``index``; keep the stronger ones."""
        if self.logits is None:
            self.logits = logits.new_zeros((len(self.success), logits.shape[1]))
        better = (success & ~self.success[index]) | (
            (success == self.success[index]) & (value > self.value[index])
        )
        chosen = index[better]
        self.adversarial[chosen] = adversarial[better]
        self.logits[chosen] = logits[better]
        self.value[chosen] = value[better]
        self.success[chosen] = success[better]
