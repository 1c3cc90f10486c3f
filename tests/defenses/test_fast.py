"""N-FGSM and GradAlign: single-step adversarial training that does not collapse.

Their training examples, their loss, the recipe contract every defense keeps (pixel range, modes
restored, no gradient left on the weights by the crafting, determinism under a seed) and that
each trains a model that resists PGD better than plain training."""

import pytest
import torch
import torch.nn.functional as F

from saddlepoint.defenses import DEFENSES, GradAlignTraining, NFGSMTraining, build_defense
from saddlepoint.models import build_model
from saddlepoint.train import TrainConfig, train_model
from tests.defenses.test_training import adversarial_loss


def _net(digits, seed=0):
    torch.manual_seed(seed)
    return build_model("mlp", in_shape=digits.shape, num_classes=10)


@pytest.mark.parametrize("name", ["n-fgsm", "gradalign"])
def test_examples_keep_the_contract(name, digits):
    net = _net(digits).train()
    x, y, index = digits.train.images[:64], digits.train.labels[:64], torch.arange(64)
    defense = build_defense(name, eps=0.1)
    torch.manual_seed(1)
    adv, labels = defense.batch(net, x, y, index)
    torch.manual_seed(1)
    again, _ = defense.batch(net, x, y, index)
    assert torch.equal(adv, again) and torch.equal(labels, y)  # determinism under a seed
    assert adv.min() >= 0 and adv.max() <= 1  # the pixel range
    assert net.training  # the model's mode is restored
    assert all(p.grad is None for p in net.parameters())  # crafting leaves no weight gradient
    distance = (adv - x).abs().flatten(1).amax(1)
    if name == "n-fgsm":  # noise 2 eps plus a step of eps, never projected back onto the ball
        assert float(distance.max()) <= 3 * 0.1 + 1e-6 and float(distance.max()) > 0.1 + 1e-3
    else:  # FGSM from x: exactly eps wherever the pixel range allows
        assert float(distance.max()) <= 0.1 + 1e-6


def test_n_fgsm_takes_one_signed_step_from_its_noisy_start(digits):
    net = _net(digits)
    x, y = digits.train.images[:32], digits.train.labels[:32]
    defense = NFGSMTraining(eps=0.1, noise=0.0, step=1.0)  # no noise: plain FGSM, unprojected
    adv, _ = defense.batch(net, x, y, torch.arange(32))
    x0 = x.clone().requires_grad_(True)
    net.eval()
    (grad,) = torch.autograd.grad(F.cross_entropy(net(x0), y), x0)
    assert torch.allclose(adv, (x + 0.1 * grad.sign()).clamp(0, 1))


def test_gradalign_adds_a_differentiable_alignment_penalty(digits):
    net = _net(digits).train()
    x, y = digits.train.images[:64], digits.train.labels[:64]
    plain, penalised = GradAlignTraining(eps=0.1, align=0.0), GradAlignTraining(eps=0.1, align=2)
    adv, _ = plain.batch(net, x, y, torch.arange(64))
    penalised.batch(net, x, y, torch.arange(64))
    base, _ = plain.loss(net, adv, y)
    torch.manual_seed(0)
    total, _ = penalised.loss(net, adv, y)
    torch.manual_seed(0)
    gap = penalised.misalignment(net, x, y)
    gap, base_value = float(gap.detach()), float(base.detach())
    assert 0 <= gap <= 2 and float(total.detach()) == pytest.approx(base_value + 2 * gap)
    total.backward()  # double backpropagation reaches the weights
    assert all(p.grad is not None for p in net.parameters())


def test_both_are_registered_recipes_with_their_settings_recorded():
    assert {"n-fgsm", "gradalign"} <= set(DEFENSES)
    assert NFGSMTraining(eps="8/255").config()["eps"] == pytest.approx(8 / 255)
    with pytest.raises(ValueError, match="'noise' parameter of NFGSMTraining"):
        NFGSMTraining(noise=-1)
    with pytest.raises(ValueError, match="'align' parameter of GradAlignTraining"):
        GradAlignTraining(align=-0.5)


@pytest.mark.parametrize("defense", [NFGSMTraining(eps=0.1), GradAlignTraining(eps=0.1)])
def test_each_trains_a_model_more_robust_than_plain_training(defense, digits):
    config = TrainConfig(epochs=6, seed=0, device="cpu")
    plain, robust = _net(digits), _net(digits)
    train_model(plain, digits, config, progress=False)
    train_model(robust, digits, config, transform=defense, progress=False)
    assert adversarial_loss(robust, digits) < adversarial_loss(plain, digits)
