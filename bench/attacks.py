"""Time our attacks against torchattacks, Foolbox and ART on one model, in one run.

Model: the reference MNIST CNN (Conv32-Conv64-FC128, 2 epochs of Adam). Images: the first
--images test images (1,000 by default; DeepFool and CW use the first --minimal-images).
Floor: a bare loop of 40 forward+backward passes w.r.t. the input over batches of 500.
Prints tables of time ratios, robust accuracy and median norms, and the targets they meet.

Run: make bench   (installs the peers into .bench-peers/ first)
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parents[1] / ".bench-peers"))
warnings.filterwarnings("ignore")

from common import floor_loop, machine, reference_model, timed  # noqa: E402
from saddlepoint.attacks import PGD, CarliniWagnerL2, DeepFool  # noqa: E402
from saddlepoint.attacks.runtime import plan_execution  # noqa: E402
from saddlepoint.modes import evaluating  # noqa: E402

EPS, STEP, STEPS = 0.3, 0.01, 40


def peers_pgd(model, x, y):
    """Robust accuracy and seconds of each peer's PGD-40 with our settings."""
    out = {}
    import torchattacks

    attack = torchattacks.PGD(model, eps=EPS, alpha=STEP, steps=STEPS, random_start=True)
    adv, t = timed(
        lambda: torch.cat([attack(x[i : i + 500], y[i : i + 500]) for i in range(0, len(x), 500)])
    )
    out["torchattacks"] = (_accuracy(model, adv, y), t)

    import foolbox as fb

    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    attack = fb.attacks.LinfPGD(abs_stepsize=STEP, steps=STEPS, random_start=True)

    def run_foolbox():
        return torch.cat(
            [
                attack(fmodel, x[i : i + 500], y[i : i + 500], epsilons=EPS)[1]
                for i in range(0, len(x), 500)
            ]
        )

    adv, t = timed(run_foolbox)
    out["foolbox"] = (_accuracy(model, adv, y), t)

    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=10,
        clip_values=(0.0, 1.0),
    )
    attack = ProjectedGradientDescent(
        classifier,
        norm=np.inf,
        eps=EPS,
        eps_step=STEP,
        max_iter=STEPS,
        batch_size=500,
        num_random_init=1,
        verbose=False,
    )
    adv, t = timed(lambda: torch.from_numpy(attack.generate(x.numpy())))
    out["ART"] = (_accuracy(model, adv, y), t)
    return out


def peers_deepfool(model, x, y):
    """Success rate, median L2 and seconds of each peer's DeepFool (L2, 50 steps)."""
    out = {}
    import foolbox as fb

    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    attack = fb.attacks.L2DeepFoolAttack(steps=50, candidates=10, overshoot=0.02)
    adv, t = timed(lambda: attack(fmodel, x, y, epsilons=None)[0])
    out["foolbox"] = (*_minimal(model, x, adv, y), t)

    import torchattacks

    attack = torchattacks.DeepFool(model, steps=50, overshoot=0.02)
    adv, t = timed(lambda: attack(x, y))
    out["torchattacks"] = (*_minimal(model, x, adv, y), t)

    from art.attacks.evasion import DeepFool as ArtDeepFool
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=10,
        clip_values=(0.0, 1.0),
    )
    attack = ArtDeepFool(
        classifier, max_iter=50, nb_grads=10, epsilon=0.02, batch_size=100, verbose=False
    )
    adv, t = timed(lambda: torch.from_numpy(attack.generate(x.numpy())))
    out["ART"] = (*_minimal(model, x, adv, y), t)
    return out


@torch.no_grad()
def _accuracy(model, adv, y) -> float:
    model.eval()
    return float((model(adv).argmax(1) == y).float().mean())


