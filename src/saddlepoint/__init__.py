"""saddlepoint: adversarial robustness of image classifiers, end to end.

min over weights of max over bounded perturbations of the loss: attacks solve the inner max,
defenses the outer min, and the toolkit measures both.

The front door (each name is imported on first use, so ``import saddlepoint`` stays light)::

    data = saddlepoint.load_dataset("digits")
    model = saddlepoint.build_model("cnn", in_shape=data.shape, num_classes=data.num_classes)
    model, metadata = saddlepoint.load_checkpoint("model.safetensors")
    result = saddlepoint.build_attack("pgd", eps=0.1)(model, x, y)
    report = saddlepoint.audit(model, x, y, eps=0.1)
    card = saddlepoint.benchmark(model, x, y, eps=0.1); card.save("card/")
    saddlepoint.run_study(saddlepoint.load_study("study.yaml"), "runs/study")
"""

from __future__ import annotations

import importlib
from typing import Any

from saddlepoint.version import __version__

_FRONT_DOOR = {
    "load_dataset": "saddlepoint.data",
    "build_model": "saddlepoint.models",
    "load_checkpoint": "saddlepoint.checkpoint",
    "save_checkpoint": "saddlepoint.checkpoint",
    "build_attack": "saddlepoint.attacks",
    "list_attacks": "saddlepoint.attacks",
    "audit": "saddlepoint.evaluate.audit",
    "train_classifier": "saddlepoint.train",
    "TrainConfig": "saddlepoint.train",
    "benchmark": "saddlepoint.experiments.card",
    "RobustnessCard": "saddlepoint.experiments.card",
    "load_study": "saddlepoint.experiments.studies",
    "run_study": "saddlepoint.experiments.studies",
}

__all__ = ["__version__", *_FRONT_DOOR]


def __getattr__(name: str) -> Any:
    module = _FRONT_DOOR.get(name)
    if module is None:
        raise AttributeError(f"module 'saddlepoint' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
