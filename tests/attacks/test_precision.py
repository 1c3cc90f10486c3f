"""Low-precision gradient passes: bf16 autocast for the gradients, float32 for every decision."""

from __future__ import annotations

import pytest
import torch

from saddlepoint.attacks import APGD, ATTACKS, PGD, DeepFool, build_attack, runtime
from tests.attacks.models import tiny_convnet


@pytest.fixture()
def batch():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 8, 8, generator=generator)
    y = torch.randint(0, 4, (40,), generator=generator)
    return tiny_convnet().eval(), x, y


@pytest.mark.parametrize("attack_class", [PGD, APGD])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_bf16_gradients_keep_the_ball_and_decide_in_float32(batch, attack_class, norm):
    model, x, y = batch
    eps = 0.1 if norm == "linf" else 0.5
    result = attack_class(norm=norm, eps=eps, steps=10, precision="bf16")(model, x, y)
    assert result.precision == "bf16"
    delta = (result.adversarial - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert bool((size <= eps * (1 + 1e-5)).all())
    assert float(result.adversarial.min()) >= 0 and float(result.adversarial.max()) <= 1
    with torch.no_grad():
        exact = model(result.adversarial)  # float32: what the reported numbers must come from
    assert result.logits.dtype == torch.float32
    assert torch.allclose(result.logits, exact, atol=1e-5)
    assert torch.equal(result.predictions, exact.argmax(1))


class FlipsUnderAutocast(torch.nn.Module):
    """A linear classifier whose low-precision passes see class 1 on top everywhere, as a
    rounding flip near the boundary would; float32 passes see the true logits."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)  # four classes: targeted DLR needs them
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.weight[0] = 1.0
            self.linear.bias.copy_(torch.tensor([0.0, 1.0, 0.5, 0.4]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.linear(x.flatten(1))
        if torch.is_autocast_enabled(x.device.type):
            logits = logits + torch.tensor([0.0, 100.0, 0.0, 0.0], device=x.device)
        return logits


@pytest.mark.parametrize(
    "attack",
    [
        APGD(eps=0.3, steps=20, early_stop=True, precision="bf16"),
        APGD(eps=0.3, steps=20, restarts=2, early_stop=True, precision="bf16"),
        build_attack("apgd-t", eps=0.3, steps=20, precision="bf16"),
        PGD(eps=0.3, step=0.05, steps=20, early_stop=True, precision="bf16"),
    ],
    ids=["apgd", "apgd-restarts", "apgd-t", "pgd"],
)
def test_a_low_precision_hit_counts_only_when_float32_confirms_it(attack):
    # Clean pixel sum 1.2 against 1 (class 0): the 0.3 ball reaches a sum of 0 (class 1), so
    # the attack must keep going instead of stopping on the rounded pass's false success.
    model = FlipsUnderAutocast().eval()
    x = torch.full((6, 4), 0.3)
    y = torch.zeros(6, dtype=torch.long)
    result = attack(model, x, y)
    with torch.no_grad():
        exact = model(result.adversarial)
    assert bool((exact.argmax(1) == 1).all()), exact  # every point really broken, in float32
    assert result.metrics()["robust_accuracy"] == 0.0


def test_bf16_finds_about_what_float32_finds(batch):
    model, x, y = batch
    exact = PGD(eps=0.15, steps=20)(model, x, y).metrics()["robust_accuracy"]
    low = PGD(eps=0.15, steps=20, precision="bf16")(model, x, y).metrics()["robust_accuracy"]
    assert abs(low - exact) <= 0.1  # 4 of 40 images: rounding moves a few steps, not the result


def test_the_default_and_the_config_record_the_precision():
    assert PGD(eps=0.1).precision == "fp32" and "precision" not in PGD(eps=0.1).config()
    assert PGD(eps=0.1, precision="bf16").config()["precision"] == "bf16"
    assert ATTACKS["pgd"].arguments()["precision"] == "fp32"
    with pytest.raises(ValueError, match="'precision' parameter of PGD must be one of"):
        PGD(eps=0.1, precision="fp8")


def test_minimal_norm_attacks_keep_float32(batch):
    model, x, y = batch
    assert DeepFool(steps=10, precision="bf16")(model, x, y).precision == "fp32"


def test_auto_stays_float32_until_an_attack_is_measured_no_weaker(batch):
    model, x, y = batch
    for name in ("pgd", "apgd"):  # bf16 APGD measured 1.8-4.2 points weaker on AT models
        attack = build_attack(name, eps=0.1, steps=2, precision="auto")
        assert attack(model, x, y).precision == "fp32"


def test_auto_takes_bf16_only_where_the_hardware_has_it(batch, monkeypatch):
    model, x, y = batch
    monkeypatch.setattr(PGD, "auto_low_precision", True)  # as if measured no weaker
    monkeypatch.setattr(runtime, "native_bf16", lambda device: False)
    runtime._CACHE.clear()
    assert build_attack("pgd", eps=0.1, steps=2, precision="auto")(model, x, y).precision == "fp32"
    monkeypatch.setattr(runtime, "native_bf16", lambda device: True)
    monkeypatch.setattr(runtime, "_time_pass", _fake_timing)
    runtime._CACHE.clear()
    assert build_attack("pgd", eps=0.1, steps=2, precision="auto")(model, x, y).precision == "bf16"


def _fake_timing(model, probe, labels, plan):
    """bf16 passes twice as fast, so auto must pick them."""
    return 1.0 if plan.precision == "bf16" else 2.0
