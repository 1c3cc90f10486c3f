"""`saddlepoint audit CHECKPOINT`: the gradient-masking checklist, printed and saved."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from saddlepoint.cli.attack import _fraction, check_pixel_radius, load_checkpoint_data
from saddlepoint.cli.common import (
    add_cluster_arguments,
    add_data_arguments,
    add_device_argument,
    add_shard_argument,
    add_strong_evaluation_arguments,
    check_outputs,
    cluster_options,
    format_table,
    positive_int,
)
from saddlepoint.cli.model_options import (
    add_model_arguments,
    model_inputs,
    model_path,
    own_model_given,
)
from saddlepoint.defenses.quantize import bpda
from saddlepoint.evaluate.audit import audit
from saddlepoint.experiments.cluster import evaluation_executor
from saddlepoint.fileio import write_text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="check a model's robustness evaluation for gradient masking",
        description="Run nine diagnostics (after Carlini et al. 2019, Athalye et al. 2018 and "
        "AutoAttack's sanity checks): robust accuracy non-increasing in eps, an unbounded attack "
        "reaching ~0%%, iterative beating single-step, convergence under more steps and restarts, "
        "black-box not beating white-box, healthy input gradients, cross-entropy gradients that do "
        "not mislead (in the strongest evaluation, AutoAttack with restarts plus APGD-DLR: APGD-CE "
        "x5, APGD-DLR x5, APGD-T, FAB-T, Square, the attacks after APGD-CE finding no more), a "
        "deterministic model, and "
        "logits rather than probabilities as outputs. Prints a pass/fail checklist with the numbers, then one robust "
        "accuracy: the per-sample worst case of every attack run at eps, with the attack that "
        "reached it, and notes (information, not failures) such as how much PGD alone overstates it. "
        "Saves it all as JSON. --bpda attacks through quantization layers with BPDA "
        "gradients.",
    )
    add_model_arguments(parser)
    parser.add_argument("--norm", choices=["linf", "l2"], default="linf", help="(default: linf)")
    parser.add_argument("--eps", type=_fraction, default=0.3, help="radius (default: 0.3)")
    parser.add_argument(
        "--steps", type=int, default=40, help="PGD steps of the main attack (default: 40)"
    )
    parser.add_argument("--queries", type=int, default=1000, help="Square queries (default: 1000)")
    add_strong_evaluation_arguments(parser)
    parser.add_argument(
        "--limit", type=positive_int, default=500, help="test images used (default: 500)"
    )
    parser.add_argument(
        "--bpda",
        choices=["identity", "smooth"],
        default=None,
        help="attack through quantization by BPDA",
    )
    parser.add_argument("--split", choices=["train", "val", "test"], default="test")
    add_device_argument(parser)
    parser.add_argument(
        "--json", type=Path, default=None, help="where to save (default: CHECKPOINT-audit.json)"
    )
    add_data_arguments(parser, user_data=True)
    add_cluster_arguments(parser, "each attack of the audit")
    add_shard_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    check_pixel_radius(args.eps, args.norm)
    own_model_given(args)  # a clear error before any default path is derived
    named = model_path(args)
    path = args.json or named.with_name(named.stem + "-audit.json")
    check_outputs([("--json", path)], model_inputs(args))
    model, _, data = load_checkpoint_data(args)
    split = data.split(args.split).head(args.limit)
    context = bpda(model, args.bpda) if args.bpda else contextlib.nullcontext()
    with context, evaluation_executor(**cluster_options(args), shards=args.shards) as runner:
        report = audit(
            model,
            split.images,
            split.labels,
            norm=args.norm,
            eps=args.eps,
            steps=args.steps,
            queries=args.queries,
            strong_steps=args.strong_steps,
            strong_queries=args.strong_queries,
        )
    rows = [
        (
            "PASS" if c.passed else "FAIL",
            c.name,
            ", ".join(f"{k} {v:.4f}" for k, v in c.numbers.items()),
        )
        for c in report.checks
    ]
    mode = f" through BPDA ({args.bpda})" if args.bpda else ""
    print(f"audit of {named.name}{mode}: {args.norm} eps={args.eps:.4g}, {report.images} images")
    print(format_table(rows, ["", "check", "numbers"]))
    print(
        f"robust accuracy: {report.robust_accuracy:.4f} ({report.robust_attack}; the per-sample "
        "worst case of every attack the audit ran at eps)"
    )
    costs = [
        (name, report.accuracies.get(name, float("nan")), f"{fwd:.1f}", f"{bwd:.1f}")
        for name, (fwd, bwd) in report.passes.items()
    ]
    print(format_table(costs, ["attack", "robust acc", "fwd/img", "bwd/img"]))
    failed = [c for c in report.checks if not c.passed]
    verdict = (
        "no sign of gradient masking"
        if report.passed
        else "gradient masking suspected, failed: "
        + "; ".join(f"{c.name} ({c.meaning})" for c in failed)
        + ". Do not trust single gradient-attack numbers; quote the robust accuracy above"
    )
    print(f"verdict: {verdict}")
    write_text(
        path,
        json.dumps(
            {
                "checkpoint": str(args.checkpoint) if args.checkpoint else None,
                "model": args.model,
                "weights": str(args.weights) if args.weights else None,
                "bpda": args.bpda,
                **report.to_dict(),
                "ran": runner.summary() if runner else {"executor": "local"},
            },
            indent=2,
        )
        + "\n",
    )
    print(f"saved: {path}")
    return 0
