"""`saddlepoint models`: the model zoo with parameter counts."""

from __future__ import annotations

import argparse

from saddlepoint.cli.common import format_table, positive_int
from saddlepoint.models import MODELS, build_model, count_parameters


def _shape(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.lower().replace("x", ",").split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected C,H,W such as 1,28,28 or 3x32x32; got {text!r}")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the model zoo with parameter counts",
        description="List registered models with their trainable parameter counts for MNIST-sized "
        "(1x28x28) and CIFAR-sized (3x32x32) inputs, or for --in-shape.",
    )
    parser.add_argument("--in-shape", type=_shape, help="count parameters for this C,H,W instead")
    parser.add_argument(
        "--num-classes", type=positive_int, default=10, help="number of classes (default: 10)"
    )
    parser.set_defaults(handler=run)


def _count(name: str, shape: tuple[int, ...], num_classes: int) -> str:
    try:
        return f"{count_parameters(build_model(name, in_shape=shape, num_classes=num_classes)):,}"
    except ValueError:
        return "n/a"


def run(args: argparse.Namespace) -> int:
    shapes = [args.in_shape] if args.in_shape else [(1, 28, 28), (3, 32, 32)]
    headers = [
        "name",
        *[f"params {'x'.join(map(str, s))}" for s in shapes],
        "description",
        "source",
    ]
    rows = [
        (
            name,
            *[_count(name, s, args.num_classes) for s in shapes],
            entry.description,
            entry.source,
        )
        for name, entry in MODELS.items()
    ]
    print(format_table(rows, headers))
    return 0
