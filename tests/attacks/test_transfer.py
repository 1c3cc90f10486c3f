import torch

from saddlepoint.attacks import PGD, SurrogateEnsemble, fgsm, transfer_attack
from saddlepoint.data import load_dataset
from saddlepoint.train import TrainConfig, train_classifier


def test_transfer_onto_itself_is_the_white_box_attack(trained_digits):
    model, data = trained_digits
    x, y = data.test.images[:150], data.test.labels[:150]
    attack = PGD(eps=0.1, steps=10, seed=2)
    white = attack(model, x, y)
    transfer = transfer_attack(attack, model, model, x, y)
    metrics = transfer.metrics()
    assert metrics["target_accuracy"] == white.metrics()["robust_accuracy"]
    assert metrics["surrogate_accuracy"] == metrics["target_accuracy"]
    assert metrics["transfer_rate"] == 1.0


def test_transfer_from_other_models_and_ensembles():
    data = load_dataset("digits", seed=1)
    models = [
        train_classifier(
            data, name, TrainConfig(epochs=8, seed=s, device="cpu"), progress=False
        ).model
        for name, s in (("cnn", 0), ("mlp", 1), ("cnn", 2))
    ]
    target, surrogates = models[0], models[1:]
    x, y = data.test.images, data.test.labels
    single = transfer_attack(fgsm(eps=0.2), surrogates[0], target, x, y).metrics()
    ensemble = transfer_attack(fgsm(eps=0.2), surrogates, target, x, y).metrics()
    assert single["target_accuracy"] < single["target_clean_accuracy"]
    assert ensemble["target_accuracy"] < ensemble["target_clean_accuracy"]
    assert single["surrogate_accuracy"] <= single["target_accuracy"]  # white-box hits harder
    probs = SurrogateEnsemble(surrogates, combine="probabilities")
    out = probs(x[:4])
    assert torch.allclose(out.exp().sum(1), torch.ones(4), atol=1e-5)


def test_loss_averaging_ensemble_ascends_the_members_mean_loss(trained_digits):
    model, data = trained_digits
    other = train_classifier(
        data, "mlp", TrainConfig(epochs=3, seed=5, device="cpu"), progress=False
    ).model.eval()
    x, y = data.test.images[:20], data.test.labels[:20]
    attack = PGD(eps=0.1, steps=1, seed=0)
    ensemble = SurrogateEnsemble([model, other], combine="loss")
    logits, value, grad = attack.input_gradient(ensemble, x, y, None)
    parts = [attack.input_gradient(m, x, y, None) for m in (model, other)]
    assert torch.allclose(value, (parts[0][1] + parts[1][1]) / 2, atol=1e-5)
    assert torch.allclose(grad, (parts[0][2] + parts[1][2]) / 2, atol=1e-6)
    assert torch.allclose(logits, (parts[0][0] + parts[1][0]) / 2, atol=1e-5)
    by_logits = attack.input_gradient(SurrogateEnsemble([model, other]), x, y, None)[2]
    assert not torch.allclose(grad, by_logits, atol=1e-6)  # a different objective
    result = transfer_attack(PGD(eps=0.2, steps=10), [model, other], model, x, y, combine="loss")
    assert result.metrics()["target_accuracy"] < result.metrics()["target_clean_accuracy"]
