"""`saddlepoint train`: train a classifier and save a checkpoint."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from saddlepoint.checkpoint import save_checkpoint
from saddlepoint.cli.common import (
    add_data_arguments,
    dataset_options,
    format_table,
    parse_assignments,
)
from saddlepoint.data import DATASETS, load_dataset
from saddlepoint.models import MODELS, count_parameters
from saddlepoint.train import TrainConfig, train_classifier

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = TrainConfig()
    parser = subparsers.add_parser(
        "train",
        help="train a classifier and save a checkpoint",
        description="Train a model from the zoo on a dataset, evaluate it on the test split and "
        "save weights (safetensors) with metadata (architecture, data, training config, "
        "per-epoch history, test metrics).",
    )
    parser.add_argument(
        "--dataset", default="digits", help=f"dataset name: {', '.join(DATASETS)} (default: digits)"
    )
    parser.add_argument(
        "--model", default="cnn", help="model name, see `saddlepoint models` (default: cnn)"
    )
    parser.add_argument(
        "--model-arg",
        action="append",
        metavar="KEY=VALUE",
        help="override a model argument, e.g. dropout=0.3 or 'channels=[16,32]' (repeatable)",
    )
    parser.add_argument(
        "--epochs", type=int, default=defaults.epochs, help="epochs (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="(default: %(default)s)"
    )
    parser.add_argument(
        "--optimizer",
        choices=["adam", "sgd"],
        default=defaults.optimizer,
        help="(default: %(default)s)",
    )
    parser.add_argument(
        "--lr", type=float, default=defaults.lr, help="learning rate (default: %(default)s)"
    )
    parser.add_argument(
        "--momentum",
        type=float,
        default=defaults.momentum,
        help="SGD momentum (default: %(default)s)",
    )
    parser.add_argument(
        "--weight-decay", type=float, default=defaults.weight_decay, help="L2 penalty (default: 0)"
    )
    parser.add_argument(
        "--schedule",
        choices=["constant", "cosine", "onecycle"],
        default=defaults.schedule,
        help="learning-rate schedule per batch (default: %(default)s)",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        help="early stopping: stop after this many epochs without a lower validation loss and "
        "keep the best weights (default: off)",
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed of init and shuffling (default: 0)"
    )
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)"
    )
    parser.add_argument(
        "--no-normalize",
        action="store_true",
        help="do not put per-channel normalization (train-split mean/std) inside the model",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="checkpoint path (default: runs/DATASET-MODEL.safetensors)",
    )
    parser.add_argument("--plot", action="store_true", help="also save the training curves as PNG")
    add_data_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.model not in MODELS:
        from saddlepoint.validation import unknown_name_error

        raise unknown_name_error("model", args.model, MODELS)
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        patience=args.patience,
        schedule=args.schedule,
        seed=args.seed,
        device=args.device,
    )
    options = dataset_options(args, args.dataset)
    data = load_dataset(args.dataset, **options)
    result = train_classifier(
        data,
        args.model,
        config,
        model_args=parse_assignments(args.model_arg, "--model-arg"),
        normalize=not args.no_normalize,
        dataset_options=options,
        progress=not args.quiet,
    )
    out = args.out or Path("runs") / f"{data.name}-{args.model}.safetensors"
    save_checkpoint(out, result.model, result.metadata)
    if args.plot:
        result.history.plot(out.with_suffix(".png"))
    test = result.test_metrics
    print(
        format_table(
            [
                (
                    args.model,
                    f"{count_parameters(result.model):,}",
                    data.name,
                    len(result.history.epochs),
                    test["loss"],
                    test["accuracy"],
                    test["mean_confidence"],
                )
            ],
            ["model", "params", "dataset", "epochs", "test loss", "test acc", "mean conf"],
        )
    )
    print(f"checkpoint: {out}")
    return 0
