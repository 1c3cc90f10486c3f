"""Square attack (Andriushchenko et al., 2020): random square updates, query-only.

Threat model: Linf or L2 ball of radius eps, inside the bounds.
Linf: start from vertical stripes of +-eps; each query replaces one random square window (side s
from the schedule below) by +-eps per channel and keeps it if the margin loss
z_y - max_{j!=y} z_j drops. The square's share of the image starts at ``p_init`` and is halved
after 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of 10,000 queries (rescaled to the budget).
L2 (a simplified variant): the same schedule, but each proposal adds a Gaussian bump of random
sign per channel and L2 size eps * sqrt(p) inside the window, then projects onto the ball; the
paper's update instead moves mass between two windows. Samples stop once they succeed.

Args: norm, eps, queries (budget per sample, clean query included), p_init (default 0.8).

Example:
    >>> result = Square(eps=0.3, queries=1000)(model, images, labels)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from saddlepoint import lp
from saddlepoint.attacks.base import Attack, BatchContext, BatchOutput
from saddlepoint.attacks.blackbox.common import check_budget, margin_to_success, query
from saddlepoint.validation import check_number

_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


class Square(Attack):
    """Score-based random search over square-shaped updates."""

    name = "square"
    query_only = True

    def __init__(
        self,
        *,
        norm: str = "linf",
        eps: float | str = 8 / 255,
        queries: int = 5000,
        p_init: float = 0.8,
        **common,
    ) -> None:
        super().__init__(norm=norm, eps=eps, **common)
        owner = type(self).__name__
        self.queries = check_budget(owner, queries)
        self.p_init = check_number(owner, "p_init", p_init, low=0, high=1, low_open=True)

    def config(self) -> dict:
        return {
            "norm": self.norm,
            "eps": self.eps,
            "queries": self.queries,
            "p_init": self.p_init,
            "seed": self.seed,
        }

    def fraction(self, iteration: int) -> float:
        """The schedule p(i): the share of pixels the square covers at iteration i."""
        scaled = int(iteration / self.queries * 10000)
        return self.p_init / 2 ** sum(scaled > t for t in _HALVINGS)

    def _window(self, context, n, height, width, side, round_, device) -> torch.Tensor:
        """Boolean masks (n, 1, H, W) of one random side x side square per sample."""
        u = context.uniform(n, (2,), stream=2 * round_ + 1).to(device)
        top = (u[:, 0] * (height - side + 1)).floor().long()
        left = (u[:, 1] * (width - side + 1)).floor().long()
        rows = torch.arange(height, device=device)
        cols = torch.arange(width, device=device)
        in_rows = (rows[None] >= top[:, None]) & (rows[None] < top[:, None] + side)
        in_cols = (cols[None] >= left[:, None]) & (cols[None] < left[:, None] + side)
        return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
        context: BatchContext,
    ) -> BatchOutput:
        if x.dim() != 4:
            raise ValueError("Square needs image batches shaped (N, C, H, W).")
        n, channels, height, width = x.shape
        clean_logits = query(model, x)
        used = torch.ones(n, dtype=torch.long, device=x.device)
        best = x.clone()
        best_logits = clean_logits.clone()
        best_margin = margin_to_success(clean_logits, labels, targets)
        active = (best_margin > 0).nonzero().squeeze(1)

        def offer(active: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
            """Query the candidates, keep those that lower the margin; the still-unbroken rest."""
            logits = query(model, candidate)
            used[active] += 1
            ta = targets[active] if targets is not None else None
            margin = margin_to_success(logits, labels[active], ta)
            better = margin < best_margin[active]
            index = active[better]
            best[index], best_logits[index] = candidate[better], logits[better]
            best_margin[index] = margin[better]
            return active[best_margin[active] > 0]

        if active.numel() and self.queries > 1:
            signs = context.uniform(n, (channels, 1, width), stream=0).to(x) < 0.5
            stripes = torch.where(signs, 1.0, -1.0).expand(n, channels, height, width)
            if self.norm == "l2":
                stripes = stripes * self.eps / math.sqrt(channels * height * width)
            else:
                stripes = stripes * self.eps
            active = offer(active, lp.clip(x + stripes, self.bounds)[active])
        for iteration in range(self.queries - 2):
            if active.numel() == 0:
                break
            p = self.fraction(iteration)
            side = max(1, min(round(math.sqrt(p * height * width)), height - 1, width - 1))
            window = self._window(context, n, height, width, side, iteration, x.device)[active]
            signs = (
                context.uniform(n, (channels, 1, 1), stream=2 * iteration + 2).to(x)[active] < 0.5
            )
            delta = best[active] - x[active]
            if self.norm == "linf":
                value = torch.where(signs, self.eps, -self.eps).expand_as(delta)
                proposal = torch.where(window, value, delta)
            else:
                bump = _bump(side, height, width, window)
                scale = self.eps * math.sqrt(p)
                proposal = delta + torch.where(signs, 1.0, -1.0) * bump * scale
                proposal = lp.project(proposal, "l2", self.eps)
            candidate = lp.clip(x[active] + proposal, self.bounds)
            active = offer(active, candidate)
        return BatchOutput(
            adversarial=best, logits=best_logits, clean_logits=clean_logits, queries=used
        )


def _bump(side: int, height: int, width: int, window: torch.Tensor) -> torch.Tensor:
    """A Gaussian bump of unit L2 norm centred in each sample's window (n, 1, H, W)."""
    rows = torch.arange(height, device=window.device, dtype=torch.float32)
    cols = torch.arange(width, device=window.device, dtype=torch.float32)
    weight = window.float()
    count = weight.sum(dim=(2, 3), keepdim=True).clamp_min(1)
    centre_r = (weight * rows[:, None]).sum(dim=(2, 3), keepdim=True) / count
    centre_c = (weight * cols[None, :]).sum(dim=(2, 3), keepdim=True) / count
    sigma = max(side / 3, 0.5)
    distance = (rows[:, None] - centre_r) ** 2 + (cols[None, :] - centre_c) ** 2
    bump = torch.exp(-distance / (2 * sigma**2)) * weight
    return bump / bump.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
