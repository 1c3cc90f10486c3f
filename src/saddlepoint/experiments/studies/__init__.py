"""The seeds' studies, each one function registered by name and run from a YAML file:

    study: transfer            # a name from STUDIES
    title: Transfer over surrogate depth and width
    dataset: {name: mnist}     # any registered dataset, with its options
    seed: 0
    train_limit: 20000         # optional: train on the first N training images
    params: {epochs: 2}        # the study function's keyword arguments

Results go to a run folder (``run.sqlite`` plus figures and checkpoints); ``render_report``
turns it into one HTML page. Re-running skips the sections already recorded.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any

from saddlepoint.data import ImageData, load_dataset
from saddlepoint.experiments.cluster import EXECUTORS, task_executor
from saddlepoint.experiments.storage import Storage
from saddlepoint.experiments.studies.attacks import attack_grid, convergence, minimal_perturbations
from saddlepoint.experiments.studies.base import StudyContext
from saddlepoint.experiments.studies.blackbox import blackbox
from saddlepoint.experiments.studies.demo import demo
from saddlepoint.experiments.studies.generative import generative
from saddlepoint.experiments.studies.robust_nets import adversarial_training_study, fast_gradient
from saddlepoint.experiments.studies.training import defenses, overfitting
from saddlepoint.experiments.studies.transfer import transfer_study
from saddlepoint.fileio import folder_lock, read_yaml
from saddlepoint.registry import Registry
from saddlepoint.runlog import RUN_FILE, RunLog
from saddlepoint.validation import check_choice, closest


def _hint(name: str, choices: Iterable[str]) -> str:
    match = closest(name, choices)
    return f" (did you mean {match!r}?)" if match else ""


STUDIES: Registry[Callable[..., Any]] = Registry("study")
for _name, _function in (
    ("attack-grid", attack_grid),
    ("convergence", convergence),
    ("transfer", transfer_study),
    ("overfitting", overfitting),
    ("defenses", defenses),
    ("minimal-perturbations", minimal_perturbations),
    ("blackbox", blackbox),
    ("generative", generative),
    ("fast-gradient", fast_gradient),
    ("adversarial-training", adversarial_training_study),
    ("demo", demo),  # the main job: a little of everything
):
    STUDIES.register(_name, _function)

# Where each study comes from in the seed reports (../shared/seeds/, summarised in README).
SOURCES: dict[str, str] = {
    "attack-grid": "seed 000 §2",
    "convergence": "seed 000 §4.3.2",
    "transfer": "seed 000 §3",
    "overfitting": "seed 000 §4",
    "defenses": "seed 000 §5",
    "minimal-perturbations": "seed 003",
    "blackbox": "seed 002 §4",
    "generative": "seed 004",
    "fast-gradient": "seed 002 §2",
    "adversarial-training": "seed 002 §3",
    "demo": "all (a little of each)",
}

_KEYS = ("study", "title", "dataset", "seed", "device", "train_limit", "params")


class StudyError(ValueError):
    """An invalid study file; the message names the field."""


def register_study(name: str, function: Callable[..., Any]) -> None:
    STUDIES.register(name, function)


def load_study(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a study file."""
    try:
        data = read_yaml(path)
    except (OSError, ValueError) as error:
        raise StudyError(f"Cannot read study file {path}: {error}") from None
    return check_study(data)


def check_study(data: Any) -> dict[str, Any]:
    """Validate a study mapping; errors name the field and what is allowed."""
    if not isinstance(data, dict):
        raise StudyError(f"A study file holds a mapping with keys {', '.join(_KEYS)}.")
    for key in data:
        if key not in _KEYS:
            raise StudyError(
                f"Unknown field {key!r} in the study file{_hint(key, _KEYS)}. "
                f"Allowed: {', '.join(_KEYS)}."
            )
    name = data.get("study")
    if not isinstance(name, str) or name not in STUDIES:
        raise StudyError(
            f"Field 'study': {name!r} is not a study{_hint(str(name), STUDIES)}. "
            f"Choose one of: {', '.join(sorted(STUDIES))}."
        )
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise StudyError(f"Field 'params' must be a mapping. Got {params!r}.")
    accepted = [p for p in inspect.signature(STUDIES[name]).parameters if p != "ctx"]
    for key in params:
        if key not in accepted:
            raise StudyError(
                f"Field 'params.{key}' is not a parameter of study {name!r}"
                f"{_hint(key, accepted)}. Its parameters: {', '.join(accepted) or 'none'}."
            )
        if isinstance(params[key], list | tuple) and not params[key]:
            raise StudyError(
                f"Field 'params.{key}' is an empty list; give at least one value (or leave it "
                "out for the study's default)."
            )
        default = inspect.signature(STUDIES[name]).parameters[key].default
        _check_kind(key, params[key], default)
        _check_count(key, params[key], default)
    for field in ("seed", "train_limit"):
        value = data.get(field)
        low = 0 if field == "seed" else 1
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < low
        ):
            raise StudyError(
                f"Field {field!r} must be a whole number of at least {low}. Got {value!r}."
            )
    dataset = data.get("dataset") or {"name": "digits"}
    if isinstance(dataset, str):
        dataset = {"name": dataset}
    if not isinstance(dataset, dict) or "name" not in dataset:
        raise StudyError("Field 'dataset' must be a name or a mapping with 'name' and 'options'.")
    return {**data, "dataset": dataset, "params": params}


