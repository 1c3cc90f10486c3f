"""What every study shares: its run folder, data, trained models and cached tasks.

A study is a function ``study(ctx, **params)`` registered by name. It trains the models it needs
with ``ctx.train`` and records its results as sections with ``ctx.section``, each built by a
task: a module-level function whose key the engine derives (see ``experiments.tasks``). A model,
a part or a section already made from the same key is reused; any other is made again. Tables
are recorded first; plots are drawn from the recorded tables only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import nn

from saddlepoint.attacks import build_attack
from saddlepoint.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from saddlepoint.data import ImageData, Split
from saddlepoint.evaluate.metrics import evaluate_split
from saddlepoint.experiments.cluster import Pending
from saddlepoint.experiments.storage import Storage
from saddlepoint.experiments.tasks import TaskCache, task, task_key, task_name
from saddlepoint.fileio import content_digest
from saddlepoint.progress import note
from saddlepoint.runlog import RunLog, Section, Table
from saddlepoint.train import TrainConfig, train_classifier, train_model

__all__ = ["Section", "StudyContext", "Table", "Trained"]


class Trained:
    """A model a study trained: its name in the run, its storage and its file's digest (what a
    key built on it holds, so a retrained model re-runs everything made from it). A model still
    training on a cluster is pending: reading its digest, path or weights waits for it."""

    def __init__(
        self, name: str, storage: Storage, digest: str | None = None, pending: Any = None
    ) -> None:
        self.name = name
        self.storage = storage
        self._digest = digest
        self._pending = pending

    def __repr__(self) -> str:
        return f"Trained({self.name!r}, {self._digest or 'pending'})"

    def __getstate__(self) -> dict[str, Any]:  # sent to a worker once trained
        return {
            "name": self.name,
            "storage": self.storage,
            "_digest": self.digest,
            "_pending": None,
        }

    @property
    def relative(self) -> str:
        return f"models/{self.name}.safetensors"

    @property
    def digest(self) -> str:
        if self._digest is None:
            self._digest = str(self._pending.result()["sha256"])
            self._pending = None
        return self._digest

    @property
    def path(self) -> Path:
        """A local file with the model's weights (downloaded from an object store)."""
        self.digest  # noqa: B018 - waits for a pending model
        return self.storage.local_path(self.relative)

    def cache_identity(self) -> dict[str, str]:
        return {"model": self.name, "sha256": self.digest}

    def load(self) -> tuple[nn.Module, dict[str, Any]]:
        """(model on the CPU, its metadata)."""
        return load_checkpoint(self.path, device="cpu")

    @property
    def metadata(self) -> dict[str, Any]:
        return read_metadata(self.path)


