import torch
from torch import nn

from saddlepoint.attacks import PGD, Square, runtime
from saddlepoint.attacks.runtime import (
    ExecutionPlan,
    cache_friendly_batch,
    largest_activation_bytes,
    measured_layout,
    memory_layout,
    plan_execution,
)
from tests.attacks.models import tiny_convnet


def test_explicit_settings_win():
    model = tiny_convnet()
    plan = plan_execution(
        model, torch.rand(2, 1, 6, 6), 100, batch_size=7, memory_format="channels_last"
    )
    assert plan == ExecutionPlan(7, True)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(36, 3))
    assert not plan_execution(
        linear, torch.rand(2, 1, 6, 6), 10, batch_size=5, memory_format="channels_last"
    ).channels_last


def test_sub_batch_shrinks_with_activation_size():
    small = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 28 * 28, 10))
    wide = nn.Sequential(
        nn.Conv2d(3, 256, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10)
    )
    assert largest_activation_bytes(small, torch.rand(1, 1, 28, 28)) == 4 * 28 * 28 * 4
    assert cache_friendly_batch(small, torch.rand(1, 1, 28, 28)) == 512
    assert cache_friendly_batch(wide, torch.rand(1, 3, 64, 64)) == 16  # 4 MB per sample


def test_plan_is_cached_and_capped_by_n():
    model = tiny_convnet()
    model.eval()
    sample = torch.rand(2, 1, 6, 6)
    first = plan_execution(model, sample, 1000)
    assert plan_execution(model, sample, 1000) == first
    assert plan_execution(model, sample, 3).batch_size == 3


def test_memory_layout_restores_the_original_tensors():
    model = tiny_convnet(channels=3)
    pointer = model[0].weight.data_ptr()
    with memory_layout(model, True):
        assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
        assert model[0].weight.data_ptr() != pointer
    assert model[0].weight.data_ptr() == pointer and model[0].weight.is_contiguous()


class LayoutSpy(nn.Module):
    """A conv net that notes, per call, whether its input came channels_last."""

    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_convnet(channels=3)
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(
            x.dim() == 4
            and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last)
        )
        return self.net(x)


def test_a_query_only_attack_takes_the_layout_a_gradient_attack_measured(monkeypatch):
    monkeypatch.setattr(runtime, "_faster_layout", lambda *args: True)
    model = LayoutSpy().eval()
    x, y = torch.rand(6, 3, 6, 6), torch.arange(6) % 3
    assert not measured_layout(model, x)
    square = Square(eps=0.1, queries=5, seed=0)
    before = square(model, x, y)
    assert not any(model.seen)  # nothing measured yet: contiguous, and no probing queries
    PGD(eps=0.1, steps=1)(model, x, y)  # measures (here: channels_last wins)
    assert measured_layout(model, x)
    model.seen.clear()
    after = square(model, x, y)
    assert model.seen and all(model.seen)
    assert torch.equal(after.queries, before.queries)  # the layout cost it no query
    assert torch.allclose(after.adversarial, before.adversarial, atol=1e-5)


def test_reproducible_plans_follow_the_rule_without_timing(monkeypatch):
    def clock(*args):
        raise AssertionError("timed a layout inside reproducible_plans")

    monkeypatch.setattr(runtime, "_faster_layout", clock)
    monkeypatch.setattr(runtime, "_faster_precision", clock)
    monkeypatch.setattr(runtime, "native_bf16", lambda device: False)
    sample = torch.rand(2, 1, 6, 6)
    conv, linear = tiny_convnet().eval(), nn.Sequential(nn.Flatten(), nn.Linear(36, 3)).eval()
    with runtime.reproducible_plans():
        assert plan_execution(conv, sample, 50, precision="auto") == ExecutionPlan(50, True)
        assert not plan_execution(linear, sample, 50).channels_last
        assert measured_layout(conv, sample)  # query-only attacks follow the same rule
        explicit = plan_execution(conv, sample, 50, memory_format="contiguous")
        assert not explicit.channels_last
    assert not measured_layout(conv, sample)  # outside, only a measurement counts
