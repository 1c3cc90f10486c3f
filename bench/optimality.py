"""AttackBench's local optimality for our attacks and the peers' implementations of the same.

Local optimality (Cinà et al., AAAI 2025) compares attacks by their robust-accuracy-versus-radius
curves on one model: with d_a(x) the smallest Linf perturbation attack a found for image x (0 for
an image misclassified already, infinity where it found none), the curve is the share of images
with d_a(x) > eps. Against the best curve any attack reached (d*(x) = min over attacks) and up to
M, the largest finite best distance:

    optimality(a) = 1 - (A_a - A*) / (clean * M - A*),   A = integral from 0 to M of the curve

(for a step curve, A = mean over images of min(d(x), M)): 1 for the best curve, 0 for an attack
that breaks nothing. Every attack runs under one budget of forward + backward passes per image
(--budget, AttackBench's MNIST setting 2,000), counted by one hook on the model for ours and the
peers alike: a fixed-radius attack runs at the largest radius, then in a binary search per image
(--rounds calls per image in all), with the steps per call the budget allows (measured on a
probe); a minimal-norm attack runs once with the steps the budget allows.

Attacks (Linf): FGSM, BIM, PGD, APGD-CE, APGD-DLR, APGD-T, FAB (fixed radius) and DeepFool, FAB
(minimal norm), each as ours, torchattacks', Foolbox's, ART's and the reference AutoAttack's where
they have it. Models: bench/autoattack.py's undefended, PGD-AT and TRADES MNIST CNNs (trained
into runs/bench/ when missing). Every (model, attack) result is kept in runs/bench/optimality/ as
soon as it is computed, so a stopped run resumes.

Run: make bench-setup && .venv/bin/python bench/optimality.py [--images 100] [--models ...]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parents[1] / ".bench-peers"))
warnings.filterwarnings("ignore")

from autoattack import prepare  # noqa: E402  (bench/autoattack.py: its models)
from common import machine  # noqa: E402
from saddlepoint.attacks import ATTACKS as ATTACKS_REGISTRY  # noqa: E402
from saddlepoint.attacks import build_attack  # noqa: E402
from saddlepoint.attacks.passes import counted_passes  # noqa: E402
from saddlepoint.fileio import write_text  # noqa: E402

CACHE = Path("runs/bench/optimality")
MODELS = ["mnist-plain", "mnist-pgd-at", "mnist-trades"]
PROBE = 8  # images the steps-per-pass calibration runs on

# A fixed-radius attack: (model, x, y, eps, steps) -> adversarial images.
# A minimal-norm attack: (model, x, y, None, steps) -> adversarial images.
Run = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, float | None, int], torch.Tensor]


def ours(name: str, **settings) -> Run:
    accepted = ATTACKS_REGISTRY[name].arguments()
    linf = {"norm": "linf"} if "norm" in accepted else {}  # some default to L2 (DeepFool, FAB)

    def run(model, x, y, eps, steps):
        radius = {} if eps is None else {"eps": eps}
        steps_kw = {"steps": steps} if "steps" in accepted else {}
        attack = build_attack(name, **linf, **radius, **steps_kw, **settings)
        return attack(model, x, y).adversarial

    return run


def torchattacks_run(kind: str) -> Run:
    def run(model, x, y, eps, steps):
        import torchattacks

        if kind == "fgsm":
            attack = torchattacks.FGSM(model, eps=eps)
        elif kind == "bim":
            attack = torchattacks.BIM(model, eps=eps, alpha=eps / 4, steps=steps)
        elif kind == "pgd":
            attack = torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=steps)
        elif kind == "apgd-ce":
            attack = torchattacks.APGD(model, eps=eps, steps=steps, loss="ce")
        elif kind == "apgd-dlr":
            attack = torchattacks.APGD(model, eps=eps, steps=steps, loss="dlr")
        elif kind == "apgd-t":
            attack = torchattacks.APGDT(model, eps=eps, steps=steps, n_classes=10)
        else:  # fab
            attack = torchattacks.FAB(model, eps=eps, steps=steps, n_classes=10)
        return attack(x, y)

    return run


def foolbox_run(kind: str) -> Run:
    def run(model, x, y, eps, steps):
        import foolbox as fb

        fmodel = fb.PyTorchModel(model, bounds=(0, 1))
        if kind == "deepfool":
            attack = fb.attacks.LinfDeepFoolAttack(steps=steps, candidates=10, overshoot=0.02)
            return attack(fmodel, x, y, epsilons=None)[0]
        attack = {
            "fgsm": lambda: fb.attacks.LinfFastGradientAttack(random_start=False),
            "bim": lambda: fb.attacks.LinfBasicIterativeAttack(rel_stepsize=0.25, steps=steps),
            "pgd": lambda: fb.attacks.LinfPGD(rel_stepsize=0.25, steps=steps),
        }[kind]()
        return attack(fmodel, x, y, epsilons=eps)[1]

    return run


def art_run(kind: str) -> Run:
    def run(model, x, y, eps, steps):
        from art.attacks import evasion
        from art.estimators.classification import PyTorchClassifier

        classifier = PyTorchClassifier(
            model=model,
            loss=torch.nn.CrossEntropyLoss(),
            input_shape=tuple(x.shape[1:]),
            nb_classes=10,
            clip_values=(0.0, 1.0),
        )
        common = {"norm": np.inf, "eps": eps, "batch_size": 500, "verbose": False}
        if kind == "fgsm":
            attack = evasion.FastGradientMethod(classifier, norm=np.inf, eps=eps, batch_size=500)
        elif kind == "bim":
            attack = evasion.BasicIterativeMethod(
                classifier, eps=eps, eps_step=eps / 4, max_iter=steps, batch_size=500
            )
        elif kind == "pgd":
            attack = evasion.ProjectedGradientDescent(
                classifier, eps_step=eps / 4, max_iter=steps, num_random_init=1, **common
            )
        else:  # apgd-ce, apgd-dlr
            loss = "cross_entropy" if kind == "apgd-ce" else "difference_logits_ratio"
            attack = evasion.AutoProjectedGradientDescent(
                classifier,
                eps_step=2 * eps,
                max_iter=steps,
                nb_random_init=1,
                loss_type=loss,
                **common,
            )
        return torch.from_numpy(attack.generate(x.numpy())).float()

    return run


def reference_run(kind: str) -> Run:
    def run(model, x, y, eps, steps):
        from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
        from pyautoattack.fab_pt import FABAttack_PT

        if kind in ("apgd-ce", "apgd-dlr"):
            loss = "ce" if kind == "apgd-ce" else "dlr"
            attack = APGDAttack(model, n_iter=steps, norm="Linf", eps=eps, loss=loss, device="cpu")
        elif kind == "apgd-t":
            attack = APGDAttack_targeted(model, n_iter=steps, norm="Linf", eps=eps, device="cpu")
            attack.n_target_classes = 9
        else:  # fab
            attack = FABAttack_PT(model, norm="Linf", n_iter=steps, eps=eps, device="cpu")
        adv = attack.perturb(x, y)
        return adv if isinstance(adv, torch.Tensor) else adv[0]

    return run


# attack -> implementation -> (runner, minimal?)
ATTACKS: dict[str, dict[str, tuple[Run, bool]]] = {
    "fgsm": {
        "ours": (ours("fgsm"), False),
        "torchattacks": (torchattacks_run("fgsm"), False),
        "foolbox": (foolbox_run("fgsm"), False),
        "ART": (art_run("fgsm"), False),
    },
    "bim": {
        "ours": (ours("bim"), False),
        "torchattacks": (torchattacks_run("bim"), False),
        "foolbox": (foolbox_run("bim"), False),
        "ART": (art_run("bim"), False),
    },
    "pgd": {
        "ours": (ours("pgd"), False),
        "torchattacks": (torchattacks_run("pgd"), False),
        "foolbox": (foolbox_run("pgd"), False),
        "ART": (art_run("pgd"), False),
    },
    "apgd-ce": {
        "ours": (ours("apgd"), False),
        "torchattacks": (torchattacks_run("apgd-ce"), False),
        "ART": (art_run("apgd-ce"), False),
        "reference": (reference_run("apgd-ce"), False),
    },
    "apgd-dlr": {
        "ours": (ours("apgd-dlr"), False),
        "torchattacks": (torchattacks_run("apgd-dlr"), False),
        "ART": (art_run("apgd-dlr"), False),
        "reference": (reference_run("apgd-dlr"), False),
    },
    "apgd-t": {
        "ours": (ours("apgd-t"), False),
        "torchattacks": (torchattacks_run("apgd-t"), False),
        "reference": (reference_run("apgd-t"), False),
    },
    "fab": {
        "ours": (ours("fab"), False),
        "torchattacks": (torchattacks_run("fab"), False),
        "reference": (reference_run("fab"), False),
    },
    "fab-minimal": {"ours": (ours("fab-minimal"), True)},
    "deepfool": {
        "ours": (ours("deepfool"), True),
        "foolbox": (foolbox_run("deepfool"), True),
    },
}


def linf(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).flatten(1).abs().amax(dim=1)


@torch.no_grad()
def wrong(model, x, y) -> torch.Tensor:
    return model(x).argmax(dim=1) != y


def passes_per_step(run: Run, model, x, y, eps: float | None) -> float:
    """Forward + backward passes per image one step of ``run`` costs, measured on a probe as
    the difference between 3 and 1 steps (the fixed costs of a call cancel). Fixed-radius
    attacks are probed at a radius too small to break anything, so no image stops early."""
    counts = []
    for steps in (1, 3):
        with counted_passes(model) as passes:
            run(model, x[:PROBE], y[:PROBE], eps, steps)
        counts.append((passes.forward + passes.backward) / PROBE)
    return max((counts[1] - counts[0]) / 2, 0.5)


def distances(run: Run, minimal: bool, model, x, y, max_eps: float, rounds: int, budget: int):
    """Per image: the smallest Linf distance the attack found (inf: none), and its cost.

    A minimal-norm attack runs once. A fixed-radius attack runs at ``max_eps``, then a binary
    search per image over ``rounds`` - 1 more rounds: each image is attacked at the middle of
    its bracket (images sharing a middle in one call), the bracket's top moving down where the
    attack succeeds and its bottom up where it fails; the distance is the smallest norm of a
    successful adversarial."""
    found = torch.full((len(y),), math.inf)
    found[wrong(model, x, y)] = 0.0
    start = time.perf_counter()
    per_step = passes_per_step(run, model, x, y, None if minimal else max_eps / 1000)
    steps = max(1, min(10_000, int((budget if minimal else budget / rounds) // per_step)))

    def attack(index: torch.Tensor, eps: float | None) -> torch.Tensor:
        adv = run(model, x[index], y[index], eps, steps)
        size = linf(adv, x[index])
        ok = wrong(model, adv, y[index]) & (size <= (eps or math.inf) + 1e-5)
        found[index[ok]] = torch.minimum(found[index[ok]], size[ok])
        return ok

    with counted_passes(model) as passes:
        todo = found.isinf().nonzero().squeeze(1)
        if minimal:
            attack(todo, None)
        elif todo.numel():
            low = torch.zeros(len(y))
            high = torch.full((len(y),), max_eps)
            attack(todo, max_eps)
            for _ in range(rounds - 1):
                active = (found.isfinite() & (found > 0)).nonzero().squeeze(1)
                middles = (low[active] + high[active]) / 2
                for middle in middles.unique().tolist():
                    group = active[middles == middle]
                    ok = attack(group, middle)
                    high[group[ok]] = middle
                    low[group[~ok]] = middle
    return {
        "distances": found.tolist(),
        "steps": steps,
        "passes_per_image": (passes.forward + passes.backward) / len(y),
        "seconds": time.perf_counter() - start,
    }


def optimality(d: torch.Tensor, best: torch.Tensor) -> float:
    """AttackBench's local optimality of distances ``d`` against the best ``best``."""
    finite = best[best.isfinite()]
    reach = float(finite.max()) if finite.numel() else 0.0
    if reach <= 0:
        return 1.0
    area = float(d.clamp(max=reach).mean())
    best_area = float(best.clamp(max=reach).mean())
    worst = float((best > 0).float().mean()) * reach
    if worst - best_area <= 0:
        return 1.0
    return 1.0 - (area - best_area) / (worst - best_area)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--budget", type=int, default=2000, help="fwd+bwd passes per image")
    parser.add_argument(
        "--rounds", type=int, default=8, help="attack calls per image of the radius search"
    )
    parser.add_argument("--max-eps", type=float, default=0.5, help="the search's largest radius")
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--attacks", nargs="+", default=list(ATTACKS), choices=list(ATTACKS))
    parser.add_argument("--fresh", action="store_true", help="ignore cached results")
    args = parser.parse_args()
    lines = [
        f"# {machine()}; first {args.images} MNIST test images, Linf, budget {args.budget} "
        f"forward + backward passes per image, radius search of {args.rounds} calls up to "
        f"{args.max_eps:g}",
        "",
        "| model | attack | implementation | optimality | robust at 0.3 | steps | passes / image |",
        "|---|---|---|---|---|---|---|",
    ]
    for model_name in args.models:
        model, data = prepare(model_name)
        for p in model.parameters():
            p.requires_grad_(False)
        x, y = data.test.images[: args.images], data.test.labels[: args.images]
        results: dict[tuple[str, str], dict] = {}
        for attack in args.attacks:
            for implementation, (run, minimal) in ATTACKS[attack].items():
                tag = f"{args.images}-{args.budget}-{args.rounds}-{args.max_eps:g}"
                path = CACHE / f"{model_name}--{attack}--{implementation}--{tag}.json"
                if path.is_file() and not args.fresh:
                    results[attack, implementation] = json.loads(path.read_text())
                    continue
                try:
                    record = distances(
                        run, minimal, model, x, y, args.max_eps, args.rounds, args.budget
                    )
                except Exception as error:  # a peer that cannot run this attack says why
                    record = {"error": f"{type(error).__name__}: {error}"}
                write_text(path, json.dumps(record))
                results[attack, implementation] = record
                print(f"  {model_name} {attack} {implementation}: done", flush=True)
        found = {k: torch.tensor(v["distances"]) for k, v in results.items() if "distances" in v}
        best = torch.stack(list(found.values())).amin(dim=0)
        for (attack, implementation), record in results.items():
            if "error" in record:
                lines.append(f"| {model_name} | {attack} | {implementation} | {record['error']} |")
                continue
            d = found[attack, implementation]
            lines.append(
                f"| {model_name} | {attack} | {implementation} | {optimality(d, best):.3f} | "
                f"{float((d > 0.3).float().mean()):.3f} | {record['steps']} | "
                f"{record['passes_per_image']:.0f} |"
            )
        print("\n".join(lines[-len(results) :]), flush=True)
    print("\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
