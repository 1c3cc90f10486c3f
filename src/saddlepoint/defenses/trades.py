"""TRADES (Zhang et al., 2019): clean cross-entropy plus beta times the KL divergence between the
predictions on x and on the worst-case x' in the ball.

The inner maximization ascends KL(f(x) || f(x')) with signed (Linf) or normalized (L2) gradient
steps from x + 0.001 N(0, I), projected with the shared per-norm primitives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from saddlepoint import lp
from saddlepoint.autodiff import input_grad
from saddlepoint.modes import evaluating
from saddlepoint.threat import ThreatModel, parse_eps
from saddlepoint.train.defense import TrainingDefense
from saddlepoint.validation import check_number


class Trades(TrainingDefense):
    """The TRADES objective with its trade-off ``beta`` (6 in the paper)."""

    name = "trades"

    def __init__(
        self,
        *,
        eps: float | str = 0.3,
        norm: str = "linf",
        steps: int = 10,
        step: float | str | None = None,
        beta: float = 6.0,
        bounds: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self.threat = ThreatModel(norm, parse_eps(eps, "eps", "Trades"), bounds)
        self.steps = check_number("Trades", "steps", steps, low=1, integer=True)
        self.step = (
            parse_eps(step, "step", "Trades") if step is not None else 2.5 * self.threat.eps / steps
        )
        self.beta = check_number("Trades", "beta", beta, low=0)

    def config(self) -> dict:
        return {
            "name": self.name,
            "eps": self.threat.eps,
            "norm": self.threat.norm,
            "steps": self.steps,
            "step": self.step,
            "beta": self.beta,
        }

    def _worst_case(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        norm, eps, bounds = self.threat.norm, self.threat.eps, self.threat.bounds
        with evaluating(model, freeze=True), torch.enable_grad():
            with torch.no_grad():
                clean = F.softmax(model(images), dim=1)
            x = lp.clip(images + 0.001 * torch.randn_like(images), bounds)
            for _ in range(self.steps):
                x = x.detach().requires_grad_(True)
                kl = F.kl_div(F.log_softmax(model(x), dim=1), clean, reduction="sum")
                grad = input_grad(kl, x)
                x = lp.project_and_clip(
                    x + self.step * lp.direction(grad, norm), images, norm, eps, bounds
                )
        return x.detach()

    def loss(self, model, images, labels):
        adversarial = self._worst_case(model, images)
        logits = model(images)
        robust = F.kl_div(
            F.log_softmax(model(adversarial), dim=1),
            F.softmax(logits, dim=1),
            reduction="batchmean",
        )
        return F.cross_entropy(logits, labels) + self.beta * robust, logits
