"""`saddlepoint study run|list` and `saddlepoint report`: the seeds' studies and their report."""

from __future__ import annotations

import argparse
from pathlib import Path

from saddlepoint.cli.common import (
    CLIError,
    add_cluster_arguments,
    check_outputs,
    cluster_options,
    format_table,
    parse_assignments,
    positive_int,
)
from saddlepoint.progress import watched
from saddlepoint.runlog import RUN_FILE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("study", help="run a study from experiments/ and its report")
    commands = parser.add_subparsers(
        dest="study_command", required=True, metavar="{run,list,costs}"
    )
    run = commands.add_parser(
        "run",
        help="run a study file into a run folder, then write its HTML report",
        description="Train the study's models (or reuse those already in the run folder), run its "
        "sections -- each recorded in the folder's run.sqlite as it finishes, so an interrupted "
        "study resumes -- and write report.html.",
    )
    run.add_argument("study", type=Path, help="study YAML file (see experiments/study*.yaml)")
    run.add_argument(
        "--out", type=Path, default=None, help="run folder (default: runs/STUDY-FILE-NAME)"
    )
    run.add_argument("--seed", type=int, default=None, help="override the file's seed")
    run.add_argument(
        "--train-limit",
        type=positive_int,
        default=None,
        help="train on the first N training images only",
    )
    run.add_argument(
        "--dataset",
        default=None,
        metavar="NAME",
        help="run on this dataset instead of the file's (for example mnist or fashion-mnist for "
        "a CIFAR-10 seed file); the dataset's options in the file are dropped",
    )
    run.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="override one of the study's params (repeatable; YAML values, e.g. images=1000 "
        "or epochs=2): the documented way to run a seed file reduced",
    )
    run.add_argument(
        "--redo",
        action="append",
        default=[],
        metavar="SECTION",
        help="build this recorded section again though its inputs are unchanged, e.g. after "
        "a change to its figures (repeatable; its models and kept parts are reused; a key the "
        "run folder has not recorded is refused before anything runs)",
    )
    add_cluster_arguments(run, "each training and attack part")
    run.add_argument(
        "--storage",
        default=None,
        metavar="PATH_OR_URL",
        help="where the study's cache and models live: a folder every node mounts, or an "
        "object store (s3://bucket/prefix; pip install 'saddlepoint[s3]'; an S3-compatible "
        "server through AWS_ENDPOINT_URL); default: the run folder",
    )
    run.set_defaults(handler=_run)
    listing = commands.add_parser("list", help="the registered studies")
    listing.set_defaults(handler=_list)
    costs = commands.add_parser(
        "costs",
        help="what each task of a run cost, and its wall time projected on N workers",
        description="Read the seconds the engine recorded for every task in a run's cache "
        "(the run folder's, or --storage) and project the wall time on N workers (longest "
        "task first to the least loaded worker: a lower bound, since a task also waits for "
        "the models it uses).",
    )
    costs.add_argument("run", type=Path, help="the run folder")
    costs.add_argument("--storage", default=None, help="the run's storage, if not its folder")
    costs.add_argument(
        "--workers",
        type=positive_int,
        nargs="+",
        default=[1, 2, 4, 8, 16],
        help="worker counts to project (default: 1 2 4 8 16)",
    )
    costs.set_defaults(handler=_costs)

    report = subparsers.add_parser(
        "report",
        help="write the HTML report of a run folder, or compare robustness cards",
        description="Assemble a run folder's tables, plots and image grids (from its run.sqlite) "
        "into one self-contained HTML page. Given robustness cards instead (card.json files from "
        "`saddlepoint benchmark`, or their folders), print them side by side (and write that "
        "table as HTML with --out).",
    )
    report.add_argument(
        "run_dir",
        type=Path,
        nargs="+",
        metavar="RUN_DIR",
        help="run folder (holds run.sqlite); or two or more robustness cards to compare",
    )
    report.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/report.html")
    report.add_argument("--title", default="", help="page title (default: the run's)")
    report.add_argument(
        "--markdown",
        type=Path,
        default=None,
        metavar="DIR",
        help="instead write DIR/README.md with the tables and copies of the figures",
    )
    report.add_argument(
        "--preface",
        type=Path,
        default=None,
        metavar="FILE",
        help="a Markdown file (headings, pipe tables, paragraphs) to open the report with, "
        "e.g. a table of the seed's findings beside this run's",
    )
    report.set_defaults(handler=_report)


