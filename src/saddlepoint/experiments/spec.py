"""The experiment file: dataset, checkpoints, attack, and a grid of attack parameters.

    name: pgd-grid
    dataset: {split: test, limit: 1000}       # the data recorded in each checkpoint
    # or your own files: dataset: {path: my-images/, limit: 500, options: {size: 28}}
    checkpoints: [runs/mnist-cnn.safetensors]
    attack: pgd
    grid:
      eps: [0.1, 0.2, 0.3]                    # numbers, fractions "8/255", or "1..9 /255"
      step: ["1..4 /100"]
      steps: [1, 2, 4, 8]
      loss: [ce, mse]
      random_start: [true, false]
    fixed: {seed: 0, norm: linf}

Errors name the field, the value and what is allowed.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saddlepoint.attacks.registry import ATTACKS
from saddlepoint.fileio import read_yaml
from saddlepoint.threat import parse_eps
from saddlepoint.validation import closest, unknown_name_error

MAX_RANGE = 50_000  # values in one 'a..b' range (the whole grid has its own guard)
_TOP = ("name", "dataset", "checkpoints", "attack", "grid", "fixed", "seed")
_RADII = ("eps", "step")


class SpecError(ValueError):
    """An invalid experiment file; the message names the field."""


def _radius(section: str, name: str, text: str, hint: str = "") -> float:
    """A radius written as text ('0.3', '8/255') in ``section``; a SpecError naming the field."""
    try:
        return parse_eps(text, name, "the experiment")
    except (TypeError, ValueError) as error:
        raise SpecError(f"{section}.{name}: {error}{hint}") from None


def expand_values(name: str, value: Any) -> list[Any]:
    """A grid entry as a list: lists pass through, 'a..b /d' is a range, fractions parse."""
    items = value if isinstance(value, list) else [value]
    out: list[Any] = []
    for item in items:
        if isinstance(item, str) and ".." in item:
            body, _, divisor = item.partition("/")
            low, _, high = body.strip().partition("..")
            try:
                start, stop = int(low), int(high)
                scale = float(divisor) if divisor.strip() else 1.0
            except ValueError:
                raise SpecError(
                    f"grid.{name}: {item!r} is not a range; write 'a..b' or 'a..b /d' with whole "
                    "numbers a <= b, e.g. '1..9 /255'."
                ) from None
            if start > stop:
                raise SpecError(f"grid.{name}: range {item!r} is empty (a > b).")
            if stop - start + 1 > MAX_RANGE:  # counted before a single value is built
                raise SpecError(
                    f"grid.{name}: range {item!r} holds {stop - start + 1:,} values; a grid "
                    f"key takes at most {MAX_RANGE:,}."
                )
            if divisor.strip():
                out += [k / scale for k in range(start, stop + 1)]
            else:
                out += list(range(start, stop + 1))
        elif name in _RADII and isinstance(item, str):
            out.append(_radius("grid", name, item))
        else:
            out.append(item)
    return out


@dataclass
class ExperimentSpec:
    """A validated experiment: what to attack, with which configurations."""

    name: str
    checkpoints: list[str]
    attack: str
    grid: dict[str, list[Any]]
    fixed: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    folder: Path = Path(".")

    def configurations(self) -> list[dict[str, Any]]:
        """Every (checkpoint, attack parameters) combination, in a stable order."""
        keys = sorted(self.grid)
        rows = []
        for checkpoint in self.checkpoints:
            for values in itertools.product(*(self.grid[k] for k in keys)):
                rows.append({"checkpoint": checkpoint, **self.fixed, **dict(zip(keys, values))})
        return rows

    def data_path(self) -> Path | None:
        """``dataset.path`` (the user's own files), resolved like checkpoints; None if absent."""
        given = self.dataset.get("path")
        return None if given is None else self.checkpoint_path(given)

    def checkpoint_path(self, checkpoint: str) -> Path:
        """An absolute path as it is; a relative one relative to the experiment file's folder
        only (never the current folder, where a same-named file would silently win)."""
        path = Path(checkpoint)
        return path if path.is_absolute() else self.folder / path


def parse_spec(data: Any, folder: str | os.PathLike[str] = ".") -> ExperimentSpec:
    """Validate a parsed YAML mapping into an ExperimentSpec."""
    if not isinstance(data, dict):
        raise SpecError("An experiment file must hold a mapping with keys " + ", ".join(_TOP) + ".")
    _check_keys(data, _TOP, "Unknown field {key!r}.", "Fields")
    for required in ("checkpoints", "attack", "grid"):
        if required not in data:
            raise SpecError(f"Missing field {required!r}.")
    checkpoints = data["checkpoints"]
    if isinstance(checkpoints, str):
        checkpoints = [checkpoints]
    if (
        not isinstance(checkpoints, list)
        or not checkpoints
        or not all(isinstance(c, str) for c in checkpoints)
    ):
        raise SpecError(
            f"Field 'checkpoints' must be a path or a list of paths. Got {checkpoints!r}."
        )
    attack = data["attack"]
    if attack not in ATTACKS:
        raise SpecError(f"Field 'attack': {unknown_name_error('attack', attack, ATTACKS)}")
    grid = data["grid"]
    if not isinstance(grid, dict) or not grid:
        raise SpecError("Field 'grid' must map attack parameters to lists of values.")
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise SpecError("Field 'fixed' must map attack parameters to single values.")
    allowed = ATTACKS[attack].arguments()
    for section, mapping in (("grid", grid), ("fixed", fixed)):
        message = f"{section}.{{key}}: attack {attack!r} has no parameter {{key!r}}."
        _check_keys(mapping, sorted(allowed), message, "It takes")
    expanded = {key: expand_values(key, value) for key, value in grid.items()}
    for key, values in expanded.items():
        if not values:
            raise SpecError(f"grid.{key}: the list of values is empty.")
    if "seed" in data:  # the sweep's seed is every attack's seed
        if "seed" not in allowed:
            raise SpecError(f"Field 'seed': attack {attack!r} takes no seed (it is not random).")
        if "seed" in fixed or "seed" in grid:
            raise SpecError("Field 'seed' is given twice: at the top and under fixed: or grid:.")
        fixed = {**fixed, "seed": data["seed"]}
    fixed = {  # a range such as '1..4 /100' belongs under grid:, hence the hint
        k: (
            _radius("fixed", k, v, " (ranges go under grid:)")
            if k in _RADII and isinstance(v, str)
            else v
        )
        for k, v in fixed.items()
    }
    dataset = data.get("dataset") or {}
    if not isinstance(dataset, dict):
        raise SpecError("Field 'dataset' must be a mapping (split, limit, options).")
    _check_dataset(dataset)
    spec = ExperimentSpec(
        name=str(data.get("name", "experiment")),
        checkpoints=checkpoints,
        attack=attack,
        grid=expanded,
        fixed=fixed,
        dataset=dataset,
        folder=Path(folder),
    )
    # Build attacks now, so a bad value fails before any row is committed: the first and last
    # configurations, and every value of every grid key substituted into the first one.
    from saddlepoint.attacks import build_attack

    # (built directly, so a huge grid is not expanded here)
    first = {"checkpoint": checkpoints[0], **fixed, **{k: v[0] for k, v in expanded.items()}}
    last = {"checkpoint": checkpoints[-1], **fixed, **{k: v[-1] for k, v in expanded.items()}}
    probes = [first, last] + [{**first, key: v} for key, values in expanded.items() for v in values]
    for config in probes:
        params = {k: v for k, v in config.items() if k != "checkpoint"}
        try:
            build_attack(attack, **params)
        except (TypeError, ValueError) as error:
            raise SpecError(f"grid: {error}") from None
    return spec


_DATASET_KEYS = ("name", "path", "split", "limit", "options")


def _check_dataset(dataset: dict[str, Any]) -> None:
    """Unknown keys, a split that does not exist or a limit below 1 fail with the field named."""
    _check_keys(dataset, _DATASET_KEYS, "dataset.{key}: unknown key.", "It takes")
    split = dataset.get("split", "test")
    if split not in ("train", "val", "test"):
        raise SpecError(f"dataset.split must be train, val or test. Got {split!r} instead.")
    limit = dataset.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise SpecError(
            f"dataset.limit must be a whole number of at least 1. Got {limit!r} instead."
        )
    if not isinstance(dataset.get("options", {}), dict):
        raise SpecError("dataset.options must be a mapping of loader options.")
    if "path" in dataset:
        if not isinstance(dataset["path"], str) or not dataset["path"]:
            raise SpecError(
                "dataset.path must be the path of your own images (a class-per-folder tree, a "
                f"folder with images.npy and labels.npy, or an .npz file). Got {dataset['path']!r}."
            )
        if "name" in dataset:
            raise SpecError(
                "dataset: give name (a built-in dataset) or path (your files), not both."
            )
        extra = sorted(set(dataset.get("options", {})) - {"size"})
        if extra:
            raise SpecError(
                f"dataset.options {extra[0]!r} does not apply to files; they take size."
            )


def load_spec(path: str | os.PathLike[str]) -> ExperimentSpec:
    """Read and validate an experiment YAML file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"Experiment file {str(path)!r} does not exist.")
    try:
        data = read_yaml(path)
    except ValueError as error:
        raise SpecError(str(error)) from None
    return parse_spec(data, path.parent)


def _check_keys(mapping: dict[str, Any], allowed: Sequence[str], message: str, lead: str) -> None:
    """Refuse the first key of ``mapping`` not in ``allowed``: ``message`` (with {key}), the
    closest allowed name, and the list after ``lead``."""
    for key in mapping:
        if key not in allowed:
            hint = closest(str(key), allowed)
            raise SpecError(
                message.format(key=key)
                + (f" Did you mean {hint!r}?" if hint else "")
                + f" {lead}: {', '.join(allowed)}."
            )
