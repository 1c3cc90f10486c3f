"""Single-step adversarial training that does not collapse: N-FGSM and GradAlign.

FGSM from a random start (Wong et al., 2020) is cheap but can over-fit catastrophically: past some
epoch its model resists FGSM and falls to PGD. Two fixes at FGSM's cost per example:

- **N-FGSM** (de Jorge et al., 2022): start from x plus uniform noise of a larger radius
  (``noise`` x eps, 2 in the paper), take one signed-gradient step of ``step`` x eps, and do *not*
  project back onto the eps-ball (only onto the pixel range); the training examples may lie up to
  (noise + step) x eps from x. No extra pass: exactly FGSM's cost.
- **GradAlign** (Andriushchenko and Flammarion, 2020): FGSM (from x, a step of eps) plus
  ``align`` x (1 - cos(grad_x L(x), grad_x L(x + eta))), eta uniform in the eps-ball: a
  regularizer that keeps the loss locally linear, where single-step attacks are accurate. It costs
  double backpropagation, about three times FGSM.

Both are Linf recipes; each example is crafted with the model in eval mode (as every other
adversarial-training recipe here), its draws from the training run's seeded generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from saddlepoint import lp
from saddlepoint.autodiff import input_grad
from saddlepoint.data.base import ImageData
from saddlepoint.modes import evaluating
from saddlepoint.threat import parse_eps
from saddlepoint.train.defense import TrainingDefense
from saddlepoint.validation import check_number


def _signed_step(
    model: nn.Module, start: torch.Tensor, labels: torch.Tensor, size: float
) -> torch.Tensor:
    """``start`` moved by ``size`` along the sign of the cross-entropy's input gradient, in
    the pixel range (not projected onto any ball)."""
    with evaluating(model, freeze=True), torch.enable_grad():
        x = start.detach().requires_grad_(True)
        grad = input_grad(F.cross_entropy(model(x), labels), x)
    return lp.clip(start + size * grad.sign(), (0.0, 1.0)).detach()


class _Warmed(TrainingDefense):
    """A Linf radius ramped linearly over ``warmup_epochs`` (0: the full radius from the start)."""

    def __init__(self, owner: str, eps: float | str, warmup_epochs: int) -> None:
        self.eps = parse_eps(eps, "eps", owner)
        self.warmup_epochs = check_number(
            owner, "warmup_epochs", warmup_epochs, low=0, integer=True
        )
        self.current = self.eps

    def start_epoch(self, model: nn.Module, data: ImageData, epoch: int, epochs: int) -> None:
        ramp = min(epoch / self.warmup_epochs, 1.0) if self.warmup_epochs else 1.0
        self.current = self.eps * ramp


class NFGSMTraining(_Warmed):
    """N-FGSM: noise ``noise`` x eps, one step of ``step`` x eps, no projection onto the ball."""

    name = "n-fgsm"

    def __init__(
        self,
        *,
        eps: float | str = 0.3,
        noise: float = 2.0,
        step: float = 1.0,
        warmup_epochs: int = 0,
    ) -> None:
        super().__init__("NFGSMTraining", eps, warmup_epochs)
        self.noise = check_number("NFGSMTraining", "noise", noise, low=0)
        self.step = check_number("NFGSMTraining", "step", step, low=0)

    def config(self) -> dict:
        return {
            "name": self.name,
            "eps": self.eps,
            "noise": self.noise,
            "step": self.step,
            "warmup_epochs": self.warmup_epochs,
        }

    def batch(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        radius = self.noise * self.current
        start = lp.clip(images + (2 * torch.rand_like(images) - 1) * radius, (0.0, 1.0))
        return _signed_step(model, start, labels, self.step * self.current), labels


class GradAlignTraining(_Warmed):
    """FGSM from x (a step of eps) plus ``align`` x the gradient-misalignment penalty."""

    name = "gradalign"

    def __init__(
        self, *, eps: float | str = 0.3, align: float = 0.2, warmup_epochs: int = 0
    ) -> None:
        super().__init__("GradAlignTraining", eps, warmup_epochs)
        self.align = check_number("GradAlignTraining", "align", align, low=0)
        self._clean: torch.Tensor | None = None

    def config(self) -> dict:
        return {
            "name": self.name,
            "eps": self.eps,
            "align": self.align,
            "warmup_epochs": self.warmup_epochs,
        }

    def batch(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._clean = images  # the penalty of this batch's loss is taken at the clean images
        return _signed_step(model, images, labels, self.current), labels

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        clean = self._clean
        if self.align > 0 and clean is not None and clean.shape == images.shape:
            loss = loss + self.align * self.misalignment(model, clean, labels)
        return loss, logits

    def misalignment(
        self, model: nn.Module, clean: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """Mean 1 - cos(grad_x L(x), grad_x L(x + eta)) over the batch, differentiable in the
        weights (double backpropagation)."""
        noisy = lp.clip(clean + (2 * torch.rand_like(clean) - 1) * self.current, (0.0, 1.0))
        grads = []
        for x in (clean, noisy):
            x = x.detach().requires_grad_(True)
            value = F.cross_entropy(model(x), labels)
            (grad,) = torch.autograd.grad(value, x, create_graph=True)
            grads.append(grad.flatten(1))
        return (1 - F.cosine_similarity(grads[0], grads[1], dim=1, eps=1e-12)).mean()
