"""`saddlepoint sweep run|status|top|export`: declarative attack grids in a results store."""

from __future__ import annotations

import argparse
import csv
import importlib
import io
import math
from pathlib import Path

from saddlepoint.cli.common import add_cluster_arguments, format_table, positive_int
from saddlepoint.cli.model_options import add_trust_argument
from saddlepoint.experiments import ResultsStore, load_spec, run_experiment
from saddlepoint.experiments.engine import current_rows
from saddlepoint.fileio import write_bytes, write_text
from saddlepoint.progress import watched


def _store_path(spec_path: Path, out: Path | None) -> Path:
    folder = out or Path("runs") / spec_path.stem
    return folder / "results.sqlite"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep", help="run attack grids from experiment files, resumably"
    )
    commands = parser.add_subparsers(
        dest="sweep_command", required=True, metavar="{run,status,top,export}"
    )
    run = commands.add_parser(
        "run",
        help="run every configuration not yet in the store",
        description="Expand the experiment's grid and attack each checkpoint with each "
        "configuration; configurations differing only in PGD steps share one run. Each finished "
        "configuration is committed at once: an interrupted sweep resumes where it stopped. "
        "Executors: local (in-process), processes (a pool on this machine) or ray.",
    )
    run.add_argument("experiment", type=Path, help="experiment YAML file")
    run.add_argument(
        "--out", type=Path, default=None, help="folder of the store (default: runs/EXPERIMENT)"
    )
    run.add_argument(
        "--yes", action="store_true", help="run grids of more than 50,000 configurations"
    )
    add_cluster_arguments(run, "the sweep", ("local", "processes", "ray"), threads=False)
    add_trust_argument(run)
    run.set_defaults(handler=run_sweep)
    status = commands.add_parser("status", help="how many configurations are done")
    status.add_argument("experiment", type=Path)
    status.add_argument("--out", type=Path, default=None)
    status.set_defaults(handler=run_status)
    top = commands.add_parser("top", help="the k best configurations, by a metric column")
    top.add_argument("experiment", type=Path)
    top.add_argument("--out", type=Path, default=None)
    top.add_argument("--by", default="accuracy", help="metric column (default: accuracy)")
    top.add_argument("--k", type=positive_int, default=10)
    top.add_argument(
        "--all",
        action="store_true",
        help="include every stored row: configurations no longer in the experiment file and "
        "stale rows (computed from another checkpoint file or data selection)",
    )
    top.add_argument(
        "--descending", action="store_true", help="largest first (default: smallest first)"
    )
    top.set_defaults(handler=run_top)
    export = commands.add_parser("export", help="write the store as CSV (or Parquet, with pyarrow)")
    export.add_argument("experiment", type=Path)
    export.add_argument("--out", type=Path, default=None)
    export.add_argument("--to", type=Path, required=True, help="output file (.csv or .parquet)")
    export.add_argument(
        "--all",
        action="store_true",
        help="include every stored row: configurations no longer in the experiment file and "
        "stale rows (computed from another checkpoint file or data selection)",
    )
    export.set_defaults(handler=run_export)


LARGE_GRID = 50_000  # configurations; above this a sweep needs --yes


def run_sweep(args: argparse.Namespace) -> int:
    spec = load_spec(args.experiment)
    path = _store_path(args.experiment, args.out)
    total = len(spec.checkpoints) * math.prod(len(values) for values in spec.grid.values())
    if total > LARGE_GRID and not args.yes:
        raise ValueError(
            f"{args.experiment} expands to {total:,} configurations (over {LARGE_GRID:,}); at "
            "0.3 ms per image and step that can take days. Pass --yes to run it anyway."
        )
    counts = run_experiment(
        spec,
        path,
        executor=args.executor,
        workers=args.workers,
        address=args.address,
        progress=watched(),
        trust_factory=args.trust_factory,
    )
    stale = (
        f" ({counts['stale']} of them replace rows computed from another checkpoint file, data "
        "selection or attack revision)"
        if counts["stale"]
        else ""
    )
    print(
        f"{spec.name}: {counts['run']} run{stale}, {counts['skipped']} already done, "
        f"{counts['total']} in all -> {path}"
    )
    return 0


def run_status(args: argparse.Namespace) -> int:
    spec = load_spec(args.experiment)
    path = _store_path(args.experiment, args.out)
    current = current_rows(spec)
    stored: dict[str, str | None] = {}
    if path.exists():
        with ResultsStore(path, readonly=True) as store:
            stored = store.done()
    done = sum(stored.get(key, "") == digest for key, digest in current.items())
    stale = sum(key in stored and stored[key] != digest for key, digest in current.items())
    line = f"{spec.name}: {done} / {len(current)} configurations done ({path})"
    if stale:
        line += (
            f"; {stale} stored rows are stale (another checkpoint file, data selection or attack "
            "revision) and will be re-run"
        )
    others = len(set(stored) - set(current))
    if others:
        line += f"; {others} more rows in the store are not in this experiment"
    print(line)
    return 0


def _rows(args: argparse.Namespace) -> list[dict]:
    path = _store_path(args.experiment, args.out)
    if not path.exists():
        raise FileNotFoundError(
            f"No results at {path}; run `saddlepoint sweep run {args.experiment}` first."
        )
    current = None if args.all else current_rows(load_spec(args.experiment))
    with ResultsStore(path, readonly=True) as store:
        return store.rows(current)


def run_top(args: argparse.Namespace) -> int:
    rows = _rows(args)
    if rows and args.by not in rows[0]:
        raise ValueError(
            f"The '--by' column {args.by!r} is not in the store. Columns: {', '.join(rows[0])}."
        )
    rows.sort(key=lambda r: r[args.by], reverse=args.descending)
    params = (
        [c for c in rows[0] if c.startswith("param_") and len({r[c] for r in rows}) > 1]
        if rows
        else []
    )
    headers = [c.removeprefix("param_") for c in params] + ["objective", "accuracy"]
    table = [[r[c] for c in params] + [r["objective"], r["accuracy"]] for r in rows[: args.k]]
    print(format_table(table, headers))
    return 0


def run_export(args: argparse.Namespace) -> int:
    if args.to.suffix not in (".csv", ".parquet"):
        raise ValueError(
            f"The '--to' file must end in .csv or .parquet. Got {args.to.name!r} instead."
        )
    rows = _rows(args)
    if args.to.suffix == ".parquet":
        try:
            import pandas as pd

            importlib.import_module("pyarrow")  # pandas writes Parquet through it
        except ImportError as error:
            raise ValueError(
                f"Parquet export needs pandas and pyarrow ({error.name} is missing): "
                "pip install 'saddlepoint[parquet]', or export to .csv."
            ) from None
        parquet = io.BytesIO()
        pd.DataFrame(rows).to_parquet(parquet)
        write_bytes(args.to, parquet.getvalue())
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["key"])
        writer.writeheader()
        writer.writerows(rows)
        write_text(args.to, buffer.getvalue())
    print(f"{len(rows)} rows -> {args.to}")
    return 0
