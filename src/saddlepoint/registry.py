"""One registry type for every named thing: attacks, models, datasets, defenses, studies, recipes.

A ``Registry`` reads like a mapping from name to entry (``name in ATTACKS``, ``ATTACKS[name]``,
iteration in registration order) and adds two rules every registry keeps: ``register`` refuses a
name already taken (a second entry would silently change what every file that names it means),
and ``entry`` answers an unknown name with the closest registered one and the full list.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from saddlepoint.validation import check_new_name, unknown_name_error

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Named entries of one ``kind`` ('attack', 'model', ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> None:
        """Add ``entry`` as ``name``; a name already registered is a ValueError naming both."""
        check_new_name(self.kind, name, self._entries)
        self._entries[name] = entry

    def entry(self, name: str) -> T:
        """The entry registered as ``name``; an unknown name is a ValueError with a suggestion."""
        if name not in self._entries:
            raise unknown_name_error(self.kind, name, self._entries)
        return self._entries[name]

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
