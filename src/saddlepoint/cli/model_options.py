"""The model a command works on: a saddlepoint checkpoint, or the user's own model given by
--model (a factory in their code plus --weights, or an exported .pt2 program), with the input
adapter options --input-normalization and --bounds."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saddlepoint.cli.common import (
    CLIError,
    checkpoint_dataset,
    checkpoint_inputs,
    parse_assignments,
)

if TYPE_CHECKING:
    from torch import nn

    from saddlepoint.data import ImageData

_OWN = ("weights", "model_arg", "input_normalization", "bounds")  # flags for --model only


def _numbers(text: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"{what} must be comma-separated numbers, got {text!r}")
    return values


def normalization(text: str) -> tuple[list[float], list[float]]:
    """argparse type: 'mean=0.485,0.456,0.406,std=0.229,0.224,0.225' (or one value each)."""
    match = re.fullmatch(r"\s*mean=([^=]+?),?\s*std=([^=]+)", text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"expected mean=M[,M,M],std=S[,S,S] such as mean=0.5,std=0.5; got {text!r}"
        )
    mean = _numbers(match.group(1), "mean")
    std = _numbers(match.group(2), "std")
    if len(mean) != len(std):
        raise argparse.ArgumentTypeError(
            f"one std per mean: got {len(mean)} means and {len(std)} stds in {text!r}"
        )
    if min(std) <= 0:
        raise argparse.ArgumentTypeError(f"every std must be positive; got {text!r}")
    return mean, std


def bounds(text: str) -> tuple[float, float]:
    """argparse type: 'LOW,HIGH' with LOW < HIGH, e.g. 0,255 or -1,1."""
    values = _numbers(text, "bounds")
    if len(values) != 2 or not values[0] < values[1]:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH with LOW < HIGH; got {text!r}")
    return values[0], values[1]


def add_model_arguments(
    parser: argparse.ArgumentParser, dataset: bool = True, positional: bool = True
) -> None:
    """CHECKPOINT (optional; without ``positional`` the command sets ``args.checkpoint`` from an
    option of its own) and the options for a user's own model instead of one; with ``dataset``,
    also --dataset (a built-in dataset for the model)."""
    if positional:
        parser.add_argument(
            "checkpoint",
            type=Path,
            nargs="?",
            help="a .safetensors checkpoint from `train` or `import` (or give --model instead)",
        )
    group = parser.add_argument_group(
        "your own model, instead of a checkpoint (needs --dataset or --data; "
        "`saddlepoint import` makes a checkpoint of it)"
    )
    group.add_argument(
        "--model",
        metavar="REF",
        help="package.module:function or path/file.py:function (called with --model-arg "
        "values; importing it runs that code), or an exported program FILE.pt2 (torch.export, "
        "with a dynamic batch dimension)",
    )
    group.add_argument(
        "--weights",
        type=Path,
        metavar="FILE",
        help="weights for --model: .safetensors, or a state dict that torch.load reads with "
        "weights_only=True (anything needing full unpickling is refused); keys must match exactly",
    )
    group.add_argument(
        "--random-weights",
        action="store_true",
        help="run --model as its factory builds it, without --weights (a randomly initialised "
        "network: useful only for testing a pipeline)",
    )
    group.add_argument(
        "--model-arg",
        action="append",
        metavar="KEY=VALUE",
        help="keyword argument for the --model function (repeatable; values are YAML)",
    )
    group.add_argument(
        "--input-normalization",
        type=normalization,
        metavar="mean=M,...,std=S,...",
        help="the model expects (x - mean) / std per channel: attacks still work on [0, 1] "
        "pixels and eps stays in those units",
    )
    group.add_argument(
        "--bounds",
        type=bounds,
        metavar="LOW,HIGH",
        help="the model's inputs live in [LOW, HIGH] (e.g. 0,255): [0, 1] pixels are mapped "
        "there before the model (and before --input-normalization); eps stays in [0, 1] units. "
        "A negative LOW needs '=': --bounds=-1,1",
    )
    add_trust_argument(parser)
    if dataset:
        parser.add_argument(
            "--dataset",
            default=None,
            help="a built-in dataset (a checkpoint defaults to the one it records)",
        )


def add_trust_argument(parser: argparse.ArgumentParser) -> None:
    """--trust-factory: the modules whose factories an imported checkpoint may call."""
    parser.add_argument(
        "--trust-factory",
        action="append",
        default=[],
        metavar="MODULE",
        help="a checkpoint that `import` made from a factory records the factory's name; it is "
        "loaded only if you trust that code by naming its module here (package.module or "
        "path/file.py, as given to --model; repeatable). The file alone never makes saddlepoint "
        "import anything",
    )


def own_model_given(args: argparse.Namespace) -> bool:
    """Whether the command line names a model of the user's (--model) instead of a checkpoint."""
    if args.model is None:
        given = [f"--{name.replace('_', '-')}" for name in _OWN if getattr(args, name) is not None]
        given += ["--random-weights"] if getattr(args, "random_weights", False) else []
        if given:
            raise CLIError(f"{', '.join(given)} go with --model; a checkpoint carries its own.")
        if args.checkpoint is None:
            raise CLIError("Give a checkpoint, or your own model with --model (see --help).")
        return False
    if args.checkpoint is not None:
        raise CLIError("Give a CHECKPOINT or --model, not both.")
    return True


