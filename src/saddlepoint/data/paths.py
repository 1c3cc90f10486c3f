"""Where datasets live on disk."""

from __future__ import annotations

import os
from pathlib import Path


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """``root`` if given, else ``$SADDLEPOINT_DATA``, else ``~/.cache/saddlepoint/data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("SADDLEPOINT_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "saddlepoint" / "data"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not on disk; the message says where we looked and how to get it."""

    def __init__(self, name: str, looked: list[str], how: str) -> None:
        places = "\n".join(f"  - {place}" for place in looked)
        super().__init__(f"Dataset {name!r} was not found. Looked in:\n{places}\n{how}")
