import torch
from torch import nn

from saddlepoint.evaluate.audit import audit

FAST = {"steps": 40, "queries": 150}


class HardThreshold(nn.Module):
    """A deliberately masked model: binarize the input (zero gradient), then classify."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model((x > 0.5).float())


def test_audit_passes_an_undefended_model(trained_digits):
    model, data = trained_digits
    report = audit(model, data.test.images[:100], data.test.labels[:100], eps=0.1, **FAST)
    failed = [c.name for c in report.checks if not c.passed]
    assert report.passed, failed
    assert len(report.checks) == 6


def test_audit_flags_a_masked_model(trained_digits):
    model, data = trained_digits
    masked = HardThreshold(model)
    report = audit(masked, data.test.images[:100], data.test.labels[:100], eps=0.1, **FAST)
    assert not report.passed
    by_name = {c.name: c for c in report.checks}
    assert not by_name["gradients are not zero or NaN on many inputs"].passed
    assert not by_name["an unbounded attack reaches ~0%"].passed
    assert report.to_dict()["passed"] is False
    assert torch.is_tensor(data.test.images)
