"""Robust accuracy of saved models under each member of the strongest evaluation, one at a time.

The strongest evaluation reports the per-sample worst case of its members; when it lands far
below a study's PGD number, this says which kind of attack gets there, and whether a query-only
one (Square, which sees no gradient) does too: then the gap is the model's, not an artefact of a
gradient approximation such as BPDA. The members are taken from ``strongest_attack`` itself, with
its own settings (restarts included), so this list can never drift from the evaluation every
defense number comes from; each runs alone on every image, beside a 100-step PGD at eps/4 and,
optionally, the study's own PGD. Quantized models are attacked through BPDA (identity).

    python docs/studies/recipes/attack-members.py \
        runs/seed000-s5-fashion/models/{quantized-and-,}adversarial-training.safetensors \
        --eps 0.05 --images 200 --seed-pgd 8,0.1
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from saddlepoint.attacks import build_attack
from saddlepoint.checkpoint import load_checkpoint
from saddlepoint.data import load_dataset
from saddlepoint.defenses import bpda
from saddlepoint.evaluate.robustness import strongest_attack


def attacks_to_run(eps: float, seed_pgd: str | None = None, **overrides: Any) -> list[Any]:
    """The study's PGD (``STEPS,STEP``, one run from a random start) when asked, a 100-step PGD
    at eps/4, then the strongest evaluation's members in its order. ``overrides`` reach the
    members as they reach the ensemble (``steps``, ``queries``): for quick checks only."""
    attacks = []
    if seed_pgd:
        steps, step = seed_pgd.split(",")
        attacks.append(
            build_attack(
                "pgd", norm="linf", eps=eps, seed=0, steps=int(steps), step=float(step), restarts=1
            )
        )
    attacks.append(build_attack("pgd", norm="linf", eps=eps, seed=0, steps=100, step=eps / 4))
    attacks += strongest_attack("linf", eps, seed=0, **overrides).attacks
    return attacks


def member_rows(
    checkpoints: Sequence[str], attacks: Sequence[Any], images: int
) -> Iterator[tuple[str, str, dict, float, float]]:
    """(checkpoint, attack name, its settings, robust accuracy, seconds) per model and attack."""
    for path in checkpoints:
        net, meta = load_checkpoint(path, device="cpu")
        net.eval()
        dataset = meta["dataset"]
        data = load_dataset(dataset["name"], **dataset.get("options", {}))
        x, y = data.test.images[:images], data.test.labels[:images]
        for attack in attacks:
            start = time.perf_counter()
            with bpda(net):
                accuracy = attack(net, x, y).metrics()["robust_accuracy"]
            yield path, attack.name, attack.config(), accuracy, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help=".safetensors files of one dataset")
    parser.add_argument("--eps", type=float, required=True, help="Linf radius")
    parser.add_argument("--images", type=int, default=200, help="first N test images")
    parser.add_argument(
        "--seed-pgd",
        default=None,
        help="STEPS,STEP: also the study's own PGD (one run from a random start), e.g. 8,0.1",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    attacks = attacks_to_run(args.eps, args.seed_pgd)
    for path, name, config, accuracy, seconds in member_rows(
        args.checkpoints, attacks, args.images
    ):
        print(f"{path}\t{name}\t{config}\t{accuracy:.3f}\t{seconds:.0f}s", flush=True)


if __name__ == "__main__":
    main()
