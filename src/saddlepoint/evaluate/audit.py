"""Gradient-masking diagnostics: is a robustness number real, or are the attacks failing?

After Carlini et al. (2019), "On Evaluating Adversarial Robustness", and Athalye et al. (2018),
"Obfuscated Gradients Give a False Sense of Security". Each check runs real attacks and reports
pass/fail with its numbers:

1. robust accuracy does not increase with eps;
2. an unbounded attack (the ball covers the whole input box) reaches about 0%;
3. iterative attacks are at least as strong as single-step ones;
4. more steps and restarts do not keep lowering accuracy (cross-entropy PGD has converged; that
   is convergence of one loss under one optimiser, not of the attack);
5. a black-box (query-only) attack is not stronger than the white-box one;
6. input gradients are neither zero nor NaN on many inputs;
7. cross-entropy gradients are not misleading: in the strongest evaluation the project has
   (``STRONGEST_ATTACK``: AutoAttack's APGD-CE, APGD-T over 9 targets, FAB-T and Square, with
   APGD-DLR added and 5 random restarts of both APGD runs), the attacks after APGD-CE (other
   losses, no gradients) do not lower robust accuracy below APGD-CE's by more than max(2
   points, 3 standard errors of the paired difference). Catastrophic overfitting (Wong et al.
   2020) is the textbook failure: cross-entropy gradients mislead PGD and APGD-CE alike while a
   margin loss walks through, and checks 1-6 can all pass. A PGD-40 number above the strongest
   one is not by itself a sign of masking (PGD's fixed steps are a weak optimizer, which APGD
   fixes with the same loss): the report notes how much it overstates, as information;
8. the model is deterministic: the same inputs give the same logits twice (a randomized model
   needs attacks that average over its randomness, EOT; AutoAttack's 'rand' version);
9. the model returns logits, not probabilities: rows in [0, 1] that sum to 1 mean a softmax
   inside the model, whose saturation starves cross-entropy attacks of gradient (AutoAttack
   warns of the same).

On a randomized model (check 8 fails) the audit also runs AutoAttack's 'rand' version (APGD-CE
and APGD-DLR with gradients averaged over 20 draws) and counts it in the robust accuracy.

The report states one robust accuracy: the per-sample worst case of every attack it ran at eps,
with the attack that reached it. That number, not the PGD one, is the model's robustness.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from saddlepoint.attacks import PGD, AttackResult, Ensemble, Square, build_attack, fgsm
from saddlepoint.attacks.health import flat_gradients
from saddlepoint.evaluate.robustness import (
    RESCORING_DRAWS,
    STRONGEST_ATTACK,
    STRONGEST_LABEL,
    paired_gap,
    robust_mask,
    strongest_attack,
    worst_case,
)
from saddlepoint.modes import evaluating, model_device, predict_logits
from saddlepoint.progress import note

RAND_LABEL = "AutoAttack 'rand' (APGD-CE, APGD-DLR, EOT over 20 draws)"


@dataclass
class Check:
    """One diagnostic: whether it passed, what it measured, and what failing means."""

    name: str
    passed: bool
    numbers: dict[str, float]
    meaning: str


@dataclass
class AuditReport:
    """All checks for one model, threat model and set of inputs."""

    norm: str
    eps: float
    images: int
    checks: list[Check] = field(default_factory=list)
    robust_accuracy: float = float("nan")  # per-sample worst case of every attack at eps
    robust_attack: str = ""  # the attack (or combination) that reached it
    accuracies: dict[str, float] = field(default_factory=dict)  # each attack at eps
    # each attack's forward and backward image-passes per image, counted on the model
    passes: dict[str, tuple[float, float]] = field(default_factory=dict)
    rescoring_draws: int = 1  # draws of a randomized model's output each point was scored over
    notes: list[str] = field(default_factory=list)  # information, not a sign of masking

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def to_dict(self) -> dict:
        return {
            "norm": self.norm,
            "eps": self.eps,
            "images": self.images,
            "passed": self.passed,
            "robust_accuracy": self.robust_accuracy,
            "robust_attack": self.robust_attack,
            "accuracies_at_eps": self.accuracies,
            "passes_per_image": {k: list(v) for k, v in self.passes.items()},
            "rescoring_draws": self.rescoring_draws,
            "notes": self.notes,
            "checks": [asdict(check) for check in self.checks],
        }

    def summary(self) -> str:
        """One line: the robust accuracy to quote and the checks that failed."""
        failed = [check.name for check in self.checks if not check.passed]
        verdict = (
            f"{len(self.checks)}/{len(self.checks)} checks pass"
            if not failed
            else f"{len(self.checks) - len(failed)}/{len(self.checks)} checks pass; failed: "
            + "; ".join(failed)
        )
        notes = "".join(f"; note: {note}" for note in self.notes)
        return (
            f"robust accuracy {self.robust_accuracy:.1%} ({self.robust_attack}); {verdict}{notes}"
        )


CROSS_ENTROPY_CHECK = "cross-entropy gradients are not misleading"


def _record(report: AuditReport, check: Check) -> None:
    """Add ``check`` to the report and say so as the audit goes (its checks take minutes)."""
    report.checks.append(check)
    note(
        "audit check %d/9: %s: %s",
        len(report.checks),
        check.name,
        "pass" if check.passed else "FAIL",
    )


def beyond_first_member(result: AttackResult) -> dict[str, float]:
    """How much an ensemble's later members lower robust accuracy below its first one (on the
    same images, from ``extras['broken_by']``): the accuracy after the first, and the gap to the
    end (the share of images only the later members break, since they run on the first's
    survivors) with its standard error over the paired per-image differences."""
    broken_by = result.extras.get("broken_by")
    if broken_by is None:  # a single attack: nothing comes after its first member
        robust = float(robust_mask(result).float().mean())
        return {"first": robust, "gap": 0.0, "standard_error": 0.0}
    first = (broken_by == -1) | (broken_by > 0)  # robust after member 0 (correct, unbroken)
    final = broken_by == -1
    difference = (first.float() - final.float()).cpu()
    n = max(len(difference), 1)
    spread = float(difference.std(unbiased=True)) if len(difference) > 1 else 0.0
    gap = float(difference.mean()) if len(difference) else 0.0
    return {
        "first": float(first.float().mean()) if len(first) else 0.0,
        "gap": gap,
        "standard_error": spread / math.sqrt(n),
    }


def _accuracy(result: AttackResult) -> float:
    return result.metrics()["robust_accuracy"]


def gradient_health(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Share of inputs whose cross-entropy input gradient is exactly zero, or not finite."""
    zero, nonfinite = flat_gradients(model, x, y)
    return {
        "zero_gradient_share": float(zero.float().mean()),
        "nonfinite_share": float(nonfinite.float().mean()),
    }


