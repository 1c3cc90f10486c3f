import pytest
import torch

from saddlepoint.data import load_dataset
from saddlepoint.models import build_model
from saddlepoint.train import TrainConfig, train_classifier, train_model


def test_default_model_reaches_95_percent_on_digits(digits):
    result = train_classifier(digits, "cnn", TrainConfig(epochs=12, device="cpu"), progress=False)
    assert result.test_metrics["accuracy"] >= 0.95
    losses = [r.train_loss for r in result.history.epochs]
    assert losses[-1] < losses[0] / 3


def test_same_seed_same_weights_and_global_rng_untouched(digits):
    state = torch.random.get_rng_state()
    config = TrainConfig(epochs=1, seed=7, device="cpu")
    a = train_classifier(digits, "mlp", config, progress=False).model
    between = torch.random.get_rng_state()
    b = train_classifier(digits, "mlp", config, progress=False).model
    assert torch.equal(state, between)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    c = train_classifier(digits, "mlp", TrainConfig(epochs=1, seed=8, device="cpu"), progress=False)
    assert not torch.equal(next(a.parameters()), next(c.model.parameters()))


def test_early_stopping_restores_best_weights():
    # A tiny training set and a large learning rate make validation loss rise after a while.
    data = load_dataset("digits", val_fraction=0.3, test_fraction=0.3)
    small = type(data)(data.name, data.train.head(60), data.val, data.test, data.class_names)
    model = build_model("mlp", in_shape=small.shape, num_classes=10, hidden=[256])
    config = TrainConfig(epochs=40, lr=0.01, patience=3, batch_size=16, device="cpu")
    history = train_model(model, small, config, progress=False)
    assert history.stopped_early
    best = min(history.epochs, key=lambda r: r.val_loss)
    assert history.best_epoch == best.epoch
    from saddlepoint.evaluate import predict_logits, summarize_logits

    now = summarize_logits(predict_logits(model, small.val.images), small.val.labels)
    assert abs(now["loss"] - best.val_loss) < 1e-5


def test_history_is_complete_and_plottable(digits, tmp_path):
    result = train_classifier(digits, "mlp", TrainConfig(epochs=2, device="cpu"), progress=False)
    history = result.history
    assert [r.epoch for r in history.epochs] == [1, 2]
    record = history.epochs[-1]
    assert 0 <= record.val_accuracy <= 1 and 0 <= record.train_confidence <= 1
    history.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_schedules_and_sgd_run(digits):
    for schedule in ("cosine", "onecycle"):
        config = TrainConfig(epochs=1, optimizer="sgd", lr=0.05, schedule=schedule, device="cpu")
        result = train_classifier(digits, "mlp", config, progress=False)
        assert result.test_metrics["accuracy"] > 0.5


def test_transform_hook_sees_every_training_batch(digits):
    seen = []

    def transform(model, images, labels):
        seen.append(images.shape[0])
        return images, labels

    model = build_model("mlp", in_shape=digits.shape, num_classes=10)
    train_model(
        model,
        digits,
        TrainConfig(epochs=1, batch_size=100, device="cpu"),
        transform=transform,
        progress=False,
    )
    assert sum(seen) == len(digits.train)


def test_bad_config_names_the_argument():
    import pytest

    with pytest.raises(ValueError, match="'optimizer' parameter of TrainConfig"):
        TrainConfig(optimizer="adamw")
    with pytest.raises(ValueError, match="'epochs'"):
        TrainConfig(epochs=0)


@pytest.mark.device
def test_training_smoke_on_every_device(device, digits):
    """A short training on the given device learns, keeps its weights there, and is seeded."""
    small = digits.__class__(
        digits.name,
        digits.train.head(400),
        digits.val.head(100),
        digits.test.head(200),
        digits.class_names,
    )
    config = TrainConfig(epochs=4, device=str(device), seed=1)
    first = train_classifier(small, "cnn", config, progress=False)
    again = train_classifier(small, "cnn", config, progress=False)
    assert next(first.model.parameters()).device.type == device.type
    assert first.test_metrics["accuracy"] > 0.3  # 10 classes: chance is 0.1
    a = [p.detach().cpu() for p in first.model.parameters()]
    b = [p.detach().cpu() for p in again.model.parameters()]
    tolerance = 0 if device.type == "cpu" else 1e-5
    assert all(torch.allclose(x, y, atol=tolerance, rtol=0) for x, y in zip(a, b))


def test_bf16_training_learns_keeps_float32_weights_and_records_itself(digits):
    config = TrainConfig(epochs=6, device="cpu", precision="bf16")
    result = train_classifier(digits, "cnn", config, progress=False)
    assert result.test_metrics["accuracy"] >= 0.9
    assert all(p.dtype == torch.float32 for p in result.model.parameters())  # master weights
    plain = TrainConfig(epochs=1, device="cpu")
    assert "precision" not in plain.to_dict() and config.to_dict()["precision"] == "bf16"
    with pytest.raises(ValueError, match="'precision' parameter of TrainConfig"):
        TrainConfig(precision="int8")
