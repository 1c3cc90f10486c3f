"""Transfer (black-box) attacks: craft on surrogate models, evaluate on a target
(Papernot et al., 2017).

Any registered attack runs on one surrogate or on an ensemble of several, combined in one of three
ways: their logits averaged; their softmax probabilities averaged and returned as log-probabilities
(so every loss still applies); or their losses averaged -- loss-driven attacks (FGSM, PGD, APGD)
then ascend the mean of the members' losses, while attacks that read logits directly (DeepFool,
CW, the black-box ones) see the mean logits. The target is only asked for predictions on the
finished examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from saddlepoint.attacks.base import Adversary
from saddlepoint.attacks.result import AttackResult
from saddlepoint.modes import predict_logits
from saddlepoint.validation import check_choice


class SurrogateEnsemble(nn.Module):
    """Several models as one: mean of logits, log of the mean softmax probability, or (with
    ``combine='loss'``) mean logits for predictions and the members' mean loss for gradients."""

    COMBINES = ("logits", "probabilities", "loss")

    def __init__(self, models: Sequence[nn.Module], combine: str = "logits") -> None:
        super().__init__()
        if not models:
            raise ValueError("SurrogateEnsemble needs at least one model.")
        self.members = nn.ModuleList(models)
        self.combine = check_choice("SurrogateEnsemble", "combine", combine, self.COMBINES)

    @property
    def averages_loss(self) -> bool:
        """True when attacks should average the members' losses (see ``Attack.input_gradient``)."""
        return self.combine == "loss"

    def member_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each member's logits for ``x``."""
        return [member(x) for member in self.members]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.member_logits(x)
        if self.combine in ("logits", "loss"):
            return torch.stack(outputs).mean(dim=0)
        probabilities = torch.stack([F.softmax(o, dim=1) for o in outputs]).mean(dim=0)
        return probabilities.clamp_min(1e-12).log()


@dataclass
class TransferResult:
    """Examples crafted on the surrogate(s) and how the target fares on them."""

    source: AttackResult
    target_logits: torch.Tensor
    target_clean_logits: torch.Tensor

    def metrics(self) -> dict[str, float]:
        labels = self.source.labels
        target_correct = self.target_logits.argmax(1) == labels
        clean_correct = self.target_clean_logits.argmax(1) == labels
        crafted = self.source.success
        fooled = ~target_correct & crafted
        return {
            "n": float(len(labels)),
            "target_clean_accuracy": float(clean_correct.float().mean()),
            "target_accuracy": float(target_correct.float().mean()),
            "target_loss": float(F.cross_entropy(self.target_logits, labels)),
            "surrogate_clean_accuracy": float(self.source.clean_correct.float().mean()),
            "surrogate_accuracy": float((self.source.predictions == labels).float().mean()),
            "surrogate_loss": float(self.source.loss.mean()),
            "transfer_rate": float(fooled.sum()) / max(int(crafted.sum()), 1),
            "seconds": self.source.seconds,
        }


def transfer_attack(
    attack: Adversary,
    surrogates: nn.Module | Sequence[nn.Module],
    target: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    combine: str = "logits",
) -> TransferResult:
    """Run ``attack`` on the surrogate(s) and evaluate its examples on ``target``."""
    if isinstance(surrogates, nn.Module):
        surrogate = surrogates
    elif len(surrogates) == 1:
        surrogate = surrogates[0]
    else:
        surrogate = SurrogateEnsemble(surrogates, combine)
    source = attack(surrogate, x, y)
    return TransferResult(
        source=source,
        target_logits=predict_logits(target, source.adversarial),
        target_clean_logits=predict_logits(target, source.inputs),
    )
