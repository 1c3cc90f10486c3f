"""Every registered attack runs on 2-, 3- and 4-class problems, and says what it changed."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from saddlepoint.attacks import ATTACKS, build_attack
from saddlepoint.losses import cw_margin, dlr, dlr_targeted

FAST = {"steps": 3, "queries": 120}


def _budget(name: str) -> dict:
    entry = ATTACKS[name]
    kwargs = {k: v for k, v in FAST.items() if k in entry.arguments()}
    if name == "one-pixel":
        kwargs["queries"] = 1 + entry.arguments().get("popsize", 100)
    return kwargs if entry.minimal else {**kwargs, "eps": 0.2}


@pytest.mark.parametrize("classes", [2, 3, 4])
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_runs_with_few_classes(name, classes):
    torch.manual_seed(classes)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, classes)).eval()
    x = torch.rand(6, 1, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)
    result = build_attack(name, **_budget(name))(model, x, y)
    assert result.logits.shape == (6, classes)
    assert float(result.adversarial.min()) >= 0 and float(result.adversarial.max()) <= 1
    if not ATTACKS[name].minimal:
        assert float(result.norms(result_norm(name)).max()) <= 0.2 + 1e-5


def result_norm(name: str) -> str:
    return str(ATTACKS[name].arguments().get("norm", "linf"))


def test_dlr_losses_fall_back_where_their_scale_is_undefined():
    logits = torch.tensor([[2.0, -1.0], [0.5, 1.5]], requires_grad=True)
    labels = torch.tensor([0, 1])
    assert torch.equal(dlr(logits, labels), cw_margin(logits, labels))
    (gradient,) = torch.autograd.grad(dlr(logits, labels).sum(), logits)
    assert bool(gradient.abs().sum() > 0)  # the ratio itself would have none
    targets = torch.tensor([1, 0])
    assert torch.allclose(dlr_targeted(logits, labels, targets), torch.tensor([-3.0, -1.0]))
    three = torch.tensor([[3.0, 1.0, 0.0]])
    value = dlr_targeted(three, torch.tensor([0]), torch.tensor([1]))
    assert torch.allclose(value, torch.tensor([(1.0 - 3.0) / (3.0 - 0.0)]))


def test_the_change_is_said(caplog):
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).eval()
    x = torch.rand(4, 1, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)
    with caplog.at_level(logging.INFO, logger="saddlepoint"):
        build_attack("apgd-t", eps=0.1, steps=2)(model, x, y)
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "2 classes: the DLR loss uses the CW margin" in said
    assert "1 target class(es) tried instead of 9" in said
