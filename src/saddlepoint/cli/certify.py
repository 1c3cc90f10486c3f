"""`saddlepoint certify CHECKPOINT`: randomized smoothing's certified L2 radii (Cohen et al.)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from saddlepoint.cli.common import (
    add_data_arguments,
    add_device_argument,
    check_outputs,
    format_table,
    positive_int,
)
from saddlepoint.cli.model_options import add_model_arguments, load_model_data, model_inputs
from saddlepoint.fileio import write_text

RADII = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


def _radii(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of radii"
        ) from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give radii of at least 0, e.g. 0,0.5,1")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "certify",
        help="certified L2 radii of the model smoothed with Gaussian noise (randomized smoothing)",
        description="Randomized smoothing (Cohen, Rosenfeld and Kolter, 2019): the smoothed "
        "classifier predicts the class the model gives most often under Gaussian noise of std "
        "--sigma; CERTIFY picks that class from --n0 samples, counts it among --n fresh ones and "
        "certifies the L2 radius sigma * Phi^-1(p) of the Clopper-Pearson lower bound p at "
        "confidence 1 - --alpha (abstaining when p <= 1/2). Prints certified accuracy at each "
        "radius; --out writes every image's prediction, count, bound and radius (certify.json) "
        "and the certified-accuracy curve. Train the base model with the same noise: "
        "`saddlepoint train --defense noise --noise-scale SIGMA`.",
    )
    add_model_arguments(parser)
    parser.add_argument("--sigma", type=float, required=True, help="noise std, e.g. 0.25")
    parser.add_argument(
        "--n", type=positive_int, default=100_000, help="estimation samples (default: 100000)"
    )
    parser.add_argument(
        "--n0", type=positive_int, default=100, help="selection samples (default: 100)"
    )
    parser.add_argument(
        "--alpha", type=float, default=0.001, help="failure probability (default: 0.001)"
    )
    parser.add_argument("--limit", type=positive_int, default=100, help="images (default: 100)")
    parser.add_argument("--split", choices=["train", "val", "test"], default="test")
    parser.add_argument(
        "--radii",
        type=_radii,
        default=list(RADII),
        help="radii of the table (default: 0 to 2 by 0.25)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=1000, help="noisy copies per pass"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for certify.json and the plot"
    )
    add_device_argument(parser)
    add_data_arguments(parser, user_data=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from saddlepoint.evaluate.smoothing import SmoothedClassifier
    from saddlepoint.viz.plots import line_plot

    if args.out is not None:
        check_outputs([("--out", args.out / "certify.json")], model_inputs(args))
    model, _, data = load_model_data(args, device=args.device)
    split = data.split(args.split).head(args.limit)
    smoothed = SmoothedClassifier(model, args.sigma, batch_size=args.batch_size, seed=args.seed)
    result = smoothed.certify(split.images, n0=args.n0, n=args.n, alpha=args.alpha)
    curve = result.curve(split.labels, args.radii)
    abstained = float((result.prediction < 0).float().mean())
    print(
        format_table(
            [(p["radius"], p["certified accuracy"]) for p in curve],
            ["L2 radius", "certified accuracy"],
        )
    )
    per_image = result.seconds / max(len(split.labels), 1)
    print(
        f"\nsigma {args.sigma:g}, n {args.n}, n0 {args.n0}, alpha {args.alpha:g}, "
        f"{len(split.labels)} {args.split} images: abstained on {abstained:.1%}; "
        f"{per_image:.2f} s per image"
    )
    if args.out is not None:
        record = {
            "sigma": args.sigma,
            "n": args.n,
            "n0": args.n0,
            "alpha": args.alpha,
            "seed": args.seed,
            "split": args.split,
            "seconds_per_image": per_image,
            "curve": curve,
            "images": [
                {
                    "label": int(label),
                    "prediction": int(result.prediction[i]),
                    "count": int(result.count[i]),
                    "p_lower": float(result.p_lower[i]),
                    "radius": float(result.radius[i]),
                }
                for i, label in enumerate(split.labels.tolist())
            ],
        }
        write_text(args.out / "certify.json", json.dumps(record, indent=1) + "\n")
        figure = line_plot(
            {
                f"sigma {args.sigma:g}": (
                    [p["radius"] for p in curve],
                    [p["certified accuracy"] for p in curve],
                )
            },
            args.out / "certified-accuracy.png",
            xlabel="L2 radius",
            ylabel="certified accuracy",
            title=f"Randomized smoothing, sigma {args.sigma:g}, n {args.n}",
        )
        print(f"records: {args.out / 'certify.json'}\nplot: {figure}")
    return 0
