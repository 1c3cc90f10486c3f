"""What a long evaluation will cost, said before it is spent: a short measured probe.

The attack runs on the first few images, and its time per image is scaled to the whole set.
For an ensemble that is a fair estimate when the probe's images are as robust as the rest (its
later attacks run only on the points still robust); it is a measurement of this model on this
machine, not a bound, and says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from saddlepoint.progress import silenced

PROBE_IMAGES = 8


@dataclass(frozen=True)
class CostEstimate:
    """Seconds a run of ``images`` images should take, from a probe of ``probe_images``."""

    images: int
    probe_images: int
    probe_seconds: float
    seconds: float

    def describe(self, what: str) -> str:
        """One line for the user: the estimate and where it comes from."""
        return (
            f"{what} on {self.images:,} images: about {_duration(self.seconds)} (a probe on "
            f"{self.probe_images} images took {self.probe_seconds:.1f} s)"
        )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_cost(
    attack: Any,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    factor: float = 1.0,
    probe_images: int = PROBE_IMAGES,
) -> CostEstimate:
    """Time ``attack`` on the first ``probe_images`` of (``x``, ``y``) and scale it to all of
    them; ``factor`` accounts for work done beside the attack (an audit runs several)."""
    probe = min(probe_images, len(y))
    with silenced():  # the probe's own progress lines would read as the run's
        start = time.perf_counter()
        attack(model, x[:probe], y[:probe])
        seconds = time.perf_counter() - start
    per_image = seconds / max(probe, 1)
    return CostEstimate(len(y), probe, seconds, per_image * len(y) * factor)
