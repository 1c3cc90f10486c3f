"""The interface through which defenses plug into the training loop.

A defense may change each training batch (adversarial or noisy examples), replace the training
loss (TRADES), and prepare at the start of each epoch (eps warm-up, regenerating an adversarial
training set). The plain recipe does none of these.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from saddlepoint.data.base import ImageData

BatchTransform = Callable[
    [nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]
]


class TrainingDefense:
    """Base recipe: clean batches, cross-entropy. Subclasses override what they change."""

    name = "standard"

    def start_epoch(self, model: nn.Module, data: ImageData, epoch: int, epochs: int) -> None:
        """Called before each epoch (1-based) with the model as it stands."""

    def state(self) -> dict[str, torch.Tensor]:
        """What a resumed training needs beyond the epoch number (tensors computed in an
        earlier epoch and kept since); nothing for most defenses."""
        return {}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Take back what :meth:`state` returned, before training resumes."""

    def batch(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch to train on; ``index`` holds the examples' positions in the train split."""
        return images, labels

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(training loss, logits) with the model in train mode."""
        logits = model(images)
        return F.cross_entropy(logits, labels), logits

    def config(self) -> dict:
        """Settings recorded in checkpoint metadata."""
        return {"name": self.name}


class FunctionDefense(TrainingDefense):
    """Wraps a plain ``transform(model, images, labels) -> (images, labels)`` function."""

    name = "transform"

    def __init__(self, transform: BatchTransform) -> None:
        self.transform = transform

    def batch(self, model, images, labels, index):
        return self.transform(model, images, labels)


def as_defense(defense: TrainingDefense | BatchTransform | None) -> TrainingDefense:
    if defense is None:
        return TrainingDefense()
    if isinstance(defense, TrainingDefense):
        return defense
    return FunctionDefense(defense)