@dataclass
class StudyContext:
    """The run folder's log, the dataset, and the settings every study shares. Its cache and
    models live in ``storage_root`` (the run folder unless given: a folder every node mounts,
    or an object-store URL), and its tasks run where ``executor`` sends them (this process when
    None, a Ray cluster with ``experiments.cluster.RayTasks``)."""

    log: RunLog | None
    data: ImageData
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    train_limit: int | None = None  # train on the first N training images only (fast runs)
    dataset_options: dict[str, Any] = field(default_factory=dict)  # as loaded (root included)
    # sections to build again even if recorded from the same key (a new figure or table in
    # the code): the tasks they are built from are reused, so only the cheap work reruns
    redo: frozenset[str] = frozenset()
    built: list[str] = field(default_factory=list)  # every section key met in this run
    storage_root: str | None = None
    executor: Any = None
    _running: list[tuple[str, str]] = field(default_factory=list)  # tasks in flight (name, key)
    _submitted: dict[str, Any] = field(default_factory=dict)  # key -> Pending or Trained

    @property
    def runlog(self) -> RunLog:
        """The run's log (the driver's: a task on a worker has none)."""
        if self.log is None:
            raise RuntimeError(
                "A task run on a worker has no run folder or log: write files with ctx.storage."
            )
        return self.log

    @property
    def folder(self) -> Path:
        return self.runlog.folder

    @property
    def storage(self) -> Storage:
        return Storage(self.storage_root or self.folder)

    def for_worker(self) -> StudyContext:
        """What a task running on another machine gets: no log, no executor, no bars, and of
        the training split only the images the run trains on (less to send)."""
        return replace(
            self,
            data=self._data_to_send(),
            log=None,
            executor=None,
            progress=False,
            storage_root=self.storage.root,
            built=[],
            _running=[],
            _submitted={},
        )

    def _data_to_send(self) -> ImageData:
        """The data with only the training images the run uses, copied out of the full split
        (a slice would carry its whole storage along when pickled)."""
        if self.train_limit is None or self.train_limit >= len(self.data.train):
            return self.data
        train = self.data.train
        n = self.train_limit
        return replace(self.data, train=Split(train.images[:n].clone(), train.labels[:n].clone()))

    def say(self, message: str) -> None:
        """A progress line (logged at INFO: shown unless --quiet, on a terminal or not)."""
        note("%s", message)

    def inputs(self) -> dict[str, Any]:
        """What every section and model of the run depends on besides its own parameters: the
        dataset (name and loader options, which hold the split seed), the seed and the
        training-set limit."""
        return _plain({**self._data_identity(), "seed": self.seed, "train_limit": self.train_limit})

    def _data_identity(self) -> dict[str, Any]:
        return {"dataset": self.data.name, "options": dict(self.data.options)}

    def _model_path(self, name: str) -> Path:
        """Where model ``name`` is written on this machine (the stored file itself in a folder
        storage; uploaded from there to an object store)."""
        return self.storage.scratch_folder() / "models" / f"{name}.safetensors"

    def _state_path(self, name: str) -> Path:
        """Where model ``name``'s training keeps its state after each epoch (removed once the
        model itself is saved)."""
        return self.storage.scratch_folder() / "models" / f"{name}.training.pt"

    def training_data(self) -> ImageData:
        if self.train_limit is None:
            return self.data
        return replace(self.data, train=self.data.train.head(self.train_limit))

    @property
    def cache(self) -> TaskCache:
        return TaskCache(self.storage, "cache")

    def run(self, function: Callable[..., Any], /, **arguments: Any) -> Any:
        """``function(ctx, **arguments)``'s JSON value, computed once per key: the task's name
        and version, ``arguments`` bound by its signature and the run's ``inputs()``."""
        return self.submit(function, **arguments).result()

    def map(self, function: Callable[..., Any], calls: Sequence[Mapping[str, Any]]) -> list[Any]:
        """``run(function, **call)`` for every call, all submitted before any is awaited: on a
        cluster they run at once."""
        submitted = [self.submit(function, **call) for call in calls]
        return [pending.result() for pending in submitted]

    def submit(self, function: Callable[..., Any], /, **arguments: Any) -> Pending:
        """Start ``run(function, **arguments)`` (on the executor) and return its pending value."""
        name = task_name(function)
        key, material = task_key(function, arguments, self.inputs())
        if key in self._submitted:  # the same task asked for twice while in flight
            return self._submitted[key]
        found = self.cache.load(name, key)
        if found.hit:
            return Pending(value=found.value, done=True)
        if self.executor is not None:
            pending = self.executor.submit(self, run_on_worker, function, arguments)
            self._submitted[key] = pending
            return pending
        self._running.append((name, key))
        start = time.perf_counter()
        try:
            value = function(self, **arguments)
        finally:
            self._running.pop()
        seconds = time.perf_counter() - start
        return Pending(value=self.cache.store(name, key, material, value, seconds), done=True)

    def scratch(self, suffix: str) -> Path:
        """A file of the task now running, beside its result (say, the store a long sweep
        resumes from): one per key, so other arguments never mix with it."""
        if not self._running:
            raise RuntimeError("ctx.scratch is for a task run by ctx.run.")
        name, key = self._running[-1]
        return self.cache.path(name, key).with_suffix(suffix)

    def train(
        self,
        name: str,
        architecture: str,
        *,
        epochs: int,
        model_args: dict[str, Any] | None = None,
        defense: Any = None,
        seed: int | None = None,
        **train_options: Any,
    ) -> Trained:
        """Model ``name`` of this run (``models/NAME.safetensors``), trained from this recipe
        unless a model trained from the same recipe, data and seed is there already."""
        arguments = dict(architecture=architecture, epochs=epochs, model_args=model_args)
        arguments |= dict(defense=defense, seed=seed, train_options=train_options)
        return self._model_task(name, train_from_recipe, arguments)

    def finetune(
        self,
        name: str,
        base: Trained,
        *,
        epochs: int,
        defense: Any = None,
        lr: float = 1e-3,
        watch: str | None = None,
        watch_images: int = 0,
    ) -> Trained:
        """Model ``name``: ``base`` run for ``epochs`` more epochs at a constant ``lr`` with
        ``defense``; cached like ``train`` (its key holds the base model's digest). With
        ``watch`` (a registered attack), that attack runs on the first ``watch_images`` test
        images before the first epoch and after each, and the model's metadata keeps the curve
        (``epoch_measures``: epoch, rho_adv, accuracy under the attack)."""
        arguments = dict(base=base, epochs=epochs, defense=defense, lr=lr)
        if watch is not None:  # else the key of earlier runs
            arguments |= dict(watch=watch, watch_images=watch_images)
        return self._model_task(name, finetune_from, arguments)

    def _model_task(
        self, name: str, function: Callable[..., Any], arguments: dict[str, Any]
    ) -> Trained:
        """A model task's file: reused when the cache says which bytes it made from this key
        and the storage still holds them; else made again (on a cluster: the model is pending
        until a key or a load needs it)."""
        arguments = {"name": name, **arguments}
        key, material = task_key(function, arguments, self.inputs())
        if key in self._submitted:
            return self._submitted[key]
        known = stored_model(self, function, name, key)
        if known is not None:
            return Trained(name, self.storage, known)
        if self.executor is None:
            made = make_model(self, function, arguments, key, material)
            return Trained(name, self.storage, made["sha256"])
        pending = self.executor.submit(self, make_model, function, arguments, key, material)
        trained = Trained(name, self.storage, pending=pending)
        self._submitted[key] = trained
        return trained

    def figure(self, section: Section, name: str, caption: str = "") -> Path:
        """A path for figure ``name`` of ``section``, registered in the section (draw it there
        before the section is recorded)."""
        path = self.runlog.figure_path(f"{section.key}-{name}")
        section.figures.append((str(path.relative_to(self.folder)), caption))
        return path

    def section(
        self, key: str, title: str, build: Callable[..., None], /, **arguments: Any
    ) -> Section:
        """Section ``key``, built by the task ``build(ctx, section, **arguments)`` (which fills
        its text, tables and figures): reused when recorded under the same derived key, else
        built now and recorded."""
        digest, material = task_key(build, arguments, self.inputs())

        def why_not(stored: dict[str, Any]) -> str:
            if stored.get("_key") == digest:
                return ""
            before = stored.get("_made_from", {})
            changed = [
                name
                for name, value in material["arguments"].items()
                if before.get("arguments", {}).get(name) != value
            ]
            if before.get("inputs") != material["inputs"]:
                changed.append("the run's data or seed")
            return "changed: " + ", ".join(changed) if changed else "its task's code changed"

        return self._record(
            key,
            title,
            {"_key": digest, "_made_from": material},
            why_not,
            lambda section: build(self, section, **arguments),
        )

    def _record(
        self,
        key: str,
        title: str,
        params: dict[str, Any],
        why_not: Callable[[dict[str, Any]], str],
        build: Callable[[Section], None],
    ) -> Section:
        """The recorded section ``key`` when ``why_not(its params)`` finds no reason to build
        it again (and it is not in ``redo``); else ``build`` it now and record it."""
        self.built.append(key)
        stored = self.runlog.params(key)
        if stored is not None and key in self.redo:
            self.say(f"{title}: built again on request (--redo {key})")
        elif stored is not None:
            why = why_not(stored)
            if not why:
                self.say(f"{title}: already done, skipped")
                return self.runlog.section(key)
            self.say(f"{title}: recorded from other inputs ({why}), recomputing")
        else:
            self.say(f"{title} ...")
        section = Section(key=key, title=title, params=params)
        start = time.perf_counter()
        build(section)
        section.seconds = time.perf_counter() - start
        self.runlog.add(section)
        return section


