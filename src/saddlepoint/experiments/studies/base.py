"""What every study shares: its run folder, data, trained models and cached tasks.

A study is a function ``study(ctx, **params)`` registered by name. It trains the models it needs
with ``ctx.train`` and records its results as sections with ``ctx.section``, each built by a
task: a module-level function whose key the engine derives (see ``experiments.tasks``). A model,
a part or a section already made from the same key is reused; any other is made again. Tables
are recorded first; plots are drawn from the recorded tables only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import nn

from saddlepoint.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from saddlepoint.data import ImageData
from saddlepoint.evaluate.metrics import evaluate_split
from saddlepoint.experiments.tasks import TaskCache, task, task_key, task_name
from saddlepoint.fileio import content_digest
from saddlepoint.progress import note
from saddlepoint.runlog import RunLog, Section, Table
from saddlepoint.train import TrainConfig, train_classifier, train_model

__all__ = ["Section", "StudyContext", "Table", "Trained"]


@dataclass(frozen=True)
class Trained:
    """A model a study trained: its name in the run, its file and the file's digest (what a key
    built on it holds, so a retrained model re-runs everything made from it)."""

    name: str
    path: Path
    digest: str

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
    """The run folder's log, the dataset, and the settings every study shares."""

    log: RunLog
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
    _running: list[tuple[str, str]] = field(default_factory=list)  # tasks in flight (name, key)

    @property
    def folder(self) -> Path:
        return self.log.folder

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

    def _model_path(self, key: str) -> Path:
        return self.folder / "models" / f"{key}.safetensors"

    def _state_path(self, key: str) -> Path:
        """Where model ``key``'s training keeps its state after each epoch (removed once the
        model itself is saved)."""
        return self.folder / "models" / f"{key}.training.pt"

    def training_data(self) -> ImageData:
        if self.train_limit is None:
            return self.data
        return replace(self.data, train=self.data.train.head(self.train_limit))

    @property
    def cache(self) -> TaskCache:
        return TaskCache(self.folder / "cache")

    def run(self, function: Callable[..., Any], /, **arguments: Any) -> Any:
        """``function(ctx, **arguments)``'s JSON value, computed once per key: the task's name
        and version, ``arguments`` bound by its signature and the run's ``inputs()``."""
        name = task_name(function)
        key, material = task_key(function, arguments, self.inputs())
        found = self.cache.load(name, key)
        if found.hit:
            return found.value
        self._running.append((name, key))
        try:
            value = function(self, **arguments)
        finally:
            self._running.pop()
        return self.cache.store(name, key, material, value)

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
    ) -> Trained:
        """Model ``name``: ``base`` run for ``epochs`` more epochs at a constant ``lr`` with
        ``defense``; cached like ``train`` (its key holds the base model's digest)."""
        arguments = dict(base=base, epochs=epochs, defense=defense, lr=lr)
        return self._model_task(name, finetune_from, arguments)

    def _model_task(
        self, name: str, function: Callable[..., Any], arguments: dict[str, Any]
    ) -> Trained:
        """A model task's file: reused when the cache says which bytes it made from this key
        and the file still holds them; else made again."""
        arguments = {"name": name, **arguments}
        key, material = task_key(function, arguments, self.inputs())
        path = self._model_path(name)
        found = self.cache.load(task_name(function), key)
        if found.hit and path.is_file() and content_digest(path) == found.value["sha256"]:
            return Trained(name, path, found.value["sha256"])
        function(self, **arguments, resume_tag=key)
        self._state_path(name).unlink(missing_ok=True)  # kept until the model was saved
        digest = content_digest(path)
        self.cache.store(task_name(function), key, material, {"sha256": digest})
        return Trained(name, path, digest)

    def figure(self, section: Section, name: str, caption: str = "") -> Path:
        """A path for figure ``name`` of ``section``, registered in the section (draw it there
        before the section is recorded)."""
        path = self.log.figure_path(f"{section.key}-{name}")
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
        stored = self.log.params(key)
        if stored is not None and key in self.redo:
            self.say(f"{title}: built again on request (--redo {key})")
        elif stored is not None:
            why = why_not(stored)
            if not why:
                self.say(f"{title}: already done, skipped")
                return self.log.section(key)
            self.say(f"{title}: recorded from other inputs ({why}), recomputing")
        else:
            self.say(f"{title} ...")
        section = Section(key=key, title=title, params=params)
        start = time.perf_counter()
        build(section)
        section.seconds = time.perf_counter() - start
        self.log.add(section)
        return section


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
) -> None:
    """Run ``base`` for ``epochs`` more epochs at a constant ``lr`` with ``defense`` and save
    it as model ``name``, with its history and test metrics."""
    ctx.say(f"fine-tuning {base.name} into {name} ({epochs} epochs)")
    model, metadata = base.load()
    config = TrainConfig(epochs=epochs, lr=lr, schedule="constant", seed=ctx.seed)
    history = train_model(
        model,
        ctx.training_data(),
        config,
        transform=defense,
        progress=ctx.progress,
        resume=ctx._state_path(name),
        resume_tag=resume_tag,
    )
    test = evaluate_split(model.cpu(), ctx.data.test, ctx.data.num_classes)
    metadata = {
        **metadata,
        "finetuned_from": base.name,
        "history": history.to_dict(),
        "metrics": {"test": {k: test[k] for k in ("loss", "accuracy", "mean_confidence")}},
    }
    save_checkpoint(ctx._model_path(name), model, metadata)


def _plain(value: Any) -> Any:
    """JSON-comparable form of a recipe (tuples as lists)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
