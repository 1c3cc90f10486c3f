"""Small hand-built models for exact tests."""

from __future__ import annotations

import torch
from torch import nn


class Affine(nn.Module):
    """logits = W x_flat + b, for closed-form checks."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone())
        self.bias = nn.Parameter(bias.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


def two_class_linear(w: torch.Tensor, b: float) -> Affine:
    """Class 1 where w.x + b > 0 (logits -score, score): its boundary is the hyperplane, at L2
    distance |w.x + b| / ||w||_2 and Linf distance |w.x + b| / ||w||_1 from x."""
    return Affine(torch.stack([-w, w]), torch.tensor([-b, b], dtype=w.dtype))


def tiny_convnet(channels: int = 1, classes: int = 4, seed: int = 0) -> nn.Module:
    """A small conv net with batch-norm and dropout (modes matter), randomly initialized."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, classes),
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    return model


class OscillatingTemperature(nn.Module):
    """A model that misleads cross-entropy attacks without hiding its gradients.

    Its logits are the wrapped model's times a positive temperature 1 + 0.5 sin(kappa u.x) that
    oscillates fast along a fixed random direction u: predictions (the argmax) and the DLR loss
    (invariant to a per-sample logit scale) are unchanged, but the cross-entropy gradient is
    dominated by the temperature's, whose sign flips from step to step. Gradients are never zero.
    """

    def __init__(self, model: nn.Module, features: int, kappa: float = 200.0, seed: int = 0):
        super().__init__()
        self.model = model
        generator = torch.Generator().manual_seed(seed)
        direction = torch.randn(features, generator=generator) / features**0.5
        self.register_buffer("direction", direction)
        self.kappa = kappa

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        temperature = 1 + 0.5 * torch.sin(self.kappa * (x.flatten(1) @ self.direction))
        return self.model(x) * temperature[:, None]
