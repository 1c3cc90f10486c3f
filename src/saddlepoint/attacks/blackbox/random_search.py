"""Random perturbation search: a query-only hill climb on the true class's probability.

Threat model: Linf or L2 ball of radius eps (the "visibility bound"), inside the bounds.
Each round adds a small random perturbation (uniform in an Linf box or a Gaussian direction of
L2 length ``step``) to the current one; it is kept if the true-class probability drops, otherwise
reverted. A sample stops when its prediction flips, when the perturbation leaves the ball (it
would become visible), or when its query budget is spent. Queries are counted per sample, the
clean query included.

Args: norm, eps, step (size of one random perturbation), queries (budget per sample),
on_bound: what leaving the ball means --
    'kept' (seed 002 as it states the rule): every proposal is queried; the search ends when a
        perturbation it keeps exceeds the bound, and the sample keeps its last perturbation
        inside the ball (a flip found outside the ball does not count);
    'stop': the search ends at the first proposal outside the ball, before querying it;
    'project': the proposal is projected back into the ball and the search goes on until the
        budget is spent (a stronger search).

Example:
    >>> result = RandomSearch(eps=0.3, step=0.05, queries=500)(model, images, labels)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from saddlepoint import lp
from saddlepoint.attacks.base import Attack, BatchContext, BatchOutput
from saddlepoint.attacks.blackbox.common import check_budget, query, true_class_probability
from saddlepoint.threat import parse_eps
from saddlepoint.validation import check_choice


class RandomSearch(Attack):
    """Keep random perturbations that lower the true-class probability."""

    name = "random-search"
    query_only = True

    def __init__(
        self,
        *,
        norm: str = "linf",
        eps: float | str = 8 / 255,
        step: float | str | None = None,
        queries: int = 1000,
        on_bound: str = "stop",
        **common: Any,
    ) -> None:
        super().__init__(norm=norm, eps=eps, **common)
        owner = type(self).__name__
        self.on_bound = check_choice(owner, "on_bound", on_bound, ["kept", "stop", "project"])
        self.step = parse_eps(step, "step", owner) if step is not None else self.eps / 4
        self.queries = check_budget(owner, queries)

    def config(self) -> dict:
        return {
            "norm": self.norm,
            "eps": self.eps,
            "step": self.step,
            "queries": self.queries,
            "on_bound": self.on_bound,
            "seed": self.seed,
        }

    def _proposal(
        self, context: BatchContext, n: int, shape: tuple[int, ...], round_: int
    ) -> torch.Tensor:
        if self.norm == "linf":
            return (context.uniform(n, shape, stream=round_) * 2 - 1) * self.step
        direction = context.random_start(n, shape, "l2", 1.0, stream=round_)
        return lp.direction(direction, "l2") * self.step

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
        context: BatchContext,
    ) -> BatchOutput:
        n = x.shape[0]
        logits = query(model, x)
        clean_logits = logits
        used = torch.ones(n, dtype=torch.long, device=x.device)
        score = true_class_probability(logits, labels if targets is None else targets)
        sign = 1.0 if targets is None else -1.0  # targeted: raise the target's probability
        adversarial = x.clone()
        current = logits.clone()
        active = (~self.succeeded(logits, labels, targets)).nonzero().squeeze(1)
        shape = tuple(x.shape[1:])
        for round_ in range(self.queries - 1):
            if active.numel() == 0:
                break
            step = self._proposal(context, n, shape, round_).to(x)[active]
            proposal = adversarial[active] - x[active] + step
            if self.on_bound == "project":
                proposal = lp.project(proposal, self.norm, self.eps)
            elif self.on_bound == "stop":  # a proposal that would be visible ends the search
                inside = lp.norms(proposal, self.norm) <= self.eps
                active, proposal = active[inside], proposal[inside]
            if active.numel() == 0:
                break
            candidate = lp.clip(x[active] + proposal, self.bounds)
            out = query(model, candidate)
            used[active] += 1
            ta = targets[active] if targets is not None else None
            new_score = true_class_probability(out, labels[active] if ta is None else ta)
            keep = sign * (new_score - score[active]) < 0
            if self.on_bound == "kept":  # a kept perturbation past the bound ends the search
                outside = keep & (lp.norms(candidate - x[active], self.norm) > self.eps)
                active, proposal, candidate = (
                    active[~outside],
                    proposal[~outside],
                    candidate[~outside],
                )
                out, new_score, keep = out[~outside], new_score[~outside], keep[~outside]
                ta = targets[active] if targets is not None else None
            kept = active[keep]
            adversarial[kept] = candidate[keep]
            score[kept] = new_score[keep]
            current[kept] = out[keep]
            done = self.succeeded(out, labels[active], ta) & keep
            active = active[~done]
        return BatchOutput(
            adversarial=adversarial, logits=current, clean_logits=clean_logits, queries=used
        )
