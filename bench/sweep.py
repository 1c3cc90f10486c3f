"""Time a reduced seed-000 grid four ways: our engine (float32, contiguous: the default, rows
reproducible to the bit), our engine with bf16 gradient passes and the measured memory layout,
our PGD one configuration at a time, and torchattacks one at a time; print ratios, how far the
bf16 rows are from the float32 ones, and the projected cost of the full grid.

Grid (MNIST, Linf): eps {0.1, 0.2, 0.3}, step {0.01, 0.02, 0.04}, n = 1..8, losses CE and MSE,
random start or not: 288 configurations on the first --images test images.
Run: .venv/bin/python bench/sweep.py [--images 200] [--skip-peers]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parents[1] / ".bench-peers"))

from common import REFERENCE, machine, reference_model, timed  # noqa: E402
from saddlepoint.attacks import PGD  # noqa: E402
from saddlepoint.experiments import load_spec, run_experiment  # noqa: E402
from saddlepoint.experiments.store import ResultsStore  # noqa: E402

GRID = {
    "eps": [0.1, 0.2, 0.3],
    "step": [0.01, 0.02, 0.04],
    "steps": list(range(1, 9)),
    "loss": ["ce", "mse"],
    "random_start": [True, False],
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()
    model, data, _ = reference_model()
    model.eval()
    x, y = data.test.images[: args.images], data.test.labels[: args.images]
    configs = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]

    def engine(fixed: dict) -> tuple[float, dict[tuple, float]]:
        """Seconds of one engine run of the grid and its accuracy per configuration."""
        with tempfile.TemporaryDirectory() as folder:
            spec_path = Path(folder) / "grid.yaml"
            spec = {
                "name": "reduced-grid",
                "checkpoints": [str(REFERENCE.resolve())],
                "dataset": {"split": "test", "limit": args.images},
                "attack": "pgd",
                "grid": GRID,
                "fixed": {"seed": 0, **fixed},
            }
            spec_path.write_text(yaml.safe_dump(spec))
            store = Path(folder) / "r.sqlite"
            _, seconds = timed(lambda: run_experiment(load_spec(spec_path), store, progress=False))
            with ResultsStore(store) as results:
                accuracy = {
                    tuple(row[f"param_{k}"] for k in GRID): row["accuracy"]
                    for row in results.rows()
                }
        return seconds, accuracy

    t_engine, fp32 = engine({})
    t_fast, bf16 = engine({"precision": "bf16", "memory_format": "auto"})
    gaps = [100 * (bf16[key] - fp32[key]) for key in fp32]

    def one_by_one():
        for c in configs:
            PGD(seed=0, memory_format="contiguous", **c)(model, x, y)

    _, t_ours = timed(one_by_one)
    rows = [
        ("saddlepoint engine (shared step counts, stacked settings)", t_engine),
        ("saddlepoint engine, bf16 gradient passes, measured layout", t_fast),
        ("saddlepoint PGD, one by one", t_ours),
    ]
    if not args.skip_peers:
        import torchattacks

        def peer():  # torchattacks has no MSE loss: its CE runs in those slots (timing only)
            for c in configs:
                attack = torchattacks.PGD(
                    model,
                    eps=c["eps"],
                    alpha=c["step"],
                    steps=c["steps"],
                    random_start=c["random_start"],
                )
                attack(x, y)

        _, t_peer = timed(peer)
        rows.append(("torchattacks PGD, one by one", t_peer))
    passes = sum(c["steps"] for c in configs) * len(x)
    print(f"# {machine()}")
    print(f"reduced seed-000 grid: {len(configs)} configurations on {len(x)} MNIST test images")
    print("| run | seconds | x engine |")
    print("|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.1f} | {t / t_engine:.2f} |")
    print(
        f"bf16 rows minus float32 rows, robust accuracy over the {len(gaps)} configurations: "
        f"mean {sum(gaps) / len(gaps):+.2f} points, largest above {max(gaps):+.2f}, "
        f"largest below {min(gaps):+.2f}"
    )
    per_pass = t_ours / passes
    full = (
        9 * 9 * 2 * 2 * 2 * 8 * 10000
    )  # eps x eta x loss x start x norm x (8 steps shared) x images
    print(f"cost of one forward+backward pass per image (one by one): {1000 * per_pass:.3f} ms")
    print(
        f"projected engine time for seed 000's full grid (2,592 configurations, 10,000 images): {full * per_pass / 3600:.1f} h"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
