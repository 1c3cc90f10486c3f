"""Every attack's cost is exact: its forward and backward image-passes are those a wrapper
around the model counts, by a mechanism of its own (a custom autograd function), for every
registered attack and ensemble, whole or split into shards."""

import pytest
import torch
from torch import nn

from saddlepoint.attacks import ATTACKS, build_attack
from saddlepoint.attacks.distribute import SplitHere, distributed
from saddlepoint.attacks.passes import Passes, counted_passes
from tests.attacks.models import tiny_convnet
from tests.attacks.test_contract import make


class _Backward(torch.autograd.Function):
    """Identity whose backward counts the images a gradient flows back through."""

    @staticmethod
    def forward(ctx, logits, counter):
        ctx.counter = counter
        return logits.view_as(logits)

    @staticmethod
    def backward(ctx, grad):
        ctx.counter.backward += grad.shape[0]
        return grad, None


class Counted(nn.Module):
    """The model, with every image in and every image a gradient comes back through counted."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.count = Passes()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.count.forward += x.shape[0]
        logits = self.model(x)
        return _Backward.apply(logits, self.count) if logits.requires_grad else logits


FIXED_PLAN = {"batch_size": 16, "memory_format": "contiguous"}  # no plan measurement passes


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_the_passes_an_attack_reports_are_the_ones_the_model_saw(name):
    model = Counted(tiny_convnet(seed=2))
    x = torch.rand(10, 1, 6, 6, generator=torch.Generator().manual_seed(4))
    y = torch.arange(10) % 4
    result = make(name, eps=0.1, seed=1, **FIXED_PLAN)(model, x, y)
    assert result.passes == model.count
    assert result.passes.forward >= len(y)  # at least the clean predictions
    metrics = result.metrics()
    assert metrics["forward_passes"] == model.count.forward / len(y)
    assert metrics["backward_passes"] == model.count.backward / len(y)
    if ATTACKS[name].builder.__dict__.get("query_only", False) or name in (
        "random-search",
        "square",
        "rays",
        "hsj",
        "hsj-minimal",
        "one-pixel",
        "pixel-sweep",
    ):
        assert result.passes.backward == 0  # query-only attacks never differentiate


@pytest.mark.parametrize("name", ["pgd", "autoattack", "hsj"])
def test_shards_add_up_to_the_passes_of_the_whole_batch(name):
    model = Counted(tiny_convnet(seed=2))
    x = torch.rand(12, 1, 6, 6, generator=torch.Generator().manual_seed(4))
    y = torch.arange(12) % 4
    attack = make(name, eps=0.1, seed=1, **FIXED_PLAN)
    whole = attack(model, x, y)
    model.count = Passes()
    with distributed(SplitHere(3)):
        split = attack(model, x, y)
    assert split.passes == model.count
    assert torch.equal(whole.success, split.success)


def test_pgd_costs_its_steps_and_the_plan_is_not_counted():
    model = tiny_convnet(seed=2)
    x = torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(4))
    y = torch.arange(8) % 4
    result = build_attack("pgd", eps=0.1, steps=7, restarts=1)(model, x, y)  # plan measured
    # 7 gradient steps over 8 images; the final and clean predictions at most one pass each
    assert result.passes.backward == 7 * 8
    assert 7 * 8 <= result.passes.forward <= 9 * 8 + 1  # and the check's probe of one image
    with counted_passes(model) as outer:
        again = build_attack("pgd", eps=0.1, steps=7, restarts=1)(model, x, y)
    assert outer == again.passes  # a nested count sees what the attack counted
