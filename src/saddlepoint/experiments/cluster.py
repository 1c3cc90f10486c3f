"""Work on a Ray cluster: a study's tasks, and the shards of an evaluation.

``Cluster`` connects to the cluster at an address (``auto``, ``ray://host:10001``) or starts a
local Ray with a number of CPUs, and says what one task asks for: one GPU where the cluster has
GPUs, and ``threads`` CPUs, torch's thread count in the task. (torch's CPU kernels add up in an
order that depends on the thread count, so results are bit for bit the same wherever they run
at the same ``threads``: run locally with ``--threads`` equal to compare.) ``RayTasks`` runs a study's tasks there (each worker looks the task up
in the study's cache, computes it if missing and stores it, so a task finished by a worker that
then died is not computed again); ``RayShards`` splits every attack of an evaluation into shards
(see ``attacks.distribute``) and records where each ran and for how long. Ray retries a task
whose worker died; results are deterministic, so a retry gives the same result.
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from saddlepoint.attacks.base import Attack
from saddlepoint.attacks.distribute import distributed, join_results, local, split_batch
from saddlepoint.attacks.result import AttackResult
from saddlepoint.attacks.runtime import reproducible_plans

if TYPE_CHECKING:
    from saddlepoint.experiments.studies.base import StudyContext

EXECUTORS = ("local", "ray")


def import_ray() -> Any:
    """The ray module, or a clear error naming the extra to install."""
    try:
        import ray
    except ImportError as error:
        raise ValueError(
            "The 'ray' executor needs Ray: pip install 'saddlepoint[ray]' (or pip install ray)."
        ) from error
    return ray


@dataclass
class Cluster:
    """The Ray cluster at ``address``, or a local one with ``workers`` CPUs (started on entry,
    stopped on exit; a Ray this process had already joined is left as it is)."""

    address: str | None = None
    workers: int = 2
    threads: int = 1  # torch threads (and Ray CPUs) per task
    _started: bool = False

    def __enter__(self) -> Cluster:
        ray = import_ray()
        if not ray.is_initialized():
            # "local" always starts a fresh instance: a bare ray.init() would join any cluster
            # `ray start` left on this machine (and then refuse num_cpus)
            options: dict[str, Any] = (
                {"address": self.address}
                if self.address
                else {"address": "local", "num_cpus": self.workers}
            )
            ray.init(include_dashboard=False, log_to_driver=False, **options)
            self._started = True
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._started:
            import_ray().shutdown()
            self._started = False

    def resources(self) -> dict[str, float]:
        """What one task asks for: ``threads`` CPUs, and a GPU where the cluster has any."""
        gpus = import_ray().cluster_resources().get("GPU", 0)
        return {"num_cpus": self.threads, **({"num_gpus": 1} if gpus else {})}

    def slots(self) -> int:
        """How many tasks run at once: the cluster's GPUs, else its CPUs."""
        total = import_ray().cluster_resources()
        return max(1, int(total.get("GPU", 0) or total.get("CPU", 1)))


@dataclass
class Pending:
    """A value being computed on the cluster (or already known)."""

    ref: Any = None
    value: Any = None
    done: bool = False

    def result(self) -> Any:
        if not self.done:
            self.value, self.done = import_ray().get(self.ref), True
            self.ref = None
        return self.value


