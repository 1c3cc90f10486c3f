"""Defenses by name, for the CLI and configs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from saddlepoint.defenses.adversarial import AdversarialTraining
from saddlepoint.defenses.noise import NoiseTraining
from saddlepoint.defenses.trades import Trades
from saddlepoint.train.defense import TrainingDefense
from saddlepoint.validation import unknown_name_error

DEFENSES: dict[str, tuple[Callable[..., TrainingDefense], str]] = {
    "adversarial": (
        AdversarialTraining,
        "train on examples of a registered attack (Madry; 'fast' with fgsm-rs)",
    ),
    "trades": (Trades, "TRADES: cross-entropy + beta * KL to the worst case in the ball"),
    "noise": (NoiseTraining, "Gaussian or uniform noise augmentation"),
}


def build_defense(name: str, **kwargs: Any) -> TrainingDefense:
    """The training defense registered as ``name`` configured with ``kwargs``."""
    if name not in DEFENSES:
        raise unknown_name_error("defense", name, DEFENSES)
    return DEFENSES[name][0](**kwargs)
