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
from saddlepoint.data import load_dataset
from saddlepoint.fileio import write_text
from saddlepoint.modes import predict_logits
from saddlepoint.progress import watched
from saddlepoint.train.generative import GenerativeAttackConfig, train_generative_attack
from saddlepoint.viz.grids import generative_figure
from saddlepoint.viz.plots import line_plot

SEED004_T = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64)


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = GenerativeAttackConfig()
    parser = subparsers.add_parser(
        "gan-attack",
        help="train a generative attacker network against a classifier (seed 004)",
        description="Train classifier C1 (and C2, same architecture, another seed, clean data "
        "only), then an encoder-decoder attacker whose perturbation is bounded by the intensity "
        "t, in consecutive mode (C1 frozen) or alternating mode (attacker and C1 take turns). "
        "Writes a per-epoch table (CSV, JSON), accuracy-versus-t plots and a picture of "
        "originals, perturbations and attacks per t.",
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
    data = load_dataset(args.dataset, **dataset_options(args, args.dataset))
    data = type(data)(
        data.name,
        data.train.head(args.train_limit),
        data.val.head(2000),
        data.test.head(args.test_limit),
        data.class_names,
        data.source,
    )
    modes = ["consecutive", "alternating"] if args.mode == "both" else [args.mode]
    rows, attackers = [], {}
    for mode in modes:
        for t in args.t:
            config = GenerativeAttackConfig(
                t=t,
                mode=mode,
                classifier=args.classifier,
                classifier_epochs=args.classifier_epochs,
                attacker_epochs=args.attacker_epochs,
                clean_epochs=args.clean_epochs,
                width=args.width,
                bound=args.bound,
                loss=args.loss,
                lr=args.lr,
                final_norm=args.final_norm,
                c2_alongside=args.c2_alongside,
                clip=args.clip,
                seed=args.seed,
                device=args.device,
            )
            run_ = train_generative_attack(data, config, progress=watched())
            rows += run_.history
            attackers[(mode, t)] = run_.attacker.cpu()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.json", json.dumps(rows, indent=2) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "results.csv", buffer.getvalue())
    final = [r for r in rows if r["epoch"] == args.attacker_epochs]
    for mode in modes:
        mine = sorted((r for r in final if r["mode"] == mode), key=lambda r: r["t"])
        ts = [r["t"] for r in mine]
        series = {
            f"{c.upper()} {kind}": (ts, [r[f"{c}_{kind}_accuracy"] for r in mine])
            for c in ("c1", "c2")
            for kind in ("clean", "attacked")
        }
        line_plot(
            series,
            out / f"accuracy-vs-t-{mode}.png",
            xlabel="intensity t",
            ylabel="test accuracy",
            title=f"Generative attacker, {mode}",
            logx=len(ts) > 1,
        )
    examples = data.test.images[:6]
    attacked = {key: predict_logits(a, examples) for key, a in attackers.items()}  # outputs
    generative_figure(attacked, examples, out / "attacks-per-t.png")
    print(
        format_table(
            [
                (
                    r["mode"],
                    r["t"],
                    r["c1_clean_accuracy"],
                    r["c1_attacked_accuracy"],
                    r["c2_clean_accuracy"],
                    r["c2_attacked_accuracy"],
                )
                for r in final
            ],
            ["mode", "t", "C1 clean", "C1 attacked", "C2 clean", "C2 attacked"],
        )
    )
    print(f"results: {out / 'results.csv'}\nplots: {out}")
    return 0
