"""The robustness card as a library type: built from a model, saved, loaded, compared."""

import json

import pytest

import saddlepoint
from saddlepoint.experiments.card import CARD_FILE, RobustnessCard, benchmark, compare


def test_a_card_is_built_saved_loaded_and_compared(trained_digits, tmp_path):
    model, data = trained_digits
    x, y = data.test.images[:30], data.test.labels[:30]
    card = benchmark(
        model,
        x,
        y,
        eps=0.1,
        strong_steps=5,
        strong_queries=20,
        model_record={"file": "digits-cnn.safetensors"},
        data_record={"source": "digits", "split": "test"},
    )
    assert card.data == {"source": "digits", "split": "test", "images": 30}
    assert 0 <= card.robust_accuracy <= card.clean_accuracy <= 1
    assert card.robust_accuracy == min(card.per_attack.values())  # the per-image worst case
    report = card.save(tmp_path / "card")
    assert report.is_file() and "digits-cnn.safetensors" in report.read_text()
    again = RobustnessCard.load(tmp_path / "card")
    assert again == card and json.loads((tmp_path / "card" / CARD_FILE).read_text())["format"]
    rows = compare([card, again])
    assert rows[4] == ["robust accuracy", card.robust_accuracy, card.robust_accuracy]
    # the cost column RobustBench users ask for: passes per image, counted on the model
    assert set(card.passes) == set(card.per_attack)
    forward, backward = card.passes[max(card.passes, key=lambda k: card.passes[k][1])]
    assert backward > 0 and forward >= backward
    cost = dict((row[0], row[1]) for row in rows)
    assert "backward passes per image" in cost["cost, strongest evaluation"]


def test_a_file_that_is_not_a_card_is_refused_by_name(tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="other.json is not a robustness card"):
        RobustnessCard.load(other)


def test_the_front_door_names_resolve_lazily():
    for name in saddlepoint.__all__:
        assert getattr(saddlepoint, name) is not None
    assert saddlepoint.benchmark is benchmark
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        saddlepoint.nosuch  # noqa: B018


def test_a_smoothed_models_card_holds_its_certificate(trained_digits, tmp_path):
    model, data = trained_digits
    x, y = data.test.images[:10], data.test.labels[:10]
    smoothing = {"sigma": 0.25, "images": 4, "n": 200, "n0": 20, "radii": (0.0, 0.5)}
    card = benchmark(model, x, y, eps=0.1, strong_steps=2, strong_queries=10, smoothing=smoothing)
    certificate = card.certificate
    assert certificate is not None and certificate["images"] == 4 and certificate["n"] == 200
    assert [p["radius"] for p in certificate["curve"]] == [0.0, 0.5]
    assert (
        certificate["curve"][0]["certified accuracy"]
        >= certificate["curve"][1]["certified accuracy"]
    )
    card.save(tmp_path / "card")
    assert RobustnessCard.load(tmp_path / "card").certificate == certificate
    assert "sigma 0.25" in compare([card])[-4][1]  # the certified row, before seconds and software
    section = card.section()
    assert (
        "certified" in [t.name for t in section.tables] and "Randomized smoothing" in section.text
    )
