"""Preprocessing layers that live inside the model, so attacks always work in [0, 1] pixels.

``Normalize`` standardizes per channel. ``Quantize`` is input quantization (feature squeezing,
Xu et al., 2018): tanh followed by bucketing into k equal buckets, or plain bit-depth reduction. Its
gradient is zero almost everywhere, so a gradient attack through it stalls; the defenses layer
adds BPDA (Athalye et al., 2018) to attack through it, by switching the ``bpda`` attribute that
selects the backward pass here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from saddlepoint.validation import check_choice, check_number


class Normalize(nn.Module):
    """(x - mean) / std per channel; mean and std are buffers saved with the weights."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(
                f"Normalize needs one mean and one std per channel. Got {len(mean)} means and "
                f"{len(std)} stds instead."
            )
        if any(s <= 0 for s in std):
            raise ValueError(f"The 'std' parameter of Normalize must be positive. Got {list(std)}.")
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of a batch of images (N, C, H, W), for :class:`Normalize`."""
    mean = images.mean(dim=(0, 2, 3))
    std = images.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]


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


def parse_quantize(spec: str) -> Quantize:
    """'tanh:8' or 'bits:3' (3 bits = 8 levels) -> a Quantize layer."""
    mode, _, value = spec.partition(":")
    if mode not in ("tanh", "bits") or not value.isdigit():
        raise ValueError(
            f"The 'quantize' option must look like 'tanh:8' or 'bits:3'. Got {spec!r} instead."
        )
    count = int(value)
    return Quantize(levels=2**count if mode == "bits" else count, mode=mode)
