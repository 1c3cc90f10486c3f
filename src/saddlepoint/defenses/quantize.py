"""BPDA: attack through a model's input-quantization layer.

The layer itself (``Quantize``, ``QuantizedModel``, ``parse_quantize``) is a model component and
lives in ``saddlepoint.models.preprocess``. Its gradient is zero almost everywhere, so a gradient
attack "through" it stalls: robustness that is only gradient masking. BPDA (Athalye et al., 2018)
keeps the exact forward pass and replaces the backward pass by the identity ('identity') or by
the derivative of the smooth part ('smooth').
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

from saddlepoint.models.preprocess import Quantize, QuantizedModel, parse_quantize
from saddlepoint.validation import check_choice

__all__ = ["Quantize", "QuantizedModel", "bpda", "parse_quantize"]


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
