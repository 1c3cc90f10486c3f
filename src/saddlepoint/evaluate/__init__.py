"""Metrics and evaluation: clean metrics, and the gradient-masking audit with its one robust
accuracy to quote."""

from saddlepoint.evaluate.audit import AuditReport, Check, audit
from saddlepoint.evaluate.curves import RobustnessCurve, robustness_curve
from saddlepoint.evaluate.metrics import (
    confusion_matrix,
    evaluate_split,
    predict_logits,
    summarize_logits,
)

__all__ = [
    "AuditReport",
    "Check",
    "RobustnessCurve",
    "audit",
    "confusion_matrix",
    "evaluate_split",
    "predict_logits",
    "robustness_curve",
    "summarize_logits",
]
