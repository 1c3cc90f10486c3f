"""One progress helper for long library work: a tqdm bar on a terminal, log lines for the record.

A bar shows only where someone watches (stderr is a terminal) and the ``saddlepoint`` loggers
report at INFO (the command line's default; ``--quiet`` raises them to WARNING). The one-line
``note`` goes through logging, so it reaches a log file or a notebook as well.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

from tqdm.auto import tqdm

log = logging.getLogger("saddlepoint")


def reporting() -> bool:
    """Whether progress lines are wanted (INFO is on: not ``--quiet``)."""
    return log.isEnabledFor(logging.INFO)


def watched() -> bool:
    """Whether a progress bar would be seen: INFO is on and stderr is a terminal."""
    return reporting() and sys.stderr.isatty()


def bar(total: int, desc: str, unit: str = "it", **options: Any) -> tqdm:
    """A tqdm bar that stays silent unless :func:`watched`."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not watched(), leave=False, **options)


def note(message: str, *args: Any) -> None:
    """One progress line at INFO (silenced by ``--quiet``)."""
    log.info(message, *args)


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """No progress lines or bars inside the block (a probe run, say), whatever the level."""
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)
