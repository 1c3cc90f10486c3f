import pytest
import torch

from saddlepoint.defenses import Quantize, bpda, parse_quantize
from saddlepoint.models import build_model


def test_tanh_quantization_outputs_k_levels_in_unit_range():
    layer = Quantize(levels=8, mode="tanh")
    out = layer(torch.linspace(0, 1, 1001))
    values = torch.unique(out)
    assert len(values) <= 8 and float(values.min()) >= 0 and float(values.max()) <= 1
    assert torch.all(out[1:] >= out[:-1])  # monotone
    expected_levels = (torch.arange(8) + 0.5) / 8
    assert all(torch.isclose(v, expected_levels).any() for v in values)


def test_bit_depth_reduction_is_exact():
    layer = parse_quantize("bits:1")
    assert torch.equal(
        layer(torch.tensor([0.0, 0.49, 0.51, 1.0])), torch.tensor([0.0, 0.0, 1.0, 1.0])
    )
    assert parse_quantize("bits:3").levels == 8
    with pytest.raises(ValueError, match="tanh:8"):
        parse_quantize("round:3")


def test_true_gradient_is_zero_and_bpda_straight_through_is_not():
    layer = Quantize(levels=8)
    x = torch.rand(4, 10, requires_grad=True)
    (grad,) = torch.autograd.grad(layer(x).sum(), x)
    assert torch.count_nonzero(grad) == 0
    model = torch.nn.Sequential(layer)
    with bpda(model, "identity"):
        x = torch.rand(4, 10, requires_grad=True)
        out = layer(x)
        (grad,) = torch.autograd.grad(out.sum(), x)
        assert torch.equal(grad, torch.ones_like(grad))
        assert torch.equal(out, layer.quantized(x.detach()))  # the forward pass is unchanged
    with bpda(model, "smooth"):
        x = torch.full((1, 3), 0.5, requires_grad=True)
        (grad,) = torch.autograd.grad(layer(x).sum(), x)
        assert torch.allclose(grad, torch.ones_like(grad))  # d/dx (tanh(2x-1)+1)/2 at 0.5 = 1
    assert layer.bpda is None


def test_quantized_model_round_trips_through_spec():
    model = build_model("mlp", in_shape=(1, 4, 4), num_classes=3, quantize="tanh:8")
    assert model.spec["kwargs"]["quantize"] == "tanh:8"
    assert sum(p.numel() for p in model.quantize.parameters()) == 0