@torch.no_grad()
def _minimal(model, x, adv, y) -> tuple[float, float]:
    model.eval()
    correct = model(x).argmax(1) == y
    fooled = (model(adv).argmax(1) != y) & correct
    l2 = (adv - x).flatten(1).norm(dim=1)
    return float(fooled.sum() / correct.sum()), float(l2[fooled].median())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--minimal-images", type=int, default=200)
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()

    model, data, meta = reference_model()
    model.eval()
    x, y = data.test.images[: args.images], data.test.labels[: args.images]
    print(f"# {machine()}")
    print(
        f"reference model: mnist-cnn, test accuracy {meta['metrics']['test']['accuracy']:.4f}; {len(x)} images"
    )

    with evaluating(model, freeze=True):
        _, t_plan = timed(lambda: plan_execution(model, x[:2], len(x)))
        plan = plan_execution(model, x[:2], len(x))
    _, t_floor = timed(lambda: floor_loop(model, x, y, STEPS))
    ours = PGD(eps=EPS, step=STEP, steps=STEPS)
    result, t_ours = timed(lambda: ours(model, x, y))
    quick = PGD(eps=EPS, step=STEP, steps=STEPS, early_stop=True)
    quick_result, t_quick = timed(lambda: quick(model, x, y))
    rows = [
        ("floor: 40 fwd+bwd, batches of 500", None, t_floor),
        (
            f"saddlepoint PGD-40 (plan: {plan.batch_size}, channels_last={plan.channels_last})",
            result.metrics()["robust_accuracy"],
            t_ours,
        ),
        ("saddlepoint PGD-40, early stop", quick_result.metrics()["robust_accuracy"], t_quick),
    ]
    peers = {} if args.skip_peers else peers_pgd(model, x, y)
    rows += [(f"{name} PGD-40", acc, t) for name, (acc, t) in peers.items()]
    print(
        f"\nPGD Linf eps={EPS}, step={STEP}, 40 steps, random start (one-off layout measurement: {t_plan:.2f} s)"
    )
    print("| run | robust accuracy | seconds | x floor |")
    print("|---|---|---|---|")
    for name, acc, t in rows:
        print(f"| {name} | {'' if acc is None else f'{acc:.4f}'} | {t:.2f} | {t / t_floor:.2f} |")
    if "torchattacks" in peers:
        print(
            f"early stop vs torchattacks PGD-40: {peers['torchattacks'][1] / t_quick:.1f}x faster"
        )
        best_peer = min(acc for acc, _ in peers.values())
        print(
            f"robust accuracy, ours minus best peer: {100 * (result.metrics()['robust_accuracy'] - best_peer):+.2f} points"
        )

    xm, ym = x[: args.minimal_images], y[: args.minimal_images]
    deepfool, t_df = timed(lambda: DeepFool(steps=50, overshoot=0.02)(model, xm, ym))
    cw, t_cw = timed(lambda: CarliniWagnerL2()(model, xm, ym))
    rows = [
        (
            "saddlepoint DeepFool",
            deepfool.metrics()["success_rate"],
            deepfool.metrics()["l2_median"],
            t_df,
        ),
        (
            "saddlepoint CW-L2 (9 x 100 steps)",
            cw.metrics()["success_rate"],
            cw.metrics()["l2_median"],
            t_cw,
        ),
    ]
    peer_df = {} if args.skip_peers else peers_deepfool(model, xm, ym)
    rows += [(f"{name} DeepFool", s, m, t) for name, (s, m, t) in peer_df.items()]
    print(
        f"\nMinimal L2 perturbations on {len(xm)} images (DeepFool: 50 steps, overshoot 0.02, 10 candidates)"
    )
    print("| run | success | median L2 | ms / image |")
    print("|---|---|---|---|")
    for name, success, median, t in rows:
        print(f"| {name} | {success:.3f} | {median:.3f} | {1000 * t / len(xm):.1f} |")
    if "foolbox" in peer_df:
        print(f"DeepFool vs Foolbox: {peer_df['foolbox'][2] / t_df:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
