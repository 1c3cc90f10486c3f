"""Attacks split over workers, with the results one process gives.

Every attack draws its randomness in blocks keyed to each sample's position in the batch
(``BatchContext``), so a shard of images attacked with its offset in the whole batch is attacked
exactly as it would be there. Inside ``distributed(runner)``, every attack call (an ensemble's
members included: the ensemble's own choices stay in the calling process) goes to ``runner``,
which attacks the shards wherever it likes and joins them with ``join_results``. The runner
itself (a Ray one lives in ``saddlepoint.experiments.cluster``) is outside this layer.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn

from saddlepoint.attacks.passes import Passes
from saddlepoint.attacks.result import AttackResult

if TYPE_CHECKING:
    from saddlepoint.attacks.base import Attack


class ShardRunner(Protocol):
    """Attacks ``x`` (checked, on the CPU) with ``attack`` and returns the joined result; the
    shard starting at image ``i`` must be attacked with ``offset=offset + i``."""

    def __call__(
        self,
        attack: Attack,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        targets: torch.Tensor | None,
        offset: int,
    ) -> AttackResult: ...


_RUNNER: contextvars.ContextVar[ShardRunner | None] = contextvars.ContextVar(
    "saddlepoint_shard_runner", default=None
)


def current_runner() -> ShardRunner | None:
    """The runner attacks in this context go to, or None (attack here)."""
    return _RUNNER.get()


@contextlib.contextmanager
def distributed(runner: ShardRunner) -> Iterator[ShardRunner]:
    """Every attack called inside the block is split by ``runner``."""
    token = _RUNNER.set(runner)
    try:
        yield runner
    finally:
        _RUNNER.reset(token)


@contextlib.contextmanager
def local() -> Iterator[None]:
    """Attacks inside the block run here (a runner's own shard calls)."""
    token = _RUNNER.set(None)
    try:
        yield
    finally:
        _RUNNER.reset(token)


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous (start, stop) ranges covering n images, sizes differing by at most
    one; fewer when there are fewer images than shards."""
    shards = max(1, min(shards, n))
    size, extra = divmod(n, shards)
    bounds, start = [], 0
    for index in range(shards):
        stop = start + size + (1 if index < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def split_batch(
    x: torch.Tensor, y: torch.Tensor, targets: torch.Tensor | None, offset: int, shards: int
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]]:
    """(images, labels, targets, offset) of each shard, in order: what a runner attacks."""
    return [
        (x[a:b], y[a:b], targets[a:b] if targets is not None else None, offset + a)
        for a, b in shard_bounds(len(x), shards)
    ]


def join_results(parts: Sequence[AttackResult], seconds: float) -> AttackResult:
    """One result from the results of consecutive shards (in order)."""
    first = parts[0]
    if len(parts) == 1:
        first.seconds = seconds
        return first

    def cat(name: str) -> torch.Tensor:
        return torch.cat([getattr(part, name) for part in parts])

    extras = {key: torch.cat([p.extras[key] for p in parts]) for key in first.extras}
    return AttackResult(
        attack=first.attack,
        inputs=cat("inputs"),
        adversarial=cat("adversarial"),
        labels=cat("labels"),
        logits=cat("logits"),
        clean_logits=cat("clean_logits"),
        grad_evals=cat("grad_evals"),
        queries=cat("queries"),
        targets=cat("targets") if first.targets is not None else None,
        seconds=seconds,
        trace=_join_traces(parts),
        extras=extras,
        precision=first.precision,
        passes=sum((part.passes for part in parts), Passes()),
    )


def _join_traces(parts: Sequence[AttackResult]) -> list[dict[str, float]] | None:
    """Per-iteration mean loss and accuracy over all shards, weighted by their sizes."""
    traces = [p.trace for p in parts]
    if any(t is None for t in traces):
        return None
    sizes = [len(p.labels) for p in parts]
    total = sum(sizes)
    joined = []
    for rows in zip(*traces):
        joined.append(
            {
                "iteration": rows[0]["iteration"],
                "loss": sum(r["loss"] * s for r, s in zip(rows, sizes)) / total,
                "accuracy": sum(r["accuracy"] * s for r, s in zip(rows, sizes)) / total,
            }
        )
    return joined


class SplitHere:
    """A runner that attacks the shards one after another in this process: what a cluster
    runner does, without the cluster (for checking that a split changes nothing)."""

    def __init__(self, shards: int) -> None:
        self.shards = shards

    def __call__(
        self,
        attack: Attack,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        targets: torch.Tensor | None,
        offset: int,
    ) -> AttackResult:
        start = time.perf_counter()
        parts = [
            attack(model, xs, ys, targets=ts, offset=at)
            for xs, ys, ts, at in split_batch(x, y, targets, offset, self.shards)
        ]
        return join_results(parts, time.perf_counter() - start)
