"""Per-sample attack losses, by name. Attacks ascend them; none hard-codes its loss.

Each takes (logits (N, K), labels (N,)) and returns (N,) losses to maximize for an untargeted
attack. For a targeted attack the labels are the targets and attacks descend the same loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from saddlepoint.validation import unknown_name_error

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the softmax against the label."""
    return F.cross_entropy(logits, labels, reduction="none")


def softmax_mse(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Squared error between the softmax and the one-hot label, summed over classes (seed 000
    found it a stronger PGD loss than cross-entropy on a CE-trained model)."""
    one_hot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    return (logits.softmax(dim=1) - one_hot).pow(2).sum(dim=1)


def _other_max(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The largest logit among the classes other than the label."""
    masked = logits.scatter(1, labels[:, None], float("-inf"))
    return masked.amax(dim=1)


def cw_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Carlini-Wagner margin: max_{j != y} z_j - z_y (positive once misclassified)."""
    return _other_max(logits, labels) - logits.gather(1, labels[:, None]).squeeze(1)


def dlr(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Difference of logits ratio (Croce & Hein, 2020): -(z_y - max_{j!=y} z_j) / (z_pi1 - z_pi3),
    invariant to shifting and scaling the logits. Its scale needs a third class: with two, the
    ratio is always +-1 and has no gradient, so the CW margin it is built on is used instead
    (AutoAttack's advice for few classes)."""
    if logits.shape[1] < 3:
        return cw_margin(logits, labels)
    top = logits.sort(dim=1, descending=True).values
    scale = (top[:, 0] - top[:, 2]).clamp_min(1e-12)
    return cw_margin(logits, labels) / scale


def dlr_targeted(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Targeted DLR (Croce & Hein, 2020), to maximize: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2).
    Positive once the target's logit passes the label's. Its scale needs four classes: with
    three, the untargeted DLR's z_pi1 - z_pi3 is used; with two, the unscaled margin z_t - z_y."""
    label_logit = logits.gather(1, labels[:, None]).squeeze(1)
    target_logit = logits.gather(1, targets[:, None]).squeeze(1)
    if logits.shape[1] < 3:
        return target_logit - label_logit
    top = logits.sort(dim=1, descending=True).values
    far = top[:, 2] if logits.shape[1] == 3 else (top[:, 2] + top[:, 3]) / 2
    scale = (top[:, 0] - far).clamp_min(1e-12)
    return (target_logit - label_logit) / scale


LOSSES: dict[str, LossFn] = {
    "ce": cross_entropy,
    "mse": softmax_mse,
    "cw": cw_margin,
    "dlr": dlr,
}


def get_loss(name: str) -> LossFn:
    """The loss registered as ``name`` ('ce', 'mse', 'cw' or 'dlr')."""
    if name not in LOSSES:
        raise unknown_name_error("loss", name, LOSSES)
    return LOSSES[name]
