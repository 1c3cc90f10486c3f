"""`saddlepoint evaluate CHECKPOINT`: clean metrics, per-class accuracy, confusion matrix."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import cast

from saddlepoint.checkpoint import load_checkpoint
from saddlepoint.cli.common import (
    add_data_arguments,
    check_outputs,
    checkpoint_dataset,
    checkpoint_inputs,
    format_table,
)
from saddlepoint.evaluate import evaluate_split
from saddlepoint.fileio import write_text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="clean loss, accuracy, confidence, per-class accuracy and confusion matrix",
        description="Evaluate a checkpoint on the dataset it was trained on (recorded in its "
        "metadata) or on --dataset.",
    )
    parser.add_argument("checkpoint", type=Path, help="a .safetensors checkpoint from `train`")
    parser.add_argument(
        "--split", choices=["train", "val", "test"], default="test", help="(default: test)"
    )
    parser.add_argument("--dataset", default=None, help="evaluate on this dataset instead")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the metrics as JSON here"
    )
    add_data_arguments(parser, user_data=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.json:
        check_outputs([("--json", args.json)], checkpoint_inputs(args.checkpoint))
    model, meta = load_checkpoint(args.checkpoint, device=args.device)
    data = checkpoint_dataset(args, meta, args.dataset)
    name = data.name
    report = evaluate_split(model, data.split(args.split), data.num_classes)
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
            ["", *[str(i) for i in range(len(classes))]],
        )
    )
    if args.json:
        write_text(
            args.json, json.dumps({"dataset": name, "split": args.split, **report}, indent=2)
        )
    return 0
