"""HopSkipJump (L2, untargeted) beside Foolbox's and ART's on the undefended MNIST reference CNN,
on the same test images, at query budgets of 1,000, 5,000 and 25,000 per image: the median L2
distance of the adversarials (over the images read correctly; an image an attack could not
break counts as infinitely far), the mean queries per image and the wall time.

Ours takes the budget itself (every model call of an image counted, the clean one included).
The peers run a number of iterations instead; a wrapper around the model counts the images each
of them sends, and for each budget a peer runs the largest iteration count whose counted
queries per image fit in the budget (starting from HopSkipJump's own schedule, 100 sqrt(t)
gradient samples at iteration t plus its searches, then one iteration more while it still
fits); the table gives the queries it actually made and the seconds of that last run. All three use the
paper's defaults: 100 initial gradient samples, at most 10,000, gamma 1, geometric step search.

Run: make bench-setup, then .venv/bin/python bench/hsj.py [--images N] [--budgets ...]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parents[1] / ".bench-peers"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from common import machine, reference_model, timed  # noqa: E402
from saddlepoint.attacks import HopSkipJumpMinimal  # noqa: E402


class Counted(nn.Module):
    """The model, counting the images sent to it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.images = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += len(x)
        return self.model(x.float())  # ART sends float64 arrays


def iterations_for(budget: int, search: int = 20) -> int:
    """The most iterations whose queries fit in ``budget`` by the paper's schedule: 100
    initial draws at most, a start search, then per iteration t: 100 sqrt(t) gradient samples
    plus about ``search`` step- and boundary-search queries."""
    spent, t = 100 + search, 0
    while True:
        cost = min(int(100 * math.sqrt(t + 1)), 10000) + search
        if spent + cost > budget:
            return max(t, 1)
        spent, t = spent + cost, t + 1


def medians(model, x, adversarial, y) -> tuple[float, float]:
    """(median L2 over the clean-correct images, share of them broken)."""
    with torch.no_grad():
        correct = model(x).argmax(1) == y
        fooled = model(adversarial).argmax(1) != y
    distance = (adversarial - x).flatten(1).norm(dim=1)
    distance[~fooled] = float("inf")
    picked = distance[correct]
    return float(picked.median()), float(fooled[correct].float().mean())


def ours(model, x, y, budget):
    counted = Counted(model)
    result, seconds = timed(lambda: HopSkipJumpMinimal(norm="l2", queries=budget)(counted, x, y))
    return result.adversarial, counted.images / len(x), seconds, "-"


def most_iterations(run, budget: int):
    """``run(steps)`` -> (adversarial, queries per image, seconds) at the most iterations whose
    queries fit in ``budget``: from the schedule's estimate, down while over, up while the next
    count still fits."""
    steps = iterations_for(budget)
    best = None
    while True:
        outcome = run(steps)
        fits = outcome[1] <= budget
        if fits:
            best = (*outcome, steps)
            steps += 1
        elif best is not None or steps == 1:
            return best or (*outcome, steps)
        else:
            steps -= 1


def foolbox(model, x, y, budget):
    import foolbox as fb

    def run(steps):
        counted = Counted(model).eval()
        fmodel = fb.PyTorchModel(counted, bounds=(0, 1))
        attack = fb.attacks.HopSkipJumpAttack(steps=steps, constraint="l2")
        (adversarial, _, _), seconds = timed(lambda: attack(fmodel, x, y, epsilons=None))
        return adversarial, counted.images / len(x), seconds

    return most_iterations(run, budget)


def art(model, x, y, budget):
    from art.attacks.evasion import HopSkipJump
    from art.estimators.classification import PyTorchClassifier

    def run(steps):
        counted = Counted(model).eval()
        classifier = PyTorchClassifier(
            model=counted,
            loss=nn.CrossEntropyLoss(),
            input_shape=tuple(x.shape[1:]),
            nb_classes=10,
            clip_values=(0.0, 1.0),
        )
        attack = HopSkipJump(classifier, norm=2, max_iter=steps, verbose=False)
        adversarial, seconds = timed(lambda: attack.generate(x.numpy()))
        return torch.from_numpy(np.asarray(adversarial)), counted.images / len(x), seconds

    return most_iterations(run, budget)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=25)
    parser.add_argument("--budgets", type=int, nargs="+", default=[1000, 5000, 25000])
    parser.add_argument("--skip", nargs="*", default=[], help="peers to leave out (foolbox, ART)")
    args = parser.parse_args()
    print(f"# {machine()}", flush=True)
    model, data, _ = reference_model()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = data.test.images[: args.images], data.test.labels[: args.images]
    print(f"# MNIST reference CNN, HopSkipJump L2 untargeted, first {args.images} test images")
    print(
        "| budget | attack | iterations | queries / image | median L2 | broken | seconds | x ours |"
    )
    print("|---|---|---|---|---|---|---|---|")
    runners = {"saddlepoint": ours, "foolbox": foolbox, "ART": art}
    for budget in args.budgets:
        base = None
        for name, run in runners.items():
            if name in args.skip:
                continue
            adversarial, spent, seconds, steps = run(model, x, y, budget)
            median, broken = medians(model, x, adversarial.float(), y)
            base = base or seconds
            print(
                f"| {budget} | {name} | {steps} | {spent:.0f} | {median:.3f} | {broken:.2f} | "
                f"{seconds:.1f} | {seconds / base:.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