def load_model_data(
    args: argparse.Namespace, device: str = "cpu"
) -> tuple[nn.Module, dict[str, Any], ImageData]:
    """The model (in eval mode, on ``device``), its metadata and its data: a checkpoint and the
    dataset it records (or --dataset / --data), or --model and --dataset / --data."""
    from saddlepoint.checkpoint import load_checkpoint
    from saddlepoint.seeding import resolve_device

    name = getattr(args, "dataset", None)
    if not own_model_given(args):
        model, meta = load_checkpoint(
            args.checkpoint, device=device, trust_factory=args.trust_factory
        )
        return model, meta, checkpoint_dataset(args, meta, name)
    target = resolve_device(device)
    if name is None and getattr(args, "data", None) is None:
        raise CLIError("--model needs the data it takes: --dataset NAME or --data PATH.")
    data = checkpoint_dataset(args, {}, name)
    own = build_own_model(args, data.shape)
    described: dict[str, Any] = {"model": own.spec}
    if name is not None:
        described["dataset"] = {"name": data.name}
    from saddlepoint.data.recorded import check_fits

    check_fits(described, data, str(args.data or name))
    return own.to(target), described, data


def build_own_model(args: argparse.Namespace, in_shape: tuple[int, ...]) -> nn.Module:
    """--model with its weights, arguments and input adapter, for images of ``in_shape``."""
    from saddlepoint.models.external import external_model

    program = str(args.model).endswith(".pt2")
    if not program and args.weights is None and not args.random_weights:
        raise CLIError(
            f"--model {args.model} without --weights would run a randomly initialised network "
            "(about chance accuracy, and any robustness number meaningless). Give its weights "
            "with --weights FILE, or --random-weights if that is what you mean."
        )
    if args.random_weights and (program or args.weights is not None):
        raise CLIError("--random-weights goes with a --model factory and no --weights.")

    mean, std = args.input_normalization or (None, None)
    return external_model(
        args.model,
        in_shape=in_shape,
        weights=args.weights,
        kwargs=parse_assignments(args.model_arg, "--model-arg"),
        bounds=args.bounds,
        mean=mean,
        std=std,
    )


def model_inputs(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """The files the model comes from, which no output may overwrite."""
    if args.checkpoint is not None:
        return checkpoint_inputs(args.checkpoint)
    files = [("--weights", args.weights)] if args.weights is not None else []
    if args.model is not None and str(args.model).endswith(".pt2"):
        files.append(("--model", Path(args.model)))
    return files


def model_path(args: argparse.Namespace) -> Path:
    """A path that names the model, for default output names: the checkpoint, the weights or
    the .pt2 file, or the factory's name in the current folder."""
    if args.checkpoint is not None:
        return Path(args.checkpoint)
    if args.weights is not None:
        return Path(args.weights)
    reference = str(args.model)
    if reference.endswith(".pt2"):
        return Path(reference)
    return Path(re.sub(r"[^A-Za-z0-9_.-]+", "-", reference.rpartition(":")[2]) or "model")
