import torch
from torch import nn

from saddlepoint.attacks.runtime import (
    ExecutionPlan,
    cache_friendly_batch,
    largest_activation_bytes,
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
