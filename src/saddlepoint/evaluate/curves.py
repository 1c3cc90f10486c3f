"""Robust accuracy over a list of radii in one call, for any registered attack.

A fixed-radius attack runs once per radius, smallest first, and each run attacks only the
images still robust at the radius before it: an adversarial example within a smaller ball lies
within every larger one, so those images stay broken, the curve can only fall, and the work
shrinks as it goes. A minimal-norm attack (DeepFool, CW, FAB) runs once; an image counts as
broken at a radius when the attack fooled it with a perturbation no larger than that radius
(as Foolbox reads ``epsilons`` for its minimal attacks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from saddlepoint.attacks import ATTACKS, build_attack
from saddlepoint.evaluate.robustness import robust_mask
from saddlepoint.validation import check_number


@dataclass
class RobustnessCurve:
    """Robust accuracy at each radius (over all images, a misclassified one counting as not
    robust), with the attack and norm that produced it."""

    attack: str
    norm: str
    radii: list[float]
    robust_accuracy: list[float]
    images: int

    def records(self) -> list[dict[str, Any]]:
        """One row per radius, for tables and stores."""
        return [
            {"attack": self.attack, "norm": self.norm, "eps": r, "robust_accuracy": a}
            for r, a in zip(self.radii, self.robust_accuracy)
        ]


def robustness_curve(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    radii: Sequence[float],
    attack: str = "pgd",
    **options: Any,
) -> RobustnessCurve:
    """Robust accuracy of ``model`` on (``x``, ``y``) at every radius in ``radii`` under the
    registered ``attack`` (built with ``options``; ``eps`` comes from ``radii``)."""
    if attack not in ATTACKS:
        build_attack(attack)  # the registry's own error, with the closest name
    if not radii:
        raise ValueError("The 'radii' parameter of robustness_curve needs at least one radius.")
    for radius in radii:
        check_number("robustness_curve", "radii", radius, low=0, low_open=True)
    if "eps" in options:
        raise TypeError("robustness_curve takes its radii from 'radii', not 'eps'.")
    order = sorted(set(float(r) for r in radii))
    if ATTACKS[attack].minimal:
        accuracy = _minimal_curve(model, x, y, order, attack, options)
    else:
        accuracy = _fixed_radius_curve(model, x, y, order, attack, options)
    norm = str(options.get("norm", ATTACKS[attack].arguments().get("norm", "linf")))
    by_radius = dict(zip(order, accuracy))
    return RobustnessCurve(
        attack, norm, [float(r) for r in radii], [by_radius[float(r)] for r in radii], len(y)
    )


def _fixed_radius_curve(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    radii: list[float],
    attack: str,
    options: dict[str, Any],
) -> list[float]:
    robust = torch.ones(len(y), dtype=torch.bool)
    accuracy = []
    for radius in radii:
        todo = robust.nonzero().squeeze(1)
        if todo.numel():
            result = build_attack(attack, eps=radius, **options)(model, x[todo], y[todo])
            robust[todo] = robust_mask(result).cpu()
        accuracy.append(float(robust.float().mean()))
    return accuracy


def _minimal_curve(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    radii: list[float],
    attack: str,
    options: dict[str, Any],
) -> list[float]:
    result = build_attack(attack, **options)(model, x, y)
    norm = str(options.get("norm", ATTACKS[attack].arguments().get("norm", "l2")))
    sizes = result.norms(norm).cpu()
    correct = result.clean_correct.cpu()
    fooled = result.success.cpu()
    return [float((correct & ~(fooled & (sizes <= radius))).float().mean()) for radius in radii]
