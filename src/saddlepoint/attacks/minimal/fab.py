"""FAB, the fast adaptive boundary attack (Croce & Hein, 2020), untargeted and targeted.

Threat model: Linf, L2 or L1, inside the bounds. ``FAB`` is the fixed-budget form AutoAttack
runs (success means misclassified within eps); ``FABMinimal`` reports the smallest perturbation
it finds, at any size.
Each iteration linearizes the decision boundary at the iterate x_i: f = z_s - z_y with
w = grad f, where s is the target class (targeted) or the class whose linearized boundary is
nearest, |f_s| / ||w_s||_dual (untargeted, one gradient per class). It projects both x_i and the
original x onto that hyperplane intersected with the box (exact minimal-norm projections, see
``lp.hyperplane_projection``), giving steps d_i and d_0, and moves to the biased mix
  x_{i+1} = clip((1 - a)(x_i + eta d_i) + a (x + eta d_0)),
  a = min(||d_i|| / (||d_i|| + ||d_0||), alpha_max),
which pulls the search towards x. An adversarial iterate is recorded when it is the closest so
far and then pulled back towards x: x_{i+1} = x + beta (x_{i+1} - x). The first run starts at x,
restarts at random points around x at half the best norm found (or eps).

Defaults follow the reference AutoAttack's FAB-T: 100 steps, eta 1.05, beta 0.9, alpha_max 0.1,
9 target classes (the highest-scoring wrong classes of the clean logits), 1 restart.

Args:
    norm: 'linf', 'l2' or 'l1'; eps: the radius (``FAB`` only).
    steps: iterations per target and restart; restarts: runs per target (the first from x).
    targeted: FAB-T (one gradient per step, towards each of ``target_classes`` classes in turn)
        or untargeted FAB (a gradient per class per step).
    target_classes: how many of the top wrong classes FAB-T tries (default 9).
    eta, beta, alpha_max: the overshoot, the backward step and the bias towards x.

Example:
    >>> result = FAB(eps=0.3, targeted=True)(model, images, labels)  # FAB-T
    >>> FABMinimal(norm="l2")(model, images, labels).norms("l2").median()
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from saddlepoint import lp
from saddlepoint.attacks.base import Attack, BatchContext, BatchOutput
from saddlepoint.autodiff import input_grad
from saddlepoint.validation import check_flag, check_number

# Restart radius for the minimal form before anything is found (the reference's defaults, for
# inputs in [0, 1]; scaled by the width of the bounds).
_FALLBACK_RADIUS = {"linf": 0.3, "l2": 1.0, "l1": 5.0}


def _expand(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


class FAB(Attack):
    """FAB within a radius: a sample counts as broken only if misclassified within eps."""

    name = "fab"
    revision = 2  # 2: the per-class gradients from one forward pass (rounding may differ)
    supported_norms = ("linf", "l2", "l1")

    def __init__(
        self,
        *,
        norm: str = "linf",
        eps: float | str = 8 / 255,
        steps: int = 100,
        restarts: int = 1,
        targeted: bool = False,
        target_classes: int = 9,
        eta: float = 1.05,
        beta: float = 0.9,
        alpha_max: float = 0.1,
        **common: Any,
    ) -> None:
        super().__init__(norm=norm, eps=eps, **common)
        owner = type(self).__name__
        check_number(owner, "steps", steps, low=1, integer=True)
        check_number(owner, "restarts", restarts, low=1, integer=True)
        check_number(owner, "target_classes", target_classes, low=1, integer=True)
        check_number(owner, "eta", eta, low=1)
        check_number(owner, "beta", beta, low=0, high=1)
        check_number(owner, "alpha_max", alpha_max, low=0, high=1)
        self.steps, self.restarts = steps, restarts
        self.targeted, self.target_classes = check_flag("FAB", "targeted", targeted), target_classes
        self.eta, self.beta, self.alpha_max = float(eta), float(beta), float(alpha_max)

    def config(self) -> dict:
        return {
            "norm": self.norm,
            "eps": self.eps,
            "steps": self.steps,
            "restarts": self.restarts,
            "targeted": self.targeted,
            "target_classes": self.target_classes,
            "eta": self.eta,
            "beta": self.beta,
            "alpha_max": self.alpha_max,
            "seed": self.seed,
        }

    # ---- one linearization ------------------------------------------------------------------

    def _boundary(
        self,
        model: nn.Module,
        x_i: torch.Tensor,
        labels: torch.Tensor,
        target: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(f, w, gradients per sample): the linearized boundary f + <w, z - x_i> = 0 nearest to
        x_i (untargeted) or towards ``target``."""
        m = x_i.shape[0]
        if target is not None:
            z = x_i.detach().requires_grad_(True)
            logits = model(z)
            f = logits.gather(1, target[:, None]) - logits.gather(1, labels[:, None])
            w = input_grad(f.sum(), z)
            return f.detach().squeeze(1), w, 1
        # One forward pass, then one backward pass per class through it: every class's gradient
        # for a forward pass instead of one per class (the reference's way; the same backward
        # work as a batch of copies would cost, a tenth of its forward passes on 10 classes).
        z = x_i.detach().requires_grad_(True)
        logits = model(z)
        classes = int(logits.shape[1])
        per_class = torch.stack(
            [
                input_grad(logits[:, k].sum(), z, retain_graph=k < classes - 1)
                for k in range(classes)
            ]
        )  # (classes, m, ...)
        pick = torch.arange(m, device=x_i.device)
        grads = per_class - per_class[labels, pick][None]
        f = (logits - logits.gather(1, labels[:, None])).detach()  # (m, classes)
        size = lp.norms(grads.flatten(0, 1), lp.dual(self.norm)).view(classes, m).T
        distance = f.abs() / (size + 1e-12)
        distance[torch.arange(m), labels] = float("inf")
        nearest = distance.argmin(dim=1)
        return f[pick, nearest], grads[nearest, pick], classes

    # ---- one run ----------------------------------------------------------------------------

    def _search(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        target: torch.Tensor | None,
        start: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One FAB run from ``start``: (closest adversarial point, its norm or inf, gradient
        evaluations), per sample."""
        m = x.shape[0]
        device = x.device
        x_i = start.clone()
        best = x.clone()
        best_norm = torch.full((m,), float("inf"), device=device)
        evals = torch.zeros(m, dtype=torch.long, device=device)
        active = torch.arange(m, device=device)
        for _ in range(self.steps):
            if active.numel() == 0:
                break
            xa, x0, ya = x_i[active], x[active], labels[active]
            ta = target[active] if target is not None else None
            f, w, cost = self._boundary(model, xa, ya, ta)
            evals[active] += cost
            shift = (w.flatten(1) * (x0 - xa).flatten(1)).sum(dim=1)
            both = lp.hyperplane_projection(
                torch.cat([xa, x0]),
                torch.cat([w, w]),
                torch.cat([-f, -(f + shift)]),
                self.norm,
                self.bounds,
            )
            d_i, d_0 = both[: len(xa)], both[len(xa) :]
            n_i, n_0 = lp.norms(d_i, self.norm), lp.norms(d_0, self.norm)
            alpha = (n_i / (n_i + n_0).clamp_min(1e-12)).clamp(0, self.alpha_max)
            a = _expand(alpha, xa)
            moved = (1 - a) * (xa + self.eta * d_i) + a * (x0 + self.eta * d_0)
            moved = lp.clip(moved, self.bounds)
            with torch.no_grad():
                fooled = model(moved).argmax(dim=1) != ya
            size = lp.norms(moved - x0, self.norm)
            closer = fooled & (size < best_norm[active])
            chosen = active[closer]
            best[chosen] = moved[closer]
            best_norm[chosen] = size[closer]
            moved = torch.where(_expand(fooled, moved), x0 + self.beta * (moved - x0), moved)
            x_i[active] = moved
            if math.isfinite(self.eps) and not self.minimal:
                active = active[best_norm[active] > self.eps]  # found within eps: done
        return best, best_norm, evals

    # ---- all targets and restarts -----------------------------------------------------------

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
        context: BatchContext,
    ) -> BatchOutput:
        if targets is not None:
            raise ValueError(
                f"{type(self).__name__} chooses its own target classes and is untargeted; call "
                "it without 'targets' (set targeted=True for FAB-T)."
            )
        n = x.shape[0]
        with torch.no_grad():
            clean = model(x)
        ranked = clean.argsort(dim=1, descending=True)
        others = ranked[ranked != labels[:, None]].view(n, -1)
        runs = min(self.target_classes, others.shape[1]) if self.targeted else 1
        best = x.clone()
        best_norm = torch.full((n,), float("inf"), device=x.device)
        best_norm[clean.argmax(dim=1) != labels] = 0.0  # misclassified already: x itself
        evals = torch.zeros(n, dtype=torch.long, device=x.device)
        fixed_budget = math.isfinite(self.eps) and not self.minimal
        width = self.bounds[1] - self.bounds[0]
        shape = tuple(x.shape[1:])
        for rank in range(runs):
            for restart in range(self.restarts):
                todo = torch.arange(n, device=x.device)
                todo = todo[best_norm > (self.eps if fixed_budget else 0.0)]
                if todo.numel() == 0:
                    break
                start = x[todo]
                if restart > 0:
                    radius = best_norm[todo].clone()
                    fallback = self.eps if fixed_budget else _FALLBACK_RADIUS[self.norm] * width
                    radius = torch.where(torch.isfinite(radius), radius, fallback)
                    radius = torch.minimum(radius, torch.full_like(radius, fallback))
                    unit = context.random_start(n, shape, self.norm, 1.0, rank * 97 + restart)
                    unit = unit.to(x)[todo]
                    unit = unit / _expand(lp.norms(unit, self.norm).clamp_min(1e-12), unit)
                    start = lp.clip(start + 0.5 * _expand(radius, unit) * unit, self.bounds)
                target = others[todo, rank] if self.targeted else None
                found, size, run_evals = self._search(model, x[todo], labels[todo], target, start)
                evals[todo] += run_evals
                closer = size < best_norm[todo]
                best[todo[closer]] = found[closer]
                best_norm[todo[closer]] = size[closer]
        return BatchOutput(adversarial=best, clean_logits=clean, grad_evals=evals)


class FABMinimal(FAB):
    """FAB as a minimal-norm attack: the closest adversarial point it finds, at any size."""

    name = "fab-minimal"
    minimal = True

    def __init__(
        self,
        *,
        norm: str = "l2",
        steps: int = 100,
        restarts: int = 1,
        targeted: bool = False,
        target_classes: int = 9,
        eta: float = 1.05,
        beta: float = 0.9,
        alpha_max: float = 0.1,
        **common: Any,
    ) -> None:
        super().__init__(
            norm=norm,
            eps=float("inf"),
            steps=steps,
            restarts=restarts,
            targeted=targeted,
            target_classes=target_classes,
            eta=eta,
            beta=beta,
            alpha_max=alpha_max,
            **common,
        )

    def config(self) -> dict:
        config = super().config()
        config.pop("eps")
        return config
