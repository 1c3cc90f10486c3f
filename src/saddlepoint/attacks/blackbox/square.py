"""Square attack (Andriushchenko et al., 2020): random square updates, query-only.

Threat model: Linf or L2 ball of radius eps, inside the bounds.
Linf: start from vertical stripes of +-eps; each query replaces one random square window (side s
from the schedule below) by +-eps per channel and keeps it if the margin loss
z_y - max_{j!=y} z_j drops (a square that would leave the image as it is takes the opposite
signs, so no query is spent on the current point, as in the reference code). The square's share
of the image starts at ``p_init`` and is halved after 10, 50, 200, 500, 1000, 2000, 4000, 6000
and 8000 of 10,000 queries (rescaled to the budget).
L2 (the paper's Algorithm 3): start from a tiling of small "pseudo-Gaussian" blocks (concentric
rings whose weight decays from the centre) with random signs, scaled to norm eps. Each query draws
two windows of side s: window 2's perturbation is set to zero and its mass, with the budget still
unused, moves to window 1, which becomes its old direction plus a fresh two-lobed pattern of
random sign per channel; the whole perturbation is rescaled to norm eps. Samples stop once they
succeed.

Args: norm, eps, queries (budget per sample, clean query included), p_init (default 0.8).

Example:
    >>> result = Square(eps=0.3, queries=1000)(model, images, labels)
"""

from __future__ import annotations

