"""Issue 43's certification row: randomized smoothing on MNIST at sigma 0.25 and 0.5.

For each sigma a base model (mnist-cnn) is trained under Gaussian noise of that sigma (the
`saddlepoint train --defense noise --noise-kind gaussian --noise-scale SIGMA` recipe, --epochs
epochs, saved into runs/bench/), then Cohen et al.'s CERTIFY runs on the first --images test
images with n0 = 100, n = --n and alpha = 0.001. The table gives certified accuracy at L2 radii
0, 0.5, 1.0, 1.5 and 2.0, the share abstained, and the seconds per image. Every chunk of
--chunk images is kept in runs/bench/certify/ as soon as it is certified (image i's noise is
seeded by its index, so chunks are the images' own results), so a stopped run resumes; --fresh
starts over.

Cohen, Rosenfeld and Kolter (2019) report CIFAR-10 and ImageNet only: there is no MNIST figure
from the procedure's own paper to compare with.

At n = 100,000 the work is 10^5 forward passes per image: on this 2-core CPU the reference
MNIST CNN classifies about 1,000-4,000 noisy images a second, 25-100 s per image, so the full
500-image run is a GPU job (--device cuda); --n and --images scale it down on a CPU.

Run: .venv/bin/python bench/certify.py [--images 500] [--n 100000] [--sigmas 0.25 0.5]
     [--model mnist-cnn] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine  # noqa: E402
from saddlepoint.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from saddlepoint.data import load_dataset  # noqa: E402
from saddlepoint.defenses import NoiseTraining  # noqa: E402
from saddlepoint.evaluate.smoothing import SmoothedClassifier, radius_from_counts  # noqa: E402
from saddlepoint.fileio import write_text  # noqa: E402
from saddlepoint.train import TrainConfig, train_classifier  # noqa: E402

OUT = Path("runs/bench")
CACHE = OUT / "certify"
RADII = (0.0, 0.5, 1.0, 1.5, 2.0)
N0, ALPHA = 100, 0.001


def base_model(
    data, sigma: float, epochs: int, architecture: str = "mnist-cnn", device: str = "cpu"
):
    """``architecture`` trained under Gaussian noise of ``sigma`` (every image of every batch)."""
    path = OUT / f"mnist-{architecture}-noise-{sigma:g}-{epochs}e.safetensors"
    if not path.is_file():
        print(f"training the base model at sigma {sigma:g} ({epochs} epochs)...", flush=True)
        defense = NoiseTraining("gaussian", scale=sigma)
        config = TrainConfig(epochs=epochs, seed=0, device=device)
        result = train_classifier(data, architecture, config, transform=defense, progress=False)
        save_checkpoint(path, result.model, {**result.metadata, "defense": defense.config()})
    model, meta = load_checkpoint(path)
    return model.eval(), meta


def certify_chunk(
    model, data, sigma: float, n: int, start: int, stop: int, fresh: bool, tag: str
) -> dict:
    """Per image of start..stop: label, prediction, count, bound and radius (cached)."""
    path = CACHE / f"{tag}-sigma{sigma:g}-n{n}-{start}-{stop}.json"
    if path.is_file() and not fresh:
        return json.loads(path.read_text())
    x, y = data.test.images[start:stop], data.test.labels[start:stop]
    smoothed = SmoothedClassifier(model, sigma, batch_size=2000, seed=0)
    result = smoothed.certify(x, n0=N0, n=n, alpha=ALPHA, first_index=start)
    record = {
        "seconds": result.seconds,
        "images": [
            {
                "label": int(y[i]),
                "prediction": int(result.prediction[i]),
                "count": int(result.count[i]),
                "p_lower": float(result.p_lower[i]),
                "radius": float(result.radius[i]),
            }
            for i in range(len(y))
        ],
    }
    for image in record["images"]:  # never above the procedure's own formula from the counts
        assert image["radius"] <= radius_from_counts(image["count"], n, ALPHA, sigma)
    write_text(path, json.dumps(record))
    print(f"  sigma {sigma:g} images {start}-{stop}: {result.seconds:.0f} s", flush=True)
    return record


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.25, 0.5])
    parser.add_argument("--epochs", type=int, default=10, help="base model training epochs")
    parser.add_argument("--chunk", type=int, default=25)
    parser.add_argument("--model", default="mnist-cnn", help="base model architecture")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (n passes per image)")

    parser.add_argument("--fresh", action="store_true", help="ignore cached chunks")
    args = parser.parse_args()
    data = load_dataset("mnist")
    lines = [
        f"# {machine()}; MNIST, first {args.images} test images, n0 {N0}, n {args.n}, "
        f"alpha {ALPHA}",
        "",
        "| sigma | base model clean acc | "
        + " | ".join(f"certified at {r:g}" for r in RADII)
        + " | abstained | s / image |",
        "|---" * (4 + len(RADII)) + "|",
    ]
    for sigma in args.sigmas:
        model, meta = base_model(data, sigma, args.epochs, args.model, args.device)
        model = model.to(args.device)
        tag = f"{args.model}-{args.epochs}e"
        images, seconds = [], 0.0
        began = time.perf_counter()
        for start in range(0, args.images, args.chunk):
            stop = min(start + args.chunk, args.images)
            chunk = certify_chunk(model, data, sigma, args.n, start, stop, args.fresh, tag)
            images += chunk["images"]
            seconds += chunk["seconds"]
        total = len(images)
        certified = [
            sum(1 for i in images if i["prediction"] == i["label"] and i["radius"] >= r) / total
            for r in RADII
        ]
        abstained = sum(1 for i in images if i["prediction"] < 0) / total
        clean = meta["metrics"]["test"]["accuracy"]
        lines.append(
            f"| {sigma:g} | {clean:.4f} | "
            + " | ".join(f"{c:.3f}" for c in certified)
            + f" | {abstained:.3f} | {seconds / total:.2f} |"
        )
        print(lines[-1], f"({time.perf_counter() - began:.0f} s this run)", flush=True)
    print("\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
