import pytest
import torch

from saddlepoint import lp
from saddlepoint.attacks import GenerativeAttack, PerturbationGenerator
from tests.attacks.models import tiny_convnet


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8), (3, 30, 27)])
@pytest.mark.parametrize("bound", ["scale", "clamp"])
def test_output_respects_intensity_and_bounds(shape, bound):
    generator = PerturbationGenerator(shape, t=0.05, width=4, bound=bound)
    with torch.no_grad():
        generator.decoder[-1].bias.fill_(3.0)  # push the raw output towards saturation
        x = torch.rand(3, *shape)
        attacked = generator(x)
    assert attacked.shape == x.shape
    assert float((attacked - x).abs().max()) <= 0.05 + 1e-6
    assert float(attacked.min()) >= 0 and float(attacked.max()) <= 1


def test_unclipped_generator_leaves_the_bounds_but_the_attack_still_clips():
    """clip=False (a reading of seed 004) keeps x + perturbation as it is: on a black image a
    negative perturbation stays negative; GenerativeAttack's outputs are clipped all the same."""
    torch.manual_seed(0)
    clipped = PerturbationGenerator((1, 8, 8), t=0.1, width=4)
    unclipped = PerturbationGenerator((1, 8, 8), t=0.1, width=4, clip=False)
    unclipped.load_state_dict(clipped.state_dict())
    x = torch.zeros(2, 1, 8, 8)
    with torch.no_grad():
        delta = unclipped.perturbation(x)
        assert torch.equal(unclipped(x), x + delta)
        assert float(unclipped(x).min()) < 0 <= float(clipped(x).min())
        assert torch.equal(clipped(x), (x + delta).clamp(0, 1))
    result = GenerativeAttack(unclipped)(tiny_convnet(1), x, torch.zeros(2, dtype=torch.long))
    assert float(result.adversarial.min()) >= 0


def test_generative_attack_applies_the_attacker_inside_its_ball():
    torch.manual_seed(0)
    generator = PerturbationGenerator((1, 6, 6), t=0.1, width=4)
    generator.train()
    model = tiny_convnet(1)
    x = torch.rand(7, 1, 6, 6)
    y = torch.randint(0, 4, (7,))
    result = GenerativeAttack(generator)(model, x, y)
    with torch.no_grad():
        generator.eval()
        expected = generator(x)
    assert torch.allclose(result.adversarial, expected, atol=1e-6)
    assert (lp.norms(result.adversarial - x, "linf") <= 0.1 + 1e-6).all()


def test_generative_attack_restores_the_attackers_mode_and_rejects_other_modules():
    generator = PerturbationGenerator((1, 6, 6), t=0.1, width=4)
    generator.train()
    GenerativeAttack(generator)(tiny_convnet(1), torch.rand(2, 1, 6, 6), torch.tensor([0, 1]))
    assert generator.training
    with pytest.raises(TypeError, match="'attacker' parameter of GenerativeAttack"):
        GenerativeAttack(torch.nn.Identity())
