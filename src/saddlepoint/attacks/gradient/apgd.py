"""Auto-PGD (Croce & Hein, 2020): step-size-free PGD with momentum, as used by AutoAttack.

Threat model: Linf, L2 or L1 ball of radius eps, inside the bounds.
The step size starts at 2 * eps and is halved at checkpoints w_j = ceil(p_j * steps)
(p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)) when fewer than
rho * (w_j - w_{j-1}) of the steps since the last checkpoint increased the loss, or when neither the
step size nor the best loss changed since then; the iterate then restarts from the best point.
Updates use momentum 0.75: x_{k+1} = P(x_k + a (z_{k+1} - x_k) + (1 - a)(x_k - x_{k-1})).
Each sample keeps its first successful iterate, else its highest-loss one.

L1 (APGD-L1, Croce & Hein 2021, "Mind the box"): the step moves only the coordinates with the
largest gradient magnitudes, a share k of them, each by step / (number moved), so the step has
L1 size eta (starting at eps, not 2 eps), without momentum; iterates are projected exactly onto
the L1 ball intersected with the box. Every max(4% of the steps, 1) iterations k becomes the
sparsity of the best point divided by 1.5 (starting at 20%); where that sparsity fell by less
than 5% the step is divided by 1.5 (never below eps / 10), elsewhere it is reset to eps and the
iterate restarts from the best point. The reference's extra large-eps warm-up runs are not done.

Defaults follow the reference: 100 steps (torchattacks' "standard" AutoAttack uses 10), random
start, loss 'ce' or 'dlr'.

Args (beyond the threat model):
    steps: iterations (default 100); restarts: random restarts (default 1);
    loss: 'ce' or 'dlr' (any registered loss works); rho: 0.75; momentum: 0.75;
    early_stop: drop a sample from the working batch once it is misclassified;
    eot: gradients averaged over this many passes, for randomized models (AutoAttack's 'rand'
    version uses 20; each counts as a gradient evaluation).

Example:
    >>> result = APGD(eps=0.3, loss="dlr")(model, images, labels)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from saddlepoint import lp
from saddlepoint.attacks.base import Attack, BatchContext, BatchOutput
from saddlepoint.attacks.gradient.restarts import StrongestSoFar
from saddlepoint.attacks.runtime import float32_logits
from saddlepoint.validation import check_flag, check_number


def checkpoints(steps: int) -> list[int]:
    """The iterations w_j at which APGD may halve its step size."""
    p = [0.0, 0.22]
    while p[-1] + max(p[-1] - p[-2] - 0.03, 0.06) <= 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(v * steps) for v in p[1:]} - {0})


class APGD(Attack):
    """Auto-PGD with the CE or DLR loss."""

    name = "apgd"
    low_precision = True
    supported_norms = ("linf", "l2", "l1")

    def __init__(
        self,
        *,
        norm: str = "linf",
        eps: float | str = 8 / 255,
        steps: int = 100,
        restarts: int = 1,
        loss: str = "ce",
        rho: float = 0.75,
        momentum: float = 0.75,
        early_stop: bool = False,
        eot: int = 1,
        **common: Any,
    ) -> None:
        super().__init__(norm=norm, eps=eps, loss=loss, **common)
        owner = type(self).__name__
        check_number(owner, "steps", steps, low=1, integer=True)
        check_number(owner, "restarts", restarts, low=1, integer=True)
        check_number(owner, "rho", rho, low=0, high=1)
        check_number(owner, "momentum", momentum, low=0, high=1)
        check_number(owner, "eot", eot, low=1, integer=True)
        self.eot = eot
        self.steps, self.restarts = steps, restarts
        self.rho, self.momentum = float(rho), float(momentum)
        self.early_stop = check_flag(type(self).__name__, "early_stop", early_stop)
        self._checkpoints = set(checkpoints(steps))

    def config(self) -> dict:
        return {
            **super().config(),
            "steps": self.steps,
            "restarts": self.restarts,
            "rho": self.rho,
            "momentum": self.momentum,
            "early_stop": self.early_stop,
            **({"eot": self.eot} if self.eot > 1 else {}),
        }

    def _project(self, points: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return lp.project_and_clip(points, x, self.norm, self.eps, self.bounds)

    def _single(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
        start: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One run; returns (chosen point per sample, gradient evaluations per sample)."""
        n = x.shape[0]
        device = x.device
        x_k = self._project(x + start, x)
        logits, loss, grad = self.input_gradient(model, x_k, labels, targets)
        evals = torch.full((n,), self.eot, dtype=torch.long, device=device)
        sparse = self.norm == "l1"
        eta = torch.full((n,), (1.0 if sparse else 2.0) * self.eps, device=device)
        features = x[0].numel()
        share = torch.full((n,), 0.2, device=device)  # L1: share of coordinates a step moves
        sparsity_before = torch.full((n,), float(features), device=device)
        period = max(int(0.04 * self.steps), 1)
        best_loss, x_best, grad_best = loss.clone(), x_k.clone(), grad.clone()
        success = self.confirmed(
            model, x_k, self.succeeded(logits, labels, targets), labels, targets
        )
        x_adv = torch.where(_expand(success, x), x_k, x_best)
        increases = torch.zeros(n, device=device)
        loss_at_checkpoint = best_loss.clone()
        reduced = torch.ones(n, dtype=torch.bool, device=device)
        x_prev = x_k.clone()
        last = 0
        active = torch.arange(n, device=device)
        if self.early_stop:
            active = active[~success]
        for k in range(1, self.steps):
            if active.numel() == 0:
                break
            a = active
            if sparse:
                step = _expand(eta[a], x) * _sparse_direction(grad[a], share[a])
            else:
                step = _expand(eta[a], x) * lp.direction(grad[a], self.norm)
            z = self._project(x_k[a] + step, x[a])
            if k == 1 or sparse:
                new = z
            else:
                new = (
                    x_k[a]
                    + self.momentum * (z - x_k[a])
                    + (1 - self.momentum) * (x_k[a] - x_prev[a])
                )
                new = self._project(new, x[a])
            x_prev[a] = x_k[a]
            x_k[a] = new
            ta = targets[a] if targets is not None else None
            logits, value, g = self.input_gradient(model, new, labels[a], ta)
            evals[a] += self.eot
            grad[a] = g
            hit = self.succeeded(logits, labels[a], ta) & ~success[a]
            first = self.confirmed(model, new, hit, labels[a], ta)
            x_adv[a[first]] = new[first]
            success[a[first]] = True
            previous = loss[a]
            increases[a] += (value > previous).float()
            loss[a] = value
            better = value > best_loss[a]
            best_loss[a[better]] = value[better]
            x_best[a[better]] = new[better]
            grad_best[a[better]] = g[better]
            still = ~success[a]
            x_adv[a[still & better]] = new[still & better]
            if sparse and k % period == 0:
                nonzero = (x_best[a] - x[a]).flatten(1).ne(0).sum(dim=1).to(share.dtype)
                kept_sparse = nonzero / sparsity_before[a].clamp_min(1) < 0.95
                share[a] = nonzero / features / 1.5
                reset = a[kept_sparse]
                eta[a[~kept_sparse]] /= 1.5
                eta[reset] = self.eps
                eta[a] = eta[a].clamp(self.eps / 10, self.eps)
                sparsity_before[a] = nonzero
                x_k[reset] = x_best[reset]
                grad[reset] = grad_best[reset]
            elif not sparse and k in self._checkpoints:
                window = k - last
                stalled = increases[a] < self.rho * window
                unchanged = ~reduced[a] & (loss_at_checkpoint[a] >= best_loss[a])
                halve = stalled | unchanged
                eta[a[halve]] /= 2
                x_k[a[halve]] = x_best[a[halve]]
                grad[a[halve]] = grad_best[a[halve]]
                reduced[a] = halve
                loss_at_checkpoint[a] = best_loss[a]
                increases[a] = 0
                last = k
            if self.early_stop:
                active = a[~success[a]]
        return x_adv, evals

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
        context: BatchContext,
    ) -> BatchOutput:
        n = x.shape[0]
        strongest = StrongestSoFar(x)
        evals = torch.zeros(n, dtype=torch.long, device=x.device)
        for restart in range(self.restarts):
            todo = strongest.pending(self.early_stop)
            if todo.numel() == 0:
                break
            start = context.random_start(n, tuple(x.shape[1:]), self.norm, self.eps, restart).to(x)
            ta = targets[todo] if targets is not None else None
            adv, run_evals = self._single(model, x[todo], labels[todo], ta, start[todo])
            evals[todo] += run_evals
            logits = float32_logits(model, adv)
            value = self.objective(logits, labels[todo], ta)
            strongest.update(todo, adv, logits, value, self.succeeded(logits, labels[todo], ta))
        return BatchOutput(
            adversarial=strongest.adversarial, logits=strongest.logits, grad_evals=evals
        )


def _expand(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


def _sparse_direction(grad: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """The signs of the ``share`` (per sample) largest-magnitude gradient entries, divided by
    their count: a direction of L1 size 1 that moves only those coordinates."""
    flat = grad.flatten(1)
    d = flat.shape[1]
    ranked = flat.abs().sort(dim=1).values
    index = ((1 - share) * d).clamp(0, d - 1).long()
    threshold = ranked.gather(1, index[:, None])
    chosen = (flat.abs() >= threshold) & (flat != 0)
    signs = flat.sign() * chosen
    count = chosen.sum(dim=1, keepdim=True).clamp_min(1)
    return (signs / count).view_as(grad)