def run_on_worker(
    ctx: StudyContext, function: Callable[..., Any], arguments: dict[str, Any]
) -> Any:
    """A task on a worker: looked up in the cache again (a retried task that an earlier try
    finished is not computed twice), else computed and stored there."""
    return ctx.run(function, **arguments)


def stored_model(
    ctx: StudyContext, function: Callable[..., Any], name: str, key: str
) -> str | None:
    """The digest of model ``name`` when the cache holds it under ``key`` and the storage
    still holds those bytes; else None."""
    found = ctx.cache.load(task_name(function), key)
    if not found.hit:
        return None
    digest = found.value["sha256"]
    return digest if ctx.storage.digest(f"models/{name}.safetensors") == digest else None


def make_model(
    ctx: StudyContext,
    function: Callable[..., Any],
    arguments: dict[str, Any],
    key: str,
    material: dict[str, Any],
) -> dict[str, str]:
    """Train (or fine-tune) a model by ``function``, put it in the storage and record its
    digest under ``key``; a model already stored under the key (a retried task) is kept."""
    name = arguments["name"]
    known = stored_model(ctx, function, name, key)
    if known is not None:
        return {"sha256": known}
    start = time.perf_counter()
    function(ctx, **arguments, resume_tag=key)
    seconds = time.perf_counter() - start  # of this try (a resumed training: since resuming)
    local = ctx._model_path(name)
    ctx._state_path(name).unlink(missing_ok=True)  # kept until the model was saved
    digest = content_digest(local)
    ctx.storage.put_file(local, f"models/{name}.safetensors")
    ctx.cache.store(task_name(function), key, material, {"sha256": digest}, seconds)
    return {"sha256": digest}


