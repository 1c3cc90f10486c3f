"""Our robustness evaluations beside the reference AutoAttack, on the same models and images.

Models (trained here when missing, into runs/bench/): an undefended MNIST CNN, the demo's
fast-AT MNIST CNN (FGSM from a random start, 3 epochs: catastrophic overfitting makes it a
gradient-masking test), a PGD-AT MNIST CNN (Linf 0.3, 10 steps of 0.05, 8 epochs), a TRADES
MNIST CNN (beta 6, the same attack and epochs), the `--recipe mnist-robust` model (that TRADES
for 20 epochs in bf16, channels-last) and a PGD-AT Fashion-MNIST CNN (Linf 0.1, 10 steps of
0.025, 8 epochs), and a masked model: the undefended MNIST CNN behind a binarizer (1-bit
quantization, a zero input gradient everywhere: the audit's masked test model). Each is
attacked at its eps on the first --images test images by

  apgd-ensemble   APGD-CE then APGD-DLR (ours, the cheap option)
  apgd-strong     APGD-CE, APGD-T, APGD-DLR (ours)
  autoattack      APGD-CE, APGD-T, FAB-T, Square 5,000 (ours: AutoAttack 'standard')
  strongest       autoattack with APGD-DLR after APGD-CE, 5 restarts of each APGD run (ours:
                  every defense number's source)
  adaptive        APGD-CE, APGD-DLR, APGD-T over 3 targets; then APGD-CE x7 restarts on the
                  quarter of the survivors closest to the boundary, APGD-T over 9 targets and
                  Square 5,000 on the closest tenth (ours, cheaper)
  lean            a candidate for the one evaluation at a tenth of the reference's passes:
                  APGD-CE (50 steps); APGD-T over 3 targets (25 steps) on the closest half of
                  the survivors; APGD-DLR (50 steps, 2 restarts) on the closest quarter; APGD-T
                  over 9 targets (50 steps) on the closest 5%; Square 2,000 on the closest
                  tenth and on every survivor without an input gradient, then Square 10,000
                  on the gradient-free survivors left (bench-only)
  reference       the reference AutoAttack, version 'standard' (pyautoattack 0.2.0)

and the table gives robust accuracy, the points robust to each of ours that the reference
breaks, wall time, the time ratio to the reference in the same run, and the forward and backward
image-passes per image each made (counted by one hook on the model for ours and the reference
alike).

Every (model, evaluator, chunk of images) result is kept in runs/bench/autoattack/ as soon as it
is computed, so a run that is stopped resumes where it was; --fresh starts over.

Run: make bench-setup && .venv/bin/python bench/autoattack.py [--images 1000] [--models ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / ".bench-peers"))

from common import machine  # noqa: E402
from saddlepoint.attacks import (  # noqa: E402
    APGD,
    ATTACKS,
    APGDTargeted,
    EnsemblePreset,
    Square,
    build_attack,
    register_attack,
)
from saddlepoint.attacks.passes import counted_passes  # noqa: E402
from saddlepoint.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from saddlepoint.data import load_dataset  # noqa: E402
from saddlepoint.defenses import AdversarialTraining, Trades  # noqa: E402
from saddlepoint.fileio import write_text  # noqa: E402
from saddlepoint.models import QuantizedModel, parse_quantize  # noqa: E402
from saddlepoint.train import TrainConfig, train_classifier  # noqa: E402

OUT = Path("runs/bench")
CACHE = OUT / "autoattack"
CHUNK = 250

# name: (dataset, eps, defense builder or None, epochs, what it is)
MODELS: dict[str, tuple[str, float, Callable[[], AdversarialTraining] | None, int, str]] = {
    "mnist-plain": ("mnist", 0.3, None, 2, "undefended MNIST CNN (2 epochs)"),
    "mnist-fast-at": (
        "mnist",
        0.3,
        lambda: AdversarialTraining("fgsm-rs", eps=0.3, warmup_epochs=1),
        3,
        "fast-AT MNIST CNN (the demo's: FGSM-RS, 3 epochs)",
    ),
    "mnist-pgd-at": (
        "mnist",
        0.3,
        lambda: AdversarialTraining("pgd", eps=0.3, steps=10, step=0.05, warmup_epochs=2),
        8,
        "PGD-AT MNIST CNN (10 x 0.05, 8 epochs)",
    ),
    "mnist-trades": (
        "mnist",
        0.3,
        lambda: Trades(eps=0.3, steps=10, step=0.05, beta=6.0),
        8,
        "TRADES MNIST CNN (beta 6, 10 x 0.05, 8 epochs)",
    ),
    "mnist-robust": (
        "mnist",
        0.3,
        lambda: Trades(eps=0.3, steps=10, step=0.05, beta=6.0),
        20,
        "TRADES MNIST CNN, `saddlepoint train --recipe mnist-robust` (bf16, channels-last)",
    ),
    "fashion-pgd-at": (
        "fashion-mnist",
        0.1,
        lambda: AdversarialTraining("pgd", eps=0.1, steps=10, step=0.025, warmup_epochs=2),
        8,
        "PGD-AT Fashion-MNIST CNN (eps 0.1, 10 x 0.025, 8 epochs)",
    ),
}
# models made from another by a fixed input layer: name -> (base model, quantizer spec, what)
WRAPPED: dict[str, tuple[str, str, str]] = {
    "mnist-threshold": (
        "mnist-plain",
        "bits:1",
        "undefended MNIST CNN behind a binarizer (zero input gradient: masked)",
    ),
}
# training settings beyond the epochs, where a model has them (the recipe's)
TRAINING: dict[str, dict] = {
    "mnist-robust": {"precision": "bf16", "memory_format": "channels_last"}
}
OURS = ["apgd-ensemble", "apgd-strong", "autoattack", "strongest", "adaptive"]
OPTIONAL: list[str] = ["lean"]  # measured when registered

# Candidates for the one evaluation, registered in this process only until one is measured.
if "lean" not in ATTACKS:
    register_attack(
        "lean",
        EnsemblePreset(
            (APGD, {"loss": "ce", "steps": 50}),
            (APGDTargeted, {"target_classes": 3, "steps": 25}, 0.5),
            (APGD, {"loss": "dlr", "steps": 50, "restarts": 2}, 0.25),
            (APGDTargeted, {"target_classes": 9, "steps": 50}, 0.05),
            (Square, {"queries": 2000}, 0.1),
            (Square, {"queries": 10000}, 0.0),
        ),
        {"early_stop": True},
        "bench candidate: the one evaluation at a tenth of the reference's passes",
    )


def prepare(name: str):
    """The model ``name``: loaded from runs/bench/, or trained and saved there first (a wrapped
    model is its base model behind its input layer)."""
    if name in WRAPPED:
        base, spec, _ = WRAPPED[name]
        model, data = prepare(base)
        return QuantizedModel(parse_quantize(spec), model).eval(), data
    dataset, _, defense, epochs, _ = MODELS[name]
    path = OUT / f"{name}.safetensors"
    data = load_dataset(dataset)
    if not path.is_file():
        print(f"training {name} ({epochs} epochs)...", flush=True)
        transform = defense() if defense else None
        result = train_classifier(
            data,
            "mnist-cnn",
            TrainConfig(epochs=epochs, seed=0, device="cpu", **TRAINING.get(name, {})),
            transform=transform,
            progress=False,
        )
        metadata = dict(result.metadata)
        if transform is not None:
            metadata["defense"] = transform.config()
        save_checkpoint(path, result.model, metadata)
    model, _ = load_checkpoint(path)
    return model.eval(), data


def reference_robust(model, x, y, eps: float) -> torch.Tensor:
    from pyautoattack import AutoAttack  # the bench-only peer, never a runtime dependency

    adversary = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=0, device="cpu")
    adversary.verbose = False
    adversary.logger.disabled = True
    adv, _ = adversary.run_standard_evaluation(x, y, batch_size=CHUNK)
    with torch.no_grad():
        inside = (adv - x).abs().flatten(1).amax(dim=1) <= eps + 1e-5
        return (model(adv).argmax(dim=1) == y) | ~inside


def ours_robust(name: str, model, x, y, eps: float) -> torch.Tensor:
    result = build_attack(name, eps=eps)(model, x, y)
    return result.predictions == result.labels


def settings_digest(evaluator: str) -> str:
    """A short digest of what an evaluator runs, so a cached chunk is reused only while its
    settings are unchanged (a preset edited since is recomputed, never mixed with old chunks)."""
    if evaluator == "reference":
        text = "pyautoattack 0.2.0, version standard, seed 0"
    else:
        entry = ATTACKS[evaluator]
        revision = getattr(entry.builder, "revision", 1)
        text = f"{entry.builder!r} {sorted(entry.preset.items())!r} {revision}"
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def evaluate_chunk(
    model_name: str, evaluator: str, model, x, y, eps: float, start: int, fresh: bool
) -> dict | None:
    """Robust mask and seconds of one evaluator on images start..start+CHUNK, from the cache
    when it is there (None with --report-only when it is not)."""
    stop = min(start + CHUNK, len(x))
    path = CACHE / f"{model_name}--{evaluator}-{settings_digest(evaluator)}--{start}-{stop}.json"
    if path.is_file() and not fresh:
        return json.loads(path.read_text())
    if REPORT_ONLY:
        return None
    began = time.perf_counter()
    xb, yb = x[start:stop], y[start:stop]
    with counted_passes(model) as passes:  # the same hook counts ours and the reference
        if evaluator == "reference":
            for p in model.parameters():
                p.requires_grad_(False)
            robust = reference_robust(model, xb, yb, eps)
        else:
            robust = ours_robust(evaluator, model, xb, yb, eps)
    record = {
        "robust": [bool(v) for v in robust.tolist()],
        "seconds": time.perf_counter() - began,
        "forward": passes.forward,
        "backward": passes.backward,
    }
    write_text(path, json.dumps(record))
    share = sum(record["robust"]) / len(record["robust"])
    print(
        f"  {model_name} {evaluator} images {start}-{stop}: {share:.3f} robust, "
        f"{record['seconds']:.0f} s",
        flush=True,
    )
    return record


REPORT_ONLY = False


def _total(values) -> int | None:
    """The sum of the chunks' counts, or None when a chunk has none."""
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def _per_image(result: dict, images: int) -> str:
    if result["forward"] is None:
        return "not counted"
    return f"{result['forward'] / images:,.0f} / {result['backward'] / images:,.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1000, help="test images per model")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=sorted([*MODELS, *WRAPPED]),
        default=[*MODELS, *WRAPPED],
        help="which models",
    )
    parser.add_argument(
        "--evaluators", nargs="+", default=None, help="which evaluators (default: all)"
    )
    parser.add_argument("--fresh", action="store_true", help="ignore cached results")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="compute nothing: the table over the chunks every evaluator has finished",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    global REPORT_ONLY
    REPORT_ONLY = args.report_only
    torch.manual_seed(0)
    evaluators = args.evaluators or ([*OURS, *(e for e in OPTIONAL if e in ATTACKS), "reference"])
    lines = [
        f"# {machine()}; first {args.images} test images per model, Linf",
        "",
        "| model | eps | clean | "
        + " | ".join(evaluators)
        + " | robust to ours, broken by the reference | seconds ("
        + ", ".join(evaluators)
        + ") | time / reference | forward / backward passes per image |",
        "|---" * (7 + len(evaluators)) + "|",
    ]
    for name in args.models:
        model, data = prepare(name)
        eps = MODELS[WRAPPED[name][0] if name in WRAPPED else name][1]
        x, y = data.test.images[: args.images], data.test.labels[: args.images]
        # chunk by chunk, every evaluator on each chunk, so a stopped run leaves a fair table
        chunks: list[dict[str, dict]] = []
        for start in range(0, len(x), CHUNK):
            done = {
                e: evaluate_chunk(name, e, model, x, y, eps, start, args.fresh) for e in evaluators
            }
            if any(record is None for record in done.values()):
                break
            chunks.append(done)  # type: ignore[arg-type]
        if not chunks:
            continue
        results = {
            e: {
                "robust": torch.cat([torch.tensor(c[e]["robust"]) for c in chunks]),
                "seconds": sum(c[e]["seconds"] for c in chunks),
                # image-passes; chunks cached before passes were counted have none (None)
                "forward": _total(c[e].get("forward") for c in chunks),
                "backward": _total(c[e].get("backward") for c in chunks),
            }
            for e in evaluators
        }
        n = len(results[evaluators[0]]["robust"])
        x, y = x[:n], y[:n]
        with torch.no_grad():
            clean = float((model(x).argmax(dim=1) == y).float().mean())
        accuracy = {e: float(r["robust"].float().mean()) for e, r in results.items()}
        ref = results.get("reference")
        missed = (
            ", ".join(
                f"{e} {int((r['robust'] & ~ref['robust']).sum())}"
                for e, r in results.items()
                if e != "reference"
            )
            if ref
            else "-"
        )
        ratios = (
            ", ".join(
                f"{e} {r['seconds'] / ref['seconds']:.2f}"
                for e, r in results.items()
                if e != "reference"
            )
            if ref and ref["seconds"] > 0
            else "-"
        )
        passes = ", ".join(f"{e} {_per_image(results[e], len(x))}" for e in evaluators)
        lines.append(
            f"| {name} ({len(x)} images) | {eps:g} | {clean:.3f} | "
            + " | ".join(f"{accuracy[e]:.3f}" for e in evaluators)
            + f" | {missed} | "
            + ", ".join(f"{results[e]['seconds']:.0f}" for e in evaluators)
            + f" | {ratios} | {passes} |"
        )
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        write_text(args.out, table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
