"""Issue 43's RayS row: the robust accuracy RayS (the model's label only) reaches at Linf 0.3 on
MNIST at a 10,000-query budget, beside Square (the model's scores) at the same budget, on the
undefended reference CNN and on a PGD-trained one.

The undefended model is bench/common.py's reference (trained once into runs/bench/); the
PGD-trained one is mnist-cnn with PGD-10 x 0.05 adversarial training (eps warm-up over 2 epochs)
for --epochs epochs on the first --train training images. Both attacks run on the first --images
test images; the table gives robust accuracy, mean and median queries per image and seconds.

Run: .venv/bin/python bench/rays.py [--images N] [--queries N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, reference_model  # noqa: E402
from saddlepoint.attacks import build_attack  # noqa: E402
from saddlepoint.defenses import AdversarialTraining  # noqa: E402
from saddlepoint.train import TrainConfig, train_classifier  # noqa: E402

EPS = 0.3


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--queries", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train", type=int, default=20000)
    args = parser.parse_args()
    print(f"# {machine()}", flush=True)
    plain, data, _ = reference_model()
    subset = type(data)(
        data.name, data.train.head(args.train), data.val, data.test, data.class_names, data.source
    )
    defense = AdversarialTraining("pgd", eps=EPS, steps=10, step=0.05, warmup_epochs=2)
    config = TrainConfig(epochs=args.epochs, seed=0, device="cpu")
    robust = train_classifier(subset, "mnist-cnn", config, transform=defense, progress=False)
    x, y = data.test.images[: args.images], data.test.labels[: args.images]
    print(f"# MNIST, Linf {EPS}, {args.queries} queries, first {args.images} test images")
    print("| model | attack | sees | robust accuracy | mean queries | median queries | s |")
    print("|---|---|---|---|---|---|---|")
    for label, model in (("undefended", plain), ("PGD-AT", robust.model)):
        for name, sees in (("rays", "label"), ("square", "scores")):
            start = time.perf_counter()
            result = build_attack(name, eps=EPS, queries=args.queries)(model, x, y)
            seconds = time.perf_counter() - start
            spent = result.queries.float()
            accuracy = result.metrics()["robust_accuracy"]
            print(
                f"| {label} | {name} | {sees} | {accuracy:.3f} | {float(spent.mean()):.0f} | "
                f"{float(spent.median()):.0f} | {seconds:.0f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
