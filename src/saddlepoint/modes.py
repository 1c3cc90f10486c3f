"""Put a model in eval mode (and freeze its parameters) for a block, then restore everything."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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


def model_device(model: nn.Module):
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    import torch

    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")
