"""Run an experiment: plan shared computation, attack, and write rows to the store.

Configurations that differ only in the number of PGD steps share one run of max(steps) steps
that records every step count asked for (the iterate at step k is exactly the k-step attack), so
a grid over n = 1..8 costs 8 steps per image, not 36. The clean forward pass over the data is
done once per checkpoint. Finished configurations are skipped on a re-run. Attacks run in the
contiguous memory layout unless the experiment says otherwise, so rows are reproducible to the
bit whatever the machine's timing (the measured layout choice could differ between runs).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from saddlepoint.attacks import PGD, build_attack
from saddlepoint.attacks.registry import ATTACKS
from saddlepoint.checkpoint import load_checkpoint
from saddlepoint.data import load_dataset
from saddlepoint.evaluate.metrics import predict_logits
from saddlepoint.experiments.spec import ExperimentSpec
from saddlepoint.experiments.store import ResultsStore, config_key
from saddlepoint.validation import check_choice

log = logging.getLogger(__name__)


def _shareable(attack: str, params: dict[str, Any]) -> bool:
    """Whether configurations of this kind may share one multi-step PGD run."""
    if ATTACKS[attack].builder is not PGD:
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


def plan(configs: list[dict[str, Any]], attack: str) -> list[list[dict[str, Any]]]:
    """Group configurations into units of work: shared step-count groups, or single runs."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    singles = []
    for config in configs:
        params = {k: v for k, v in config.items() if k != "checkpoint"}
        if "steps" in params and _shareable(attack, params):
            rest = {k: v for k, v in config.items() if k != "steps"}
            groups[config_key(rest)].append(config)
        else:
            singles.append([config])
    return list(groups.values()) + singles


def _data_for(spec: ExperimentSpec, meta: dict[str, Any]):
    recorded = meta.get("dataset", {})
    options = {**recorded.get("options", {}), **spec.dataset.get("options", {})}
    data = load_dataset(spec.dataset.get("name", recorded.get("name")), **options)
    split = data.split(spec.dataset.get("split", "test")).head(spec.dataset.get("limit"))
    return split.images, split.labels


_LOADED: dict[str, tuple] = {}  # per process: checkpoint -> (model, x, y, clean accuracy)


def _load(spec: ExperimentSpec, checkpoint: str) -> tuple:
    """The model and data of ``checkpoint``, with its clean accuracy (once per process)."""
    if checkpoint not in _LOADED:
        _LOADED.clear()
        model, meta = load_checkpoint(spec.checkpoint_path(checkpoint))
        x, y = _data_for(spec, meta)
        clean = predict_logits(model, x)
        _LOADED[checkpoint] = (model, x, y, float((clean.argmax(1) == y).float().mean()))
    return _LOADED[checkpoint]


def _unit(spec: ExperimentSpec, group: list[dict[str, Any]], store_path: str) -> int:
    """Run one unit of work and commit its rows; returns how many rows it wrote."""
    model, x, y, clean_accuracy = _load(spec, group[0]["checkpoint"])
    start = time.perf_counter()
    rows = _run_group(spec.attack, group, model, x, y)
    seconds = (time.perf_counter() - start) / len(group)
    with ResultsStore(store_path) as store:
        for config, metrics in rows:
            extra = {"clean_accuracy": clean_accuracy, "n": len(y), "seconds": seconds}
            store.add(config, {**metrics, **extra})
    return len(rows)


def run_experiment(
    spec: ExperimentSpec,
    store_path: str | Path,
    *,
    executor: str = "local",
    workers: int = 2,
    progress: bool = True,
) -> dict[str, int]:
    """Run every configuration of ``spec`` not yet in the store at ``store_path``, in this
    process ('local') or in a pool of ``workers`` processes ('processes'); the rows are the
    same either way."""
    check_choice("run_experiment", "executor", executor, ["local", "processes"])
    configs = spec.configurations()
    counts = {"total": len(configs), "skipped": 0, "run": 0}
    with ResultsStore(store_path) as store:
        done = store.done()
    todo = [c for c in configs if config_key(c) not in done]
    counts["skipped"] = len(configs) - len(todo)
    by_checkpoint: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for config in todo:
        by_checkpoint[config["checkpoint"]].append(config)
    units = [group for mine in by_checkpoint.values() for group in plan(mine, spec.attack)]
    bar = tqdm(total=len(todo), desc=spec.name, unit="config", disable=not progress)
    if executor == "local":
        for group in units:
            counts["run"] += _unit(spec, group, str(store_path))
            bar.update(len(group))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_unit, spec, group, str(store_path)) for group in units]
            for future in as_completed(futures):
                written = future.result()
                counts["run"] += written
                bar.update(written)
    bar.close()
    return counts


def _run_group(attack: str, group: list[dict[str, Any]], model, x, y) -> list[tuple[dict, dict]]:
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
    steps = sorted({c["steps"] for c in group})
    shared = {**params, "steps": max(steps), "record_at": steps}
    result = build_attack(attack, **shared)(model, x, y)
    records = result.extras["records"]
    rows = []
    for config in group:
        slot = steps.index(config["steps"])
        rows.append(
            (
                config,
                {
                    "accuracy": float(records[:, slot, 0].mean()),
                    "loss": float(records[:, slot, 1].mean()),
                    "objective": float(records[:, slot, 2].mean()),
                    "grad_evals": float(config["steps"]),
                },
            )
        )
    return rows
