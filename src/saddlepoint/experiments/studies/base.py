"""What every study shares: its run folder, data, trained models and resumable sections.

A study is a function ``study(ctx, **params)`` registered by name. It trains (or reloads) the
models it needs with ``ctx.model`` -- checkpoints live in the run folder, so a re-run reuses them --
and records its results as sections with ``ctx.section``: a section already recorded with the
same parameters, the same data and seed, and the same bytes in every model file it used is not
computed again; otherwise it is recomputed and replaced. Tables are recorded first; plots are
drawn from the recorded tables only.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import nn

from saddlepoint.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from saddlepoint.data import ImageData
from saddlepoint.evaluate.metrics import evaluate_split
from saddlepoint.fileio import content_digest, write_text
from saddlepoint.progress import note
from saddlepoint.runlog import RunLog, Section, Table
from saddlepoint.train import TrainConfig, recipe_tag, train_classifier, train_model

__all__ = ["Section", "StudyContext", "Table"]


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
    # model files loaded so far in this run, with their content digests: a section depends on
    # every model loaded before or while it is built (studies load models before their sections)
    used_models: dict[str, str] = field(default_factory=dict)
    # sections to build again even if recorded from the same inputs (a new figure or table in
    # the code): their models and kept parts are reused, so only the cheap work reruns
    redo: frozenset[str] = frozenset()
    built: list[str] = field(default_factory=list)  # every section key met in this run

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

    def _loaded(self, key: str) -> tuple[nn.Module, dict[str, Any]]:
        """Load model ``key`` of this run, noting its bytes for the sections built from now on."""
        path = self._model_path(key)
        self.used_models[key] = content_digest(path)
        return load_checkpoint(path, device="cpu")

    def _state_path(self, key: str) -> Path:
        """Where model ``key``'s training keeps its state after each epoch (removed once the
        model itself is saved)."""
        return self.folder / "models" / f"{key}.training.pt"

    def _resume(self, key: str, recipe: dict[str, Any]) -> dict[str, Any]:
        """The training state's file and the recipe's digest, so a run stopped mid-training
        resumes at its last finished epoch."""
        return {"resume": self._state_path(key), "resume_tag": recipe_tag(_plain(recipe))}

    def training_data(self) -> ImageData:
        if self.train_limit is None:
            return self.data
        return replace(self.data, train=self.data.train.head(self.train_limit))

    def model(
        self,
        key: str,
        architecture: str,
        *,
        epochs: int,
        model_args: dict[str, Any] | None = None,
        defense: Any = None,
        seed: int | None = None,
        **train_options: Any,
    ) -> tuple[nn.Module, dict[str, Any]]:
        """The model ``key`` of this run: reloaded from ``models/KEY.safetensors`` when it was
        trained with the same settings, else trained now and saved. Returns (model, metadata)."""
        seed = self.seed if seed is None else seed
        recipe = {
            "architecture": architecture,
            "epochs": epochs,
            "model_args": model_args or {},
            "defense": defense.config() if defense is not None else None,
            "seed": seed,
            "train_limit": self.train_limit,
            "data": self._data_identity(),
            **train_options,
        }
        path = self._model_path(key)
        if path.is_file() and read_metadata(path).get("recipe") == _plain(recipe):
            return self._loaded(key)
        self.say(f"training {key} ({architecture}, {epochs} epochs)")
        config = TrainConfig(epochs=epochs, seed=seed, device=self.device, **train_options)
        trained = train_classifier(
            self.training_data(),
            architecture,
            config,
            model_args=model_args,
            dataset_options=self.data.options,
            transform=defense,
            progress=self.progress,
            **self._resume(key, recipe),
        )
        metadata = {**trained.metadata, "recipe": _plain(recipe)}
        save_checkpoint(path, trained.model.cpu(), metadata)
        self._state_path(key).unlink(missing_ok=True)  # kept until the model was saved
        return self._loaded(key)

    def finetune(
        self,
        key: str,
        base: str,
        *,
        epochs: int,
        defense: Any = None,
        lr: float = 1e-3,
    ) -> tuple[nn.Module, dict[str, Any]]:
        """Model ``key``: run ``base`` (a model of this run, already trained) for ``epochs``
        more epochs at a constant ``lr``, with ``defense``; cached like ``model``."""
        base_path = self._model_path(base)
        recipe = {
            "finetune_of": read_metadata(base_path)["recipe"],
            "epochs": epochs,
            "defense": defense.config() if defense is not None else None,
            "lr": lr,
        }
        path = self._model_path(key)
        if path.is_file() and read_metadata(path).get("recipe") == _plain(recipe):
            return self._loaded(key)
        self.say(f"fine-tuning {base} into {key} ({epochs} epochs)")
        model, metadata = load_checkpoint(base_path, device="cpu")
        config = TrainConfig(epochs=epochs, lr=lr, schedule="constant", seed=self.seed)
        history = train_model(
            model,
            self.training_data(),
            config,
            transform=defense,
            progress=self.progress,
            **self._resume(key, recipe),
        )
        test = evaluate_split(model.cpu(), self.data.test, self.data.num_classes)
        metadata = {
            **metadata,
            "recipe": _plain(recipe),
            "history": history.to_dict(),
            "metrics": {"test": {k: test[k] for k in ("loss", "accuracy", "mean_confidence")}},
        }
        save_checkpoint(path, model, metadata)
        self._state_path(key).unlink(missing_ok=True)  # kept until the model was saved
        return self._loaded(key)

    def part_key(self, params: dict[str, Any]) -> dict[str, Any]:
        """What a kept part of a section depends on, JSON-comparable: ``params``, the run's
        ``inputs()`` and the bytes of every model loaded so far."""
        key = {**params, "_inputs": self.inputs(), "_models": dict(self.used_models)}
        return json.loads(json.dumps(key, default=str))

    def kept(self, name: str, params: dict[str, Any], compute: Callable[[], Any]) -> Any:
        """``compute()``'s JSON value, kept in ``kept/NAME.json``: a long section stores each of
        its parts as it finishes, so a run stopped mid-section recomputes only the parts it
        lacks. A kept value is reused when ``params``, the run's ``inputs()`` and the bytes of
        every model loaded so far are unchanged; otherwise it is computed again."""
        key = self.part_key(params)
        path = self.folder / "kept" / f"{name}.json"
        if path.is_file():
            try:
                stored = json.loads(path.read_text())
            except ValueError:  # a damaged file is recomputed, not an error
                stored = {}
            if isinstance(stored, dict) and stored.get("params") == key:
                return stored["value"]
        value = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps({"params": key, "value": value}))
        return json.loads(json.dumps(value))

    def store_path(self, name: str, params: dict[str, Any]) -> Path:
        """A results store for a sweep inside a study, one per parameter set (so changed
        parameters never mix with old rows, and unchanged ones resume)."""
        digest = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
        return self.folder / f"{name}-{digest[:10]}.sqlite"

    def figure(self, section: Section, name: str, caption: str = "") -> Path:
        """A path for figure ``name`` of ``section``, registered in the section (draw it there
        before the section is recorded)."""
        path = self.log.figure_path(f"{section.key}-{name}")
        section.figures.append((str(path.relative_to(self.folder)), caption))
        return path

    def section(
        self,
        key: str,
        title: str,
        params: dict[str, Any],
        build: Callable[[Section], None],
    ) -> Section:
        """Section ``key``: recorded already from the same inputs (these ``params``, the run's
        ``inputs()``, the same bytes in each model file it used), or built now by
        ``build(section)`` (which fills its text, tables and figures) and recorded."""
        full = {**params, "_inputs": self.inputs()}
        self.built.append(key)
        stored = self.log.params(key)
        if stored is not None and key in self.redo:
            self.say(f"{title}: built again on request (--redo {key})")
        elif stored is not None:
            models = stored.pop("_models", {})
            changed = [
                name
                for name, digest in models.items()
                if not self._model_path(name).is_file()
                or content_digest(self._model_path(name)) != digest
            ]
            if stored == json.loads(json.dumps(full, default=str)) and not changed:
                self.say(f"{title}: already done, skipped")
                return self.log.section(key)
            why = (
                f"the model files {', '.join(changed)} changed" if changed else "its inputs changed"
            )
            self.say(f"{title}: recorded from other inputs ({why}), recomputing")
        else:
            self.say(f"{title} ...")
        section = Section(key=key, title=title, params=full)
        start = time.perf_counter()
        build(section)
        section.params = {**full, "_models": dict(self.used_models)}
        section.seconds = time.perf_counter() - start
        self.log.add(section)
        return section


def _plain(value: Any) -> Any:
    """JSON-comparable form of a recipe (tuples as lists)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
