"""Input quantization as a preprocessing layer, and BPDA to attack through it.

Seed 000 (section 5) put a parameter-free layer before its classifier: tanh followed by bucketing
into k = 8 equal buckets; plain bit-depth reduction is the other common form. Their gradient is
zero almost everywhere, so a gradient attack "through" them stalls: robustness that is only
gradient masking. BPDA (Athalye et al., 2018) keeps the exact forward pass and replaces the
backward pass by the identity ('identity') or by the derivative of the smooth part ('smooth').
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from saddlepoint.validation import check_choice, check_number


class _StraightThrough(torch.autograd.Function):
    """Forward: the quantized values; backward: the given surrogate gradient factor."""

    @staticmethod
    def forward(ctx, x, quantized, factor):  # noqa: D401 - autograd signature
        ctx.save_for_backward(factor)
        return quantized

    @staticmethod
    def backward(ctx, grad):
        (factor,) = ctx.saved_tensors
        return grad * factor, None, None


class Quantize(nn.Module):
    """Map inputs in [0, 1] to ``levels`` values.

    mode 'tanh': z = tanh(sharpness * (2x - 1)), then k equal buckets of [-1, 1], each mapped
    to its centre rescaled to [0, 1]. mode 'bits': round(x * (levels - 1)) / (levels - 1).
    ``bpda`` (None, 'identity' or 'smooth') selects the backward pass; None is the true (zero)
    gradient. No learnable parameters.
    """

    def __init__(self, levels: int = 8, mode: str = "tanh", sharpness: float = 1.0) -> None:
        super().__init__()
        self.levels = check_number("Quantize", "levels", levels, low=2, integer=True)
        self.mode = check_choice("Quantize", "mode", mode, ["tanh", "bits"])
        self.sharpness = check_number("Quantize", "sharpness", sharpness, low=0, low_open=True)
        self.bpda: str | None = None

    def extra_repr(self) -> str:
        return f"levels={self.levels}, mode={self.mode!r}, bpda={self.bpda!r}"

    def smooth(self, x: torch.Tensor) -> torch.Tensor:
        """The differentiable part, mapped to [0, 1]."""
        if self.mode == "bits":
            return x
        return (torch.tanh(self.sharpness * (2 * x - 1)) + 1) / 2

    def quantized(self, x: torch.Tensor) -> torch.Tensor:
        s = self.smooth(x)
        if self.mode == "bits":
            return torch.round(s * (self.levels - 1)) / (self.levels - 1)
        bucket = torch.clamp(torch.floor(s * self.levels), 0, self.levels - 1)
        return (bucket + 0.5) / self.levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.quantized(x.detach() if self.bpda else x)
        if self.bpda is None:
            return out
        if self.bpda == "identity":
            factor = torch.ones_like(x)
        else:
            with torch.enable_grad():
                probe = x.detach().requires_grad_(True)
                (factor,) = torch.autograd.grad(self.smooth(probe).sum(), probe)
        return _StraightThrough.apply(x, out, factor)


class QuantizedModel(nn.Module):
    """A classifier behind a quantization layer (the layer sees [0, 1] pixels)."""

    def __init__(self, quantize: Quantize, model: nn.Module) -> None:
        super().__init__()
        self.quantize = quantize
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.quantize(x))


@contextlib.contextmanager
def bpda(model: nn.Module, mode: str = "identity") -> Iterator[nn.Module]:
    """Inside the block, every Quantize layer of ``model`` back-propagates by BPDA ``mode``."""
    check_choice("bpda", "mode", mode, ["identity", "smooth"])
    layers = [m for m in model.modules() if isinstance(m, Quantize)]
    saved = [layer.bpda for layer in layers]
    for layer in layers:
        layer.bpda = mode
    try:
        yield model
    finally:
        for layer, value in zip(layers, saved):
            layer.bpda = value


def parse_quantize(spec: str) -> Quantize:
    """'tanh:8' or 'bits:3' (3 bits = 8 levels) -> a Quantize layer."""
    mode, _, value = spec.partition(":")
    if mode not in ("tanh", "bits") or not value.isdigit():
        raise ValueError(
            f"The 'quantize' option must look like 'tanh:8' or 'bits:3'. Got {spec!r} instead."
        )
    count = int(value)
    return Quantize(levels=2**count if mode == "bits" else count, mode=mode)
