"""The threat model: which norm, how large a ball, and the valid input range."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from saddlepoint.validation import check_choice

NORMS = ("linf", "l2", "l1")


def parse_eps(value: float | int | str, name: str = "eps", owner: str = "ThreatModel") -> float:
    """A radius from a number or a string such as '0.3', '8/255' or '8 / 255'."""
    if isinstance(value, bool):
        raise TypeError(
            f"The {name!r} parameter of {owner} must be a number or 'a/b'. Got {value!r}."
        )
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        text = value.replace(" ", "")
        try:
            result = float(Fraction(text)) if "/" in text else float(text)
        except (ValueError, ZeroDivisionError):
            raise ValueError(
                f"The {name!r} parameter of {owner} must be a number such as 0.3 or a fraction "
                f"such as 8/255. Got {value!r} instead."
            ) from None
    else:
        raise TypeError(
            f"The {name!r} parameter of {owner} must be a number or a string like '8/255'. "
            f"Got {type(value).__name__} instead."
        )
    if math.isnan(result) or result < 0:
        raise ValueError(
            f"The {name!r} parameter of {owner} must be a float in the range [0, inf]. "
            f"Got {value!r} instead."
        )
    return result


@dataclass(frozen=True)
class ThreatModel:
    """Perturbations delta with ||delta||_norm <= eps and x + delta inside ``bounds``."""

    norm: str = "linf"
    eps: float = 8 / 255  # a string such as '8/255' is accepted and parsed to a float
    bounds: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        check_choice("ThreatModel", "norm", self.norm, NORMS)
        object.__setattr__(self, "eps", parse_eps(self.eps))
        low, high = (float(b) for b in self.bounds)
        if not low < high:
            raise ValueError(
                f"The 'bounds' parameter of ThreatModel must be (low, high) with low < high. "
                f"Got {self.bounds!r} instead."
            )
        object.__setattr__(self, "bounds", (low, high))

    def describe(self) -> str:
        return f"{self.norm} eps={self.eps:.6g} bounds=[{self.bounds[0]:g}, {self.bounds[1]:g}]"
