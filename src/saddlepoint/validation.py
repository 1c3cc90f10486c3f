"""Argument checks that raise errors in one format.

The message names the argument, its owner, what is allowed and what was given, after
scikit-learn's style: "The 'eps' parameter of PGD must be a float in the range (0, inf). Got -1
instead." Unknown names list the choices and the closest match.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice most similar to ``name``, or None when nothing is close."""
    by_lower = {str(c).lower(): c for c in choices}  # 'PGD' is one letter case from 'pgd'
    matches = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1, cutoff=0.5)
    return by_lower[matches[0]] if matches else None


def unknown_name_error(kind: str, name: object, choices: Iterable[str]) -> ValueError:
    """A ValueError for an unknown registry name that lists the choices and the closest one."""
    choices = sorted(choices)
    hint = closest(str(name), choices)
    suggestion = f" Did you mean {hint!r}?" if hint else ""
    return ValueError(f"Unknown {kind} {name!r}.{suggestion} Choose one of: {', '.join(choices)}.")


def check_new_name(kind: str, name: str, registry: Mapping[str, Any]) -> None:
    """Refuse to register ``name`` twice: a second entry would silently replace the first (and
    every file, sweep and study that names it would change meaning)."""
    if name in registry:
        raise ValueError(
            f"A {kind} named {name!r} is already registered; choose another name (registered: "
            f"{', '.join(sorted(registry))})."
        )


def check_choice(owner: str, name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise a ValueError naming them."""
    choices = list(choices)
    if value in choices:
        return value
    hint = closest(str(value), [str(c) for c in choices])
    suggestion = f" Did you mean {hint!r}?" if hint else ""
    raise ValueError(
        f"The {name!r} parameter of {owner} must be one of {choices}. Got {value!r} instead."
        f"{suggestion}"
    )


def check_flag(owner: str, name: str, value: Any) -> bool:
    """Return ``value`` as a bool if it is one (a YAML or JSON true/false): the string "false",
    which ``bool()`` would read as True, is an error, as is any other non-bool."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy's bool too
        return bool(value)
    raise ValueError(
        f"The {name!r} parameter of {owner} must be true or false. Got {value!r} "
        f"({type(value).__name__}) instead."
    )


def check_number(
    owner: str,
    name: str,
    value: Any,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> Any:
    """Return ``value`` if it is a number (an int when ``integer``) inside the given range."""
    kind = "an int" if integer else "a float"
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    interval = f"{left}{low:g}, {high:g}{right}"
    ok_type = (
        isinstance(value, int) and not isinstance(value, bool)
        if integer
        else isinstance(value, int | float) and not isinstance(value, bool)
    )
    if not ok_type or (not integer and math.isnan(value)):
        raise TypeError(
            f"The {name!r} parameter of {owner} must be {kind} in the range {interval}. "
            f"Got {value!r} ({type(value).__name__}) instead."
        )
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        raise ValueError(
            f"The {name!r} parameter of {owner} must be {kind} in the range {interval}. "
            f"Got {value!r} instead."
        )
    return value


def check_keywords(owner: str, given: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Raise a TypeError for keyword arguments ``owner`` does not take, with the closest name."""
    allowed = sorted(allowed)
    for key in given:
        if key not in allowed:
            hint = closest(key, allowed)
            suggestion = f" Did you mean {hint!r}?" if hint else ""
            raise TypeError(
                f"{owner} got an unexpected argument {key!r}.{suggestion} "
                f"It takes: {', '.join(allowed) or 'no arguments'}."
            )