@task(version=1)
def train_from_recipe(
    ctx: StudyContext,
    name: str,
    architecture: str,
    epochs: int,
    model_args: dict[str, Any] | None,
    defense: Any,
    seed: int | None,
    train_options: dict[str, Any],
    resume_tag: str = "",
) -> None:
    """Train model ``name`` from this recipe on the run's training data and save it (a run
    stopped mid-training resumes at its last finished epoch)."""
    ctx.say(f"training {name} ({architecture}, {epochs} epochs)")
    seed = ctx.seed if seed is None else seed
    config = TrainConfig(epochs=epochs, seed=seed, device=ctx.device, **train_options)
    trained = train_classifier(
        ctx.training_data(),
        architecture,
        config,
        model_args=model_args,
        dataset_options=ctx.data.options,
        transform=defense,
        progress=ctx.progress,
        resume=ctx._state_path(name),
        resume_tag=resume_tag,
    )
    save_checkpoint(ctx._model_path(name), trained.model.cpu(), trained.metadata)


@task(version=1)
def finetune_from(
    ctx: StudyContext,
    name: str,
    base: Trained,
    epochs: int,
    defense: Any,
    lr: float,
    resume_tag: str = "",
    watch: str | None = None,
    watch_images: int = 0,
) -> None:
    """Run ``base`` for ``epochs`` more epochs at a constant ``lr`` with ``defense`` and save
    it as model ``name``, with its history and test metrics (and, with ``watch``, the watched
    attack's curve over the epochs)."""
    ctx.say(f"fine-tuning {base.name} into {name} ({epochs} epochs)")
    model, metadata = base.load()
    config = TrainConfig(epochs=epochs, lr=lr, schedule="constant", seed=ctx.seed)
    measure = None if watch is None else attack_measure(ctx, watch, watch_images)
    before = measure(model) if measure is not None else {}
    history = train_model(
        model,
        ctx.training_data(),
        config,
        transform=defense,
        progress=ctx.progress,
        resume=ctx._state_path(name),
        resume_tag=resume_tag,
        after_epoch=measure,
    )
    test = evaluate_split(model.cpu(), ctx.data.test, ctx.data.num_classes)
    metadata = {
        **metadata,
        "finetuned_from": base.name,
        "history": history.to_dict(),
        "metrics": {"test": {k: test[k] for k in ("loss", "accuracy", "mean_confidence")}},
    }
    if measure is not None:
        curve = [(0, before)] + [(r.epoch, r.measures) for r in history.epochs]
        metadata["epoch_measures"] = [{"epoch": e, **values} for e, values in curve]
    save_checkpoint(ctx._model_path(name), model, metadata)


def attack_measure(
    ctx: StudyContext, attack: str, images: int
) -> Callable[[nn.Module], dict[str, float]]:
    """rho_adv and accuracy of the registered ``attack`` on the first ``images`` test images:
    a measurement to take after each epoch (attacks restore the model's modes and keep the
    global random state)."""
    x, y = ctx.data.test.images[:images], ctx.data.test.labels[:images]
    adversary = build_attack(attack)

    def measure(model: nn.Module) -> dict[str, float]:
        metrics = adversary(model, x, y).metrics()
        return {"rho_adv": metrics["rho_adv"], "accuracy": metrics["robust_accuracy"]}

    return measure


def _plain(value: Any) -> Any:
    """JSON-comparable form of a recipe (tuples as lists)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