import math
from typing import Any

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
    revision = 2  # 2: a Linf square that would change nothing takes the opposite signs

    def __init__(
        self,
        *,
        norm: str = "linf",
        eps: float | str = 8 / 255,
        queries: int = 5000,
        p_init: float = 0.8,
        **common: Any,
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

    def _window(
        self,
        context: BatchContext,
        n: int,
        height: int,
        width: int,
        side: int,
        round_: int,
        device: torch.device,
    ) -> torch.Tensor:
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
            if self.norm == "l2":
                start = self._l2_start(context, x.shape, x)
            else:
                signs = context.uniform(n, (channels, 1, width), stream=0).to(x) < 0.5
                start = torch.where(signs, 1.0, -1.0).expand(n, channels, height, width) * self.eps
            active = offer(active, lp.clip(x + start, self.bounds)[active])
        for iteration in range(self.queries - 2):
            if active.numel() == 0:
                break
            p = self.fraction(iteration)
            delta = best[active] - x[active]
            if self.norm == "linf":
                side = max(1, min(round(math.sqrt(p * height * width)), height - 1, width - 1))
                window = self._window(context, n, height, width, side, iteration, x.device)
                signs = context.uniform(n, (channels, 1, 1), stream=2 * iteration + 2).to(x)
                value = torch.where(signs[active] < 0.5, self.eps, -self.eps).expand_as(delta)
                proposal = torch.where(window[active], value, delta)
                # a square that changes nothing would spend a query on the current point (late
                # in the schedule, on one channel, one proposal in two): flip its signs instead
                same = (lp.clip(x[active] + proposal, self.bounds) == best[active]).flatten(1)
                unchanged = same.all(dim=1).view(-1, 1, 1, 1)
                proposal = torch.where(window[active] & unchanged, -value, proposal)
            else:
                proposal = self._l2_proposal(context, n, delta, active, p, iteration)
            candidate = lp.clip(x[active] + proposal, self.bounds)
            active = offer(active, candidate)
        return BatchOutput(
            adversarial=best, logits=best_logits, clean_logits=clean_logits, queries=used
        )

    def _l2_start(self, context: BatchContext, shape: torch.Size, x: torch.Tensor) -> torch.Tensor:
        """Tiles of side max(1, H // 5), each a ring pattern of random sign per channel, at norm eps."""
        n, channels, height, width = shape
        tile = max(1, height // 5)
        signs = context.uniform(n, (channels, height, width), stream=0).to(x) < 0.5
        start = torch.zeros(n, channels, height, width, dtype=x.dtype, device=x.device)
        for top in range(0, height, tile):
            for left in range(0, width, tile):
                rows, cols = min(tile, height - top), min(tile, width - left)
                block = _rings(rows, cols).to(x)
                sign = torch.where(signs[:, :, top : top + 1, left : left + 1], 1.0, -1.0)
                start[:, :, top : top + rows, left : left + cols] = sign * block
        return lp.direction(start, "l2") * self.eps

    def _l2_proposal(
        self,
        context: BatchContext,
        n_all: int,
        delta: torch.Tensor,
        active: torch.Tensor,
        p: float,
        i: int,
    ) -> torch.Tensor:
        """One mass-moving update of Algorithm 3 for the active samples' perturbations ``delta``
        (random draws are made for all ``n_all`` samples of the sub-batch, then indexed)."""
        _, channels, height, width = delta.shape
        side = round(math.sqrt(p * height * width))
        side = max(min(side, height - 1, width - 1), min(3, height - 1, width - 1), 1)
        first = self._window(context, n_all, height, width, side, 2 * i, delta.device)[active]
        second = self._window(context, n_all, height, width, side, 2 * i + 1, delta.device)[active]
        draws = context.uniform(n_all, (channels + 1,), stream=4 * i + 4)[active].to(delta)
        signs = torch.where(draws[:, :channels] < 0.5, 1.0, -1.0).view(-1, channels, 1, 1)
        transpose = draws[:, channels] < 0.5
        pattern = _place(_two_lobes(side).to(delta), first, transpose) * signs

        def energy(t: torch.Tensor) -> torch.Tensor:  # per sample and channel, (n, c, 1, 1)
            return t.pow(2).sum(dim=(2, 3), keepdim=True)

        in_first = delta * first
        unused = (self.eps**2 - energy(delta).sum(1, keepdim=True)).clamp_min(0) / channels
        mass = unused + energy(delta * (first | second))
        block = pattern + in_first / (energy(in_first).sqrt() + 1e-10)
        block = block / (energy(block).sqrt() + 1e-12) * mass.sqrt()
        moved = torch.where(first, block, torch.where(second, 0.0, delta))
        return lp.direction(moved, "l2") * self.eps


def _rings(rows: int, cols: int) -> torch.Tensor:
    """A rows x cols block of concentric square rings whose weight decays from the centre as
    sum_{k >= ring} 1/(k+1)^2 (the paper's pseudo-Gaussian), scaled to unit L2 norm."""
    r = torch.arange(rows).sub(rows // 2).abs()
    c = torch.arange(cols).sub(cols // 2).abs()
    ring = torch.maximum(r[:, None], c[None, :])
    outer = int(ring.max())
    weights = torch.tensor(
        [sum(1 / (k + 1) ** 2 for k in range(j, outer + 1)) for j in range(outer + 1)]
    )
    block = weights[ring].float()
    return block / block.norm()


def _two_lobes(side: int) -> torch.Tensor:
    """A side x side pattern: a ring block on the top half, its negative on the bottom half."""
    top = side // 2
    if top == 0:
        return _rings(side, side)
    pattern = torch.cat([_rings(top, side), -_rings(side - top, side)])
    return pattern / pattern.norm()


def _place(pattern: torch.Tensor, window: torch.Tensor, transpose: torch.Tensor) -> torch.Tensor:
    """Put ``pattern`` (s, s), transposed where asked, into each sample's window (n, 1, H, W)."""
    n, _, height, width = window.shape
    side = pattern.shape[0]
    patterns = torch.where(transpose.view(-1, 1, 1), pattern.T, pattern)  # (n, s, s)
    rows = window.any(dim=3).float().argmax(dim=2).view(n, 1)  # top row of each window
    cols = window.any(dim=2).float().argmax(dim=2).view(n, 1)
    r = (torch.arange(height, device=window.device)[None] - rows).clamp(0, side - 1)
    c = (torch.arange(width, device=window.device)[None] - cols).clamp(0, side - 1)
    batch = torch.arange(n, device=window.device).view(n, 1, 1)
    placed = patterns[batch, r[:, :, None], c[:, None, :]]
    return placed[:, None] * window
