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
    """Loss, accuracy, mean confidence, per-class accuracy and the confusion matrix.

    The matrix spans every class the model can predict, even when the data holds fewer (a
    folder with classes 0-5 for a 10-class model), so no prediction falls outside it."""
    logits = predict_logits(model, split.images, batch_size)
    if not bool(torch.isfinite(logits).all()):
        bad = int((~torch.isfinite(logits)).any(dim=1).sum())
        raise ValueError(
            f"The model returns NaN or infinite logits on {bad} of {len(logits)} images; no "
            "accuracy computed from them would mean anything (check its weights and inputs)."
        )
    classes = max(int(num_classes), int(logits.shape[1]))
    if len(split) and int(split.labels.max()) >= logits.shape[1]:
        raise ValueError(
            f"The data has labels up to {int(split.labels.max())}, but the model predicts only "
            f"{logits.shape[1]} classes (0-{logits.shape[1] - 1}); check that the data and the "
            "model use the same classes."
        )
    report: dict[str, object] = dict(summarize_logits(logits, split.labels))
    matrix = confusion_matrix(logits.argmax(dim=1), split.labels, classes)
    totals = matrix.sum(dim=1).clamp_min(1)
    report["per_class_accuracy"] = (matrix.diag().float() / totals).tolist()
    report["confusion_matrix"] = matrix.tolist()
    report["count"] = len(split)
    return report
