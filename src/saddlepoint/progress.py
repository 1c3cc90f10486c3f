"""One progress helper for long library work: a tqdm bar on a terminal, log lines for the record.

A bar shows only where someone watches (stderr is a terminal) and the ``saddlepoint`` loggers
report at INFO (the command line's default; ``--quiet`` raises them to WARNING). The one-line
``note`` goes through logging, so it reaches a log file or a notebook as well.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from tqdm.auto import tqdm

log = logging.getLogger("saddlepoint")


def watched() -> bool:
    """Whether a progress bar would be seen: INFO is on and stderr is a terminal."""
    return log.isEnabledFor(logging.INFO) and sys.stderr.isatty()


def bar(total: int, desc: str, unit: str = "it", **options: Any) -> tqdm:
    """A tqdm bar that stays silent unless :func:`watched`."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not watched(), leave=False, **options)


def note(message: str, *args: Any) -> None:
    """One progress line at INFO (silenced by ``--quiet``)."""
    log.info(message, *args)
