"""Run an experiment: plan shared computation, attack, and write rows to the store.

Configurations that differ only in the number of PGD steps share one run of max(steps) steps
that records every step count asked for (the iterate at step k is exactly the k-step attack), so
a grid over n = 1..8 costs 8 steps per image, not 36. Configurations that also differ in eps,
random start, step size or loss join the same run as stacked copies of the data, each with its
own radius, start, step size and loss, so one forward/backward pass of a full sub-batch serves
several settings (chunked under STACK_BYTES of stacked data). The clean forward pass over the
data is done once per checkpoint. Finished configurations are skipped on a re-run. Attacks run in the
contiguous memory layout unless the experiment says otherwise, so rows are reproducible to the
bit whatever the machine's timing (the measured layout choice could differ between runs).
A stored row counts as done only while what produced it is unchanged: the checkpoint's bytes,
the data selection and the attack's revision (``input_digests``); otherwise it is re-run.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from saddlepoint.attacks import PGD, build_attack
from saddlepoint.attacks.registry import ATTACKS
from saddlepoint.checkpoint import load_checkpoint, read_metadata
from saddlepoint.data import dataset_for
from saddlepoint.experiments.cluster import Cluster, import_ray
from saddlepoint.experiments.spec import ExperimentSpec
from saddlepoint.experiments.stacked import record_settings
from saddlepoint.experiments.store import ResultsStore, config_key
from saddlepoint.fileio import content_digest
from saddlepoint.models.external import EXTERNAL, factory_source_digest
from saddlepoint.modes import predict_logits
from saddlepoint.validation import check_choice

log = logging.getLogger(__name__)


def _shareable(attack: str, params: dict[str, Any]) -> bool:
    """Whether configurations of this kind may share one multi-step PGD run."""
    if not ATTACKS[attack].stackable:
        return False
    merged = {**ATTACKS[attack].arguments(), **params}
    return (
        merged.get("step") is not None
        and merged.get("rel_step") is None
        and merged.get("restarts", 1) == 1
        and not merged.get("early_stop")
        and merged.get("tol") is None
        and not merged.get("trace")
    )


# Settings that share one stacked run besides the step count (see stacked.record_settings).
STACKED = ("steps", "eps", "random_start", "step", "loss")
PR_SET_PDEATHSIG = 1  # linux/prctl.h
STACK_BYTES = 256 * 2**20  # memory cap on one stacked copy of the data (inputs and starts)
UNIT_ROWS = 2048  # stacked rows (settings x images) a unit of work aims for: full sub-batches


def plan(
    configs: list[dict[str, Any]], attack: str, images: int | None = None
) -> list[list[dict[str, Any]]]:
    """Group configurations into units of work: configurations that differ only in steps, eps,
    step size, random start and loss share one stacked multi-step run; the rest run singly.

    A unit's rows are stored when it finishes, so a stacked group is cut into units of as few
    settings as fill UNIT_ROWS stacked rows for ``images`` images (one setting per unit when the
    count is unknown, i.e. a whole split): stacking more fills no sub-batch better, and a
    stopped sweep would lose the whole unit."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    singles = []
    for config in configs:
        params = {k: v for k, v in config.items() if k != "checkpoint"}
        if "steps" in params and _shareable(attack, params):
            rest = {k: v for k, v in config.items() if k not in STACKED}
            groups[config_key(rest)].append(config)
        else:
            singles.append([config])
    per_unit = max(1, -(-UNIT_ROWS // images)) if images else 1
    units = []
    for group in groups.values():
        by_setting: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for config in group:
            setting = {k: v for k, v in config.items() if k != "steps"}
            by_setting[config_key(setting)].append(config)
        settings = list(by_setting.values())
        for first in range(0, len(settings), per_unit):
            units.append([c for chunk in settings[first : first + per_unit] for c in chunk])
    return units + singles


def input_digests(spec: ExperimentSpec) -> dict[str, str]:
    """Per checkpoint of ``spec``, a digest of what determines its rows besides their
    configuration: the checkpoint file's bytes (a retrained model at the same path differs), the
    source of the factory an imported checkpoint is built by (found, not imported), the
    experiment's data selection (name, split, limit, loader options), the attack's registry entry
    (class or ensemble members, preset arguments) and its class's revision."""
    entry = ATTACKS[spec.attack]
    attack = f"{spec.attack} {entry.builder!r} {sorted(entry.preset.items())!r}"
    digests = {}
    for checkpoint in dict.fromkeys(spec.checkpoints):
        path = spec.checkpoint_path(checkpoint)
        try:
            content = content_digest(path)
        except OSError as error:
            raise ValueError(
                f"Checkpoint {checkpoint!r} of experiment {spec.name!r} cannot be read at {path} "
                f"({error.strerror or error}); relative paths are relative to the experiment file."
            ) from None
        record = {
            "checkpoint": content,
            "factory": _factory_digest(path),
            "dataset": spec.dataset,
            "files": _files_fingerprint(spec.data_path()),
            "attack": attack,  # the registry entry: an edited preset makes old rows stale
            "revision": getattr(entry.builder, "revision", 1),
        }
        text = json.dumps(record, sort_keys=True, default=str)
        digests[checkpoint] = hashlib.sha256(text.encode()).hexdigest()[:24]
    return digests


def _factory_digest(path: Path) -> str | None:
    """The digest of the factory's source for an imported checkpoint built by one (None for
    the others): rows stay current only while the code that builds the model is unchanged."""
    spec = read_metadata(path).get("model") or {}
    if not isinstance(spec, dict) or spec.get("name") != EXTERNAL:
        return None
    return factory_source_digest(str(spec.get("factory")))


def _files_fingerprint(path: Path | None) -> str | None:
    """What identifies the user's data files without reading every byte: each file's relative
    name, size and modification time (an edited, added or removed image changes it)."""
    if path is None:
        return None
    if not path.exists():
        raise ValueError(f"dataset.path {path} does not exist (relative to the experiment file).")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(
            f"{file.relative_to(path) if path.is_dir() else file.name}|{stat.st_size}|"
            f"{stat.st_mtime_ns}\n".encode()
        )
    return digest.hexdigest()


def current_rows(spec: ExperimentSpec) -> dict[str, str]:
    """The store key of every configuration of ``spec`` (grid duplicates once), each with the
    inputs digest a current row of it must carry."""
    digests = input_digests(spec)
    return {config_key(c): digests[c["checkpoint"]] for c in spec.configurations()}


def _data_for(spec: ExperimentSpec, meta: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    options = dict(spec.dataset.get("options", {}))
    files, limit = spec.data_path(), spec.dataset.get("limit")
    if files is not None:
        data = dataset_for(meta, files=files, size=options.get("size"), limit=limit)
    else:
        data = dataset_for(meta, spec.dataset.get("name"), options=options)
    split = data.split(spec.dataset.get("split", "test")).head(limit)
    return split.images, split.labels


_LOADED: dict[str, tuple] = {}  # per process: what was loaded -> (model, x, y, clean accuracy)


def _load(spec: ExperimentSpec, checkpoint: str, trust_factory: tuple[str, ...]) -> tuple:
    """The model and data of ``checkpoint``, with its clean accuracy: loaded once per process
    while the file and the data selection stay the same (a file rewritten since is reloaded)."""
    path = spec.checkpoint_path(checkpoint)
    stat = path.stat()
    identity = json.dumps(
        [str(path.resolve()), stat.st_mtime_ns, stat.st_size, spec.dataset, str(spec.folder)],
        default=str,
    )
    if identity not in _LOADED:
        _LOADED.clear()
        model, meta = load_checkpoint(path, trust_factory=trust_factory)
        x, y = _data_for(spec, meta)
        clean = predict_logits(model, x)
        _LOADED[identity] = (model, x, y, float((clean.argmax(1) == y).float().mean()))
    return _LOADED[identity]


def _unit(
    spec: ExperimentSpec, group: list[dict[str, Any]], trust_factory: tuple[str, ...] = ()
) -> list[tuple[dict, dict]]:
    """Run one unit of work; returns its (configuration, metrics) rows for the driver to store."""
    model, x, y, clean_accuracy = _load(spec, group[0]["checkpoint"], trust_factory)
    start = time.perf_counter()
    rows = _run_group(spec.attack, group, model, x, y)
    seconds = (time.perf_counter() - start) / len(group)
    extra = {"clean_accuracy": clean_accuracy, "n": len(y), "seconds": seconds}
    return [(config, {**metrics, **extra}) for config, metrics in rows]


def _die_with_parent(parent: int) -> None:
    """Worker initializer: ask Linux to send SIGTERM when the parent dies (even by kill -9),
    and leave at once if it is already gone. Elsewhere the pool's own shutdown applies."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):  # no prctl: fall back to the pool's shutdown
            return
    if os.getppid() != parent:
        os._exit(1)


def _results(
    units: list[list[dict[str, Any]]],
    spec: ExperimentSpec,
    executor: str,
    workers: int,
    address: str | None,
    trust: tuple[str, ...] = (),
) -> Iterator[list[tuple[dict, dict]]]:
    """Yield each unit's rows as it finishes, from the chosen executor."""
    if executor == "local":
        for group in units:
            yield _unit(spec, group, trust)
    elif executor == "processes":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")
        pool_options: dict[str, Any] = {
            "max_workers": workers,
            "mp_context": context,
            "initializer": _die_with_parent,
            "initargs": (os.getpid(),),
        }
        with ProcessPoolExecutor(**pool_options) as pool:
            for future in as_completed([pool.submit(_unit, spec, group, trust) for group in units]):
                yield future.result()
    else:
        ray = import_ray()
        with Cluster(address=address, workers=workers) as cluster:
            task = ray.remote(**cluster.resources())(_unit)
            pending = [task.remote(spec, group, trust) for group in units]
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                yield ray.get(ready[0])


def run_experiment(
    spec: ExperimentSpec,
    store_path: str | Path,
    *,
    executor: str = "local",
    workers: int = 2,
    address: str | None = None,
    progress: bool = True,
    trust_factory: Iterable[str] = (),
) -> dict[str, int]:
    """Run every configuration of ``spec`` not yet current in the store at ``store_path`` (absent,
    or stored from other inputs, see ``input_digests``): in this
    process ('local'), a pool of ``workers`` processes ('processes'), or Ray tasks ('ray': a
    local Ray with ``workers`` CPUs, or the cluster at ``address`` such as 'auto'; workers must
    see the checkpoint and data paths). Rows are gathered into the store by this process, one
    transaction each, and are the same whatever the executor. ``trust_factory`` names the
    modules whose factories imported checkpoints may call (see ``load_checkpoint``)."""
    check_choice("run_experiment", "executor", executor, ["local", "processes", "ray"])
    configs = list({config_key(c): c for c in spec.configurations()}.values())  # grid duplicates
    trust = tuple(str(t) for t in trust_factory)
    digests = input_digests(spec)
    counts = {"total": len(configs), "skipped": 0, "run": 0, "stale": 0}
    with ResultsStore(store_path) as store:
        done = store.done()  # one query, not one per configuration
        todo = [c for c in configs if done.get(config_key(c), "") != digests[c["checkpoint"]]]
        counts["skipped"] = len(configs) - len(todo)
        counts["stale"] = sum(config_key(c) in done for c in todo)
        if counts["stale"]:
            log.warning(
                "%d stored rows were computed from another checkpoint, data selection or attack "
                "revision; they are re-run and replaced",
                counts["stale"],
            )
        by_checkpoint: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for config in todo:
            by_checkpoint[config["checkpoint"]].append(config)
        images = spec.dataset.get("limit")
        units = [
            group
            for mine in by_checkpoint.values()
            for group in plan(mine, spec.attack, int(images) if images else None)
        ]
        bar = tqdm(total=len(todo), desc=spec.name, unit="config", disable=not progress)
        for rows in _results(units, spec, executor, workers, address, trust):
            for config, metrics in rows:
                store.add(config, metrics, digests[config["checkpoint"]])
            counts["run"] += len(rows)
            bar.update(len(rows))
        bar.close()
    return counts


def _run_group(
    attack: str, group: list[dict[str, Any]], model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> list[tuple[dict, dict]]:
    params = {k: v for k, v in group[0].items() if k != "checkpoint"}
    # A measured memory layout could differ between runs in its last bits; rows must not.
    params.setdefault("memory_format", "contiguous")
    if len(group) == 1 and not (_shareable(attack, params) and "steps" in params):
        configured = build_attack(attack, **params)
        result = configured(model, x, y)
        m = result.metrics()
        loss_fn = getattr(configured, "loss_fn", None)
        objective = float(loss_fn(result.logits, result.labels).mean()) if loss_fn else m["loss"]
        return [
            (
                group[0],
                {
                    "accuracy": m["robust_accuracy"],
                    "loss": m["loss"],
                    "objective": objective,
                    "grad_evals": m["grad_evals_mean"],
                },
            )
        ]
    defaults = {**ATTACKS[attack].arguments(), **params}

    def setting(config: dict[str, Any]) -> tuple[float, bool, float, str]:
        merged = {**defaults, **config}
        return (
            float(merged["eps"]),
            bool(merged["random_start"]),
            float(merged["step"]),
            str(merged["loss"]),
        )

    settings = sorted({setting(c) for c in group})
    steps = sorted({c["steps"] for c in group})
    fixed = {k: v for k, v in params.items() if k not in STACKED}
    attack_object = build_attack(attack, **fixed, steps=max(steps), record_at=steps)
    assert isinstance(attack_object, PGD)  # a stackable entry builds a PGD
    per_setting = 2 * x.numel() * x.element_size()  # inputs and starts of one copy
    chunk = max(1, STACK_BYTES // max(per_setting, 1))
    records = torch.cat(
        [
            record_settings(attack_object, model, x, y, settings[i : i + chunk])
            for i in range(0, len(settings), chunk)
        ]
    )
    rows = []
    for config in group:
        at = records[settings.index(setting(config)), :, steps.index(config["steps"])]
        rows.append(
            (
                config,
                {
                    "accuracy": float(at[:, 0].mean()),
                    "loss": float(at[:, 1].mean()),
                    "objective": float(at[:, 2].mean()),
                    "grad_evals": float(config["steps"]),
                },
            )
        )
    return rows
