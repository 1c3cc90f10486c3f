"""Expectation over transformation (Athalye et al., 2018) for randomized defenses."""

from __future__ import annotations

import torch
from torch import nn

from saddlepoint.validation import check_number


class ExpectationOverTransformation(nn.Module):
    """Average a randomized model's logits over ``samples`` draws, so attacks follow the
    expected gradient instead of one random draw's."""

    def __init__(self, model: nn.Module, samples: int = 16) -> None:
        super().__init__()
        self.model = model
        self.samples = check_number(
            "ExpectationOverTransformation", "samples", samples, low=1, integer=True
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.model(x) for _ in range(self.samples)]).mean(dim=0)


class RandomNoiseInput(nn.Module):
    """A randomized preprocessing defense: Gaussian noise on every input (also at test time)."""

    def __init__(
        self, model: nn.Module, scale: float = 0.1, bounds: tuple[float, float] = (0.0, 1.0)
    ) -> None:
        super().__init__()
        self.model, self.scale, self.bounds = model, scale, bounds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x + self.scale * torch.randn_like(x)).clamp(*self.bounds))