def _changes(original: dict[str, Any], overrides: dict[str, Any]) -> str:
    """A one-line account of the overrides (dataset, seed, sizes) a run applied to its file."""
    parts = []
    for key, value in overrides.items():
        if key == "params":
            continue
        parts.append(f"{key} = {value['name'] if key == 'dataset' else value}")
    for key, value in (overrides.get("params") or {}).items():
        if original.get(key) != value:
            parts.append(f"params.{key} = {value!r}")
    return "; ".join(parts)


def _check_kind(key: str, value: Any, default: Any) -> None:
    """A parameter's value must be of its default's kind: a whole number, a number, a string,
    true/false, or a list of numbers or strings."""
    if default is inspect.Parameter.empty or default is None:
        return
    number = (int, float)
    kinds: list[tuple[bool, str]] = [
        (isinstance(default, bool), "true or false"),
        (isinstance(default, int), "a whole number"),
        (isinstance(default, float), "a number"),
        (isinstance(default, str), "a string"),
        (isinstance(default, list | tuple), "a list"),
    ]
    wanted = next((label for matches, label in kinds if matches), None)
    ok = {
        "true or false": isinstance(value, bool),
        "a whole number": isinstance(value, int) and not isinstance(value, bool),
        "a number": isinstance(value, number) and not isinstance(value, bool),
        "a string": isinstance(value, str),
        "a list": isinstance(value, list | tuple),
        None: True,
    }[wanted]
    if not ok:
        raise StudyError(f"Field 'params.{key}' must be {wanted}. Got {value!r} instead.")


def _check_count(key: str, value: Any, default: Any) -> None:
    """A count of images or epochs is a whole number of at least 1 (0 where the study's own
    default is 0, meaning "none"), checked before anything is trained: a negative count would
    be used as a slice from the end."""
    if value is None or not (key in ("images", "epochs") or key.endswith(("_images", "_epochs"))):
        return
    low = 0 if default == 0 else 1
    for count in value if isinstance(value, list | tuple) else [value]:  # a list of counts too
        if isinstance(count, bool) or not isinstance(count, int) or count < low:
            each = " (each of them)" if isinstance(value, list | tuple) else ""
            raise StudyError(
                f"Field 'params.{key}' must be a whole number of at least {low}{each}. Got "
                f"{value!r} instead."
            )


def run_study(
    study: dict[str, Any],
    out: str | os.PathLike[str],
    *,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
    data: ImageData | None = None,
    redo: Collection[str] = (),
    executor: str = "local",
    address: str | None = None,
    workers: int = 2,
    storage: str | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run a checked study mapping into the run folder ``out``; returns the study's summary.
    ``data``, when the caller has already loaded the study's dataset, saves loading it again.
    ``redo``: section keys to build again though recorded (after a change to their figures or
    tables); a key not recorded in ``out`` is an error before anything runs (a section not yet
    recorded is built anyway), and one the study no longer builds is an error after it ran.

    ``executor`` 'ray' runs the study's tasks (trainings, attack parts) on the Ray cluster at
    ``address`` (a local one with ``workers`` CPUs when None), each as soon as its inputs are
    ready; the records are the ones a local run makes. ``storage`` is where the cache and the
    models live (default: the run folder): a folder every node mounts or an object-store URL
    such as ``s3://bucket/study``. One process at a time may run a study in ``out``.
    ``threads``: torch's threads per task (default: torch's own here, 1 per Ray task); runs at
    the same count give the same bits wherever they run."""
    check_choice("run_study", "executor", executor, EXECUTORS)
    if storage is not None:
        Storage(storage).check()
    changed = _changes(study.get("params") or {}, overrides or {})
    study = check_study({**study, **(overrides or {})})
    options = dict(study["dataset"].get("options") or {})
    options.setdefault("seed", study.get("seed", 0))
    if redo:
        _check_redo(redo, _recorded(out), f"is not recorded in {out}, which holds")
    if data is None:
        data = load_dataset(study["dataset"]["name"], **options)
    with (
        folder_lock(out, "The run folder"),
        RunLog(out) as log,
        task_executor(executor, address, workers, threads) as tasks,
    ):
        log.set_meta("title", study.get("title") or f"saddlepoint study: {study['study']}")
        log.set_meta("study", study["study"])
        log.set_meta("dataset", f"{data.name} ({len(data.train)} train / {len(data.test)} test)")
        log.set_meta("source", SOURCES.get(study["study"], "-"))
        log.set_meta("changed from the file", changed or "nothing")
        ctx = StudyContext(
            log=log,
            data=data,
            seed=int(study.get("seed", 0)),
            device=study.get("device", "auto"),
            progress=progress,
            train_limit=study.get("train_limit"),
            dataset_options=options,
            redo=frozenset(redo),
            storage_root=storage,
            executor=tasks,
        )
        summary = STUDIES[study["study"]](ctx, **study["params"]) or {}
    _check_redo(redo, ctx.built, f"is no section of study {study['study']!r}, which has")
    return summary


def _recorded(out: str | os.PathLike[str]) -> list[str]:
    """The section keys recorded in run folder ``out`` (none where it holds no run yet)."""
    if not (Path(out) / RUN_FILE).is_file():
        return []
    with RunLog(out) as log:
        return [section.key for section in log.sections()]


def _check_redo(redo: Collection[str], sections: Collection[str], why: str) -> None:
    """Name the first ``redo`` key outside ``sections``, with the keys that are there."""
    unknown = sorted(set(redo) - set(sections))
    if unknown:
        raise StudyError(
            f"redo (--redo) {unknown[0]!r} {why} "
            f"{', '.join(sections) or 'no section yet (a run builds every section it lacks)'}."
        )


__all__ = [
    "SOURCES",
    "STUDIES",
    "StudyContext",
    "StudyError",
    "check_study",
    "load_study",
    "run_study",
]
