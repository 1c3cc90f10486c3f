"""The Grad-CAM figure's images: the first ones the attack fools, as in seed 000's Figs 21/22."""

import torch
from torch import nn

from saddlepoint.attacks import PGD
from saddlepoint.experiments.studies.transfer import fooled_examples


def _model_and_data() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.rand(40, 1, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:3] = (y[:3] + 1) % 3  # the first three are misclassified: never shown
    return model, x, y


def test_the_images_shown_are_correctly_classified_and_fooled() -> None:
    model, x, y = _model_and_data()
    calls = []

    def attack(net, images, labels):
        calls.append(len(labels))
        return PGD(eps=0.5, steps=10, step=0.1)(net, images, labels)

    picked, adversarial, fooled = fooled_examples(attack, model, x, y, count=4, chunk=8)
    assert fooled == 4 and len(picked) == 4 and picked == sorted(picked)
    assert min(picked) >= 3
    with torch.no_grad():
        assert (model(x[picked]).argmax(1) == y[picked]).all()
        assert (model(adversarial).argmax(1) != y[picked]).all()
    assert (adversarial - x[picked]).abs().max() <= 0.5 + 1e-6
    assert len(calls) < 5  # it stops once it has four, not after all 40 images


def test_too_few_fooled_fills_with_the_first_that_held() -> None:
    model, x, y = _model_and_data()
    picked, adversarial, fooled = fooled_examples(
        PGD(eps=1e-6, steps=1, step=1e-6), model, x, y, count=4, chunk=8
    )
    assert fooled == 0
    assert picked == [3, 4, 5, 6]  # the first correctly classified images
    assert torch.allclose(adversarial, x[picked], atol=1e-5)


def test_a_model_that_reads_nothing_correctly_still_gets_a_figure() -> None:
    model, x, y = _model_and_data()
    picked, adversarial, fooled = fooled_examples(
        PGD(eps=0.1, steps=2, step=0.05), model, x[:3], y[:3], count=4
    )
    assert fooled == 0 and picked == [0, 1, 2] and adversarial.shape == (3, 1, 4, 4)
