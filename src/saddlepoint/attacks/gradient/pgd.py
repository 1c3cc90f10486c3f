"""Projected gradient descent (Madry et al., 2018) and its presets FGSM / FGM / BIM.

Threat model: Linf or L2 ball of radius eps around x, inside the input bounds.
Update: x_{k+1} = Proj(x_k + step * direction(grad_x L(x_k))), direction = sign (Linf) or
grad / ||grad||_2 (L2); FGSM (Goodfellow et al., 2015) is one step of size eps from x, BIM
(Kurakin et al., 2017) is PGD without a random start.

Args (beyond the threat model):
    steps: number of gradient steps n (>= 1).
    step: step size eta in input units (a float or '2/255'); default eps for one step, else
        2.5 * eps / steps (Madry et al.).
    rel_step: the step as a multiple of eps instead (fast adversarial training uses 1.25).
    random_start: start from a uniform draw in the ball (seed 000's omega_rand) or from x.
    restarts: independent random starts; each sample keeps its strongest result.
    loss: 'ce', 'mse' (softmax vs one-hot), 'cw' (margin) or 'dlr'.
    early_stop: evaluation mode; a sample leaves the working batch at its first successful
        iterate (robust accuracy can only be lower than the fixed-budget run's, at less cost).
    tol: stop a sample once its loss changes by less than tol between iterates (seed 000's
        "PGD until convergence"); None runs all steps.
    trace: record mean loss and accuracy at every iterate (for convergence plots).
    step_direction: 'steepest' (sign for Linf, grad / ||grad||_2 for L2) or 'sign' (the signed
        gradient in either norm; seed 000's L2 PGD moves every pixel by eta, a step of L2 length
        eta * sqrt(p), then projects onto the L2 ball).
    record_at: step counts k at which to record, per sample, whether the k-step attack leaves
        the sample correct, its cross-entropy and the attack objective (extras['records'],
        shape (N, len(record_at), 3)): one run of max(k) steps answers every k at once.

Example:
    >>> attack = PGD(norm="linf", eps="0.3", steps=40, step=0.01)
    >>> result = attack(model, images, labels)
    >>> result.metrics()["robust_accuracy"]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from saddlepoint import lp
from saddlepoint.attacks.base import Attack, BatchContext, BatchOutput
from saddlepoint.attacks.gradient.restarts import StrongestSoFar
from saddlepoint.attacks.runtime import (
    float32_logits,
)
from saddlepoint.threat import parse_eps
from saddlepoint.validation import check_choice, check_flag, check_number


class PGD(Attack):
    """Projected gradient ascent on a named loss, in Linf or L2, with random starts."""

    name = "pgd"
    low_precision = True
    # record_at lets one run of max(k) steps answer every step count k: the sweep engine stacks
    # configurations of a stackable attack into one run (experiments/stacked.py)
    stackable = True

    def __init__(
        self,
        *,
        norm: str = "linf",
        eps: float | str = 8 / 255,
        steps: int = 40,
        step: float | str | None = None,
        rel_step: float | None = None,
        random_start: bool = True,
        restarts: int = 1,
        loss: str = "ce",
        early_stop: bool = False,
        tol: float | None = None,
        trace: bool = False,
        record_at: Sequence[int] | None = None,
        step_direction: str = "steepest",
        **common: Any,
    ) -> None:
        super().__init__(norm=norm, eps=eps, loss=loss, **common)
        owner = type(self).__name__
        self.step_direction = check_choice(
            owner, "step_direction", step_direction, ["steepest", "sign"]
        )
        self._direction = "linf" if step_direction == "sign" else self.norm
        check_number(owner, "steps", steps, low=1, integer=True)
        check_number(owner, "restarts", restarts, low=1, integer=True)
        if restarts > 1 and not random_start:
            raise ValueError(
                f"The 'restarts' parameter of {owner} must be 1 without a random start (every "
                f"restart would be identical). Got restarts={restarts}, random_start=False."
            )
        if tol is not None:
            check_number(owner, "tol", tol, low=0)
        self.steps = steps
        if step is not None and rel_step is not None:
            raise ValueError(f"{owner} takes 'step' or 'rel_step', not both.")
        if rel_step is not None:
            check_number(owner, "rel_step", rel_step, low=0, low_open=True)
            self.step = rel_step * self.eps
        elif step is not None:
            self.step = parse_eps(step, "step", owner)
            if self.step == 0:
                raise ValueError(
                    f"The 'step' parameter of {owner} must be a float in the range (0, inf): a "
                    "zero step never moves, and its robust accuracy would be the clean one. "
                    f"Got {step!r} instead."
                )
        else:
            self.step = self.eps if steps == 1 else 2.5 * self.eps / steps
        self.random_start = check_flag(type(self).__name__, "random_start", random_start)
        self.restarts = restarts
        self.early_stop = check_flag(type(self).__name__, "early_stop", early_stop)
        self.tol = tol
        self.trace = check_flag(type(self).__name__, "trace", trace)
        self.record_at = sorted(set(record_at)) if record_at else []
        if self.record_at:
            if restarts > 1 or early_stop or tol is not None:
                raise ValueError(
                    f"The 'record_at' parameter of {owner} needs restarts=1, early_stop=False "
                    "and tol=None (each recorded iterate must be exactly the k-step attack)."
                )
            for k in self.record_at:
                check_number(owner, "record_at", k, low=1, high=steps, integer=True)

    def config(self) -> dict:
        return {
            **super().config(),
            "steps": self.steps,
            "step": self.step,
            "random_start": self.random_start,
            "restarts": self.restarts,
            "early_stop": self.early_stop,
            "tol": self.tol,
            "step_direction": self.step_direction,
        }

    def _ascend(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
        start: torch.Tensor,
        trace: torch.Tensor | None,
        records: torch.Tensor | None = None,
        eps: torch.Tensor | None = None,
        step: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One run from ``start`` (in a ball of radius ``eps`` per sample, with step size
        ``step`` per sample; default the attack's); returns (iterate, its logits, gradient
        evaluations, clean logits if it began at x)."""
        n = x.shape[0]
        radius: float | torch.Tensor = self.eps if eps is None else eps
        move: float | torch.Tensor = (
            self.step if step is None else step.view(-1, *([1] * (x.dim() - 1)))
        )
        x_adv = lp.project_and_clip(x + start, x, self.norm, radius, self.bounds)
        evals = torch.zeros(n, dtype=torch.long, device=x.device)
        active = torch.arange(n, device=x.device)
        previous = torch.full((n,), float("inf"), device=x.device)
        current_loss = torch.zeros(n, device=x.device)
        current_correct = torch.zeros(n, device=x.device)
        clean_logits = None
        every = not self.early_stop and self.tol is None  # all samples run all steps
        for k in range(self.steps):
            if active.numel() == 0:
                break
            if every:  # the fast path: no gathers or scatters
                logits, value, grad = self.input_gradient(model, x_adv, labels, targets)
                evals += 1
                if k == 0 and not self.random_start:
                    clean_logits = logits
                if trace is not None:
                    correct = (logits.argmax(1) == labels).float()
                    trace[k] += torch.stack([value.sum(), correct.sum(), trace.new_tensor(n)])
                if records is not None and k in self.record_at:
                    if torch.is_autocast_enabled(x.device.type):  # record float32 outcomes
                        logits = float32_logits(model, x_adv)
                        value = self.objective(logits, labels, targets)
                    self._record(records, self.record_at.index(k), logits, value, labels)
                stepped = x_adv + move * lp.direction(grad, self._direction)
                x_adv = lp.project_and_clip(stepped, x, self.norm, radius, self.bounds)
                continue
            if isinstance(radius, torch.Tensor) or isinstance(move, torch.Tensor):
                raise ValueError(
                    "Per-sample eps or step needs the fixed-budget run (no early stop, tol)."
                )
            xa, ya = x_adv[active], labels[active]
            ta = targets[active] if targets is not None else None
            logits, value, grad = self.input_gradient(model, xa, ya, ta)
            evals[active] += 1
            if k == 0 and not self.random_start and active.numel() == n:
                clean_logits = logits
            if trace is not None:
                current_loss[active] = value.float()
                current_correct[active] = (logits.argmax(1) == ya).float()
                trace[k] += torch.stack(
                    [current_loss.sum(), current_correct.sum(), trace.new_tensor(n)]
                )
            keep = torch.ones_like(ya, dtype=torch.bool)
            if self.early_stop:
                keep &= ~self.confirmed(model, xa, self.succeeded(logits, ya, ta), ya, ta)
            if self.tol is not None:
                keep &= (value - previous[active]).abs() >= self.tol
                previous[active] = value
            moving = active[keep]
            stepped = xa[keep] + self.step * lp.direction(grad[keep], self._direction)
            x_adv[moving] = lp.project_and_clip(
                stepped, x[moving], self.norm, self.eps, self.bounds
            )
            active = moving
        logits = float32_logits(model, x_adv)
        if trace is not None:
            value = self.objective(logits, labels, targets)
            correct = (logits.argmax(1) == labels).float()
            trace[self.steps] += torch.stack([value.sum(), correct.sum(), trace.new_tensor(n)])
        if records is not None and self.steps in self.record_at:
            value = self.objective(logits, labels, targets)
            self._record(records, self.record_at.index(self.steps), logits, value, labels)
        return x_adv, logits, evals, clean_logits

    @staticmethod
    def _record(
        records: torch.Tensor,
        slot: int,
        logits: torch.Tensor,
        value: torch.Tensor,
        labels: torch.Tensor,
    ) -> None:
        """Per sample at one step count: correct, cross-entropy, attack objective."""
        records[:, slot, 0] = (logits.argmax(1) == labels).float()
        records[:, slot, 1] = F.cross_entropy(logits, labels, reduction="none")
        records[:, slot, 2] = value

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
        records = x.new_zeros((n, len(self.record_at), 3)) if self.record_at else None
        evals = torch.zeros(n, dtype=torch.long, device=x.device)
        clean_logits = None
        trace = (
            torch.zeros(self.steps + 1, 3, device=x.device, dtype=torch.float64)
            if self.trace
            else None
        )
        for restart in range(self.restarts):
            todo = strongest.pending(self.early_stop)
            if todo.numel() == 0:
                break
            if self.random_start:
                start = context.random_start(n, tuple(x.shape[1:]), self.norm, self.eps, restart)
                start = start.to(x)[todo]
            else:
                start = torch.zeros_like(x[todo])
            ta = targets[todo] if targets is not None else None
            adv, logits, run_evals, clean = self._ascend(
                model, x[todo], labels[todo], ta, start, trace if restart == 0 else None, records
            )
            evals[todo] += run_evals
            if clean is not None:
                clean_logits = clean
            value = self.objective(logits, labels[todo], ta)
            strongest.update(todo, adv, logits, value, self.succeeded(logits, labels[todo], ta))
        return BatchOutput(
            adversarial=strongest.adversarial,
            logits=strongest.logits,
            clean_logits=clean_logits,
            grad_evals=evals,
            trace=trace,
            extras={"records": records} if records is not None else {},
        )


def fgsm(**kwargs: Any) -> PGD:
    """FGSM (Goodfellow et al., 2015): one signed-gradient step of size eps from x."""
    return PGD(**{"norm": "linf", "steps": 1, "random_start": False, **kwargs})


def fgm(**kwargs: Any) -> PGD:
    """FGM: one L2-normalized gradient step of size eps from x."""
    return PGD(**{"norm": "l2", "steps": 1, "random_start": False, **kwargs})


def bim(**kwargs: Any) -> PGD:
    """BIM / I-FGSM (Kurakin et al., 2017): PGD from x, without a random start."""
    return PGD(**{"random_start": False, **kwargs})
