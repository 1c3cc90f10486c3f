"""`saddlepoint attack CHECKPOINT`: run a registered attack and print its metrics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.torch import save

from saddlepoint.attacks import ATTACKS, Ensemble, build_attack
from saddlepoint.cli.common import (
    CLIError,
    add_cluster_arguments,
    add_data_arguments,
    add_device_argument,
    add_shard_argument,
    against_record,
    check_outputs,
    cluster_options,
    format_table,
    non_negative_int,
    parse_assignments,
    positive_int,
    warn_clean_accuracy,
)
from saddlepoint.cli.model_options import (
    add_model_arguments,
    load_model_data,
    model_inputs,
    model_path,
)
from saddlepoint.experiments.cluster import evaluation_executor
from saddlepoint.fileio import write_bytes, write_text
from saddlepoint.progress import note, reporting
from saddlepoint.threat import parse_eps

if TYPE_CHECKING:
    from torch import nn

    from saddlepoint.data import ImageData

# Attack keywords the command line leaves to --option (structures, or outputs it never shows).
NOT_ON_THE_COMMAND_LINE = frozenset({"bounds", "record_at", "trace"})
# Keywords whose option takes another name, so it cannot be read as the command's own.
OPTION_NAMES = {"seed": "attack-seed", "batch_size": "attack-batch-size"}
# Help for the keywords a user reaches for first; every other keyword says which attacks take it.
OPTION_HELP = {
    "norm": "threat-model norm (l1: the attacks that support it, such as apgd and fab)",
    "step": "PGD step size eta, e.g. 2/255",
    "steps": "iterations n (PGD, APGD, DeepFool, CW)",
    "random_start": "start at a random point of the ball",
    "restarts": "random restarts, keeping each sample's worst case",
    "loss": "loss to ascend: ce, mse, cw, dlr",
    "early_stop": "evaluation mode, on by default where the attack supports it: stop each sample "
    "at its first success (the same or lower robust accuracy for far fewer passes; loss under "
    "attack is then that of the first successful iterate). --no-early-stop runs every step",
    "tol": "PGD: stop a sample when its loss changes by less",
    "overshoot": "DeepFool overshoot",
    "candidates": "DeepFool: classes considered",
    "queries": "query budget per image (black-box attacks)",
    "pixels": "one-pixel: how many pixels may change",
    "popsize": "one-pixel: population size",
    "search_steps": "CW: binary-search steps over c",
    "lr": "CW: Adam learning rate",
    "initial_const": "CW: starting c",
    "kappa": "CW: confidence margin",
    "seed": "seed of the attack's random draws",
    "batch_size": "sub-batch size (default: measured)",
    "precision": "of the gradient passes of PGD/APGD (default: fp32): bf16 or fp16 under "
    "autocast, or auto (bf16 where the hardware has it and it measures faster); iterates and "
    "the success decision stay float32",
}
# Keywords read as radii or step sizes (a number or a fraction such as 8/255).
FRACTIONS = frozenset({"eps", "step"})


def attack_keywords() -> dict[str, list[str]]:
    """Every keyword some registered attack takes (the ones the command line offers), with the
    attacks that take it: the attack options are generated from the registry, so a new attack's
    keyword is an option the moment it is registered."""
    taken: dict[str, list[str]] = {}
    for name, entry in ATTACKS.items():
        for keyword in entry.arguments():
            if keyword not in NOT_ON_THE_COMMAND_LINE:
                taken.setdefault(keyword, []).append(name)
    return taken


def option_dest(keyword: str) -> str:
    """The argparse destination of an attack keyword's option."""
    return OPTION_NAMES.get(keyword, keyword).replace("-", "_")


def _attack_epilog() -> str:
    lines = ["attacks and the arguments each accepts (defaults after '='):"]
    for name, entry in ATTACKS.items():
        lines.append(f"  {name:14s} {entry.description}")
        args = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in entry.arguments().items()
            if k not in ("bounds", "memory_format")
        )
        lines.append(f"  {'':14s}   {args}")
    return "\n".join(lines)


