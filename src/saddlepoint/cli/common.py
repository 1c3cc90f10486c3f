"""Shared CLI pieces: tables, key=value options, YAML configs and dataset arguments."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from saddlepoint.fileio import read_yaml

if TYPE_CHECKING:
    from saddlepoint.data import ImageData


class CLIError(ValueError):
    """A user mistake on the command line; printed as one line."""


def format_table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain-text table with columns padded to their widest cell."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4f}"
        return str(value)

    body = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    rule = "  ".join("-" * w for w in widths)
    rows_text = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in body]
    return "\n".join([line, rule, *rows_text])


def parse_assignments(items: Sequence[str] | None, option: str) -> dict[str, Any]:
    """['dropout=0.3', 'channels=[16, 32]'] -> {'dropout': 0.3, 'channels': [16, 32]} (YAML values)."""
    result: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CLIError(
                f"{option} takes KEY=VALUE (for example dropout=0.3). Got {item!r} instead."
            )
        try:
            result[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise CLIError(f"{option} {item!r}: the value is not valid YAML ({error}).") from error
    return result


def config_to_argv(
    parser: argparse.ArgumentParser, path: str, given: Sequence[str] = ()
) -> list[str]:
    """Turn a YAML config file into command-line tokens for ``parser``, to go after ``given``
    (the command line): see :func:`options_to_argv`."""
    file = Path(path)
    if file.is_dir():
        raise CLIError(f"The '--config' file {str(path)!r} is a folder; give a YAML file.")
    if not file.is_file():
        raise CLIError(f"The '--config' file {path!r} does not exist.")
    try:
        data = read_yaml(file) or {}
    except ValueError as error:
        raise CLIError(f"The '--config' file: {error}") from None
    if not isinstance(data, dict):
        raise CLIError(f"The '--config' file {path!r} must hold a mapping of option: value.")
    return options_to_argv(parser, data, f"config {path!r}", given)


def options_to_argv(
    parser: argparse.ArgumentParser,
    data: dict[str, Any],
    source: str,
    given: Sequence[str] = (),
) -> list[str]:
    """Turn a mapping of option: value (from ``source``, a config file or a preset) into
    command-line tokens for ``parser``, to go after ``given``.

    Keys are option names (dashes or underscores); every value goes through the same parsing
    and checks as the command line. Options in ``given`` win: their keys are skipped
    (repeatable options get both). Booleans work for on/off switches, lists for options that
    take several values.
    """
    actions = {
        action.dest: action
        for action in parser._actions  # argparse offers no public accessor
        if action.option_strings and action.dest not in ("help", "config")
    }
    tokens: list[str] = []
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in actions:
            from saddlepoint.validation import closest

            hint = closest(dest, actions)
            suggestion = f" Did you mean {hint!r}?" if hint else ""
            raise CLIError(
                f"Unknown key {key!r} in {source}.{suggestion} "
                f"Allowed keys: {', '.join(sorted(actions))}."
            )
        action = actions[dest]
        flag = action.option_strings[-1]
        on_command_line = any(
            token == option or token.startswith(option + "=")
            for token in given
            for option in action.option_strings
        )
        if on_command_line and not isinstance(action, argparse._AppendAction):
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            if not isinstance(value, bool):
                raise CLIError(f"Key {key!r} in {source} must be true or false. Got {value!r}.")
            tokens.append(action.option_strings[0 if value else 1])
        elif isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
            if not isinstance(value, bool):
                raise CLIError(f"Key {key!r} in {source} must be true or false. Got {value!r}.")
            if value == isinstance(action, argparse._StoreTrueAction):
                tokens.append(flag)
        elif isinstance(action, argparse._AppendAction):
            items = value.items() if isinstance(value, dict) else value
            if isinstance(value, dict):
                items = [
                    f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}" for k, v in items
                ]
            elif not isinstance(value, list):
                items = [value]
            for item in items:
                tokens += [flag, str(item)]
        elif isinstance(value, list):
            if action.nargs in (None, "?"):
                raise CLIError(
                    f"Key {key!r} in {source} takes one value. Got the list {value!r}; to try "
                    "several values, write a sweep file (saddlepoint sweep run --help)."
                )
            tokens += [flag, *[str(v) for v in value]]
        else:
            tokens += [flag, str(value)]
    return tokens


ACCURACY_FLOOR = 0.5  # clean accuracy below which a model is probably set up wrong
ACCURACY_DROP = 0.1  # or this far below the accuracy its checkpoint recorded


def clean_accuracy_warning(
    accuracy: float, meta: dict[str, Any], same_data: bool = True
) -> str | None:
    """A warning when a model's clean accuracy suggests a wrong setup, else None: below
    ``ACCURACY_FLOOR``, or ``ACCURACY_DROP`` below the test accuracy its checkpoint recorded
    (compared only on the data it recorded). A wrong input normalization or range is the usual
    cause; attacks and robust accuracy assume the model sees the data as it was trained."""
    recorded = ((meta.get("metrics") or {}).get("test") or {}).get("accuracy")
    below = []
    if accuracy < ACCURACY_FLOOR:
        below.append(f"below {ACCURACY_FLOOR:.0%}")
    if same_data and isinstance(recorded, float) and accuracy < recorded - ACCURACY_DROP:
        below.append(f"{recorded - accuracy:.1%} below the {recorded:.2%} its checkpoint recorded")
    if not below:
        return None
    return (
        f"warning: clean accuracy {accuracy:.2%} is {' and '.join(below)}; the usual causes are "
        "a wrong input normalization or range (--input-normalization, --bounds) or the wrong "
        "weights. Robustness numbers of a model that does not see its data as it was trained "
        "mean little."
    )


def warn_clean_accuracy(accuracy: float, meta: dict[str, Any], same_data: bool = True) -> None:
    """Print :func:`clean_accuracy_warning`'s warning to stderr, if there is one."""
    warning = clean_accuracy_warning(accuracy, meta, same_data)
    if warning:
        print(warning, file=sys.stderr)


