"""DeepFool (Moosavi-Dezfooli et al., 2016): the smallest step to the linearized decision boundary.

Threat model: minimal perturbation in L2 or Linf (no eps); results are clipped to the bounds.
At each iteration, for every candidate class k the boundary with the label y is linearized
(f_k = z_k - z_y, w_k = grad f_k) and the nearest one is taken:
r = |f_k| / ||w_k||_2^2 * w_k (L2) or |f_k| / ||w_k||_1 * sign(w_k) (Linf). Steps accumulate,
and the overshoot scales the accumulated perturbation (not each step), so a sample never stalls
exactly on the boundary. A sample stops as soon as its label flips; the batch works on the rest.
Binary classifiers (two logits) and multi-class ones are handled alike.

Args:
    norm: 'l2' or 'linf'.
    steps: maximum iterations (default 50).
    overshoot: relative overshoot of the accumulated perturbation (default 0.02).
    candidates: how many of the top classes (by clean logit) to consider (default 10).
    margin: logit margin each step aims past the linearized boundary, so that a sample that
        lands exactly on a tie still moves (1e-4 as in the reference code; 0 gives the pure
        closed-form step).

Example:
    >>> result = DeepFool(norm="l2")(model, images, labels)
    >>> result.metrics()["rho_adv"]
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from saddlepoint.attacks.base import Attack, BatchContext, BatchOutput
from saddlepoint.autodiff import input_grad
from saddlepoint.validation import check_choice, check_number


class DeepFool(Attack):
    """Minimal-norm DeepFool, batched, stopping per sample."""

    name = "deepfool"
    untargeted_only = True
    minimal = True

    def __init__(
        self,
        *,
        norm: str = "l2",
        steps: int = 50,
        overshoot: float = 0.02,
        candidates: int = 10,
        margin: float = 1e-4,
        **common: Any,
    ) -> None:
        super().__init__(norm=norm, eps=float("inf"), **common)
        owner = type(self).__name__
        check_choice(owner, "norm", norm, ["l2", "linf"])
        check_number(owner, "steps", steps, low=1, integer=True)
        check_number(owner, "overshoot", overshoot, low=0)
        check_number(owner, "candidates", candidates, low=2, integer=True)
        check_number(owner, "margin", margin, low=0)
        self.steps, self.overshoot, self.candidates = steps, float(overshoot), candidates
        self.margin = float(margin)

    def config(self) -> dict:
        return {
            "norm": self.norm,
            "steps": self.steps,
            "overshoot": self.overshoot,
            "candidates": self.candidates,
            "margin": self.margin,
        }

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
        context: BatchContext,
    ) -> BatchOutput:
        n = x.shape[0]
        x_adv = x.clone()
        total = torch.zeros_like(x)
        evals = torch.zeros(n, dtype=torch.long, device=x.device)
        active = torch.arange(n, device=x.device)
        clean_logits = None
        others = torch.empty(0)  # (n, c-1) candidate classes other than the label, set at 0
        for iteration in range(self.steps + 1):
            if active.numel() == 0:
                break
            xa = x_adv[active].detach().requires_grad_(True)
            logits = model(xa)
            if clean_logits is None:
                clean_logits = logits.detach()
                ranked = clean_logits.argsort(dim=1, descending=True)
                ranked = ranked[ranked != labels[:, None]].view(n, -1)
                others = ranked[:, : min(self.candidates, logits.shape[1]) - 1]
            ya = labels[active]
            done = logits.argmax(dim=1) != ya
            if bool(done.all()) or iteration == self.steps:
                break
            cand = others[active]  # (m, k-1)
            label_logit = logits.gather(1, ya[:, None])
            diffs = (
                logits.gather(1, cand) - label_logit
            )  # f_k < 0 for a correctly classified sample
            grads = []
            for j in range(cand.shape[1]):
                retain = j < cand.shape[1] - 1
                g = input_grad(diffs[:, j].sum(), xa, retain_graph=retain)
                grads.append(g)
            w = torch.stack(grads, dim=1)  # (m, k-1, *shape)
            evals[active] += cand.shape[1]
            f = diffs.detach().abs() + self.margin
            flat = w.flatten(2)
            size = flat.norm(dim=2) if self.norm == "l2" else flat.abs().sum(dim=2)
            distance = f / size.clamp_min(1e-12)
            best = distance.argmin(dim=1)
            pick = torch.arange(len(best), device=x.device)
            wk = w[pick, best]
            fk = f[pick, best].view(-1, *([1] * (x.dim() - 1)))
            sk = size[pick, best].view(-1, *([1] * (x.dim() - 1))).clamp_min(1e-12)
            step = fk / sk**2 * wk if self.norm == "l2" else fk / sk * wk.sign()
            moving = active[~done]
            total[moving] += step[~done]
            x_adv[moving] = (x[moving] + (1 + self.overshoot) * total[moving]).clamp(*self.bounds)
            active = moving
        return BatchOutput(adversarial=x_adv, clean_logits=clean_logits, grad_evals=evals)
