"""Metrics and evaluation."""

from saddlepoint.evaluate.metrics import (
    confusion_matrix,
    evaluate_split,
    predict_logits,
    summarize_logits,
)

__all__ = ["confusion_matrix", "evaluate_split", "predict_logits", "summarize_logits"]
