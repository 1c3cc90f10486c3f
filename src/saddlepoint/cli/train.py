"""`saddlepoint train`: train a classifier and save a checkpoint."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from saddlepoint.checkpoint import save_checkpoint
from saddlepoint.cli.common import (
    add_data_arguments,
    check_outputs,
    dataset_options,
    format_table,
    parse_assignments,
)
from saddlepoint.data import DATASETS, load_dataset
from saddlepoint.models import MODELS, count_parameters
from saddlepoint.progress import watched
from saddlepoint.train import TrainConfig, TrainingDefense, train_classifier
from saddlepoint.train.presets import TRAIN_RECIPES, TrainRecipe

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
        "--recipe",
        choices=sorted(TRAIN_RECIPES),
        default=None,
        help="a measured preset of the options below; options you give win. "
        + "; ".join(
            f"{name}: {recipe.measured} ({_recipe_flags(recipe)})"
            for name, recipe in TRAIN_RECIPES.items()
        ).replace("%", "%%"),
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
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        default="fp32",
        help="forward/backward under autocast in bf16 or fp16 (fp32 master weights; fp16 with a "
        "gradient scaler, for CUDA); default: fp32. With --defense adversarial the attack's "
        "gradient passes use it too",
    )
    parser.add_argument(
        "--memory-format",
        choices=["contiguous", "channels_last"],
        default="contiguous",
        help="layout of a conv model's weights and batches while training: channels_last is "
        "faster on CPUs, most of all with --precision bf16 (rounding differs, so it trains a "
        "different model); default: contiguous",
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
        help="checkpoint path (default: runs/DATASET-MODEL.safetensors). The training keeps its "
        "state in OUT.training.pt after each epoch: after an interruption the same command "
        "resumes at the last finished epoch (other settings start over)",
    )
    parser.add_argument("--plot", action="store_true", help="also save the training curves as PNG")
    defense = parser.add_argument_group(
        "defenses",
        "adversarial: --defense-attack (any attack, e.g. pgd, fgsm, fgsm-rs), --defense-eps, "
        "--defense-steps, --defense-step, --fraction, --warmup-epochs, --regenerate, --defense-bpda; "
        "trades: --defense-eps, --defense-steps, --beta; noise: --noise-kind, --noise-scale, --fraction; "
        "n-fgsm: --defense-eps, --warmup-epochs (noise 2 eps, step eps, not projected); "
        "gradalign: --defense-eps, --align, --warmup-epochs",
    )
    defense.add_argument(
        "--defense",
        choices=["adversarial", "n-fgsm", "gradalign", "trades", "noise"],
        help="training defense (default: none)",
    )
    defense.add_argument(
        "--defense-attack", default="pgd", help="attack generating training examples (default: pgd)"
    )
    defense.add_argument(
        "--defense-eps", default="0.3", help="eps of the defense, e.g. 0.3 or 8/255 (default: 0.3)"
    )
    defense.add_argument(
        "--defense-norm", choices=["linf", "l2"], default=None, help="norm of the defense"
    )
    defense.add_argument(
        "--defense-steps", type=int, default=None, help="attack steps during training"
    )
    defense.add_argument("--defense-step", default=None, help="attack step size during training")
    defense.add_argument(
        "--fraction", type=float, default=None, help="share of each batch replaced (default: 1)"
    )
    defense.add_argument(
        "--warmup-epochs", type=int, default=None, help="epochs over which eps grows from 0"
    )
    defense.add_argument(
        "--regenerate",
        choices=["batch", "epoch", "once"],
        default=None,
        help="adversarial examples per batch, per epoch (seed 002), or once before the first "
        "epoch (the DeepFool paper's fine-tuning)",
    )
    defense.add_argument(
        "--defense-bpda",
        choices=["identity", "smooth"],
        default=None,
        help="train through quantization with BPDA",
    )
    defense.add_argument("--beta", type=float, default=None, help="TRADES trade-off (default: 6)")
    defense.add_argument(
        "--align", type=float, default=None, help="GradAlign penalty weight (default: 0.2)"
    )
    defense.add_argument(
        "--noise-kind", choices=["gaussian", "uniform"], default=None, help="noise training kind"
    )
    defense.add_argument("--noise-scale", type=float, default=None, help="noise std or half-width")
    defense.add_argument(
        "--quantize",
        default=None,
        metavar="MODE:N",
        help="put a quantization layer in front of the model: tanh:8 (seed 000) or bits:3",
    )
    add_data_arguments(parser)
    parser.set_defaults(handler=run, recipes=TRAIN_RECIPES)


def _recipe_flags(recipe: TrainRecipe) -> str:
    """A recipe's options as the flags they stand for."""
    return " ".join(f"--{key.replace('_', '-')} {value}" for key, value in recipe.options.items())


def build_cli_defense(args: argparse.Namespace) -> TrainingDefense | None:
    """The training defense the --defense options describe (None without --defense)."""
    if args.defense is None:
        return None
    from saddlepoint.defenses import build_defense

    given = {
        "steps": args.defense_steps,
        "step": args.defense_step,
        "fraction": args.fraction,
        "warmup_epochs": args.warmup_epochs,
        "regenerate": args.regenerate,
        "bpda": args.defense_bpda,
        "beta": args.beta,
        "kind": args.noise_kind,
        "scale": args.noise_scale,
        "norm": args.defense_norm,
    }
    kwargs = {k: v for k, v in given.items() if v is not None}
    if args.defense == "adversarial":
        if args.precision != "fp32":  # the attack's gradient passes too: most of AT's cost
            kwargs["precision"] = args.precision
        return build_defense(
            "adversarial", attack=args.defense_attack, eps=args.defense_eps, **kwargs
        )
    if args.defense == "trades":
        return build_defense("trades", eps=args.defense_eps, **kwargs)
    if args.defense in ("n-fgsm", "gradalign"):
        align = {} if args.align is None else {"align": args.align}
        return build_defense(args.defense, eps=args.defense_eps, **kwargs, **align)
    return build_defense("noise", **kwargs)


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
        precision=args.precision,
        memory_format=args.memory_format,
    )
    options = dataset_options(args, args.dataset)
    model_args = parse_assignments(args.model_arg, "--model-arg")
    if args.quantize:
        model_args["quantize"] = args.quantize
    defense = build_cli_defense(args)
    out = args.out or Path("runs") / f"{args.dataset}-{args.model}.safetensors"
    if out.suffix == ".json":
        raise ValueError(
            f"--out {out}: the checkpoint's JSON metadata twin is written beside it as "
            f"{out.with_suffix('.json').name}, which would overwrite it; use a .safetensors name."
        )
    outputs = [("--out", out), ("the metadata twin of --out", out.with_suffix(".json"))]
    if args.plot:
        outputs.append(("the training plot of --out", out.with_suffix(".png")))
    check_outputs(outputs)
    data = load_dataset(args.dataset, **options)
    state = out.with_name(out.name + ".training.pt")  # the loop state, for a stopped run
    result = train_classifier(
        data,
        args.model,
        config,
        model_args=model_args,
        transform=defense,
        normalize=not args.no_normalize,
        dataset_options=options,
        progress=watched(),
        resume=state,  # resumed only by the same recipe (train_classifier derives its tag)
    )
    metadata = dict(result.metadata)
    if defense is not None:
        metadata["defense"] = defense.config()
    save_checkpoint(out, result.model, metadata)
    state.unlink(missing_ok=True)  # kept until the model is saved
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
