"""Model utilities every layer may use: eval mode (and frozen parameters) for a block with
everything restored after, the model's device, and batched inference without gradients."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def evaluating(model: nn.Module, freeze: bool = False) -> Iterator[nn.Module]:
    """Eval mode inside the block; every module's mode (and, with ``freeze``, every parameter's
    requires_grad) is restored on exit, even after an exception."""
    modes = [(module, module.training) for module in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()] if freeze else []
    model.eval()
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Logits for ``images`` in eval mode (the model's mode is restored), on the CPU."""
    device = model_device(model)
    outputs = []
    with evaluating(model):
        for start in range(0, images.shape[0], batch_size):
            batch = images[start : start + batch_size].to(device)
            outputs.append(model(batch).float().cpu())
    if not outputs:
        return torch.empty(0, 0)
    return torch.cat(outputs)
