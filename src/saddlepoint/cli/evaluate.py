"""`saddlepoint evaluate CHECKPOINT`: clean metrics, per-class accuracy, confusion matrix."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import cast

from saddlepoint.cli.common import (
    add_data_arguments,
    add_device_argument,
    check_outputs,
    format_table,
    positive_int,
    warn_clean_accuracy,
)
from saddlepoint.cli.model_options import add_model_arguments, load_model_data, model_inputs
from saddlepoint.evaluate import evaluate_split
from saddlepoint.fileio import write_text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="clean loss, accuracy, confidence, per-class accuracy and confusion matrix",
        description="Evaluate a checkpoint on the dataset it was trained on (recorded in its "
        "metadata), on --dataset or on your own --data; or evaluate your own model (--model).",
    )
    add_model_arguments(parser, dataset=False)
    parser.add_argument(
        "--split", choices=["train", "val", "test"], default="test", help="(default: test)"
    )
    parser.add_argument("--dataset", default=None, help="evaluate on this dataset instead")
    add_device_argument(parser)
    parser.add_argument(
        "--limit", type=positive_int, default=None, help="evaluate only the first N images"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the metrics as JSON here"
    )
    add_data_arguments(parser, user_data=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.json:
        check_outputs([("--json", args.json)], model_inputs(args))
    model, meta, data = load_model_data(args, device=args.device)
    name = data.name
    report = evaluate_split(model, data.split(args.split).head(args.limit), data.num_classes)
    print(
        format_table(
            [
                (
                    name,
                    args.split,
                    report["count"],
                    report["loss"],
                    report["accuracy"],
                    report["mean_confidence"],
                )
            ],
            ["dataset", "split", "images", "loss", "accuracy", "mean conf"],
        )
    )
    recorded_data = args.data is None and args.split == "test"
    warn_clean_accuracy(float(cast(float, report["accuracy"])), meta, recorded_data)
    print()
    classes = data.class_names
    print(
        format_table(
            [(c, a) for c, a in zip(classes, cast(list[float], report["per_class_accuracy"]))],
            ["class", "accuracy"],
        )
    )
    print("\nconfusion matrix (rows: true class, columns: predicted)")
    matrix = cast(list[list[int]], report["confusion_matrix"])
    print(
        format_table(
            [(c, *row) for c, row in zip(classes, matrix)],
            ["", *[str(i) for i in range(len(matrix[0]) if matrix else 0)]],  # every prediction
        )
    )
    if args.json:
        write_text(
            args.json, json.dumps({"dataset": name, "split": args.split, **report}, indent=2)
        )
    return 0
