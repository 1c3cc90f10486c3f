"""Clean-accuracy metrics computed from logits in one pass."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from saddlepoint.data.base import Split
from saddlepoint.modes import predict_logits

__all__ = ["confusion_matrix", "evaluate_split", "predict_logits", "summarize_logits"]


def summarize_logits(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Mean cross-entropy, accuracy and mean confidence on the true class."""
    labels = labels.to(logits.device)
    probabilities = logits.softmax(dim=1)
    return {
        "loss": float(F.cross_entropy(logits, labels)),
        "accuracy": float((logits.argmax(dim=1) == labels).float().mean()),
        "mean_confidence": float(probabilities.gather(1, labels[:, None]).mean()),
    }


def confusion_matrix(
    predictions: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Counts[i, j] = examples of true class i predicted as j."""
    index = labels.long() * num_classes + predictions.long()
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


def evaluate_split(
    model: nn.Module, split: Split, num_classes: int, batch_size: int = 500
) -> dict[str, object]:
    """Loss, accuracy, mean confidence, per-class accuracy and the confusion matrix."""
    logits = predict_logits(model, split.images, batch_size)
    report: dict[str, object] = dict(summarize_logits(logits, split.labels))
    matrix = confusion_matrix(logits.argmax(dim=1), split.labels, num_classes)
    totals = matrix.sum(dim=1).clamp_min(1)
    report["per_class_accuracy"] = (matrix.diag().float() / totals).tolist()
    report["confusion_matrix"] = matrix.tolist()
    report["count"] = len(split)
    return report
