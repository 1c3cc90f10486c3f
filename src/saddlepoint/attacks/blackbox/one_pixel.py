"""Few-pixel attacks: a sweep that probes every position and the
differential-evolution one-pixel attack (Su, Vargas & Sakurai, 2019).

Threat model: change at most ``pixels`` pixel positions (all channels of each) to any value in
the bounds (an L0 budget, so results are clipped to the bounds, not projected onto a ball).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from saddlepoint.attacks.base import Attack, BatchContext, BatchOutput
from saddlepoint.attacks.blackbox.common import check_budget, query, true_class_probability
from saddlepoint.validation import check_number


def _paint(
    x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """Copies of images ``x`` (m, C, H, W) with pixel (rows[i], cols[i]) set to values[i] (m, C)."""
    out = x.clone()
    index = torch.arange(x.shape[0], device=x.device)
    out[index, :, rows, cols] = values
    return out


class PixelSweep(Attack):
    """Set each pixel position in turn to ``colour`` and query all of them (H * W queries per
    image). The result keeps the position that lowers the true-class probability most; extras
    hold ``flips`` (how many positions change the prediction) and ``flip_map`` (N, H, W)."""

    name = "pixel-sweep"
    query_only = True
    minimal = True

    def __init__(self, *, colour: float | None = None, chunk: int = 1024, **common: Any) -> None:
        super().__init__(norm="linf", eps=float("inf"), **common)
        self.colour = colour
        self.chunk = check_number(type(self).__name__, "chunk", chunk, low=1, integer=True)

    def config(self) -> dict:
        return {"colour": self.colour if self.colour is not None else self.bounds[1]}

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
        context: BatchContext,
    ) -> BatchOutput:
        n, channels, height, width = x.shape
        colour = self.colour if self.colour is not None else self.bounds[1]
        clean_logits = query(model, x)
        positions = height * width
        best = x.clone()
        best_prob = true_class_probability(clean_logits, labels)
        best_logits = clean_logits.clone()
        flip_map = torch.zeros(n, positions, dtype=torch.bool, device=x.device)
        per_query = max(self.chunk // n, 1)
        value = torch.full((channels,), float(colour), device=x.device, dtype=x.dtype)
        for start in range(0, positions, per_query):
            pos = torch.arange(start, min(start + per_query, positions), device=x.device)
            m = pos.numel()
            images = x.repeat_interleave(m, dim=0)
            rows, cols = (pos // width).repeat(n), (pos % width).repeat(n)
            painted = _paint(images, rows, cols, value.expand(n * m, channels))
            logits = query(model, painted).view(n, m, -1)
            predictions = logits.argmax(dim=2)
            flip_map[:, start : start + m] = predictions != labels[:, None]
            probs = (
                logits.softmax(dim=2).gather(2, labels[:, None, None].expand(n, m, 1)).squeeze(2)
            )
            low, arg = probs.min(dim=1)
            better = low < best_prob
            best_prob = torch.where(better, low, best_prob)
            chosen = painted.view(n, m, channels, height, width)[torch.arange(n), arg]
            best[better] = chosen[better]
            best_logits[better] = logits[torch.arange(n), arg][better]
        used = torch.full((n,), positions + 1, dtype=torch.long, device=x.device)
        return BatchOutput(
            adversarial=best,
            logits=best_logits,
            clean_logits=clean_logits,
            queries=used,
            extras={"flips": flip_map.sum(1), "flip_map": flip_map.view(n, height, width)},
        )


def pixel_flip_map(
    model: nn.Module, image: torch.Tensor, label: int, colour: float | None = None
) -> torch.Tensor:
    """(H, W) booleans: which single pixel, set to ``colour``, changes the prediction of one
    image (C, H, W). Seed 002 found 298 of 1,024 positions of a CIFAR-10 image did."""
    result = PixelSweep(colour=colour)(model, image[None], torch.tensor([label]))
    return result.extras["flip_map"][0]


class OnePixel(Attack):
    """Differential evolution over (row, column, value per channel) for ``pixels`` pixels.

    Each image has a population of ``popsize`` candidates; each generation, candidate i is
    challenged by a + F (b - c) from three other random members and replaced when the child lowers
    the true-class probability (raises the target's, when targeted). A sample stops at its first
    success. Queries per sample: 1 + popsize * generations, at most ``queries``.

    Args: pixels (default 1), popsize (default 100), queries (budget, default 2,000),
    mutation F (default 0.5).
    """

    name = "one-pixel"
    query_only = True
    minimal = True

    def __init__(
        self,
        *,
        pixels: int = 1,
        popsize: int = 100,
        queries: int = 2000,
        mutation: float = 0.5,
        **common: Any,
    ) -> None:
        super().__init__(norm="linf", eps=float("inf"), **common)
        owner = type(self).__name__
        self.pixels = check_number(owner, "pixels", pixels, low=1, integer=True)
        self.popsize = check_number(owner, "popsize", popsize, low=4, integer=True)
        self.queries = check_budget(owner, queries)
        if self.queries < 1 + self.popsize:
            raise ValueError(
                f"The 'queries' parameter of {owner} must be at least 1 + popsize = "
                f"{1 + self.popsize}. Got {queries} instead."
            )
        self.mutation = check_number(owner, "mutation", mutation, low=0, high=2, low_open=True)

    def config(self) -> dict:
        return {
            "pixels": self.pixels,
            "popsize": self.popsize,
            "queries": self.queries,
            "mutation": self.mutation,
        }

    def _apply(self, x: torch.Tensor, genes: torch.Tensor) -> torch.Tensor:
        """Images (n * P, C, H, W) painted with each candidate's pixels; genes (n, P, k, 2 + C)."""
        n, population, _, _ = genes.shape
        _, channels, height, width = x.shape
        images = x.repeat_interleave(population, dim=0)
        flat = genes.reshape(n * population, self.pixels, 2 + channels)
        for k in range(self.pixels):
            rows = flat[:, k, 0].round().long().clamp(0, height - 1)
            cols = flat[:, k, 1].round().long().clamp(0, width - 1)
            images = _paint(images, rows, cols, flat[:, k, 2:])
        return images

    def _mutate(
        self, genes: torch.Tensor, u: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor
    ) -> torch.Tensor:
        """DE/rand/1 children a + F (b - c), with a, b, c members other than the parent drawn
        from ``u`` (m, P, 3), clipped to the gene ranges."""
        m, population = genes.shape[:2]
        me = torch.arange(population, device=genes.device)[None, :, None]
        others = (me + 1 + (u * (population - 1)).long()) % population

        def member(j: int) -> torch.Tensor:
            index = others[:, :, j].view(m, population, 1, 1).expand_as(genes)
            return genes.gather(1, index)

        child = member(0) + self.mutation * (member(1) - member(2))
        return torch.minimum(torch.maximum(child, lower), upper)

    def _fitness(
        self,
        model: nn.Module,
        x: torch.Tensor,
        genes: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(score to minimize, logits) per candidate, shapes (n, P) and (n, P, K)."""
        n, population = genes.shape[:2]
        logits = query(model, self._apply(x, genes)).view(n, population, -1)
        goal = labels if targets is None else targets
        prob = (
            logits.softmax(dim=2).gather(2, goal[:, None, None].expand(n, population, 1)).squeeze(2)
        )
        return (prob if targets is None else -prob), logits

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
        context: BatchContext,
    ) -> BatchOutput:
        n, channels, height, width = x.shape
        low, high = self.bounds
        clean_logits = query(model, x)
        used = torch.ones(n, dtype=torch.long, device=x.device)
        best = x.clone()
        best_logits = clean_logits.clone()
        found = self.succeeded(clean_logits, labels, targets)
        scale = torch.tensor(
            [height - 1, width - 1, *([high - low] * channels)], device=x.device, dtype=x.dtype
        )
        offset = torch.tensor([0, 0, *([low] * channels)], device=x.device, dtype=x.dtype)
        shape = (self.popsize, self.pixels, 2 + channels)
        genes = context.uniform(n, shape, stream=0).to(x) * scale + offset
        active = (~found).nonzero().squeeze(1)
        generations = (self.queries - 1) // self.popsize
        score = torch.full((n, self.popsize), float("inf"), device=x.device)
        for generation in range(generations):
            if active.numel() == 0:
                break
            if generation == 0:
                trial = genes[active]
            else:
                u = context.uniform(n, (self.popsize, 3), stream=generation).to(x.device)[active]
                trial = self._mutate(genes[active], u, offset, offset + scale)
            trial_score, logits = self._fitness(
                model,
                x[active],
                trial,
                labels[active],
                targets[active] if targets is not None else None,
            )
            used[active] += self.popsize
            improved = trial_score < score[active]
            g = genes[active]
            g[improved] = trial[improved]
            genes[active] = g
            s = score[active]
            s[improved] = trial_score[improved]
            score[active] = s
            ta = targets[active] if targets is not None else None
            hit = self.succeeded(
                logits.flatten(0, 1),
                labels[active].repeat_interleave(self.popsize),
                None if ta is None else ta.repeat_interleave(self.popsize),
            ).view(-1, self.popsize)
            winner = torch.where(hit.any(1), hit.float().argmax(1), trial_score.argmin(1))
            rows = torch.arange(len(active), device=x.device)
            images = self._apply(x[active], trial[rows, winner][:, None])
            chosen_logits = logits[rows, winner]
            chosen_score = trial_score[rows, winner]
            current = true_class_probability(
                best_logits[active], labels[active] if ta is None else ta
            )
            current = current if ta is None else -current
            take = hit.any(1) | (chosen_score < current)
            best[active[take]] = images[take]
            best_logits[active[take]] = chosen_logits[take]
            found[active[hit.any(1)]] = True
            active = active[~hit.any(1)]
        return BatchOutput(
            adversarial=best, logits=best_logits, clean_logits=clean_logits, queries=used
        )
