"""Retrain a study's network with one training setting changed, and evaluate it as Table 3 does.

A finding that disagrees with a seed often has a cheap test: the same network, the same data and
the same epochs, with one setting of its recipe changed (adversarial examples made per batch
instead of once per epoch, more epochs, ...). This reads the recipe a study recorded in the
checkpoint's metadata, applies ``--set KEY=VALUE`` (a training option such as ``epochs``, or
``defense.KEY`` for the adversarial training's own, such as ``defense.regenerate``), trains on
the same training images, saves the variant beside its recipe, and prints clean, FGSM, 20-step
PGD from x (the seed's attacks) and the strongest evaluation, on the test set.

    python docs/studies/recipes/retrain-variant.py runs/seed002-s3-fashion/models/fgsm-at.safetensors \
        --set defense.regenerate=batch --out runs/checks/fashion-fgsm-at-batch.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from saddlepoint.attacks import build_attack
from saddlepoint.attacks.gradient.pgd import PGD
from saddlepoint.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from saddlepoint.data import load_dataset
from saddlepoint.defenses import AdversarialTraining
from saddlepoint.evaluate.robustness import strongest_attack
from saddlepoint.experiments.studies.robust_nets import table3_accuracies
from saddlepoint.train import TrainConfig, train_classifier

TRAIN_OPTIONS = ("epochs", "batch_size", "lr", "schedule", "seed")


def variant_recipe(recipe: dict[str, Any], settings: Sequence[str]) -> dict[str, Any]:
    """``recipe`` with each ``KEY=VALUE`` applied (values read as YAML); ``defense.KEY`` sets a
    key of the defense. A key the recipe does not have is refused, naming the ones it has."""
    changed = json.loads(json.dumps(recipe))
    for setting in settings:
        key, sep, text = setting.partition("=")
        if not sep:
            raise ValueError(f"--set takes KEY=VALUE; got {setting!r}.")
        target, name = changed, key
        if key.startswith("defense."):
            target, name = changed.get("defense") or {}, key.removeprefix("defense.")
        if name not in target or name in ("name", "data", "train_limit", "architecture"):
            allowed = [k for k in TRAIN_OPTIONS if k in changed]
            allowed += [f"defense.{k}" for k in (changed.get("defense") or {}) if k != "name"]
            raise ValueError(f"--set cannot change {key!r}; it can change: {', '.join(allowed)}.")
        target[name] = yaml.safe_load(text)
    return changed


def train_variant(recipe: dict[str, Any], progress: bool = False) -> tuple[torch.nn.Module, dict]:
    """Train the network ``recipe`` describes (a study's ``ctx.model`` recipe)."""
    data = load_dataset(recipe["data"]["dataset"], **recipe["data"]["options"])
    training = data
    if recipe.get("train_limit") is not None:
        training = dataclasses.replace(data, train=data.train.head(recipe["train_limit"]))
    defense = None
    if recipe.get("defense"):
        options = {k: v for k, v in recipe["defense"].items() if k != "name"}
        if recipe["defense"]["name"] != "adversarial":
            raise ValueError("retrain-variant handles adversarial training and clean training.")
        defense = AdversarialTraining(options.pop("attack"), **options)
    recorded = ("architecture", "model_args", "defense", "data", "train_limit", *TRAIN_OPTIONS)
    extra = {k: v for k, v in recipe.items() if k not in recorded}
    config = TrainConfig(**{k: recipe[k] for k in TRAIN_OPTIONS if k in recipe}, **extra)
    trained = train_classifier(
        training,
        recipe["architecture"],
        config,
        model_args=recipe.get("model_args") or {},
        dataset_options=data.options,
        transform=defense,
        progress=progress,
    )
    return trained.model.cpu().eval(), {**trained.metadata, "recipe": recipe}


def table3_row(
    net: torch.nn.Module, recipe: dict[str, Any], eps: float, pgd: tuple[int, float], strong: int
) -> dict[str, float]:
    """Clean, FGSM, PGD (from x) over the whole test set; the strongest on its first images:
    the study's own Table 3 evaluation (``table3_accuracies``)."""
    data = load_dataset(recipe["data"]["dataset"], **recipe["data"]["options"])
    attacks = {
        "FGSM": build_attack("fgsm", eps=eps),
        f"PGD-{pgd[0]}": PGD(norm="linf", eps=eps, steps=pgd[0], step=pgd[1], random_start=False),
    }
    strongest = strongest_attack("linf", eps, seed=recipe.get("seed", 0))
    cells = table3_accuracies(net, data.test, attacks, strongest, strong)
    return dict(zip(["clean", *attacks, f"strongest ({strong})"], cells, strict=True))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a study's model (.safetensors) with its recipe")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", required=True, help="where the variant's checkpoint goes")
    parser.add_argument("--eps", type=float, default=None, help="default: the defense's eps")
    parser.add_argument("--pgd", default="20,0.05", help="STEPS,STEP of the PGD from x")
    parser.add_argument("--strong-images", type=int, default=1000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    recipe = read_metadata(args.checkpoint).get("recipe")
    if not recipe:
        parser.error(f"{args.checkpoint} records no study recipe (it was not trained by a study)")
    changed = variant_recipe(recipe, args.set)
    out = Path(args.out)
    if out.is_file() and read_metadata(out).get("recipe") == changed:
        net, _ = load_checkpoint(out, device="cpu")  # trained before: reuse it
    else:
        net, metadata = train_variant(changed, progress=True)
        save_checkpoint(out, net, metadata)
    eps = args.eps if args.eps is not None else (changed.get("defense") or {}).get("eps")
    if eps is None:
        parser.error("--eps is needed for a network trained without adversarial training")
    steps, step = args.pgd.split(",")
    row = table3_row(net.eval(), changed, eps, (int(steps), float(step)), args.strong_images)
    print(json.dumps({"checkpoint": str(out), "set": args.set, "eps": eps, **row}))


if __name__ == "__main__":
    main()
