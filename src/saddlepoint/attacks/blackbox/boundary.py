"""The Boundary attack (Brendel, Rauber and Bethge, 2018): a hard-label random walk along the
decision boundary towards the image, L2.

Only the model's predicted label is used. Each image starts as HopSkipJump's does (a uniform-noise
image the model misclassifies, binary-searched to the boundary) and then proposes, at each step,
a random move on the sphere around the image through its current point (an orthogonal step of
``spherical_step`` times the current distance), then a move towards the image by
``source_step`` times the distance. The move is kept when the model still misclassifies the
point. Every ten steps each image adapts its own step sizes to its success rates (the paper's
rule): the spherical step grows by ``adaptation`` when more than half of its moves stayed
adversarial and shrinks below a fifth, and the source step follows its own rate.

It shares HopSkipJump's machinery: every image advances together with its own state, budget and
random draws (keyed by the seed and the image's position), each model call is counted, and
every point returned was asked about and found adversarial. ``Boundary`` stops an image once it
is inside the eps-ball (else returns it unchanged); ``BoundaryMinimal`` spends the whole budget
and returns the closest point.

Example:
    >>> result = BoundaryMinimal(queries=5000)(model, images, labels)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from saddlepoint import lp
from saddlepoint.attacks.base import BatchContext
from saddlepoint.attacks.blackbox.hsj import LabelWalkAttack, _Walk
from saddlepoint.validation import check_number

_ADAPT_EVERY = 10  # steps between two adaptations of an image's step sizes


class Boundary(LabelWalkAttack):
    """Hard-label random walk along the boundary towards the image (L2)."""

    name = "boundary"
    supported_norms = ("l2",)

    def __init__(
        self,
        *,
        norm: str = "l2",
        eps: float | str = 1.0,
        queries: int = 5000,
        spherical_step: float = 0.01,
        source_step: float = 0.01,
        adaptation: float = 1.5,
        init_tries: int = 100,
        chunk: int = 512,
        **common: Any,
    ) -> None:
        super().__init__(
            norm=norm, eps=eps, queries=queries, init_tries=init_tries, chunk=chunk, **common
        )
        owner = type(self).__name__
        self.spherical_step = check_number(
            owner, "spherical_step", spherical_step, low=0, low_open=True
        )
        self.source_step = check_number(
            owner, "source_step", source_step, low=0, high=1, low_open=True, high_open=True
        )
        self.adaptation = check_number(owner, "adaptation", adaptation, low=1, low_open=True)
        self.gamma = 1.0  # the start's binary-search precision, as HopSkipJump's

    def config(self) -> dict:
        return {
            "norm": self.norm,
            "eps": self.eps,
            "queries": self.queries,
            "spherical_step": self.spherical_step,
            "source_step": self.source_step,
            "adaptation": self.adaptation,
            "init_tries": self.init_tries,
            "seed": self.seed,
        }

    def _walk(
        self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, context: BatchContext
    ) -> _Walk:
        return _BoundaryWalk(self, model, x, labels, context)

    def _advance(self, walk: _BoundaryWalk) -> None:
        step = 1
        while walk.move(step):
            step += 1


class BoundaryMinimal(Boundary):
    """The Boundary attack as a minimal-norm attack: it spends its whole budget and returns each
    image's closest adversarial point (``eps`` is not used)."""

    name = "boundary-minimal"
    minimal = True


class _BoundaryWalk(_Walk):
    """HopSkipJump's per-image state, with the Boundary attack's moves and step sizes."""

    def __init__(self, attack: Boundary, *args: Any) -> None:
        super().__init__(attack, *args)  # type: ignore[arg-type]
        self.boundary = attack
        n = len(self.x)
        self.spherical = torch.full((n,), attack.spherical_step, dtype=torch.float64)
        self.source = torch.full((n,), attack.source_step, dtype=torch.float64)
        self.tried = torch.zeros(n, dtype=torch.long)
        self.stayed = torch.zeros(n, dtype=torch.long)  # spherical moves still adversarial
        self.closer = torch.zeros(n, dtype=torch.long)  # of those, source moves too

    def move(self, step: int) -> bool:
        """One proposal for every image still going; False when none is."""
        going = torch.isfinite(self.dist) & (self.dist > 0)
        if not self.attack.minimal:
            going &= self.dist > self.attack.eps
        every = torch.arange(len(self.x), device=self.x.device)
        rows = (going & (self.left(every) > 0)).nonzero().squeeze(1)
        if not rows.numel():
            return False
        shape = (-1, *[1] * (self.x.dim() - 1))
        origin, point = self.x[rows], self.point[rows]
        dist = self.dist[rows].to(self.x.dtype).view(shape)
        noise = torch.cat([self.draw(int(r), step, 1, uniform=False) for r in rows.tolist()])
        noise = noise / lp.norms(noise, "l2").clamp_min(1e-12).view(shape)
        spherical = self.spherical[rows.cpu()].to(self.x).view(shape)
        moved = point + spherical * dist * noise
        offset = moved - origin  # back onto the sphere of the current distance
        moved = origin + offset * (dist / lp.norms(offset, "l2").clamp_min(1e-12).view(shape))
        moved = lp.clip(moved, self.attack.bounds)
        stayed, _ = self.ask(rows, moved)
        keep = rows[stayed]
        cpu = rows.cpu()
        self.tried[cpu] += 1
        self.stayed[cpu[stayed.cpu()]] += 1
        if keep.numel():
            source = self.source[keep.cpu()].to(self.x).view(shape)
            nearer = lp.clip(
                moved[stayed] + source * (self.x[keep] - moved[stayed]), self.attack.bounds
            )
            kept = self.left(keep) > 0
            keep, nearer = keep[kept], nearer[kept]
            if keep.numel():
                hit, logits = self.ask(keep, nearer)
                if bool(hit.any()):
                    won = keep[hit]
                    self.closer[won.cpu()] += 1
                    self._accept(won, nearer[hit], self.distance(nearer[hit], won), logits[hit])
        self._adapt(cpu)
        return True

    def _adapt(self, rows: torch.Tensor) -> None:
        """Every ten proposals, each image's step sizes follow its success rates."""
        due = rows[self.tried[rows] >= _ADAPT_EVERY]
        if not due.numel():
            return
        factor = self.boundary.adaptation
        rate = self.stayed[due].double() / self.tried[due]
        grow, shrink = due[rate > 0.5], due[rate < 0.2]
        for steps in (self.spherical, self.source):
            steps[grow] *= factor
            steps[shrink] /= factor
        closer = self.closer[due].double() / self.stayed[due].clamp_min(1)
        self.source[due[closer > 0.5]] *= factor
        self.source[due[closer < 0.2]] /= factor
        self.source.clamp_(max=0.5)
        self.tried[due] = self.stayed[due] = self.closer[due] = 0
