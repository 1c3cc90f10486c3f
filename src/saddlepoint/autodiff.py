"""Input gradients that also work when the model hides them (for honest evaluation)."""

from __future__ import annotations

import torch


def input_grad(value: torch.Tensor, x: torch.Tensor, retain_graph: bool = False) -> torch.Tensor:
    """d value / d x; zeros where the model gives the input no gradient path at all (a hard
    threshold, a detached preprocessing layer), so attacks report failure instead of crashing."""
    if not value.requires_grad:
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(value, x, retain_graph=retain_graph, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad
