"""Carlini-Wagner L2 (Carlini & Wagner, 2017) with a binary search over the trade-off constant.

Threat model: minimal L2 perturbation (no eps); results stay inside the bounds.
Minimizes ||delta||_2^2 + c * max(z_y - max_{j!=y} z_j + kappa, 0) (untargeted; targeted uses the
target's margin) with Adam, per sample. Unlike the tanh change of variables, which cannot move
a pixel that sits exactly on a bound (most MNIST pixels are exactly 0), this version takes
projected Adam steps: after each step delta is clipped so that x + delta stays in bounds.
For each sample, c starts at ``initial_const`` and is searched: halved towards the last failure
after a success, multiplied by 10 (or bisected) after a failure. The smallest successful
perturbation over all searches is returned (x itself where none succeeded).

Args:
    steps: Adam iterations per search step (default 100).
    search_steps: binary-search steps over c (default 9).
    lr: Adam learning rate (default 0.01).
    initial_const: starting c (default 1.0).
    kappa: confidence margin (default 0).

A sample stops a search step early when its objective improved by less than 0.01% over the last
tenth of the steps, as in the original.

Example:
    >>> result = CarliniWagnerL2(steps=100)(model, images, labels)
    >>> result.norms("l2").median()
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from saddlepoint import lp
from saddlepoint.attacks.base import Attack, BatchContext, BatchOutput
from saddlepoint.autodiff import input_grad
from saddlepoint.losses import cw_margin
from saddlepoint.validation import check_number


class CarliniWagnerL2(Attack):
    """Minimal-L2 attack by penalized optimization with projected Adam and a search over c."""

    name = "cw"
    minimal = True

    def __init__(
        self,
        *,
        steps: int = 100,
        search_steps: int = 9,
        lr: float = 0.01,
        initial_const: float = 1.0,
        kappa: float = 0.0,
        **common: Any,
    ) -> None:
        super().__init__(norm="l2", eps=float("inf"), **common)
        owner = type(self).__name__
        check_number(owner, "steps", steps, low=1, integer=True)
        check_number(owner, "search_steps", search_steps, low=1, integer=True)
        check_number(owner, "lr", lr, low=0, low_open=True)
        check_number(owner, "initial_const", initial_const, low=0, low_open=True)
        check_number(owner, "kappa", kappa, low=0)
        self.steps, self.search_steps, self.lr = steps, search_steps, float(lr)
        self.initial_const, self.kappa = float(initial_const), float(kappa)

    def config(self) -> dict:
        return {
            "norm": "l2",
            "steps": self.steps,
            "search_steps": self.search_steps,
            "lr": self.lr,
            "initial_const": self.initial_const,
            "kappa": self.kappa,
        }

    def _margin(
        self, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None
    ) -> torch.Tensor:
        """How far the sample is from success (<= -kappa once it succeeds with margin kappa)."""
        if targets is None:
            return -cw_margin(logits, labels)
        return cw_margin(logits, targets)

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
        context: BatchContext,
    ) -> BatchOutput:
        n = x.shape[0]
        const = torch.full((n,), self.initial_const, device=x.device)
        lower = torch.zeros(n, device=x.device)
        upper = torch.full((n,), float("inf"), device=x.device)
        best = x.clone()
        best_l2 = torch.full((n,), float("inf"), device=x.device)
        evals = torch.zeros(n, dtype=torch.long, device=x.device)
        clean_logits = None
        beta1, beta2 = 0.9, 0.999
        check_every = max(self.steps // 10, 1)
        for _ in range(self.search_steps):
            delta = torch.zeros_like(x)
            m = torch.zeros_like(x)
            v = torch.zeros_like(x)
            found = torch.zeros(n, dtype=torch.bool, device=x.device)
            last_check = torch.full((n,), float("inf"), device=x.device)
            active = torch.arange(n, device=x.device)
            for t in range(1, self.steps + 1):
                if active.numel() == 0:
                    break
                xa, ya = x[active], labels[active]
                ta = targets[active] if targets is not None else None
                point = (xa + delta[active]).detach().requires_grad_(True)
                logits = model(point)
                if clean_logits is None:
                    clean_logits = logits.detach()
                margin = self._margin(logits, ya, ta)
                l2sq = (point - xa).flatten(1).pow(2).sum(1)
                objective = l2sq + const[active] * (margin + self.kappa).clamp_min(0)
                grad = input_grad(objective.sum(), point)
                evals[active] += 1
                with torch.no_grad():
                    success = self.succeeded(logits, ya, ta) & (margin <= -self.kappa)
                    l2 = l2sq.sqrt()
                    improved = success & (l2 < best_l2[active])
                    best[active[improved]] = point.detach()[improved]
                    best_l2[active[improved]] = l2[improved]
                    found[active[success]] = True
                    ma = m[active].mul_(beta1).add_(grad, alpha=1 - beta1)
                    va = v[active].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    m[active], v[active] = ma, va
                    step = self.lr * (ma / (1 - beta1**t)) / ((va / (1 - beta2**t)).sqrt() + 1e-8)
                    delta[active] = lp.clip(xa + delta[active] - step, self.bounds) - xa
                    if t % check_every == 0:
                        # Abort a sample whose objective no longer improves (Carlini & Wagner).
                        stalled = objective > 0.9999 * last_check[active]
                        last_check[active] = objective
                        active = active[~stalled]
            # The binary search over c, per sample.
            upper = torch.where(found, torch.minimum(upper, const), upper)
            lower = torch.where(found, lower, torch.maximum(lower, const))
            bisect = (lower + upper) / 2
            const = torch.where(torch.isinf(upper), const * 10, bisect)
        return BatchOutput(adversarial=best, clean_logits=clean_logits, grad_evals=evals)
