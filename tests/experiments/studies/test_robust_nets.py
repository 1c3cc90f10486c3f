"""Seed 002's studies: the training-time sentence a reduced adversarial-training run prints."""

from saddlepoint.experiments.studies.robust_nets import training_time


def _meta(*seconds: float) -> dict:
    return {"history": {"epochs": [{"epoch": i + 1, "seconds": s} for i, s in enumerate(seconds)]}}


def test_a_reduced_run_projects_each_model_to_the_full_training_set():
    text = training_time(
        [("FGSM-AT", _meta(360, 360)), ("PGD-AT", _meta(1800, 1800))], 10_000, 50_000
    )
    assert "on 10,000 training images" in text
    assert "FGSM-AT 0.20 h (about 1.0 h on all 50,000)" in text
    assert "PGD-AT 1.00 h (about 5.0 h on all 50,000)" in text


def test_a_full_run_states_its_time_without_a_projection():
    text = training_time([("PGD-AT", _meta(1800, 1800))], 50_000, 50_000)
    assert text == "Training time measured here on 50,000 training images: PGD-AT 1.00 h."


def test_models_without_a_recorded_time_are_left_out():
    assert training_time([("original", {})], 10, 50) == ""
    assert "original" not in training_time([("original", {}), ("PGD-AT", _meta(36))], 10, 50)
