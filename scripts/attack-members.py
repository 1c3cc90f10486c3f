"""Robust accuracy of saved models under the strongest evaluation's kinds of attack, one at a time.

The strongest evaluation reports the per-sample worst case of its members; when it lands far
below a study's PGD number, this says which kind of attack gets there, and whether a query-only
one (Square, which sees no gradient) does too: then the gap is the model's, not an artefact of a
gradient approximation such as BPDA. Each attack runs once with its registry defaults (APGD-CE
and APGD-DLR without the ensemble's 5 restarts), beside a 100-step PGD at eps/4. Quantized
models are attacked through BPDA (identity).

    python scripts/attack-members.py \
        runs/seed000-s5-fashion/models/{quantized-and-,}adversarial-training.safetensors \
        --eps 0.05 --images 200 --seed-pgd 8,0.1
"""

from __future__ import annotations

import argparse
import time

import torch

from saddlepoint.attacks import build_attack
from saddlepoint.checkpoint import load_checkpoint
from saddlepoint.data import load_dataset
from saddlepoint.defenses import bpda


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help=".safetensors files of one dataset")
    parser.add_argument("--eps", type=float, required=True, help="Linf radius")
    parser.add_argument("--images", type=int, default=200, help="first N test images")
    parser.add_argument(
        "--seed-pgd",
        default=None,
        help="STEPS,STEP: also the study's own PGD (one run from a random start), e.g. 8,0.1",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    plans: list[tuple[str, dict]] = []
    if args.seed_pgd:
        steps, step = args.seed_pgd.split(",")
        plans.append(("pgd", {"steps": int(steps), "step": float(step), "restarts": 1}))
    plans += [
        ("pgd", {"steps": 100, "step": args.eps / 4}),
        ("apgd", {}),
        ("apgd-dlr", {}),
        ("apgd-t", {}),
        ("fab-t", {}),
        ("square", {"queries": 5000}),
    ]
    for path in args.checkpoints:
        net, meta = load_checkpoint(path, device="cpu")
        net.eval()
        dataset = meta["dataset"]
        data = load_dataset(dataset["name"], **dataset.get("options", {}))
        x, y = data.test.images[: args.images], data.test.labels[: args.images]
        for name, options in plans:
            attack = build_attack(name, norm="linf", eps=args.eps, seed=0, **options)
            start = time.perf_counter()
            with bpda(net):
                accuracy = attack(net, x, y).metrics()["robust_accuracy"]
            seconds = time.perf_counter() - start
            print(f"{path}\t{name}\t{options}\t{accuracy:.3f}\t{seconds:.0f}s", flush=True)


if __name__ == "__main__":
    main()