def against_record(args: argparse.Namespace, images: int) -> bool:
    """Whether a clean accuracy is comparable with the test accuracy a checkpoint recorded: the
    recorded data's test split, and enough images (a few, from --limit, vary more)."""
    return args.data is None and args.split == "test" and images >= 500


def add_device_argument(parser: argparse.ArgumentParser, default: str = "cpu") -> None:
    """--device, with the same help everywhere: what torch accepts, and what 'auto' picks."""
    parser.add_argument(
        "--device",
        default=default,
        help=f"cpu, cuda, cuda:N or auto (cuda when torch sees a GPU, else cpu; default: {default})",
    )


def add_data_arguments(parser: argparse.ArgumentParser, user_data: bool = False) -> None:
    """--dataset and the options every dataset loader understands; with ``user_data``, also
    --data (the user's own image folder or .npz file in place of the recorded dataset)."""
    if user_data:
        parser.add_argument(
            "--data",
            type=Path,
            default=None,
            metavar="PATH",
            help="your own images instead of the checkpoint's dataset: a folder with one "
            "sub-folder of PNG/JPEG images per class (class names from the folder names, sorted), "
            "a folder with images.npy and labels.npy (memory-mapped), or an .npz file with "
            "'images' (N,H,W / N,C,H,W / N,H,W,C; uint8 or floats in [0, 1]) and 'labels'; every "
            "split is the whole of it; with --limit only those images are read (a folder's classes "
            "in turn); --data-option size=N resizes",
        )
    parser.add_argument(
        "--data-root",
        default=None,
        help="folder holding datasets (default: $SADDLEPOINT_DATA or ~/.cache/saddlepoint/data)",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="download a missing dataset (SHA-256 checked; needs network access)",
    )
    parser.add_argument(
        "--data-seed", type=int, default=0, help="seed of the train/validation split (default: 0)"
    )
    parser.add_argument(
        "--data-option",
        action="append",
        metavar="KEY=VALUE",
        help="extra dataset option, e.g. size=16 to upsample digits (repeatable)",
    )


