"""Noisy training: Gaussian or uniform noise added to the training images (data augmentation
against small perturbations)."""

from __future__ import annotations

import torch

from saddlepoint.train.defense import TrainingDefense
from saddlepoint.validation import check_choice, check_number


class NoiseTraining(TrainingDefense):
    """Add noise of ``scale`` (Gaussian std, or uniform half-width) to ``fraction`` of each batch,
    clipped to the bounds. Uses the global RNG, which the trainer seeds (and restores)."""

    name = "noise"

    def __init__(
        self,
        kind: str = "gaussian",
        scale: float = 0.3,
        fraction: float = 1.0,
        bounds: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self.kind = check_choice("NoiseTraining", "kind", kind, ["gaussian", "uniform"])
        self.scale = check_number("NoiseTraining", "scale", scale, low=0, low_open=True)
        self.fraction = check_number(
            "NoiseTraining", "fraction", fraction, low=0, high=1, low_open=True
        )
        self.bounds = bounds

    def config(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "scale": self.scale,
            "fraction": self.fraction,
        }

    def batch(self, model, images, labels, index):
        count = max(1, round(self.fraction * images.shape[0]))
        head = images[:count]
        if self.kind == "gaussian":
            noise = torch.randn_like(head) * self.scale
        else:
            noise = (torch.rand_like(head) * 2 - 1) * self.scale
        noisy = (head + noise).clamp(*self.bounds)
        return torch.cat([noisy, images[count:]]), labels
