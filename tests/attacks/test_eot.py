"""Expectation over transformation inside APGD: gradients averaged over random draws."""

import torch
from torch import nn

from saddlepoint.attacks import APGD, build_attack
from saddlepoint.defenses.eot import RandomNoiseInput
from tests.attacks.models import tiny_convnet


def test_eot_on_a_deterministic_model_changes_nothing_but_the_cost():
    model = tiny_convnet(seed=2)
    x = torch.rand(12, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    y = torch.arange(12) % 4
    once = APGD(eps=0.1, steps=10, seed=1)(model, x, y)
    thrice = APGD(eps=0.1, steps=10, seed=1, eot=3)(model, x, y)
    assert torch.allclose(once.adversarial, thrice.adversarial, atol=1e-5)
    assert torch.equal(thrice.grad_evals, 3 * once.grad_evals)


def test_eot_gradient_follows_the_expected_gradient_of_a_randomized_model():
    torch.manual_seed(0)  # the randomized model draws from the global generator
    model = RandomNoiseInput(tiny_convnet(seed=3), scale=0.3)
    x = torch.rand(20, 1, 6, 6, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.25
    y = torch.arange(20) % 4

    def gradient(draws: int) -> torch.Tensor:
        attack = APGD(eps=0.1, eot=draws) if draws > 1 else APGD(eps=0.1)
        with torch.enable_grad():
            return attack.input_gradient(model.eval(), x, y, None)[2].flatten(1)

    expected = gradient(400)
    cosine = nn.functional.cosine_similarity
    single = cosine(gradient(1), expected).mean()
    averaged = cosine(gradient(20), expected).mean()
    assert averaged > single + 0.1
    assert averaged > 0.9


def test_autoattack_rand_averages_twenty_draws():
    ensemble = build_attack("autoattack-rand", eps=0.1)
    assert [a.loss_name for a in ensemble.attacks] == ["ce", "dlr"]
    assert all(a.eot == 20 for a in ensemble.attacks)
