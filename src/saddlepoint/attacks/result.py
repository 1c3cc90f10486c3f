"""What an attack returns: the adversarial batch and per-sample outcomes, plus summary metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from saddlepoint import lp
from saddlepoint.attacks.passes import Passes


@dataclass
class AttackResult:
    """Per-sample results of one attack on one batch (all tensors on the CPU).

    ``success`` is misclassification for untargeted attacks and hitting the target for targeted
    ones. ``grad_evals`` counts input-gradient computations (forward+backward passes) per sample;
    ``queries`` counts forward-only model calls per sample (score-based attacks), each as the
    attack's algorithm sees it. ``passes`` is the cost counted on the model itself: every
    forward and backward image-pass the call made, clean and final predictions included.
    """

    attack: str
    inputs: torch.Tensor
    adversarial: torch.Tensor
    labels: torch.Tensor
    logits: torch.Tensor
    clean_logits: torch.Tensor
    grad_evals: torch.Tensor
    queries: torch.Tensor
    targets: torch.Tensor | None = None
    seconds: float = 0.0
    trace: list[dict[str, float]] | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    precision: str = "fp32"  # of the gradient passes (the logits above are always float32)
    passes: Passes = field(default_factory=Passes)

    @property
    def predictions(self) -> torch.Tensor:
        return self.logits.argmax(dim=1)

    @property
    def clean_correct(self) -> torch.Tensor:
        return self.clean_logits.argmax(dim=1) == self.labels

    @property
    def success(self) -> torch.Tensor:
        if self.targets is not None:
            return self.predictions == self.targets
        return self.predictions != self.labels

    @property
    def perturbation(self) -> torch.Tensor:
        return self.adversarial - self.inputs

    def norms(self, norm: str) -> torch.Tensor:
        """Per-sample norm of the perturbation ('linf', 'l2' or 'l1')."""
        return lp.norms(self.perturbation, norm)

    @property
    def loss(self) -> torch.Tensor:
        """Per-sample cross-entropy at the adversarial points (against the true labels)."""
        return F.cross_entropy(self.logits, self.labels, reduction="none")

    @property
    def confidence(self) -> torch.Tensor:
        """Per-sample probability of the predicted class at the adversarial points."""
        return self.logits.softmax(dim=1).amax(dim=1)

    def metrics(self) -> dict[str, float]:
        """Clean and robust accuracy, success rate (among clean-correct samples), loss under
        attack, mean confidence, perturbation norms, rho_adv, time, gradient evaluations, and
        forward and backward image-passes per image (``forward_passes``, ``backward_passes``).

        Perturbation norms and rho_adv are taken over the images the attack had to move and did
        break (correctly classified before, fooled after; ``moved`` counts them): an image that
        was misclassified already has a zero perturbation and would pull the averages down.
        With none broken they are NaN. ``linf_max`` is over every image (a bound check), and so
        is ``rho_adv_all``, rho_adv averaged over the whole set as the DeepFool paper does."""
        n = max(len(self.labels), 1)
        correct = self.clean_correct
        broken = self.success & correct if self.targets is None else self.success
        l2 = self.norms("l2")
        linf = self.norms("linf")
        rho = l2 / lp.norms(self.inputs, "l2").clamp_min(1e-12)
        pick = self.success & correct

        def over_moved(values: torch.Tensor, reduce: str) -> float:
            if not bool(pick.any()):
                return float("nan")
            chosen = values[pick]
            return float(chosen.mean() if reduce == "mean" else chosen.median())

        return {
            "n": float(len(self.labels)),
            "clean_accuracy": float(correct.float().mean()),
            "robust_accuracy": float((self.predictions == self.labels).float().mean()),
            "success_rate": float(broken.sum()) / max(int(correct.sum()), 1)
            if self.targets is None
            else float(self.success.float().mean()),
            "loss": float(self.loss.mean()),
            "mean_confidence": float(self.confidence.mean()),
            "moved": float(pick.sum()),
            "l2_mean": over_moved(l2, "mean"),
            "l2_median": over_moved(l2, "median"),
            "linf_mean": over_moved(linf, "mean"),
            "linf_max": float(linf.max()) if len(linf) else 0.0,
            "rho_adv": over_moved(rho, "mean"),
            # The DeepFool paper's averaging: over every image given, as the attack returned it
            # (zero where it moved nothing), not only over the correctly read ones it broke.
            "rho_adv_all": float(rho.mean()) if len(rho) else float("nan"),
            "seconds": self.seconds,
            "ms_per_sample": 1000.0 * self.seconds / n,
            "grad_evals_mean": float(self.grad_evals.float().mean()),
            "queries_mean": float(self.queries.float().mean()),
            "forward_passes": self.passes.forward / n,
            "backward_passes": self.passes.backward / n,
        }