class RayTasks:
    """Runs a study's tasks as Ray tasks; the driver keeps the study's order and its records."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._context_ref: Any = None
        self._remote: Any = None

    def submit(self, ctx: StudyContext, call: Callable[..., Any], *arguments: Any) -> Pending:
        """``call(worker context, *arguments)`` on a worker."""
        ray = import_ray()
        if self._remote is None:
            self._remote = ray.remote(max_retries=3, **self.cluster.resources())(_on_worker)
            self._context_ref = ray.put(ctx.for_worker())
        threads = self.cluster.threads
        return Pending(self._remote.remote(threads, self._context_ref, call, *arguments))


def _on_worker(threads: int, ctx: StudyContext, call: Callable[..., Any], *arguments: Any) -> Any:
    torch.set_num_threads(threads)
    with reproducible_plans():
        return call(ctx, *arguments)


@dataclass
class ShardRun:
    """Where one shard of one attack ran and how long it took."""

    attack: str
    images: int
    node: str
    device: str
    seconds: float


@dataclass
class RayShards:
    """A shard runner (``attacks.distribute``) that attacks ``shards`` shards as Ray tasks."""

    cluster: Cluster
    shards: int
    runs: list[ShardRun] = field(default_factory=list)
    _models: dict[int, tuple[nn.Module, Any]] = field(default_factory=dict)
    _remote: Any = None

    def __call__(
        self,
        attack: Attack,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        targets: torch.Tensor | None,
        offset: int,
    ) -> AttackResult:
        ray = import_ray()
        start = time.perf_counter()
        if self._remote is None:
            self._remote = ray.remote(max_retries=3, **self.cluster.resources())(_attack_shard)
        if id(model) not in self._models:  # sent once per model (kept alive with its reference)
            self._models[id(model)] = (model, ray.put(_cpu_model(model)))
        reference = self._models[id(model)][1]
        threads = self.cluster.threads
        refs = [
            self._remote.remote(attack, reference, xs, ys, ts, at, threads)
            for xs, ys, ts, at in split_batch(x, y, targets, offset, self.shards)
        ]
        parts = []
        for result, where in ray.get(refs):
            parts.append(result)
            self.runs.append(ShardRun(attack.name, len(result.labels), *where))
        return join_results(parts, time.perf_counter() - start)

    def summary(self) -> dict[str, Any]:
        """Workers, devices and seconds per worker, for a card or a log."""
        per_node: dict[str, float] = {}
        for run in self.runs:
            key = f"{run.node} ({run.device})"
            per_node[key] = per_node.get(key, 0.0) + run.seconds
        return {
            "executor": "ray",
            "shards": self.shards,
            "workers": len(per_node),
            "devices": sorted({run.device for run in self.runs}),
            "seconds_per_worker": {k: round(v, 2) for k, v in sorted(per_node.items())},
        }


def _cpu_model(model: nn.Module) -> nn.Module:
    """The model itself when it is on the CPU, else a CPU copy (the caller's stays put)."""
    if all(p.device.type == "cpu" for p in model.parameters()):
        return model
    return copy.deepcopy(model).cpu()


def _attack_shard(
    attack: Attack,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    targets: torch.Tensor | None,
    offset: int,
    threads: int,
) -> tuple[AttackResult, tuple[str, str, float]]:
    """One shard, on this worker's GPU when it has one; returns the result and (node, device,
    seconds)."""
    start = time.perf_counter()
    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device)
    with local(), reproducible_plans():
        result = attack(model, x, y, targets=targets, offset=offset)
    node = import_ray().get_runtime_context().get_node_id()[:8]
    where = f"{socket.gethostname()}:{node}:{os.getpid()}"
    return result, (where, device.type, time.perf_counter() - start)


@contextlib.contextmanager
def here(threads: int | None = None) -> Iterator[None]:
    """Work in this process as a Ray task does it: on ``threads`` torch threads (when given)
    and with 'auto' execution plans decided by their fixed rule (``reproducible_plans``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        with reproducible_plans():
            yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def task_executor(
    executor: str = "local",
    address: str | None = None,
    workers: int = 2,
    threads: int | None = None,
) -> Iterator[RayTasks | None]:
    """Where a study's tasks run for the block: here (None), or as Ray tasks."""
    if executor == "local":
        with here(threads):
            yield None
        return
    with Cluster(address=address, workers=workers, threads=threads or 1) as cluster:
        yield RayTasks(cluster)


@contextlib.contextmanager
def evaluation_executor(
    executor: str = "local",
    address: str | None = None,
    workers: int = 2,
    threads: int | None = None,
    shards: int | None = None,
) -> Iterator[RayShards | None]:
    """Where the attacks of an evaluation run for the block: here (None), or split into
    ``shards`` Ray tasks (default: as many as the cluster runs at once). Either way 'auto'
    execution plans follow their fixed rule (``reproducible_plans``), so the per-image results
    are the same bits in any process at the same ``threads``."""
    if executor == "local":
        with here(threads):
            yield None
        return
    with reproducible_plans(), Cluster(address, workers, threads or 1) as cluster:
        runner = RayShards(cluster, shards or cluster.slots())
        with distributed(runner):
            yield runner
