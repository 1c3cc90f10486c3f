"""What an attack returns: the adversarial batch and per-sample outcomes, plus summary metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from saddlepoint import lp


@dataclass
class AttackResult:
    """Per-sample results of one attack on one batch (all tensors on the CPU).

    ``success`` is misclassification for untargeted attacks and hitting the target for targeted
    ones. ``grad_evals`` counts input-gradient computations (forward+backward passes) per sample;
    ``queries`` counts forward-only model calls per sample (score-based attacks).
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
        attack, mean confidence, perturbation norms, rho_adv, time and gradient evaluations."""
        n = max(len(self.labels), 1)
        correct = self.clean_correct
        broken = self.success & correct if self.targets is None else self.success
        l2 = self.norms("l2")
        linf = self.norms("linf")
        fooled = self.success
        rho = l2 / lp.norms(self.inputs, "l2").clamp_min(1e-12)
        pick = fooled if bool(fooled.any()) else torch.ones_like(fooled)
        return {
            "n": float(len(self.labels)),
            "clean_accuracy": float(correct.float().mean()),
            "robust_accuracy": float((self.predictions == self.labels).float().mean()),
            "success_rate": float(broken.sum()) / max(int(correct.sum()), 1)
            if self.targets is None
            else float(self.success.float().mean()),
            "loss": float(self.loss.mean()),
            "mean_confidence": float(self.confidence.mean()),
            "l2_mean": float(l2[pick].mean()),
            "l2_median": float(l2[pick].median()),
            "linf_mean": float(linf[pick].mean()),
            "linf_max": float(linf.max()) if len(linf) else 0.0,
            "rho_adv": float(rho[pick].mean()),
            "seconds": self.seconds,
            "ms_per_sample": 1000.0 * self.seconds / n,
            "grad_evals_mean": float(self.grad_evals.float().mean()),
            "queries_mean": float(self.queries.float().mean()),
        }
