"""A configurable CNN that builds every classifier the seed reports describe.

Blocks of Conv -> [BatchNorm] -> ReLU -> Pool(2) -> [Dropout], then a head that flattens or
global-average-pools, optional hidden dense layers with ReLU, and a linear output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from saddlepoint.models.preprocess import Normalize
from saddlepoint.validation import check_choice, check_number


def _as_list(value: int | Sequence[int], owner: str, name: str) -> list[int]:
    values = [value] if isinstance(value, int) else list(value)
    for v in values:
        check_number(owner, name, v, low=1, integer=True)
    return values


class ConvNet(nn.Module):
    """A stack of conv blocks and a dense head; input normalization included.

    Args:
        in_shape: (channels, height, width) of the input images.
        num_classes: number of output logits.
        channels: filters per conv block (its length is the depth).
        kernel_size: conv kernel size (one int for all blocks).
        padding: 'same' keeps the spatial size, 'valid' shrinks it by kernel_size - 1.
        batch_norm: add BatchNorm2d after each conv.
        dropout: dropout rate after each block and each hidden dense layer (0 disables).
        head_dropout: also after each hidden dense layer (the default); False puts dropout after
            the conv blocks only (Keras-style 'dropout after each convolutional layer').
        pool: 'max' or 'avg' 2x2 pooling after each block, or 'none'.
        head: 'flatten' the last feature map, or 'gap' (global average pooling) first.
        hidden: sizes of hidden dense layers before the output (an empty list for none).
        mean: per-channel mean of the normalization applied inside the model (None for none).
        std: per-channel standard deviation of that normalization (None for none).
        pad_to: zero-pad the input (in pixel space, before normalization) to pad_to x pad_to,
            centred, so that an architecture made for larger images (seed 000's 4-block
            surrogate needs CIFAR-10's 32x32) also runs on 28x28 ones; None pads nothing.
    """

    def __init__(
        self,
        *,
        in_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        channels: int | Sequence[int] = (32, 64, 128),
        kernel_size: int = 3,
        padding: str = "same",
        batch_norm: bool = False,
        dropout: float = 0.0,
        head_dropout: bool = True,
        pool: str = "max",
        head: str = "flatten",
        hidden: int | Sequence[int] = (128,),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        pad_to: int | None = None,
    ) -> None:
        super().__init__()
        owner = "ConvNet"
        channels = _as_list(channels, owner, "channels")
        hidden = [] if hidden in (None, 0) else _as_list(hidden, owner, "hidden")
        check_number(owner, "kernel_size", kernel_size, low=1, integer=True)
        check_number(owner, "num_classes", num_classes, low=2, integer=True)
        check_number(owner, "dropout", dropout, low=0, high=1, high_open=True)
        check_choice(owner, "padding", padding, ["same", "valid"])
        check_choice(owner, "pool", pool, ["max", "avg", "none"])
        check_choice(owner, "head", head, ["flatten", "gap"])
        in_channels = int(in_shape[0])
        self.pad = _padding(in_shape, pad_to)
        self.normalize = Normalize(mean, std or ()) if mean is not None else nn.Identity()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers.append(nn.Conv2d(previous, width, kernel_size, padding=padding))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            if pool == "max":
                layers.append(nn.MaxPool2d(2))
            elif pool == "avg":
                layers.append(nn.AvgPool2d(2))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            previous = width
        self.features = nn.Sequential(*layers)
        self.features.eval()  # probe the output shape without touching batch-norm statistics
        try:
            with torch.no_grad():
                out = self.features(self.pad(torch.zeros(1, *[int(s) for s in in_shape])))
        except RuntimeError:
            out = torch.zeros(1, 1, 0, 0)
        self.features.train()
        if out.shape[-1] < 1 or out.shape[-2] < 1:
            raise ValueError(
                f"ConvNet: {len(channels)} blocks with kernel {kernel_size}, padding {padding!r} "
                f"and pool {pool!r} shrink a {tuple(in_shape)} input to nothing. Use fewer "
                "blocks, 'same' padding or a larger input (pad_to)."
            )
        head_layers: list[nn.Module] = []
        if head == "gap":
            head_layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            features = previous
        else:
            head_layers.append(nn.Flatten())
            features = int(out[0].numel())
        for size in hidden:
            head_layers += [nn.Linear(features, size), nn.ReLU(inplace=True)]
            if dropout > 0 and head_dropout:
                head_layers.append(nn.Dropout(dropout))
            features = size
        head_layers.append(nn.Linear(features, num_classes))
        self.head = nn.Sequential(*head_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.normalize(self.pad(x))))


def _padding(in_shape: Sequence[int], pad_to: int | None) -> nn.Module:
    """Zero padding of an (H, W) image to pad_to x pad_to, centred (the extra pixel of an odd
    difference goes right and bottom); identity for None."""
    if pad_to is None:
        return nn.Identity()
    height, width = int(in_shape[-2]), int(in_shape[-1])
    check_number("ConvNet", "pad_to", pad_to, low=max(height, width), integer=True)
    dh, dw = pad_to - height, pad_to - width
    return nn.ZeroPad2d((dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


class MLP(nn.Module):
    """A fully connected network: flatten, hidden layers with ReLU, linear output."""

    def __init__(
        self,
        *,
        in_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        hidden: int | Sequence[int] = (512,),
        dropout: float = 0.0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        hidden = [] if hidden in (None, 0) else _as_list(hidden, "MLP", "hidden")
        check_number("MLP", "dropout", dropout, low=0, high=1, high_open=True)
        self.normalize = Normalize(mean, std or ()) if mean is not None else nn.Identity()
        features = 1
        for s in in_shape:
            features *= int(s)
        layers: list[nn.Module] = [nn.Flatten()]
        for size in hidden:
            layers += [nn.Linear(features, size), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            features = size
        layers.append(nn.Linear(features, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.normalize(x))
