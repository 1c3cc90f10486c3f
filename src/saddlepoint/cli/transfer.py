"""`saddlepoint transfer`: craft on surrogate checkpoints, evaluate on a target checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from saddlepoint.attacks import build_attack, transfer_attack
from saddlepoint.checkpoint import load_checkpoint
from saddlepoint.cli.attack import add_attack_arguments, attack_kwargs, check_pixel_radius
from saddlepoint.cli.common import (
    add_data_arguments,
    check_outputs,
    checkpoint_inputs,
    format_table,
    positive_int,
)
from saddlepoint.cli.model_options import (
    add_model_arguments,
    load_model_data,
    model_inputs,
    model_path,
    own_model_given,
)
from saddlepoint.fileio import write_text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "transfer",
        help="craft adversarial examples on surrogate models and evaluate them on a target",
        description="Black-box transfer: run an attack on one surrogate, or "
        "on several as an ensemble, and report the target's accuracy and loss on the crafted "
        "examples beside the surrogate's own. The data come from the target's metadata.",
    )
    parser.add_argument(
        "--surrogate",
        type=Path,
        action="append",
        required=True,
        help="surrogate checkpoint (repeatable)",
    )
    parser.add_argument(
        "--target", type=Path, help="target checkpoint (or give your own model with --model)"
    )
    parser.add_argument(
        "--combine",
        choices=["logits", "probabilities", "loss"],
        default="logits",
        help="how several surrogates are combined: mean logits, mean probabilities, or mean "
        "loss (FGSM/PGD/APGD ascend the members' mean loss; default: logits)",
    )
    add_attack_arguments(parser)
    parser.add_argument(
        "--split", choices=["train", "val", "test"], default="test", help="(default: test)"
    )
    parser.add_argument(
        "--limit", type=positive_int, default=None, help="use only the first N images"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics here")
    add_data_arguments(parser, user_data=True)
    add_model_arguments(parser, positional=False)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    check_pixel_radius(args.eps, args.norm)
    kwargs = attack_kwargs(args)
    if args.early_stop is None:
        kwargs.pop("early_stop", None)  # stopping on the surrogate would weaken the transfer
    attack = build_attack(args.attack, **kwargs)
    args.checkpoint = args.target  # the target is the model the shared options describe
    own_model_given(args)
    if args.json:
        inputs = model_inputs(args)
        for path in args.surrogate:
            inputs += checkpoint_inputs(path)
        check_outputs([("--json", args.json)], inputs)
    target, meta, data = load_model_data(args)
    target_data = meta.get("dataset", {}).get("name")
    surrogates = []
    for path in args.surrogate:
        model, surrogate_meta = load_checkpoint(path, trust_factory=args.trust_factory)
        surrogate_data = surrogate_meta.get("dataset", {}).get("name")
        if target_data is not None and surrogate_data != target_data:
            raise ValueError(
                f"Surrogate {path} was trained on {surrogate_data!r} but the target on "
                f"{target_data!r}; they must match."
            )
        surrogates.append((path, model, surrogate_meta))
    from saddlepoint.data.recorded import check_fits

    for path, _, surrogate_meta in surrogates:
        check_fits(surrogate_meta, data, f"{data.name} (for surrogate {path})")
    split = data.split(args.split).head(args.limit)
    result = transfer_attack(
        attack,
        [model for _, model, _ in surrogates],
        target,
        split.images,
        split.labels,
        combine=args.combine,
    )
    m = result.metrics()
    print(
        f"{args.attack} on {len(surrogates)} surrogate(s) -> target {model_path(args).name}: "
        f"{attack!r}"
    )
    print(
        format_table(
            [
                (
                    int(m["n"]),
                    m["target_clean_accuracy"],
                    m["target_accuracy"],
                    m["target_loss"],
                    m["surrogate_clean_accuracy"],
                    m["surrogate_accuracy"],
                    m["transfer_rate"],
                )
            ],
            [
                "n",
                "target clean",
                "target attacked",
                "target loss",
                "surrogate clean",
                "surrogate attacked",
                "transfer rate",
            ],
        )
    )
    if args.json:
        record = {
            "attack": args.attack,
            "config": attack.config(),
            "surrogates": [str(p) for p in args.surrogate],
            "target": str(args.target) if args.target else None,
            "target_model": args.model,
            "target_weights": str(args.weights) if args.weights else None,
            "metrics": m,
        }
        write_text(args.json, json.dumps(record, indent=2, default=str) + "\n")
    return 0
