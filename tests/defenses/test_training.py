import torch
import torch.nn.functional as F

from saddlepoint.attacks import PGD
from saddlepoint.defenses import AdversarialTraining, NoiseTraining, Trades
from saddlepoint.models import build_model
from saddlepoint.train import TrainConfig, train_model


def adversarial_loss(model, data, eps=0.1):
    x, y = data.train.images[:300], data.train.labels[:300]
    adv = PGD(eps=eps, steps=5, seed=1).perturb(model, x, y)
    model.eval()
    with torch.no_grad():
        return float(F.cross_entropy(model(adv), y))


def test_adversarial_training_lowers_training_loss_under_attack(digits):
    config = TrainConfig(epochs=6, seed=0, device="cpu")
    plain = build_model("mlp", in_shape=digits.shape, num_classes=10)
    robust = build_model("mlp", in_shape=digits.shape, num_classes=10)
    robust.load_state_dict(plain.state_dict())
    train_model(plain, digits, config, progress=False)
    train_model(
        robust,
        digits,
        config,
        transform=AdversarialTraining("pgd", eps=0.1, steps=5),
        progress=False,
    )
    assert adversarial_loss(robust, digits) < adversarial_loss(plain, digits)


def test_half_adversarial_batches_and_epoch_regeneration(digits):
    seen = {}

    class Spy(AdversarialTraining):
        def batch(self, model, images, labels, index):
            out, out_labels = super().batch(model, images, labels, index)
            seen["changed"] = int((out != images).flatten(1).any(1).sum())
            seen["size"] = images.shape[0]
            return out, out_labels

    model = build_model("mlp", in_shape=digits.shape, num_classes=10)
    defense = Spy("fgsm", eps=0.1, fraction=0.5)
    train_model(
        model,
        digits,
        TrainConfig(epochs=1, batch_size=100, device="cpu"),
        transform=defense,
        progress=False,
    )
    assert 0 < seen["changed"] <= 50
    epochwise = AdversarialTraining("fgsm", eps=0.1, regenerate="epoch", warmup_epochs=2)
    train_model(
        model, digits, TrainConfig(epochs=2, device="cpu"), transform=epochwise, progress=False
    )
    assert epochwise._epoch_set.shape == digits.train.images.shape
    assert epochwise.attack.eps == 0.1  # warm-up reached full eps at epoch 2


def test_trades_and_noise_train(digits):
    for defense in (
        Trades(eps=0.1, steps=3),
        NoiseTraining(scale=0.2),
        NoiseTraining("uniform", 0.2, fraction=0.5),
    ):
        model = build_model("mlp", in_shape=digits.shape, num_classes=10)
        history = train_model(
            model, digits, TrainConfig(epochs=2, device="cpu"), transform=defense, progress=False
        )
        assert history.epochs[-1].val_accuracy > 0.7
        assert defense.config()["name"] in ("trades", "noise")


def test_regenerate_once_makes_one_perturbed_copy_for_every_epoch():
    """The DeepFool paper's fine-tuning: one perturbed training set, made before the first epoch."""
    import torch

    from saddlepoint.data.base import ImageData, Split
    from saddlepoint.defenses import AdversarialTraining

    calls = []

    class Recording(AdversarialTraining):
        def _perturb(self, model, images, labels):
            calls.append(len(images))
            return images + 0.01

    x = torch.rand(12, 1, 4, 4)
    y = torch.arange(12) % 3
    data = ImageData("toy", Split(x, y), Split(x, y), Split(x, y), ("a", "b", "c"))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    defense = Recording("fgsm", eps=0.1, regenerate="once")
    for epoch in (1, 2, 3):
        defense.start_epoch(model, data, epoch, 3)
    assert calls == [12]  # made once, kept for epochs 2 and 3
    images, _ = defense.batch(model, x[:4], y[:4], torch.arange(4))
    assert torch.allclose(images, x[:4] + 0.01)
