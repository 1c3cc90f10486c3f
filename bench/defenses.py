"""Issue 5's targets on MNIST, measured: adversarial training of the reference CNN and an honest
evaluation of it and of a quantized model.

1. Train mnist-cnn adversarially at Linf eps 0.3 ('fast' FGSM-RS by default, or PGD) and time it.
2. Evaluate on the test set: clean accuracy (10,000 images) and robust accuracy on the first
   --images under PGD-40 with 10 restarts, the APGD-CE + APGD-DLR ensemble (the cheap option)
   and the strongest evaluation (AutoAttack's attacks with APGD-DLR: the number to quote).
3. Train a model behind tanh:8 quantization; attack it naively and through BPDA.

Run: .venv/bin/python bench/defenses.py [--recipe fast|pgd] [--epochs N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine  # noqa: E402
from saddlepoint.attacks import PGD, build_attack  # noqa: E402
from saddlepoint.checkpoint import save_checkpoint  # noqa: E402
from saddlepoint.data import load_dataset  # noqa: E402
from saddlepoint.defenses import AdversarialTraining, bpda  # noqa: E402
from saddlepoint.train import TrainConfig, train_classifier  # noqa: E402

EPS = 0.3


def robust(model, x, y, images: int) -> dict[str, float]:
    x, y = x[:images], y[:images]
    pgd = PGD(eps=EPS, steps=40, step=0.01, restarts=10, early_stop=True)(model, x, y)
    ensemble = build_attack("apgd-ensemble", eps=EPS, early_stop=True)(model, x, y)
    strongest = build_attack("strongest", eps=EPS)(model, x, y)
    broken = pgd.success | ensemble.success | strongest.success
    return {
        "pgd40x10": pgd.metrics()["robust_accuracy"],
        "apgd": ensemble.metrics()["robust_accuracy"],
        "strongest": strongest.metrics()["robust_accuracy"],
        "worst": float(broken.logical_not().float().mean()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", choices=["fast", "pgd"], default="fast")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument(
        "--skip-quantized", action="store_true", help="only the adversarial-training part"
    )
    args = parser.parse_args()
    data = load_dataset("mnist")
    print(f"# {machine()}")
    if args.recipe == "fast":
        defense = AdversarialTraining("fgsm-rs", eps=EPS, warmup_epochs=2)
    else:
        defense = AdversarialTraining("pgd", eps=EPS, steps=10, step=0.05, warmup_epochs=2)
    start = time.perf_counter()
    trained = train_classifier(
        data,
        "mnist-cnn",
        TrainConfig(epochs=args.epochs, seed=0, device="cpu"),
        transform=defense,
        progress=False,
    )
    minutes = (time.perf_counter() - start) / 60
    metadata = {**trained.metadata, "defense": defense.config()}
    save_checkpoint(args.out / f"mnist-cnn-{args.recipe}-at.safetensors", trained.model, metadata)
    x, y = data.test.images, data.test.labels
    numbers = robust(trained.model, x, y, args.images)
    print(
        f"\nadversarial training ({args.recipe}, {args.epochs} epochs, eps {EPS}): {minutes:.1f} min"
    )
    print("| model | clean (10k) | PGD-40 x10 restarts | APGD-CE+DLR | strongest | worst of all |")
    print("|---|---|---|---|---|---|")
    print(
        f"| mnist-cnn {args.recipe} AT | {trained.test_metrics['accuracy']:.4f} | "
        f"{numbers['pgd40x10']:.4f} | {numbers['apgd']:.4f} | {numbers['strongest']:.4f} | "
        f"{numbers['worst']:.4f} |"
    )
    if args.skip_quantized:
        return 0

    quantized = train_classifier(
        data,
        "mnist-cnn",
        TrainConfig(epochs=2, seed=0, device="cpu"),
        model_args={"quantize": "tanh:8"},
        progress=False,
    )
    save_checkpoint(
        args.out / "mnist-cnn-quantized.safetensors", quantized.model, quantized.metadata
    )
    xs, ys = x[: args.images], y[: args.images]
    naive = PGD(eps=EPS, steps=40, step=0.01, early_stop=True)(quantized.model, xs, ys).metrics()[
        "robust_accuracy"
    ]
    with bpda(quantized.model):
        honest = PGD(eps=EPS, steps=40, step=0.01, early_stop=True)(
            quantized.model, xs, ys
        ).metrics()["robust_accuracy"]
    print("\n| model | clean (10k) | naive PGD-40 | BPDA PGD-40 |")
    print("|---|---|---|---|")
    print(
        f"| mnist-cnn behind tanh:8 quantization | {quantized.test_metrics['accuracy']:.4f} | {naive:.4f} | {honest:.4f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
