"""Issue 43's fast adversarial training on MNIST at Linf 0.3: N-FGSM and GradAlign against fast
AT (FGSM-RS) at the same budget, with PGD-AT as the reference, each timed and quoted under the
strongest evaluation.

Every recipe trains mnist-cnn for --epochs epochs (eps warm-up over the first --warmup) on the
first --train images of MNIST's training split, then is evaluated on the first --images test
images: clean accuracy, PGD-40 (the number fast AT's collapse hides behind) and the strongest
evaluation (AutoAttack's attacks with restarts: the number to quote). Prints a table with each
recipe's training minutes and its ratio to PGD-AT's.

Run: .venv/bin/python bench/fast_at.py [--epochs N] [--train N] [--images N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine  # noqa: E402
from saddlepoint.attacks import PGD, build_attack  # noqa: E402
from saddlepoint.data import load_dataset  # noqa: E402
from saddlepoint.defenses import AdversarialTraining, GradAlignTraining, NFGSMTraining  # noqa: E402
from saddlepoint.train import TrainConfig, train_classifier  # noqa: E402

EPS = 0.3


def recipes(noise: float, align: float, warmup: int = 2) -> dict:
    """Each recipe's name and a maker of its training defense (N-FGSM with ``noise`` x eps,
    GradAlign with penalty weight ``align``; eps rises over the first ``warmup`` epochs)."""
    return {
        "FGSM-RS (fast AT)": lambda: AdversarialTraining("fgsm-rs", eps=EPS, warmup_epochs=warmup),
        "N-FGSM": lambda: NFGSMTraining(eps=EPS, noise=noise, warmup_epochs=warmup),
        "GradAlign": lambda: GradAlignTraining(eps=EPS, align=align, warmup_epochs=warmup),
        "PGD-AT (10 x 0.05)": lambda: AdversarialTraining(
            "pgd", eps=EPS, steps=10, step=0.05, warmup_epochs=warmup
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train", type=int, default=20000, help="training images")
    parser.add_argument("--images", type=int, default=500, help="test images evaluated")
    parser.add_argument("--only", nargs="*", default=None, help="recipes to run (names above)")
    parser.add_argument(
        "--nfgsm-noise", type=float, default=2.0, help="N-FGSM's noise in eps (paper: 2)"
    )
    parser.add_argument("--align", type=float, default=0.2, help="GradAlign's penalty weight")
    parser.add_argument(
        "--warmup", type=int, default=2, help="epochs over which eps rises to 0.3 (every recipe)"
    )
    args = parser.parse_args()
    data = load_dataset("mnist")
    data = type(data)(
        data.name,
        data.train.head(args.train),
        data.val,
        data.test,
        data.class_names,
        data.source,
    )
    x, y = data.test.images[: args.images], data.test.labels[: args.images]
    print(f"# {machine()}", flush=True)
    print(
        f"# MNIST, mnist-cnn, Linf {EPS}, {args.epochs} epochs on {args.train} images; "
        f"eps warm-up {args.warmup} epochs; N-FGSM noise {args.nfgsm_noise:g} eps, GradAlign weight "
        f"{args.align:g}"
    )
    rows = []
    for name, make in recipes(args.nfgsm_noise, args.align, args.warmup).items():
        if args.only and name.split()[0] not in args.only:
            continue
        start = time.perf_counter()
        model = train_classifier(
            data,
            "mnist-cnn",
            TrainConfig(epochs=args.epochs, seed=0, device="cpu"),
            transform=make(),
            progress=False,
        ).model
        minutes = (time.perf_counter() - start) / 60
        clean = build_attack("fgsm", eps=0.0)(model, x, y).metrics()["clean_accuracy"]
        pgd = PGD(eps=EPS, steps=40, step=0.01, early_stop=True)(model, x, y)
        strongest = build_attack("strongest", eps=EPS)(model, x, y)
        row = (name, minutes, clean, pgd.metrics()["robust_accuracy"])
        rows.append((*row, strongest.metrics()["robust_accuracy"]))
        print(
            f"{name}: {minutes:.1f} min, clean {clean:.3f}, PGD-40 {rows[-1][3]:.3f}, "
            f"strongest {rows[-1][4]:.3f}",
            flush=True,
        )
    reference = next((r[1] for r in rows if r[0].startswith("PGD-AT")), None)
    print("\n| recipe | training min | time / PGD-AT | clean | PGD-40 | strongest (quote) |")
    print("|---|---|---|---|---|---|")
    for name, minutes, clean, pgd, strongest in rows:
        ratio = f"{minutes / reference:.2f}" if reference else "-"
        print(f"| {name} | {minutes:.1f} | {ratio} | {clean:.3f} | {pgd:.3f} | {strongest:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
