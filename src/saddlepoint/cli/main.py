"""The `saddlepoint` command: parse, dispatch, and print errors as one line."""

from __future__ import annotations

import argparse
import logging
import pickle
import sys
from collections.abc import Sequence
from typing import NoReturn

from saddlepoint.cli import (
    attack,
    audit,
    benchmark,
    certify,
    data,
    demo,
    evaluate,
    gan_attack,
    import_model,
    models,
    study,
    sweep,
    train,
    transfer,
)
from saddlepoint.cli.common import config_to_argv, options_to_argv
from saddlepoint.version import __version__

COMMANDS = (
    data,
    models,
    train,
    import_model,
    evaluate,
    attack,
    transfer,
    gan_attack,
    audit,
    benchmark,
    certify,
    sweep,
    study,
    demo,
)


class OneLineErrors(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (the usage is a --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(
        prog="saddlepoint",
        description="Adversarial robustness of image classifiers: train, attack, defend, study. "
        "Every command's options can also come from a YAML file (--config FILE; keys are the "
        "option names, command-line flags win).",
    )
    parser.add_argument("--version", action="version", version=f"saddlepoint {__version__}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(subparsers)
    for sub in _leaf_parsers(parser):
        sub.add_argument("--config", metavar="FILE", help="read options from this YAML file")
        sub.set_defaults(leaf_parser=sub)
    return parser


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser that runs a command (has a handler and no subcommands of its own)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                children = _leaf_parsers(sub)
                found.extend(children or [sub])
    return found


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; a --config file's options and then a --recipe preset's fill in what the
    command line leaves out (the command line wins, then the file, then the preset)."""
    args = parser.parse_args(argv)
    tokens: list[str] = []
    if getattr(args, "config", None):
        tokens = config_to_argv(args.leaf_parser, args.config, argv)
        args = parser.parse_args(argv + tokens)  # after the positionals, so nargs='+' is safe
    recipes = getattr(args, "recipes", None)
    if recipes and getattr(args, "recipe", None):
        preset = recipes[args.recipe].options
        tokens += options_to_argv(
            args.leaf_parser, preset, f"recipe {args.recipe!r}", argv + tokens
        )
        args = parser.parse_args(argv + tokens)
    return args


GLOBAL_FLAGS = ("--quiet", "--debug")


def _log_to_stderr(quiet: bool) -> None:
    """The package's log lines (progress notes at INFO, warnings) go to this call's stderr;
    --quiet keeps only warnings. One handler, replaced on every call (main can run many times
    in one process, as the tests do), on the ``saddlepoint`` logger only."""
    logger = logging.getLogger("saddlepoint")
    for handler in [h for h in logger.handlers if getattr(h, "saddlepoint_cli", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.saddlepoint_cli = True  # type: ignore[attr-defined]  # marks the handler as ours
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --quiet and --debug are accepted anywhere, also after the command (`train ... --quiet`).
    argv = [a for a in argv if a in GLOBAL_FLAGS] + [a for a in argv if a not in GLOBAL_FLAGS]
    parser = build_parser()
    debug = "--debug" in argv
    try:
        try:
            args = parse(parser, argv)
        except SystemExit as done:  # --help (0) or a usage error argparse already printed (2)
            return int(done.code or 0) if not isinstance(done.code, str) else 2
        _log_to_stderr(quiet=args.quiet)
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, KeyError, EOFError, pickle.UnpicklingError) as error:
        if debug:
            raise
        message = str(error).strip() or type(error).__name__
        print(f"saddlepoint: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
