"""`saddlepoint import`: turn your own model into a saddlepoint checkpoint."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, cast

from saddlepoint.cli.common import (
    CLIError,
    add_data_arguments,
    check_outputs,
    dataset_options,
    format_table,
    positive_int,
    warn_clean_accuracy,
)
from saddlepoint.cli.model_options import add_model_arguments, load_model_data, model_inputs
from saddlepoint.fileio import content_digest


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import",
        help="make a saddlepoint checkpoint of your own model (factory + weights, or .pt2)",
        description="Build your model from --model (a function in your code, called with "
        "--model-arg values, then --weights loaded with strict key matching; or an exported "
        ".pt2 program), put it behind its input adapter (--input-normalization, --bounds), check "
        "it on the data it takes (--dataset or --data), print its clean accuracy there, and write "
        "a checkpoint that every other command takes by its path. The checkpoint holds the "
        "weights (or the program), the factory reference and arguments, the adapter and the "
        "dataset; loading it imports the factory's module again (your code).",
    )
    add_model_arguments(parser, positional=False)
    parser.add_argument(
        "--out", type=Path, required=True, help="the checkpoint to write (.safetensors)"
    )
    parser.add_argument(
        "--split", choices=["train", "val", "test"], default="test", help="(default: test)"
    )
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=1000,
        help="images for the clean-accuracy check (default: 1000)",
    )
    add_data_arguments(parser, user_data=True)
    parser.set_defaults(handler=run, checkpoint=None)


def run(args: argparse.Namespace) -> int:
    from saddlepoint.checkpoint import save_checkpoint
    from saddlepoint.evaluate import evaluate_split

    if args.model is None:
        raise CLIError("import needs --model (see saddlepoint import --help).")
    if args.out.suffix != ".safetensors":
        raise CLIError(f"--out {args.out} must end in .safetensors.")
    json_twin = args.out.with_suffix(".json")
    check_outputs([("--out", args.out), ("--out's metadata twin", json_twin)], model_inputs(args))
    model, meta, data = load_model_data(args)
    split = data.split(args.split).head(args.limit)
    report = evaluate_split(model, split, data.num_classes)
    count, accuracy = int(cast(int, report["count"])), float(cast(float, report["accuracy"]))
    source: dict[str, Any] = {"model": args.model, "imported_at": time.strftime("%Y-%m-%d")}
    if args.weights is not None:
        source["weights"] = str(args.weights)
        source["weights_sha256"] = content_digest(args.weights)
    metadata: dict[str, Any] = {"imported": source}
    if args.data is not None:
        source["data"] = str(args.data)
    else:
        metadata["dataset"] = {
            "name": data.name,
            "options": dataset_options(args, data.name),
        }
    save_checkpoint(args.out, model, metadata)
    spec = meta["model"]
    print(
        format_table(
            [
                (
                    spec["name"],
                    "x".join(str(s) for s in spec["in_shape"]),
                    spec["num_classes"],
                    str(args.data or data.name),
                    count,
                    accuracy,
                )
            ],
            ["kind", "input", "classes", "data", "images", "clean accuracy"],
        )
    )
    warn_clean_accuracy(accuracy, meta)
    print(f"checkpoint: {args.out}")
    return 0
