"""Defenses by name, for the CLI and configs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from saddlepoint.defenses.adversarial import AdversarialTraining
from saddlepoint.defenses.fast import GradAlignTraining, NFGSMTraining
from saddlepoint.defenses.noise import NoiseTraining
from saddlepoint.defenses.trades import Trades
from saddlepoint.registry import Registry
from saddlepoint.train.defense import TrainingDefense

DEFENSES: Registry[tuple[Callable[..., TrainingDefense], str]] = Registry("defense")
DEFENSES.register(
    "adversarial",
    (AdversarialTraining, "train on examples of a registered attack (Madry; 'fast' with fgsm-rs)"),
)
DEFENSES.register(
    "trades", (Trades, "TRADES: cross-entropy + beta * KL to the worst case in the ball")
)
DEFENSES.register("noise", (NoiseTraining, "Gaussian or uniform noise augmentation"))
DEFENSES.register(
    "n-fgsm",
    (NFGSMTraining, "N-FGSM: FGSM from a 2-eps noisy start, not projected (no collapse)"),
)
DEFENSES.register(
    "gradalign",
    (GradAlignTraining, "GradAlign: FGSM plus a gradient-alignment penalty (no collapse)"),
)


def build_defense(name: str, **kwargs: Any) -> TrainingDefense:
    """The training defense registered as ``name`` configured with ``kwargs``."""
    return DEFENSES.entry(name)[0](**kwargs)