def _run(args: argparse.Namespace) -> int:
    from saddlepoint.experiments.studies import load_study, run_study
    from saddlepoint.viz.report import render_report

    study = load_study(args.study)
    overrides = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.train_limit is not None:
        overrides["train_limit"] = args.train_limit
    if args.dataset is not None:
        overrides["dataset"] = {"name": args.dataset}
    changed = parse_assignments(args.param, "--param")
    if changed:
        overrides["params"] = {**study["params"], **changed}
    out = args.out or Path("runs") / args.study.stem
    check_outputs([("--out", out / RUN_FILE), ("--out", out / "report.html")])
    run_study(
        study,
        out,
        progress=watched(),
        overrides=overrides,
        redo=args.redo,
        storage=args.storage,
        **cluster_options(args),
    )
    print(f"report: {render_report(out)}")
    return 0


def _costs(args: argparse.Namespace) -> int:
    from saddlepoint.experiments.storage import Storage
    from saddlepoint.experiments.tasks import TaskCache, projected_seconds

    storage = Storage(args.storage or args.run).check()
    costs = TaskCache(storage, "cache").costs()
    if not costs:
        raise CLIError(f"{storage.root} holds no task with recorded seconds (cache/ is empty).")
    rows = [
        (task, len(seconds), f"{sum(seconds):.1f}", f"{max(seconds):.1f}")
        for task, seconds in sorted(costs.items(), key=lambda item: -sum(item[1]))
    ]
    print(format_table(rows, ["task", "runs", "seconds", "longest"]))
    every = [cost for seconds in costs.values() for cost in seconds]
    projected = [(n, f"{projected_seconds(every, n):.1f}") for n in args.workers]
    print(format_table(projected, ["workers", "projected seconds"]))
    return 0


def _list(args: argparse.Namespace) -> int:
    from saddlepoint.experiments.studies import SOURCES, STUDIES

    rows = [
        (name, SOURCES.get(name, "-"), (fn.__doc__ or "").strip().splitlines()[0])
        for name, fn in STUDIES.items()
    ]
    print(format_table(sorted(rows), ["study", "seed and section", "what it does"]))
    return 0


def _is_card(path: Path) -> bool:
    from saddlepoint.experiments.card import CARD_FILE

    if path.suffix == ".json":
        return True
    return (path / CARD_FILE).is_file() and not (path / "run.sqlite").is_file()


def _compare(args: argparse.Namespace) -> int:
    import tempfile

    from saddlepoint.experiments.card import RobustnessCard, compare
    from saddlepoint.runlog import RunLog, Section, Table
    from saddlepoint.viz.report import render_report

    cards = [RobustnessCard.load(path) for path in args.run_dir]
    names = [
        str(card.model.get("file") or card.model.get("reference") or path)
        for card, path in zip(cards, args.run_dir)
    ]
    rows = compare(cards)
    print(format_table(rows, ["", *names]))
    if args.out is not None:
        check_outputs([("--out", args.out)], [(str(p), p) for p in args.run_dir])
        with tempfile.TemporaryDirectory() as folder:
            with RunLog(folder) as log:
                log.add(
                    Section(
                        "cards",
                        "Robustness cards side by side",
                        "Each column is one `saddlepoint benchmark` card; robust accuracy is the "
                        "per-image worst case of every attack the card ran.",
                        [Table("cards", ["", *names], rows)],
                    )
                )
            print(f"report: {render_report(folder, args.out, args.title or 'Robustness cards')}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from saddlepoint.viz.report import render_markdown, render_report

    if len(args.run_dir) > 1 or _is_card(args.run_dir[0]):
        return _compare(args)
    args.run_dir = args.run_dir[0]
    preface = ""
    if args.preface is not None:
        try:
            preface = args.preface.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise CLIError(f"--preface {args.preface}: cannot read it ({error}).") from None
    if args.markdown is not None:
        print(render_markdown(args.run_dir, args.markdown, preface=preface))
    else:
        print(render_report(args.run_dir, args.out, args.title, preface=preface))
    return 0
