"""`saddlepoint data list|info NAME`: what datasets exist and what one holds."""

from __future__ import annotations

import argparse

from saddlepoint.cli.common import add_data_arguments, dataset_options, format_table
from saddlepoint.data import DATASETS, load_dataset


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="list datasets or describe one")
    commands = parser.add_subparsers(dest="data_command", required=True, metavar="{list,info}")
    listing = commands.add_parser("list", help="list the registered datasets")
    listing.set_defaults(handler=run_list)
    info = commands.add_parser(
        "info", help="load a dataset and show its splits, shape, classes and pixel statistics"
    )
    info.add_argument("name", help=f"dataset name ({', '.join(DATASETS)})")
    add_data_arguments(info)
    info.set_defaults(handler=run_info)


def run_list(args: argparse.Namespace) -> int:
    rows = [(name, entry.description) for name, entry in DATASETS.items()]
    print(format_table(rows, ["name", "description"]))
    return 0


def run_info(args: argparse.Namespace) -> int:
    data = load_dataset(args.name, **dataset_options(args, args.name))
    summary = data.describe()
    print(f"dataset: {summary['name']}\nsource:  {summary['source']}")
    c, h, w = data.shape
    print(f"images:  {c}x{h}x{w}, float32 in [0, 1]; {data.num_classes} classes")
    rows = []
    for split_name in ("train", "val", "test"):
        split = data.split(split_name)
        counts = split.labels.bincount(minlength=data.num_classes).tolist()
        rows.append(
            (split_name, len(split), float(split.images.mean()), float(split.images.std()), counts)
        )
    print(format_table(rows, ["split", "size", "pixel mean", "pixel std", "per-class counts"]))
    print("classes: " + ", ".join(data.class_names))
    return 0
