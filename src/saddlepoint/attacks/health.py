"""Which inputs give a gradient attack nothing to follow: an input gradient that is exactly zero
(a hard threshold, a quantizer, a detached layer) or not finite.

The audit reports the shares; an ensemble hands a query-only member every still-robust input
flagged here, whatever share of the survivors it is focused on, since the gradient members
before it could not have moved those inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from saddlepoint.autodiff import input_grad
from saddlepoint.modes import evaluating, model_device


def flat_gradients(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(zero, nonfinite): per input, whether the cross-entropy input gradient at ``x`` is
    exactly zero everywhere, and whether any of it is not finite (one forward and one
    backward pass; parameters frozen; masks on the CPU)."""
    device = model_device(model)
    with evaluating(model, freeze=True), torch.enable_grad():
        inputs = x.to(device).detach().requires_grad_(True)
        loss = nn.functional.cross_entropy(model(inputs), labels.to(device), reduction="sum")
        grad = input_grad(loss, inputs)
    flat = grad.flatten(1)
    finite = torch.isfinite(flat).all(dim=1)
    zero = (flat.abs().amax(dim=1) == 0) & finite
    return zero.cpu(), (~finite).cpu()
