"""`saddlepoint benchmark`: a robustness card for any model, in the spirit of RobustBench's
leaderboard entries: clean accuracy, robust accuracy under the strongest evaluation we have with
the per-attack breakdown, the gradient-masking audit's verdict, and what it ran on."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, cast

from saddlepoint.cli.attack import _fraction, check_pixel_radius, state_cost
from saddlepoint.cli.common import (
    CLIError,
    add_cluster_arguments,
    add_data_arguments,
    add_device_argument,
    add_shard_argument,
    add_strong_evaluation_arguments,
    against_record,
    check_outputs,
    cluster_options,
    format_table,
    positive_int,
    warn_clean_accuracy,
)
from saddlepoint.cli.model_options import (
    add_model_arguments,
    load_model_data,
    model_inputs,
    model_path,
    own_model_given,
)
from saddlepoint.experiments.cluster import evaluation_executor
from saddlepoint.fileio import content_digest
from saddlepoint.progress import note
from saddlepoint.validation import check_number


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="a robustness card for a checkpoint or your own model (JSON record + HTML report)",
        description="Measure a model the way a leaderboard entry does: clean accuracy, then the "
        "gradient-masking audit, which runs the strongest evaluation the project has (AutoAttack "
        "'standard' with restarts and APGD-DLR) beside PGD, FGSM and Square; the robust accuracy "
        "quoted is the per-image worst case of every attack at eps. Writes OUT/card.json (model, "
        "data, threat model, clean and robust accuracy, per-attack breakdown, audit verdict, "
        "software versions, time) and OUT/report.html. `saddlepoint report A/card.json "
        "B/card.json` compares cards side by side.",
    )
    add_model_arguments(parser)
    parser.add_argument("--norm", choices=["linf", "l2"], default="linf", help="(default: linf)")
    parser.add_argument(
        "--eps", type=_fraction, required=True, help="radius of the ball, e.g. 8/255 or 0.3"
    )
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=1000,
        help="test images (default: 1000, RobustBench's count for a quick entry)",
    )
    add_strong_evaluation_arguments(parser)
    parser.add_argument("--split", choices=["train", "val", "test"], default="test")
    add_device_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the attacks' draws")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the card (default: MODEL-benchmark/)"
    )
    smoothing = parser.add_argument_group(
        "randomized smoothing",
        "a model trained under Gaussian noise (train --defense noise --noise-kind gaussian) is "
        "the base of a smoothed classifier: the card certifies it at the training sigma",
    )
    smoothing.add_argument(
        "--sigma",
        type=float,
        default=None,
        help="certify the model smoothed with Gaussian noise of this std (default: the noise "
        "the checkpoint was trained under, if Gaussian; 0: no certificate)",
    )
    smoothing.add_argument(
        "--certify-limit",
        type=positive_int,
        default=100,
        help="images certified, the first of --limit (default: 100)",
    )
    smoothing.add_argument(
        "--certify-n",
        type=positive_int,
        default=100_000,
        help="estimation samples per image (default: 100000, Cohen et al.'s)",
    )
    smoothing.add_argument(
        "--certify-alpha", type=float, default=0.001, help="failure probability (default: 0.001)"
    )
    add_data_arguments(parser, user_data=True)
    add_cluster_arguments(parser, "each attack of the card")
    add_shard_argument(parser)
    parser.set_defaults(handler=run)


def _model_record(args: argparse.Namespace, meta: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {"spec": meta.get("model")}
    for _, path in model_inputs(args)[:1]:
        record["file"] = str(path)
        record["sha256"] = content_digest(path)
    if args.model is not None:
        record["reference"] = args.model
    return record


def _smoothing(args: argparse.Namespace, meta: dict[str, Any], images: int) -> dict | None:
    """The certificate's settings: --sigma, else the checkpoint's Gaussian training noise
    (said), else none; its cost said before it is spent."""
    from saddlepoint.experiments.card import smoothing_sigma

    check_number("benchmark", "--sigma", args.sigma if args.sigma is not None else 0.0, low=0)
    check_number("benchmark", "--certify-alpha", args.certify_alpha, low=0, high=1, low_open=True)
    sigma, source = args.sigma, "given by --sigma"
    if sigma is None:
        sigma, source = smoothing_sigma(meta), "the noise the model was trained under"
        if sigma is not None:
            note(
                "the model was trained under Gaussian noise of sigma %g: the card certifies its "
                "smoothed version at that sigma (--sigma 0: no certificate)",
                sigma,
            )
    if not sigma:
        return None
    count = min(args.certify_limit, images)
    note(
        "certifying %d images at n %d: %d forward passes of the model (n + n0 per image)",
        count,
        args.certify_n,
        count * (args.certify_n + 100),
    )
    return {
        "sigma": sigma,
        "sigma_from": source,
        "images": count,
        "n": args.certify_n,
        "alpha": args.certify_alpha,
    }


def run(args: argparse.Namespace) -> int:
    check_pixel_radius(args.eps, args.norm)
    from saddlepoint.evaluate import evaluate_split
    from saddlepoint.evaluate.robustness import strongest_attack
    from saddlepoint.experiments.card import CARD_FILE, benchmark, compare

    own_model_given(args)
    out = args.out or model_path(args).with_name(model_path(args).stem + "-benchmark")
    if (out / "run.sqlite").is_file() and not (out / CARD_FILE).is_file():
        raise CLIError(
            f"--out {out} holds another run (a study's or the demo's run.sqlite, no {CARD_FILE}); "
            "a card goes into a folder of its own: pick a new one."
        )
    check_outputs([("--out", out / CARD_FILE), ("--out", out / "report.html")], model_inputs(args))
    started = time.perf_counter()
    model, meta, data = load_model_data(args, device=args.device)
    split = data.split(args.split).head(args.limit)
    clean = evaluate_split(model, split, data.num_classes)  # warned about before the long part
    warn_clean_accuracy(
        float(cast(float, clean["accuracy"])), meta, against_record(args, len(split))
    )
    state_cost(  # the audit's strongest evaluation dominates; its other attacks add about 30%
        strongest_attack(args.norm, args.eps, steps=args.strong_steps, queries=args.strong_queries),
        model,
        split.images,
        split.labels,
        "the card (clean accuracy, the audit and the strongest evaluation)",
        factor=1.3,
    )
    source = str(args.data) if args.data is not None else data.name
    smoothing = _smoothing(args, meta, len(split))
    with evaluation_executor(**cluster_options(args), shards=args.shards) as runner:
        card = benchmark(
            model,
            split.images,
            split.labels,
            norm=args.norm,
            eps=args.eps,
            seed=args.seed,
            strong_steps=args.strong_steps,
            strong_queries=args.strong_queries,
            model_record=_model_record(args, meta),
            data_record={"source": source, "split": args.split},
            device=str(args.device),
            smoothing=smoothing,
        )
    card.ran = runner.summary() if runner else {"executor": "local"}
    card.seconds = round(time.perf_counter() - started, 1)
    html = card.save(out, title=f"Robustness card: {model_path(args).name}")
    print(format_table(compare([card]), ["", model_path(args).name]))
    print(f"card: {out / CARD_FILE}\nreport: {html}")
    return 0
