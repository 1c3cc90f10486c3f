"""One cache for everything a study reuses: a task's result under a key derived from what made it.

A task is a module-level function marked with ``@task(version=N)``. Its key is the SHA-256 of
its qualified name, the version it declares, its arguments as bound by its signature (defaults
included) and the run's inputs (dataset, loader options, seed, training-set limit). No key is
written by hand: whatever a task takes is in its key, and nothing else can reach it, because a
task may not be a closure (it would read values its key does not hold). A trained model enters a
key as its name and the digest of its file, so a retrained model re-runs everything built on it.

Results are JSON values written whole, one file per key (``cache/<task>/<key>.json`` in the
study's storage: its run folder, a shared folder or an object store): a run
killed at any moment loses at most the task in flight, and re-running computes exactly the tasks
whose key is new. Bump a task's ``version`` when its code changes what it returns.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from saddlepoint.experiments.storage import Storage

F = TypeVar("F", bound=Callable[..., Any])

# Parameters a task receives from the engine rather than from its caller: never part of a key.
ENGINE_PARAMETERS = frozenset({"ctx", "section"})


class TaskError(TypeError):
    """A function that cannot be a task, or an argument a key cannot hold."""


def task(version: int = 1) -> Callable[[F], F]:
    """Mark a module-level function as a cached task; ``version`` is part of its key."""

    def mark(function: F) -> F:
        check_task(function)
        function.__task_version__ = version  # type: ignore[attr-defined]
        return function

    return mark


def check_task(function: Callable[..., Any]) -> None:
    """A task is a module-level function that reads no variable of an enclosing function."""
    name = getattr(function, "__qualname__", repr(function))
    if "<locals>" in name or getattr(function, "__closure__", None):
        raise TaskError(
            f"{name} cannot be a task: it is defined inside another function, so it could read "
            "values its key does not hold. Define it at module level and pass what it needs as "
            "arguments."
        )


def task_name(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{function.__qualname__}"


def task_key(
    function: Callable[..., Any], arguments: Mapping[str, Any], inputs: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The key of ``function`` called with ``arguments`` on a run with ``inputs``, and what it
    was derived from (recorded beside the result, so a changed key can be explained)."""
    if not hasattr(function, "__task_version__"):
        raise TaskError(f"{task_name(function)} is not marked as a task (@task(version=...)).")
    signature = inspect.signature(function)
    try:
        bound = signature.bind_partial(**arguments)
    except TypeError as error:
        raise TaskError(f"task {task_name(function)}: {error}") from None
    bound.apply_defaults()
    values = {k: v for k, v in bound.arguments.items() if k not in ENGINE_PARAMETERS}
    if "kwargs" in values:  # keyword arguments collected by **kwargs sit beside the others
        values.update(values.pop("kwargs"))
    material = {
        "task": task_name(function),
        "version": function.__task_version__,
        "arguments": {
            k: plain(v, f"argument {k!r} of {task_name(function)}") for k, v in values.items()
        },
        "inputs": plain(dict(inputs), "the run's inputs"),
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest(), material


def plain(value: Any, where: str = "a task argument") -> Any:
    """The canonical JSON form of a value a key holds; anything else is a TaskError naming it."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, list | tuple):
        return [plain(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v, where) for k, v in value.items()}
    identity = getattr(value, "cache_identity", None)
    if callable(identity):
        return plain(identity(), where)
    config = getattr(value, "config", None)
    if callable(config):  # defenses and attacks describe themselves by their settings
        return {"type": type(value).__name__, **plain(config(), where)}
    raise TaskError(
        f"{where} is a {type(value).__name__}; a key holds numbers, strings, lists, mappings, "
        "trained models and objects with a config(). Pass what the value was made from instead."
    )


@dataclass(frozen=True)
class Cached:
    """What a lookup found: ``hit`` and, when hit, the stored value."""

    hit: bool
    value: Any = None


class TaskCache:
    """Task results as JSON files in ``storage`` (a folder or an object store, see
    ``experiments.storage``) under ``prefix``, one per key, each written whole."""

    def __init__(self, storage: Storage | str | Path, prefix: str = "") -> None:
        self.storage = storage if isinstance(storage, Storage) else Storage(storage)
        self.prefix = prefix

    def relative(self, name: str, key: str) -> str:
        short = f"{name.rsplit('.', 1)[-1]}/{key[:32]}.json"
        return f"{self.prefix}/{short}" if self.prefix else short

    def path(self, name: str, key: str) -> Path:
        """A local path for the entry: the file itself in a folder storage, else the place
        this machine keeps files beside it (scratch files derive their names from it)."""
        return self.storage.scratch_folder() / self.relative(name, key)

    def load(self, name: str, key: str) -> Cached:
        text = self.storage.read_text(self.relative(name, key))
        try:
            stored = json.loads(text) if text is not None else None
        except ValueError:  # damaged (a kill mid-write cannot damage it)
            return Cached(False)
        if not isinstance(stored, dict) or stored.get("key") != key:
            return Cached(False)
        return Cached(True, stored.get("value"))

    def store(
        self,
        name: str,
        key: str,
        material: dict[str, Any],
        value: Any,
        seconds: float | None = None,
    ) -> Any:
        """Write ``value`` under ``key``, with the ``seconds`` it took to compute; returns it as a
        later load returns it (JSON form)."""
        entry = {"key": key, "made_from": material, "value": value, "seconds": seconds}
        text = json.dumps(entry, default=_unknown)
        self.storage.write_text(self.relative(name, key), text)
        return json.loads(text)["value"]

    def costs(self) -> dict[str, list[float]]:
        """The seconds each stored task took, by task name (entries stored without them, by an
        older version, are left out)."""
        found: dict[str, list[float]] = {}
        for relative in self.storage.files(self.prefix):
            if not relative.endswith(".json"):
                continue
            try:
                entry = json.loads(self.storage.read_text(relative) or "")
            except ValueError:
                continue
            seconds = entry.get("seconds") if isinstance(entry, dict) else None
            if isinstance(seconds, int | float):
                task = str(entry.get("made_from", {}).get("task", relative)).rsplit(".", 1)[-1]
                found.setdefault(task, []).append(float(seconds))
        return found


def projected_seconds(costs: list[float], workers: int) -> float:
    """Wall time of ``costs`` on ``workers`` workers, longest first to the least loaded one (a
    lower bound for a study: it ignores that a task waits for the models it uses)."""
    loads = [0.0] * max(1, workers)
    for cost in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += cost
    return max(loads)


def _unknown(value: Any) -> Any:
    raise TaskError(
        f"a task returned a {type(value).__name__}; task results are JSON values (records as "
        "lists of mappings). Return the numbers, not the object."
    )