def _size(text: str) -> int | str:
    """argparse type: a sub-batch size, or 'auto' (measured)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number or 'auto'") from None


def _fraction(text: str) -> float:
    try:
        return parse_eps(text, "value", "the command line")
    except (TypeError, ValueError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None


# The usual Linf radius per dataset, used when --eps is left out (stated in --help).
DEFAULT_EPS = {"digits": 0.1, "mnist": 0.3, "fashion-mnist": 0.1, "cifar10": 8 / 255}


def radius_for(args: argparse.Namespace, kwargs: dict[str, Any], dataset: str) -> dict[str, Any]:
    """``kwargs`` with the dataset's usual radius when --eps was left out and the attack takes
    one (minimal-norm attacks need none): never a CIFAR-10 radius on MNIST without a word."""
    entry = ATTACKS.get(args.attack)
    if "eps" in kwargs or entry is None or entry.minimal or "eps" not in entry.arguments():
        return kwargs
    if (args.norm or "linf") != "linf" or dataset not in DEFAULT_EPS:
        raise CLIError(
            f"--eps: no default radius for {dataset!r} in the {args.norm} norm; give --eps (in "
            "[0, 1] pixel units)."
        )
    note(
        "eps %g: the usual Linf radius for %s (give --eps to change it)",
        DEFAULT_EPS[dataset],
        dataset,
    )
    return {**kwargs, "eps": DEFAULT_EPS[dataset]}


def state_cost(
    attack: Any, model: nn.Module, x: Any, y: Any, what: str, factor: float = 1.0
) -> None:
    """Say what a long run will cost before it starts: an ensemble, or 500 images or more,
    measured on a probe of a few images (skipped under --quiet, where nobody reads it)."""
    from saddlepoint.attacks import Ensemble
    from saddlepoint.evaluate.cost import PROBE_IMAGES, estimate_cost

    long_run = isinstance(attack, Ensemble) or len(y) >= 500
    if reporting() and long_run and len(y) > 2 * PROBE_IMAGES:
        note("%s", estimate_cost(attack, model, x, y, factor=factor).describe(what))


def check_pixel_radius(eps: float | None, norm: str | None) -> None:
    """Refuse a Linf radius wider than the [0, 1] pixel range every command works in: --eps 8
    meaning 8/255 would attack with the whole box and report 0% robust."""
    if eps is not None and (norm or "linf") == "linf" and eps > 1:
        raise CLIError(
            f"--eps {eps:g} is a Linf radius wider than the [0, 1] pixel range: every image "
            "could become any other. eps is in [0, 1] pixel units; for 8 of 255 levels write "
            "--eps 8/255."
        )


def add_attack_arguments(parser: argparse.ArgumentParser) -> None:
    """--attack and every attack option (only the ones given reach the attack)."""
    parser.add_argument(
        "--attack", default="pgd", help=f"attack name: {', '.join(ATTACKS)} (default: pgd)"
    )
    defaults: dict[str, Any] = {}
    for entry in ATTACKS.values():
        for keyword, value in entry.arguments().items():
            if value is not None:
                defaults.setdefault(keyword, value)
    for keyword, attacks in sorted(attack_keywords().items()):
        default = defaults.get(keyword)
        help_text = OPTION_HELP.get(keyword) or f"{keyword} of {', '.join(attacks)}"
        flag = "--" + OPTION_NAMES.get(keyword, keyword).replace("_", "-")
        options: dict[str, Any] = {"dest": option_dest(keyword), "help": help_text}
        if keyword == "eps":
            options["help"] = (
                "radius of the ball in [0, 1] pixel units, e.g. 0.3 or 8/255 (default, Linf: "
                + ", ".join(f"{name} {eps:g}" for name, eps in DEFAULT_EPS.items())
                + "; your own --data needs one)"
            )
        if keyword == "norm":
            options["choices"] = ["linf", "l2", "l1"]
        elif keyword == "precision":
            options["choices"] = ["fp32", "bf16", "fp16", "auto"]
        elif isinstance(default, bool):
            options |= {"action": argparse.BooleanOptionalAction, "default": None}
        elif keyword in FRACTIONS:
            options["type"] = _fraction
        elif keyword == "batch_size":
            options["type"] = _size
        elif isinstance(default, int):
            options["type"] = int
        elif isinstance(default, float) or default is None:
            options["type"] = float
        parser.add_argument(flag, **options)
    parser.add_argument(
        "--option", action="append", metavar="KEY=VALUE", help="any other attack argument"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "attack",
        help="attack a checkpoint (or your own model) and print clean/robust accuracy, norms, cost",
        description="Attack a trained checkpoint, or your own model (--model), on its dataset's "
        "test split (or --split). Only "
        "the options you give are passed to the attack; the rest keep the attack's defaults "
        "(listed below). Eps and step accept fractions such as 8/255.",
        epilog=_attack_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser)
    add_attack_arguments(parser)
    parser.add_argument(
        "--split", choices=["train", "val", "test"], default="test", help="(default: test)"
    )
    parser.add_argument(
        "--limit", type=positive_int, default=None, help="attack only the first N images"
    )
    add_device_argument(parser)
    parser.add_argument("--save", type=Path, help="folder for adversarial examples and metrics")
    parser.add_argument(
        "--radii",
        type=_radii,
        metavar="EPS,EPS,...",
        help="a robustness curve instead of one radius: robust accuracy at each (fixed-radius "
        "attacks run once per radius on the images still robust at the one before; a "
        "minimal-norm attack runs once); --save writes curve.json and curve.png",
    )
    parser.add_argument(
        "--images",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="write a PNG grid of N examples",
    )
    add_data_arguments(parser, user_data=True)
    add_cluster_arguments(parser, "the attack")
    add_shard_argument(parser)
    parser.set_defaults(handler=run)


def attack_kwargs(args: argparse.Namespace) -> dict:
    """The attack keywords given on the command line (plus --option KEY=VALUE)."""
    kwargs = {
        keyword: getattr(args, option_dest(keyword))
        for keyword in attack_keywords()
        if getattr(args, option_dest(keyword), None) is not None
    }
    kwargs.update(parse_assignments(args.option, "--option"))
    supports = args.attack in ATTACKS and "early_stop" in ATTACKS[args.attack].arguments()
    if args.early_stop is None and supports:
        kwargs.setdefault("early_stop", True)
    return kwargs


def load_checkpoint_data(args: argparse.Namespace) -> tuple[nn.Module, dict[str, Any], ImageData]:
    """The checkpoint's model (or --model) and its data: the dataset recorded in its metadata,
    --dataset or --data (options may override)."""
    return load_model_data(args, device=args.device)


def _radii(text: str) -> list[float]:
    """argparse type: comma-separated radii, each a number or a fraction such as 8/255."""
    return [_fraction(part) for part in text.split(",") if part.strip()]


def run_curve(args: argparse.Namespace) -> int:
    """--radii: robust accuracy at each radius in one call (a table; curve.json and
    curve.png under --save)."""
    from saddlepoint.evaluate import robustness_curve
    from saddlepoint.viz.plots import line_plot

    if args.eps is not None:
        raise CLIError("Give --eps or --radii, not both.")
    for radius in args.radii:
        check_pixel_radius(radius, args.norm)
    kwargs = attack_kwargs(args)
    minimal = args.attack in ATTACKS and ATTACKS[args.attack].minimal
    build_attack(args.attack, **(kwargs if minimal else {**kwargs, "eps": args.radii[0]}))
    outputs = [args.save / "curve.json", args.save / "curve.png"] if args.save else []
    check_outputs([("--save", path) for path in outputs], model_inputs(args))
    model, _, data = load_checkpoint_data(args)
    split = data.split(args.split).head(args.limit)
    curve = robustness_curve(model, split.images, split.labels, args.radii, args.attack, **kwargs)
    rows = [(f"{r['eps']:.4g}", r["robust_accuracy"]) for r in curve.records()]
    print(f"{args.attack} ({curve.norm}) on {curve.images} images")
    print(format_table(rows, ["eps", "robust acc"]))
    if args.save:
        write_text(args.save / "curve.json", json.dumps(curve.records(), indent=2) + "\n")
        line_plot(
            {args.attack: (curve.radii, curve.robust_accuracy)},
            args.save / "curve.png",
            xlabel=f"eps ({curve.norm})",
            ylabel="robust accuracy",
            title=f"{args.attack} on {curve.images} images",
            svg=False,
        )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.radii is not None:
        return run_curve(args)
    check_pixel_radius(args.eps, args.norm)
    kwargs = attack_kwargs(args)
    build_attack(args.attack, **kwargs)  # a bad option fails before any loading
    if args.save:
        saved = [args.save / "adversarial.safetensors", args.save / "metrics.json"]
        check_outputs([("--save", path) for path in saved], model_inputs(args))
    model, meta, data = load_checkpoint_data(args)
    dataset = data.name if args.data is None else "your own data"
    attack = build_attack(args.attack, **radius_for(args, kwargs, dataset))
    split = data.split(args.split).head(args.limit)
    state_cost(attack, model, split.images, split.labels, args.attack)
    if args.early_stop is None and kwargs.get("early_stop"):
        note(
            "early stop on (this command's default; the Python API's is off): each image "
            "stops at its first success, so robust accuracy is the same or lower and the loss "
            "and norm columns are those of that iterate; --no-early-stop runs every step"
        )
    with evaluation_executor(**cluster_options(args), shards=args.shards) as runner:
        result = attack(model, split.images, split.labels)
    metrics = result.metrics()
    warn_clean_accuracy(float(metrics["clean_accuracy"]), meta, against_record(args, len(split)))
    print(f"{args.attack}: {attack!r}")
    print(
        format_table(
            [
                (
                    args.attack,
                    int(metrics["n"]),
                    metrics["clean_accuracy"],
                    metrics["robust_accuracy"],
                    metrics["success_rate"],
                    metrics["loss"],
                    metrics["mean_confidence"],
                    metrics["l2_median"],
                    metrics["linf_max"],
                    metrics["rho_adv"],
                    f"{metrics['ms_per_sample']:.2f}",
                    f"{metrics['forward_passes']:.1f}",
                    f"{metrics['backward_passes']:.1f}",
                )
            ],
            [
                "attack",
                "n",
                "clean acc",
                "robust acc",
                "success",
                "loss",
                "mean conf",
                "L2 median",
                "Linf max",
                "rho_adv",
                "ms/img",
                "fwd/img",
                "bwd/img",
            ],
        )
    )
    if isinstance(attack, Ensemble):
        steps = ", ".join(f"{label} {value:.4f}" for label, value in attack.progression(result))
        print(f"robust accuracy after each attack: {steps}")
    ran = runner.summary() if runner else {"executor": "local"}
    if runner:
        print(
            f"ran on {ran['workers']} Ray worker(s) ({', '.join(ran['devices'])}) in {ran['shards']} shard(s): seconds per worker {ran['seconds_per_worker']}"
        )
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        tensors = {
            "inputs": result.inputs.contiguous(),
            "adversarial": result.adversarial.contiguous(),
            "labels": result.labels.contiguous(),
            "predictions": result.predictions.contiguous(),
        }
        write_bytes(args.save / "adversarial.safetensors", save(tensors))
        record = {
            "checkpoint": str(args.checkpoint) if args.checkpoint else None,
            "model": args.model,
            "weights": str(args.weights) if args.weights else None,
            "attack": args.attack,
            "config": attack.config(),
            "split": args.split,
            "metrics": metrics,
            "ran": ran,
        }
        write_text(args.save / "metrics.json", json.dumps(record, indent=2, default=str) + "\n")
        print(f"saved: {args.save / 'adversarial.safetensors'}, {args.save / 'metrics.json'}")
    if args.images:
        from saddlepoint.viz.grids import adversarial_grid

        named = model_path(args)
        folder = args.save or named.parent
        path = folder / f"{named.stem}-{args.attack}.png"
        adversarial_grid(
            result, path, count=args.images, class_names=data.class_names, title=args.attack
        )
        print(f"images: {path}")
        if "flip_map" in result.extras:
            from saddlepoint.viz.grids import flip_map_figure

            heatmap = folder / f"{named.stem}-{args.attack}-flips.png"
            names = [data.class_names[int(i)] for i in result.labels[: args.images]]
            flip_map_figure(
                result.inputs[: args.images],
                result.extras["flip_map"][: args.images],
                heatmap,
                labels=names,
            )
            print(f"flip maps: {heatmap}")
    return 0