def dataset_options(
    args: argparse.Namespace, name: str, recorded: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The keyword options for ``load_dataset`` from parsed arguments, on top of the options
    ``recorded`` in a checkpoint (whose seed stands unless --data-seed is given)."""
    from saddlepoint.data import DATASETS

    accepted = DATASETS[name].options() if name in DATASETS else {}
    options: dict[str, Any] = dict(recorded or {})
    if args.data_seed != 0 or "seed" not in options:
        options["seed"] = args.data_seed
    if args.data_root is not None and "root" in accepted:
        options["root"] = os.fspath(args.data_root)
    if args.download and "download" in accepted:
        options["download"] = True
    options.update(parse_assignments(args.data_option, "--data-option"))
    return options


def checkpoint_dataset(
    args: argparse.Namespace, meta: dict[str, Any], name: str | None = None
) -> ImageData:
    """The dataset a checkpoint was trained on (or ``name``), with its recorded options and
    the command line's overrides; or the user's own files given by --data."""
    from saddlepoint.data import dataset_for  # imported on use: keeps --help fast

    if getattr(args, "data", None) is not None:
        if name is not None:
            raise CLIError("Give --dataset or --data, not both.")
        extra = parse_assignments(args.data_option, "--data-option")
        unknown = sorted(set(extra) - {"size"})
        if unknown:
            raise CLIError(
                f"--data-option {unknown[0]!r} does not apply to --data files; they take size=N."
            )
        # Every split of --data is the whole set and commands take its first --limit images, so
        # only those are read (class by class in turn: they cover every class).
        limit = getattr(args, "limit", None)
        return dataset_for(meta, files=args.data, size=extra.get("size"), limit=limit)
    recorded = meta.get("dataset", {})
    name = name or recorded.get("name")
    if name is None:
        raise ValueError("The checkpoint records no dataset; pass --dataset or --data.")
    same = name == recorded.get("name")
    options = dataset_options(args, name, recorded.get("options") if same else None)
    return dataset_for(meta, name, options=options)


_PROBE_BYTES = 64 << 10  # what check_outputs writes to see that a folder has room


def check_outputs(
    outputs: Sequence[tuple[str, Path]], inputs: Sequence[tuple[str, Path]] = ()
) -> None:
    """Refuse, before any work starts, outputs that would overwrite an input or each other, or
    that cannot be written: a folder given as a file, a parent that is a file, a folder that
    refuses a new file. Each error names the option and the path."""
    seen: dict[Path, str] = {}
    for name, path in inputs:
        seen[path.resolve()] = f"the input {name}"
    for name, path in outputs:
        resolved = path.resolve()
        if resolved in seen:
            raise ValueError(
                f"{name} {path} would overwrite {seen[resolved]}; choose another path."
            )
        seen[resolved] = name
        if path.is_dir():
            raise ValueError(f"{name} {path} is a folder; give a file path inside it.")
        ancestor = resolved.parent
        while not ancestor.exists():
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise ValueError(f"{name} {path}: {ancestor} is a file, so the folder cannot exist.")
        try:  # a real probe: permission bits do not bind root, a read-only mount does
            handle, probe = tempfile.mkstemp(prefix=".write-probe-", dir=ancestor)
        except OSError as error:
            raise ValueError(
                f"{name} {path} cannot be written: {ancestor} refuses new files ({error.strerror})."
            ) from None
        try:  # and some room: a full disk fails here, not after the work
            with os.fdopen(os.dup(handle), "wb") as stream:  # writes it all, or raises
                stream.write(bytes(_PROBE_BYTES))
                stream.flush()
                os.fsync(stream.fileno())
        except OSError as error:
            raise ValueError(
                f"{name} {path} cannot be written: {ancestor} has no room ({error.strerror})."
            ) from None
        finally:
            os.close(handle)
            os.unlink(probe)
        if path.exists() and not os.access(path, os.W_OK):
            raise ValueError(f"{name} {path} exists and is not writable.")


def checkpoint_inputs(checkpoint: Path) -> list[tuple[str, Path]]:
    """A checkpoint and its JSON metadata twin, as inputs no output may overwrite."""
    return [
        ("CHECKPOINT", checkpoint),
        ("the checkpoint's metadata twin", checkpoint.with_suffix(".json")),
    ]


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (argparse names the option on error)."""
    return _whole(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: a whole number of at least 0."""
    return _whole(text, 0)


def _whole(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least {low}, got {text!r}")
    return value


def add_strong_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """--strong-steps and --strong-queries: the budget of the strongest evaluation."""
    parser.add_argument(
        "--strong-steps",
        type=positive_int,
        default=100,
        help="iterations of each APGD run of the strongest evaluation (default: 100, the "
        "reference AutoAttack's)",
    )
    parser.add_argument(
        "--strong-queries",
        type=positive_int,
        default=5000,
        help="Square's budget inside the strongest evaluation (default: 5000, the reference's); "
        "a lower budget can only count more images robust",
    )


def add_cluster_arguments(
    parser: argparse.ArgumentParser,
    what: str,
    executors: Sequence[str] = ("local", "ray"),
    threads: bool = True,
) -> None:
    """--executor, --address and --workers, the same for every command that can use Ray."""
    group = parser.add_argument_group("cluster (Ray: pip install 'saddlepoint[ray]')")
    group.add_argument(
        "--executor",
        choices=list(executors),
        default="local",
        help=f"where {what} runs: in this process (local)"
        + (", a pool of processes on this machine" if "processes" in executors else "")
        + ", or as Ray tasks on a local Ray or the cluster at --address (ray); "
        + ("the same results either way at the same --threads" if threads else "the same rows"),
    )
    group.add_argument(
        "--address",
        default=None,
        help="Ray cluster address, e.g. auto or ray://HEAD:10001 (default: start a local Ray "
        "with --workers CPUs)",
    )
    group.add_argument(
        "--workers",
        type=positive_int,
        default=2,
        help="CPUs of a local Ray (or processes of the pool) when no --address is given",
    )
    if not threads:
        return
    group.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch threads per task (default: torch's own locally, 1 per Ray task); torch's "
        "CPU sums depend on it, so runs at the same --threads give the same bits anywhere",
    )


def add_shard_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shards",
        type=positive_int,
        default=None,
        help="with --executor ray: split the images into N shards, one Ray task each, for "
        "every attack (default: as many as the cluster runs at once); any split gives the "
        "per-image results of one process",
    )


def cluster_options(args: argparse.Namespace) -> dict[str, Any]:
    """The cluster arguments as keyword arguments (address only with --executor ray)."""
    if args.executor != "ray" and args.address:
        raise SystemExit("error: --address needs --executor ray.")
    options = {"executor": args.executor, "address": args.address, "workers": args.workers}
    return {**options, "threads": args.threads}
