"""HopSkipJump (Chen, Jordan and Wainwright, 2020): a hard-label attack that walks along the
decision boundary, L2 or Linf.

Only the model's predicted label is used. Per image: a start that is misclassified (uniform noise
images, up to ``init_tries``, then a binary search on the segment from the image to that noise),
a binary search to the boundary, then iterations t = 1, 2, ...: estimate the gradient direction
of the decision at the boundary point from ``init_evals * sqrt(t)`` labels of random
perturbations of it (at most ``max_evals``; baseline-corrected signs, as the paper), step along
it (its sign for Linf) by dist / sqrt(t), halving until the step lands on an adversarial point,
and binary-search back to the boundary between that point and the image. An image keeps the
closest boundary point it found; it stops once that is inside the eps-ball (fixed-eps use), its
query budget cannot pay for another iteration, or after ``steps`` iterations.

All images advance together: each phase queries every image still going as one batch of points
(the gradient estimate in chunks of at most ``chunk`` points), each image with its own state and
its own random draws (keyed by the seed and the image's position, so results do not depend on
the batch split). ``queries`` counts every model call of each image, the clean one included; the
counts add up to the calls the attack made. Every point returned was queried and found
adversarial by the model's label; an image whose budget ran out before the ball is reached comes
back unchanged (``HopSkipJumpMinimal`` returns the closest boundary point instead).

Args: norm ('l2' or 'linf'), eps, queries (budget per image), steps (iterations at most),
init_evals, max_evals, init_tries, gamma (the paper's binary-search precision factor).

Example:
    >>> result = HopSkipJump(norm="l2", eps=2.0, queries=5000)(model, images, labels)
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

_HALVINGS = 25  # the step search gives up on an image after this many halvings


class LabelWalkAttack(Attack):
    """What every hard-label boundary walk shares (HopSkipJump, Boundary): a query budget per
    image, a misclassified start found among ``init_tries`` noise images, model calls in chunks
    of at most ``chunk`` points, untargeted calls only, and the walk's points as the result
    (inside the eps-ball, else the image; the closest point for the minimal variants)."""

    query_only = True
    untargeted_only = True

    def __init__(
        self,
        *,
        norm: str,
        eps: float | str,
        queries: int,
        init_tries: int,
        chunk: int,
        **common: Any,
    ) -> None:
        super().__init__(norm=norm, eps=eps, **common)
        owner = type(self).__name__
        self.queries = check_budget(owner, queries)
        self.init_tries = check_number(owner, "init_tries", init_tries, low=1, integer=True)
        self.chunk = check_number(owner, "chunk", chunk, low=1, integer=True)

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
        context: BatchContext,
    ) -> BatchOutput:
        walk = self._walk(model, x, labels, context)
        walk.start()
        self._advance(walk)
        return walk.output(None if self.minimal else self.eps)

    def _walk(
        self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, context: BatchContext
    ) -> _Walk:
        """The per-image state this attack walks with."""
        raise NotImplementedError

    def _advance(self, walk: Any) -> None:
        """Move every image until none is going."""
        raise NotImplementedError


class HopSkipJump(LabelWalkAttack):
    """Hard-label boundary walk with estimated gradient directions (L2 or Linf)."""

    name = "hsj"
    supported_norms = ("l2", "linf")

    def __init__(
        self,
        *,
        norm: str = "l2",
        eps: float | str = 1.0,
        queries: int = 5000,
        steps: int = 1000,
        init_evals: int = 100,
        max_evals: int = 10000,
        init_tries: int = 100,
        gamma: float = 1.0,
        chunk: int = 512,
        **common: Any,
    ) -> None:
        super().__init__(
            norm=norm, eps=eps, queries=queries, init_tries=init_tries, chunk=chunk, **common
        )
        owner = type(self).__name__
        self.steps = check_number(owner, "steps", steps, low=1, integer=True)
        self.init_evals = check_number(owner, "init_evals", init_evals, low=1, integer=True)
        self.max_evals = check_number(owner, "max_evals", max_evals, low=1, integer=True)
        self.gamma = check_number(owner, "gamma", gamma, low=0, low_open=True)

    def config(self) -> dict:
        return {
            "norm": self.norm,
            "eps": self.eps,
            "queries": self.queries,
            "steps": self.steps,
            "init_evals": self.init_evals,
            "max_evals": self.max_evals,
            "init_tries": self.init_tries,
            "gamma": self.gamma,
            "seed": self.seed,
        }

    def _walk(
        self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, context: BatchContext
    ) -> _Walk:
        return _Walk(self, model, x, labels, context)

    def _advance(self, walk: _Walk) -> None:
        for t in range(1, self.steps + 1):
            if not walk.iterate(t):
                break


class HopSkipJumpMinimal(HopSkipJump):
    """HopSkipJump as a minimal-norm attack: it spends its whole budget and returns each image's
    closest boundary point (``eps`` is not used)."""

    name = "hsj-minimal"
    minimal = True


class _Walk:
    """The per-image state of one sub-batch's boundary walk."""

    def __init__(
        self,
        attack: HopSkipJump,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        context: BatchContext,
    ) -> None:
        self.attack, self.model, self.x, self.labels = attack, model, x, labels
        self.context = context
        n = len(x)
        self.dims = x[0].numel()
        self.l2 = attack.norm == "l2"
        # the paper's theta: the binary search's precision, relative to the distance
        self.theta = attack.gamma / (self.dims**1.5 if self.l2 else self.dims**2)
        self.point = x.clone()  # each image's boundary point (adversarial once found)
        self.dist = torch.full((n,), math.inf, device=x.device, dtype=torch.float64)
        self.used = torch.zeros(n, dtype=torch.long, device=x.device)
        self.logits: torch.Tensor | None = None  # the model's answer at each boundary point
        self.clean: torch.Tensor | None = None

    # ---- queries and draws ----------------------------------------------------------------

    def ask(self, rows: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One query of each row's point: (misclassified, logits)."""
        labels = self.labels[rows]
        return ask_labels(self.model, points, labels, self.used, rows, self.attack.chunk)

    def left(self, rows: torch.Tensor) -> torch.Tensor:
        return self.attack.queries - self.used[rows]

    def draw(self, row: int, stream: int, count: int, uniform: bool) -> torch.Tensor:
        """``count`` draws shaped like one image for image ``row``, from a generator keyed by
        the seed, the image's position in the whole batch and ``stream``."""
        index = self.context.offset + row
        seed = (self.attack.seed * 1_000_003 + index * 7_919 + stream * 104_729) % (2**63)
        generator = torch.Generator().manual_seed(seed)
        shape = (count, *self.x.shape[1:])
        values = (
            torch.rand(shape, generator=generator)
            if uniform
            else torch.randn(shape, generator=generator)
        )
        return values.to(device=self.x.device, dtype=self.x.dtype)

    def distance(self, points: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return lp.norms(points - self.x[rows], self.attack.norm).double()

    # ---- the start --------------------------------------------------------------------------

    def start(self) -> None:
        """The clean query; then, for each image read correctly, a misclassified start on the
        boundary."""
        every = torch.arange(len(self.x), device=self.x.device)
        wrong, self.clean = self.ask(every, self.x)
        self.logits = self.clean.clone()
        self.dist[wrong] = 0.0
        low, high = self.attack.bounds
        noise, noise_logits = self.x.clone(), self.clean.clone()
        found = wrong.clone()
        for attempt in range(self.attack.init_tries):
            rows = every[~found & (self.left(every) > 0)]
            if not rows.numel():
                break
            tries = torch.cat([self.draw(int(r), -1 - attempt, 1, True) for r in rows.tolist()])
            tries = low + (high - low) * tries
            hit, logits = self.ask(rows, tries)
            noise[rows[hit]], noise_logits[rows[hit]] = tries[hit], logits[hit]
            found[rows[hit]] = True
        rows = every[found & ~wrong]
        if not rows.numel():
            return
        # the segment from the image to its noise, searched to 0.001 of its length
        lo = torch.zeros(len(rows), dtype=torch.float64, device=self.x.device)
        hi = torch.ones_like(lo)
        hi_logits = noise_logits[rows].clone()
        going = torch.arange(len(rows), device=self.x.device)
        while going.numel():
            going = going[(hi[going] - lo[going] > 1e-3) & (self.left(rows[going]) > 0)]
            if not going.numel():
                break
            mid = (lo[going] + hi[going]) / 2
            blend = self._blend(rows[going], noise[rows[going]], mid)
            hit, logits = self.ask(rows[going], blend)
            hi[going[hit]] = mid[hit]
            hi_logits[going[hit]] = logits[hit]
            lo[going[~hit]] = mid[~hit]
        moved = hi < 1
        start = noise[rows].clone()  # the noise itself where no blend was adversarial
        start[moved] = self._blend(rows[moved], noise[rows[moved]], hi[moved])
        self._to_boundary(rows, start, hi_logits)

    def _blend(self, rows: torch.Tensor, far: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        a = alpha.to(self.x.dtype).view(-1, *([1] * (self.x.dim() - 1)))
        return (1 - a) * self.x[rows] + a * far

    # ---- one iteration ----------------------------------------------------------------------

    def iterate(self, t: int) -> bool:
        """Iteration ``t`` for every image still going; False when none is."""
        evals = min(int(self.attack.init_evals * math.sqrt(t)), self.attack.max_evals)
        going = torch.isfinite(self.dist) & (self.dist > 0)
        if not self.attack.minimal:
            going &= self.dist > self.attack.eps
        every = torch.arange(len(self.x), device=self.x.device)
        rows = (going & (self.left(every) > evals)).nonzero().squeeze(1)
        if not rows.numel():
            return False
        direction = self._direction(rows, t, evals)
        size = self.dist[rows] / math.sqrt(t)
        stepped = self._step(rows, direction, size)
        if stepped is not None:
            self._to_boundary(*stepped)
        return True

    def _direction(self, rows: torch.Tensor, t: int, evals: int) -> torch.Tensor:
        """The estimated gradient direction of the decision at each row's boundary point (its
        sign for Linf), from ``evals`` labels of random perturbations."""
        low, high = self.attack.bounds
        if t == 1:
            delta = torch.full((len(rows),), 0.1 * (high - low), dtype=torch.float64)
        else:
            scale = math.sqrt(self.dims) if self.l2 else self.dims
            delta = scale * self.theta * self.dist[rows].cpu()
        per_chunk = max(1, self.attack.chunk // evals)
        directions = []
        for first in range(0, len(rows), per_chunk):
            part = rows[first : first + per_chunk]
            noise = torch.cat(
                [self.draw(int(r), t, evals, uniform=not self.l2) for r in part.tolist()]
            )
            if not self.l2:
                noise = 2 * noise - 1
            noise = noise / lp.norms(noise, "l2").clamp_min(1e-12).view(
                -1, *[1] * (noise.dim() - 1)
            )
            step = delta[first : first + per_chunk].to(self.x).repeat_interleave(evals)
            base = self.point[part].repeat_interleave(evals, dim=0)
            probes = lp.clip(
                base + step.view(-1, *[1] * (noise.dim() - 1)) * noise, self.attack.bounds
            )
            noise = (probes - base) / step.view(-1, *[1] * (noise.dim() - 1))
            hit, _ = self.ask(part.repeat_interleave(evals), probes)
            sign = (2 * hit.to(self.x.dtype) - 1).view(len(part), evals)
            mean = sign.mean(dim=1, keepdim=True)
            # all one answer: the mean direction itself; else baseline-corrected (the paper)
            weight = torch.where(mean.abs() == 1, sign, sign - mean)
            noise = noise.view(len(part), evals, -1)
            estimate = (weight[:, :, None] * noise).mean(dim=1)
            directions.append(estimate)
        gradient = torch.cat(directions)
        if self.l2:
            gradient = gradient / gradient.norm(dim=1, keepdim=True).clamp_min(1e-12)
        else:
            gradient = gradient.sign()
        return gradient.view(len(rows), *self.x.shape[1:])

    def _step(
        self, rows: torch.Tensor, direction: torch.Tensor, size: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """From each row's boundary point along ``direction`` by ``size``, halved until the
        point is adversarial: the rows that landed one, their points and the logits there."""
        assert self.logits is not None
        size = size.clone()
        landed = torch.zeros(len(rows), dtype=torch.bool, device=self.x.device)
        points = self.point[rows].clone()
        found = self.logits[rows].clone()
        going = torch.arange(len(rows), device=self.x.device)
        for _ in range(_HALVINGS):
            going = going[~landed[going] & (self.left(rows[going]) > 0)]
            if not going.numel():
                break
            s = size[going].to(self.x.dtype).view(-1, *[1] * (self.x.dim() - 1))
            candidate = lp.clip(self.point[rows[going]] + s * direction[going], self.attack.bounds)
            hit, logits = self.ask(rows[going], candidate)
            points[going[hit]] = candidate[hit]
            found[going[hit]] = logits[hit]
            landed[going[hit]] = True
            size[going[~hit]] /= 2
        if not bool(landed.any()):
            return None
        return rows[landed], points[landed], found[landed]

    def _to_boundary(self, rows: torch.Tensor, far: torch.Tensor, far_logits: torch.Tensor) -> None:
        """Binary-search each row between its image and ``far`` (adversarial: the model said
        ``far_logits`` there) to the paper's precision; keep the boundary point found when it
        is closer than the row's best."""
        dist = self.distance(far, rows)
        if self.l2:
            high = torch.ones_like(dist)
            tol = torch.full_like(dist, self.theta)
        else:
            high = dist.clone()
            tol = torch.clamp(dist * self.theta, max=self.theta)
        low = torch.zeros_like(high)
        best = far_logits.clone()
        moved = torch.zeros(len(rows), dtype=torch.bool, device=self.x.device)
        going = torch.arange(len(rows), device=self.x.device)
        while going.numel():
            going = going[(high[going] - low[going] > tol[going]) & (self.left(rows[going]) > 0)]
            if not going.numel():
                break
            mid = (low[going] + high[going]) / 2
            hit, logits = self.ask(rows[going], self._between(rows[going], far[going], mid))
            high[going[hit]] = mid[hit]
            best[going[hit]] = logits[hit]
            moved[going[hit]] = True
            low[going[~hit]] = mid[~hit]
        points = far.clone()  # where no point nearer was adversarial: ``far`` itself
        points[moved] = self._between(rows[moved], far[moved], high[moved])
        self._accept(rows, points, self.distance(points, rows), best)

    def _between(self, rows: torch.Tensor, far: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """The point at ``level`` from the image towards ``far``: the blend (L2), or ``far``
        clipped to the Linf ball of that radius around the image."""
        if self.l2:
            return self._blend(rows, far, level)
        radius = level.to(self.x.dtype).view(-1, *[1] * (self.x.dim() - 1))
        origin = self.x[rows]
        return torch.minimum(torch.maximum(far, origin - radius), origin + radius)

    def _accept(
        self,
        rows: torch.Tensor,
        points: torch.Tensor,
        dist: torch.Tensor,
        logits: torch.Tensor,
    ) -> None:
        """Keep each row's new boundary point (asked about, and adversarial) where it is closer
        than the row's best."""
        assert self.logits is not None
        better = dist < self.dist[rows]
        keep = rows[better]
        self.point[keep] = points[better]
        self.dist[keep] = dist[better]
        self.logits[keep] = logits[better]

    def output(self, eps: float | None) -> BatchOutput:
        """Each image at its closest boundary point when that is inside the ball (or always,
        minimal-norm), else the image itself."""
        assert self.logits is not None and self.clean is not None
        found = torch.isfinite(self.dist) & (self.dist > 0)
        if eps is not None:
            found &= self.dist <= eps * (1 + 1e-6)
        keep = found.view(-1, *[1] * (self.x.dim() - 1))
        return BatchOutput(
            adversarial=torch.where(keep, self.point, self.x),
            logits=torch.where(found[:, None], self.logits, self.clean),
            clean_logits=self.clean,
            queries=self.used.clone(),
            extras={"distance": self.dist.float()},
        )
