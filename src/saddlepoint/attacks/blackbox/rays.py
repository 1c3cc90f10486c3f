"""RayS (Chen and Gu, KDD 2020): a hard-label Linf attack that searches over ray directions.

Only the model's predicted label is used. The attack keeps, per image, a sign direction d in
{-1, +1}^p and the smallest radius r at which x + r d (clipped to the bounds) is misclassified.
It flips the signs of one block of d at a time, coarse to fine (the whole image, then halves,
quarters, ...; back to the whole image once blocks reach single pixels), asks the model once
whether the flipped direction is already adversarial at the current r, and if so binary-searches
its boundary radius and keeps it. An image is done once r <= eps (fixed-eps evaluation) or its
query budget is spent. The search has no randomness, so every image's result is the same in any
batch.

All images advance together: each sub-batch runs its images' proposals as one batch of queries,
each image with its own direction, block and radius; ``queries`` counts every model call of each
image (the clean one included), and the counts add up to the calls the attack made.

Args: eps (Linf radius; the attack stops an image once its boundary is inside), queries (budget
per image), tol (the binary search's precision, in pixel units).

Example:
    >>> result = RayS(eps=0.3, queries=10000)(model, images, labels)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from saddlepoint import lp
from saddlepoint.attacks.base import Attack, BatchContext, BatchOutput
from saddlepoint.attacks.blackbox.common import ask_labels, check_budget
from saddlepoint.validation import check_number


class RayS(Attack):
    """Hard-label ray search over sign directions (Linf)."""

    name = "rays"
    query_only = True
    untargeted_only = True
    supported_norms = ("linf",)

    def __init__(
        self,
        *,
        eps: float | str = 8 / 255,
        queries: int = 10000,
        tol: float = 1e-3,
        **common: Any,
    ) -> None:
        common.setdefault("norm", "linf")
        super().__init__(eps=eps, **common)
        owner = type(self).__name__
        if self.norm != "linf":
            raise ValueError(f"{owner} is an Linf attack; got norm={self.norm!r}.")
        self.queries = check_budget(owner, queries)
        self.tol = check_number(owner, "tol", tol, low=0, low_open=True)

    def config(self) -> dict:
        return {"norm": self.norm, "eps": self.eps, "queries": self.queries, "tol": self.tol}

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
        context: BatchContext,
    ) -> BatchOutput:
        search = _Search(model, x, labels, self.bounds, self.queries)
        search.start()
        while search.going(self.eps):
            search.step(self.tol, self.eps)
        return search.output(self.eps)


class _Search:
    """The per-image state of one sub-batch's ray search."""

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        bounds: tuple[float, float],
        budget: int,
    ) -> None:
        self.model, self.x, self.labels, self.bounds, self.budget = model, x, labels, bounds, budget
        n = len(x)
        self.flat = x[0].numel()
        self.direction = torch.ones((n, self.flat), device=x.device, dtype=x.dtype)
        self.radius = torch.full((n,), math.inf, device=x.device, dtype=torch.float64)
        self.used = torch.zeros(n, dtype=torch.long, device=x.device)
        self.stage = torch.zeros(n, dtype=torch.long, device=x.device)
        self.block = torch.zeros(n, dtype=torch.long, device=x.device)
        self.logits: torch.Tensor | None = None  # of each image's best point so far
        self.clean: torch.Tensor | None = None
        self.top = float(bounds[1] - bounds[0])  # the largest Linf distance inside the bounds

    def point(
        self, rows: torch.Tensor, direction: torch.Tensor, radius: torch.Tensor
    ) -> torch.Tensor:
        step = (radius.to(self.x.dtype)[:, None] * direction).view_as(self.x[rows])
        return lp.clip(self.x[rows] + step, self.bounds)

    def ask(self, rows: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One query of each row's point: (misclassified, logits)."""
        return ask_labels(self.model, points, self.labels[rows], self.used, rows)

    def start(self) -> None:
        """The clean query, then the all-ones direction at the largest radius."""
        every = torch.arange(len(self.x), device=self.x.device)
        wrong, self.clean = self.ask(every, self.x)
        self.logits = self.clean.clone()
        self.radius[wrong] = 0.0
        rows = every[~wrong & (self.used < self.budget)]
        if rows.numel():
            top = torch.full((len(rows),), self.top, dtype=torch.float64, device=self.x.device)
            hit, logits = self.ask(rows, self.point(rows, self.direction[rows], top))
            self._settle(rows[hit], self.direction[rows][hit], top[hit], logits[hit])

    def going(self, eps: float) -> bool:
        return bool(self.active(eps).numel())

    def active(self, eps: float) -> torch.Tensor:
        return ((self.radius > eps) & (self.used < self.budget)).nonzero().squeeze(1)

    def step(self, tol: float, eps: float) -> None:
        """Each active image flips its current block and keeps the flip if it is adversarial
        at the image's current radius (then binary-searches the new boundary)."""
        rows = self.active(eps)
        proposal = self._flipped(rows)
        ceiling = torch.clamp(self.radius[rows], max=self.top)
        hit, logits = self.ask(rows, self.point(rows, proposal, ceiling))
        self._settle(rows[hit], proposal[hit], ceiling[hit], logits[hit], tol)
        self._advance(rows)

    def _flipped(self, rows: torch.Tensor) -> torch.Tensor:
        """Each row's direction with the signs of its current block flipped."""
        size = torch.clamp(self.flat // (2 ** self.stage[rows]), min=1)
        first = self.block[rows] * size
        position = torch.arange(self.flat, device=self.x.device)[None, :]
        inside = (position >= first[:, None]) & (position < (first + size)[:, None])
        return torch.where(inside, -self.direction[rows], self.direction[rows])

    def _advance(self, rows: torch.Tensor) -> None:
        """The next block; past the last, the next stage (halved blocks); past single pixels,
        the whole image again."""
        size = torch.clamp(self.flat // (2 ** self.stage[rows]), min=1)
        blocks = (self.flat + size - 1) // size
        self.block[rows] += 1
        done = self.block[rows] >= blocks
        finer = rows[done]
        self.block[finer] = 0
        self.stage[finer] += 1
        restart = finer[self.flat // (2 ** self.stage[finer]) < 1]
        self.stage[restart] = 0

    def _settle(
        self,
        rows: torch.Tensor,
        direction: torch.Tensor,
        high: torch.Tensor,
        logits: torch.Tensor,
        tol: float = 1e-3,
    ) -> None:
        """Binary-search each row's boundary on [0, high] along ``direction`` (adversarial at
        ``high``) while its budget lasts, and keep the direction and radius found."""
        assert self.logits is not None
        low = torch.zeros_like(high)
        high, best = high.clone(), logits.clone()
        searching = torch.arange(len(rows), device=self.x.device)
        while searching.numel():
            searching = searching[
                (high[searching] - low[searching] > tol)
                & (self.used[rows[searching]] < self.budget)
            ]
            if not searching.numel():
                break
            middle = (low[searching] + high[searching]) / 2
            hit, found = self.ask(
                rows[searching], self.point(rows[searching], direction[searching], middle)
            )
            high[searching[hit]] = middle[hit]
            best[searching[hit]] = found[hit]
            low[searching[~hit]] = middle[~hit]
        self.direction[rows] = direction
        self.radius[rows] = high
        self.logits[rows] = best

    def output(self, eps: float) -> BatchOutput:
        """Each image at its boundary point when that is inside the ball (an adversarial the
        model was asked about, with the model's answer there), else the image itself; every
        returned point was queried, so no pass beyond the counted queries is needed."""
        assert self.logits is not None and self.clean is not None
        found = (self.radius <= eps) & (self.radius > 0)
        adversarial = self.x.clone()
        rows = found.nonzero().squeeze(1)
        if rows.numel():
            adversarial[rows] = self.point(rows, self.direction[rows], self.radius[rows])
        return BatchOutput(
            adversarial=adversarial,
            logits=torch.where(found[:, None], self.logits, self.clean),
            clean_logits=self.clean,
            queries=self.used.clone(),
            extras={"radius": self.radius.float().clamp(max=self.top)},
        )
