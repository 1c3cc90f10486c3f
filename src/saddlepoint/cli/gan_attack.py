"""`saddlepoint gan-attack`: seed 004's generative attacker, over intensities and modes."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

from saddlepoint.cli.common import (
    add_data_arguments,
    add_device_argument,
    dataset_options,
    format_table,
    positive_int,
)
from saddlepoint.fileio import write_text
from saddlepoint.progress import watched
from saddlepoint.train.generative import GenerativeAttackConfig

SEED004_T = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64)


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = GenerativeAttackConfig()
    parser = subparsers.add_parser(
        "gan-attack",
        help="train a generative attacker network against a classifier (seed 004)",
        description="Train classifier C1 (and C2, same architecture, another seed, clean data "
        "only), then an encoder-decoder attacker whose perturbation is bounded by the intensity "
        "t, in consecutive mode (C1 frozen) or alternating mode (attacker and C1 take turns). "
        "Runs the generative study (`saddlepoint study run` with study: generative) into --out: "
        "a re-run resumes at the runs it lacks. Writes its report (accuracy against t, per-epoch "
        "curves, originals, perturbations and attacks per t) and the per-epoch rows as CSV and "
        "JSON.",
    )
    parser.add_argument("--dataset", default="mnist", help="dataset name (default: mnist)")
    parser.add_argument(
        "--t",
        type=float,
        nargs="+",
        default=[defaults.t],
        help=f"intensities (seed 004: {' '.join(map(str, SEED004_T))})",
    )
    parser.add_argument(
        "--mode", choices=["consecutive", "alternating", "both"], default="consecutive"
    )
    parser.add_argument(
        "--classifier",
        default=defaults.classifier,
        help="model for C1 and C2 (default: %(default)s)",
    )
    parser.add_argument(
        "--classifier-epochs",
        type=int,
        default=defaults.classifier_epochs,
        help="C1/C2 clean epochs (consecutive)",
    )
    parser.add_argument(
        "--clean-epochs",
        type=int,
        default=defaults.clean_epochs,
        help="C1 clean epochs before alternating",
    )
    parser.add_argument(
        "--attacker-epochs", type=int, default=defaults.attacker_epochs, help="attacker epochs"
    )
    parser.add_argument(
        "--width",
        type=int,
        default=defaults.width,
        help="attacker filters at the first level (seed 004: 64)",
    )
    parser.add_argument(
        "--bound",
        choices=["scale", "clamp"],
        default=defaults.bound,
        help="t * tanh, or clamp to [-t, t]",
    )
    parser.add_argument(
        "--loss",
        choices=["ce", "cw"],
        default=defaults.loss,
        help="attacker objective (default: cw margin)",
    )
    parser.add_argument("--lr", type=float, default=defaults.lr, help="Adam learning rate")
    parser.add_argument(
        "--train-limit",
        type=positive_int,
        default=None,
        help="use only the first N training images",
    )
    parser.add_argument(
        "--test-limit", type=positive_int, default=None, help="evaluate on the first N test images"
    )
    parser.add_argument(
        "--final-norm",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="batch-normalise the attacker's last layer before its tanh (seed 004's FSConv4)",
    )
    parser.add_argument(
        "--c2-alongside",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="alternating mode: train C2 one clean batch per attacker batch, so it gets as many "
        "epochs as C1 (seed 004)",
    )
    parser.add_argument(
        "--clip",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="clip attacked images to [0, 1]; --no-clip leaves them up to t outside, a reading "
        "of seed 004 (which does not say it clips), not a valid-image threat model",
    )
    parser.add_argument("--seed", type=int, default=0)
    add_device_argument(parser, default="auto")
    parser.add_argument("--out", type=Path, default=Path("runs/gan-attack"), help="output folder")
    add_data_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """The generative study with these settings, run into --out (resumable: a re-run trains
    only the (mode, t) runs it lacks), with its report and the per-epoch rows as CSV and JSON."""
    from saddlepoint.experiments.studies import run_study
    from saddlepoint.runlog import RunLog
    from saddlepoint.viz.report import render_report

    modes = ["consecutive", "alternating"] if args.mode == "both" else [args.mode]
    params = dict(t=list(args.t), modes=modes, classifier=args.classifier, width=args.width)
    params |= dict(classifier_epochs=args.classifier_epochs, attacker_epochs=args.attacker_epochs)
    params |= dict(clean_epochs=args.clean_epochs, loss=args.loss, final_norm=args.final_norm)
    params |= dict(c2_alongside=args.c2_alongside, clip=args.clip, images=args.test_limit)
    params |= dict(bound=args.bound, lr=args.lr)
    study = {
        "study": "generative",
        "title": "Generative attacker (saddlepoint gan-attack)",
        "dataset": {"name": args.dataset, "options": dataset_options(args, args.dataset)},
        "seed": args.seed,
        "device": args.device,
        "train_limit": args.train_limit,
        "params": params,
    }
    out: Path = args.out
    run_study(study, out, progress=watched())
    with RunLog(out) as log:
        section = log.section("generative")
    rows = section.table("history").records()
    write_text(out / "results.json", json.dumps(rows, indent=2) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "results.csv", buffer.getvalue())
    final = section.table("final")
    print(
        format_table(
            final.rows, ["mode", "t", "C1 clean", "C1 attacked", "C2 clean", "C2 attacked"]
        )
    )
    print(f"results: {out / 'results.csv'}\nreport: {render_report(out)}")
    return 0