def output_sanity(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """AutoAttack's sanity checks on the model's outputs: the largest change between two
    forward passes on the same inputs, and the share of output rows that look like
    probabilities (entries in [0, 1] summing to 1)."""
    device = model_device(model)
    with evaluating(model, freeze=True), torch.no_grad():
        inputs = x.to(device)
        first, second = model(inputs).float(), model(inputs).float()
    change = float((first - second).abs().max()) if len(first) else 0.0
    probability_like = (
        (first >= 0).all(dim=1) & (first <= 1).all(dim=1) & ((first.sum(dim=1) - 1).abs() < 1e-4)
    )
    return {
        "largest change between two passes": change,
        "share of rows that are probabilities": float(probability_like.float().mean()),
    }


def audit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str = "linf",
    eps: float = 0.3,
    bounds: tuple[float, float] = (0.0, 1.0),
    steps: int = 40,
    queries: int = 1000,
    tolerance: float = 0.02,
    convergence_tolerance: float = 0.05,
    seed: int = 0,
    strong_steps: int = 100,
    strong_queries: int = 5000,
) -> AuditReport:
    """Run the nine checks on ``model`` at (``norm``, ``eps``) over inputs ``x``.

    ``tolerance`` is the accuracy slack of the unbounded, black-box and cross-entropy checks
    (2 points); ``convergence_tolerance`` how much 2.5x the steps with 5 restarts may still lower
    accuracy (5 points: a few images always fall to extra restarts; masking gives far larger
    gaps). ``strong_steps`` are the iterations of each gradient run of the stronger attack and
    ``strong_queries`` its Square budget (the reference AutoAttack's: 100 and 5,000).
    """
    report = AuditReport(norm=norm, eps=float(eps), images=len(y))
    common: dict[str, Any] = {"norm": norm, "bounds": bounds, "seed": seed}

    def pgd(radius: float, n: int = steps, restarts: int = 1) -> AttackResult:
        attack = PGD(
            eps=radius, steps=n, step=2.5 * radius / n, restarts=restarts, early_stop=True, **common
        )
        return attack(model, x, y)

    model_accuracy = _clean(model, x, y)
    radii = [eps * f for f in (0.25, 0.5, 1.0, 2.0)]
    curve_results = [pgd(r) for r in radii]
    curve = [_accuracy(r) for r in curve_results]
    increases = max((b - a for a, b in zip(curve, curve[1:])), default=0.0)
    _record(
        report,
        Check(
            "robust accuracy does not increase with eps",
            increases <= 1.0 / max(len(y), 1) + 1e-9,
            {**{f"eps={r:.4g}": a for r, a in zip(radii, curve)}, "largest increase": increases},
            "more budget must never help the model; an increase means the attack is unreliable",
        ),
    )
    span = bounds[1] - bounds[0]
    unbounded_eps = span if norm == "linf" else span * math.sqrt(x[0].numel())
    unbounded = _accuracy(
        PGD(
            eps=unbounded_eps,
            steps=100,
            step=unbounded_eps / 20,
            random_start=False,
            early_stop=True,
            **common,
        )(model, x, y)
    )
    _record(
        report,
        Check(
            "an unbounded attack reaches ~0%",
            unbounded <= tolerance,
            {"clean accuracy": model_accuracy, "unbounded PGD-100 accuracy": unbounded},
            "with the whole input box allowed every image can be changed; a model that stays "
            "accurate is hiding its gradients",
        ),
    )
    at_eps = curve[2]
    single_result = fgsm(eps=eps, norm=norm, bounds=bounds)(model, x, y)
    single = _accuracy(single_result)
    _record(
        report,
        Check(
            "iterative attacks beat single-step ones",
            at_eps <= single + 1e-9,
            {f"PGD-{steps}": at_eps, "FGSM": single},
            "a single step beating many means the loss surface misleads iterative attacks",
        ),
    )
    longer_result = pgd(eps, n=2 * steps + 20, restarts=5)
    longer = _accuracy(longer_result)
    _record(
        report,
        Check(
            "more steps and restarts do not keep lowering accuracy",
            at_eps - longer <= convergence_tolerance,
            {f"PGD-{steps}": at_eps, f"PGD-{2 * steps + 20} x5 restarts": longer},
            "if more effort keeps breaking more images, the reported number is not converged; "
            "passing means cross-entropy PGD has converged, not that the attack has (one loss, "
            "one optimiser): the cross-entropy check tests the attack",
        ),
    )
    black_result = Square(eps=eps, queries=queries, **common)(model, x, y)
    black = _accuracy(black_result)
    _record(
        report,
        Check(
            "a black-box attack is not stronger than the white-box one",
            black >= min(at_eps, longer) - tolerance,
            {f"Square ({queries} queries)": black, "best white-box": min(at_eps, longer)},
            "a query-only attack should not beat one that sees gradients unless they are broken",
        ),
    )
    sanity = output_sanity(model, x)
    health = gradient_health(model, x, y)
    _record(
        report,
        Check(
            "gradients are not zero or NaN on many inputs",
            health["zero_gradient_share"] <= 0.05 and health["nonfinite_share"] == 0,
            health,
            "zero or non-finite input gradients give gradient attacks nothing to follow",
        ),
    )
    strong_attack = strongest_attack(
        norm, eps, bounds=bounds, seed=seed, steps=strong_steps, queries=strong_queries
    )
    strong_result = strong_attack(model, x, y)
    strong = _accuracy(strong_result)
    first = strong_attack.labels()[0] if isinstance(strong_attack, Ensemble) else "its attack"
    beyond = beyond_first_member(strong_result)
    allowed = max(tolerance, 3 * beyond["standard_error"])
    _record(
        report,
        Check(
            CROSS_ENTROPY_CHECK,
            beyond["gap"] <= allowed,
            {
                f"PGD-{steps}": at_eps,
                f"{first} (the strongest evaluation's first attack)": beyond["first"],
                STRONGEST_LABEL: strong,
                f"robust to {first}, broken by the later attacks": beyond["gap"],
                "allowed gap": allowed,
            },
            f"attacks on other losses or without gradients break images that {first} cannot: "
            "the model misleads cross-entropy gradients (gradient masking, such as catastrophic "
            "over-fitting), so no cross-entropy number can be trusted; quote the audit's robust "
            f"accuracy ({STRONGEST_ATTACK})",
        ),
    )
    overstated = paired_gap(curve_results[2], strong_result)["gap"]
    if overstated > tolerance:  # information: PGD's optimizer is weak here, not a mask
        report.notes.append(
            f"cross-entropy PGD-{steps} alone overstates robustness by {100 * overstated:.1f} "
            "points; the quoted robust accuracy is the worst case of the strong attacks"
        )
    change = sanity["largest change between two passes"]
    _record(
        report,
        Check(
            "the model is deterministic",
            change <= 1e-5,
            {"largest change between two passes": change},
            "a randomized model changes its answer from pass to pass: single-draw gradients are "
            "noise; attack the expectation (EOT) and evaluate with autoattack-rand",
        ),
    )
    probability = sanity["share of rows that are probabilities"]
    _record(
        report,
        Check(
            "the model returns logits, not probabilities",
            probability < 0.5,
            {"share of rows that are probabilities": probability},
            "a softmax inside the model saturates: cross-entropy on top of it has vanishing "
            "gradients and overstates robustness; give attacks the logits",
        ),
    )
    results = {
        "FGSM": single_result,
        f"PGD-{steps}": curve_results[2],
        f"PGD-{2 * steps + 20} x5 restarts": longer_result,
        f"Square ({queries} queries)": black_result,
        STRONGEST_LABEL: strong_result,
    }
    draws = 1
    if change > 1e-5:  # a randomized model: single-draw gradients mislead, attack the expectation
        rand = build_attack(
            "autoattack-rand", norm=norm, eps=eps, bounds=bounds, seed=seed, steps=strong_steps
        )
        results[RAND_LABEL] = rand(model, x, y)
        draws = RESCORING_DRAWS  # and one lucky draw does not make an image robust
        report.notes.append(
            f"the model is randomized: every attack's points were re-scored over {draws} draws "
            "of its output, and an image counts as robust only if it is correct in every one"
        )
    combined = worst_case(results, model=model, draws=draws, seed=seed)
    report.robust_accuracy = combined.accuracy
    report.robust_attack = combined.attack
    report.accuracies = combined.per_attack
    report.rescoring_draws = draws
    report.passes = {name: r.passes.per_image(len(y)) for name, r in results.items()}
    if draws > 1:  # the re-scoring's own forward passes
        report.passes[f"re-scoring ({draws} draws)"] = (float(draws * len(results)), 0.0)
    return report


def _clean(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict_logits(model, x).argmax(1) == y).float().mean())
