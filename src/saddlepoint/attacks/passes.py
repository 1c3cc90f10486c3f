"""Forward and backward image-passes, counted where they happen: on the model itself.

An attack's cost is what it asks of the model. Counting inside each attack's code would trust
every attack to count itself right; a hook on the model counts every call instead, whoever
makes it: ``counted_passes(model)`` adds the batch size of each forward call, and the batch
size again whenever a gradient flows back through that call's output (one backward pass per
``backward``/``autograd.grad`` through it). The passes that measure an execution plan (which
sub-batch size and layout are fastest, once per model) are not the attack's work and are left
out (``uncounted``). AutoAttack's and A3's papers count cost the same way: forward and backward
passes per image.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

_UNCOUNTED: ContextVar[bool] = ContextVar("saddlepoint_uncounted_passes", default=False)


@dataclass
class Passes:
    """Image-passes through the model: ``forward`` (every image of every call) and
    ``backward`` (every image a gradient was taken back through)."""

    forward: int = 0
    backward: int = 0

    def __add__(self, other: Passes) -> Passes:
        return Passes(self.forward + other.forward, self.backward + other.backward)

    def per_image(self, images: int) -> tuple[float, float]:
        """(forward, backward) passes per image of a batch of ``images``."""
        n = max(images, 1)
        return self.forward / n, self.backward / n


def _batch_of(output: Any) -> torch.Tensor | None:
    """The tensor a model returned (the first one of a tuple, list or dict)."""
    if isinstance(output, torch.Tensor):
        return output
    values = output.values() if isinstance(output, dict) else output
    if isinstance(values, list | tuple) or isinstance(output, dict):
        for value in values:
            if isinstance(value, torch.Tensor):
                return value
    return None


@contextlib.contextmanager
def counted_passes(model: nn.Module) -> Iterator[Passes]:
    """Count the image-passes through ``model`` inside the block (nested counts each see every
    pass made inside them)."""
    passes = Passes()
    if not isinstance(model, nn.Module):  # the caller's own check says what is wrong
        yield passes
        return

    def on_forward(module: nn.Module, inputs: Any, output: Any) -> None:
        out = _batch_of(output)
        if out is None or _UNCOUNTED.get():
            return
        size = int(out.shape[0]) if out.dim() > 0 else 1
        passes.forward += size
        if out.requires_grad:

            def on_backward(grad: torch.Tensor) -> None:
                passes.backward += size

            out.register_hook(on_backward)

    handle = model.register_forward_hook(on_forward)
    try:
        yield passes
    finally:
        handle.remove()


@contextlib.contextmanager
def uncounted() -> Iterator[None]:
    """Passes made inside the block are not counted (measuring an execution plan)."""
    token = _UNCOUNTED.set(True)
    try:
        yield
    finally:
        _UNCOUNTED.reset(token)
