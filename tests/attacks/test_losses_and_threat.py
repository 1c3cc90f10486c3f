import pytest
import torch

from saddlepoint.losses import LOSSES, cw_margin, dlr, get_loss, softmax_mse
from saddlepoint.threat import ThreatModel, parse_eps


def test_parse_eps_fractions_and_errors():
    assert parse_eps("8/255") == pytest.approx(8 / 255)
    assert parse_eps(" 2 / 255 ") == pytest.approx(2 / 255)
    assert parse_eps(0.3) == 0.3
    with pytest.raises(ValueError, match="fraction such as 8/255"):
        parse_eps("eight")
    with pytest.raises(ValueError, match=r"\[0, inf\]"):
        parse_eps(-0.1)


def test_threat_model_checks():
    assert ThreatModel("l2", "1/2").eps == 0.5
    with pytest.raises(ValueError, match="Did you mean 'linf'"):
        ThreatModel("lnf", 0.1)
    with pytest.raises(ValueError, match="low < high"):
        ThreatModel("linf", 0.1, (1.0, 0.0))


def test_cw_margin_sign_tracks_misclassification():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    labels = torch.tensor([0, 0])
    margin = cw_margin(logits, labels)
    assert margin.tolist() == [-2.0, 2.0]


def test_dlr_is_shift_and_scale_invariant():
    logits = torch.randn(6, 10, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(6)
    assert torch.allclose(dlr(logits, labels), dlr(3 * logits + 7, labels), atol=1e-5)


def test_mse_is_zero_at_a_perfect_prediction_and_at_most_two():
    logits = torch.tensor([[100.0, 0.0, 0.0], [0.0, 100.0, 0.0]])
    values = softmax_mse(logits, torch.tensor([0, 0]))
    assert values[0] == pytest.approx(0.0, abs=1e-6) and values[1] == pytest.approx(2.0, abs=1e-6)


def test_registry_names():
    assert set(LOSSES) == {"ce", "mse", "cw", "dlr"}
    with pytest.raises(ValueError, match="Did you mean 'dlr'"):
        get_loss("dl")
