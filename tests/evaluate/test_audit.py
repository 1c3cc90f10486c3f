import pytest
import torch
from torch import nn

from saddlepoint.attacks import PGD, build_attack
from saddlepoint.defenses import AdversarialTraining
from saddlepoint.evaluate.audit import audit
from saddlepoint.evaluate.robustness import RESCORING_DRAWS, STRONGEST_LABEL, worst_case
from saddlepoint.train import TrainConfig, train_classifier
from tests.attacks.models import OscillatingTemperature

STRONGER = "cross-entropy gradients are not misleading"

FAST = {"steps": 40, "queries": 150, "strong_steps": 30, "strong_queries": 300}


class HardThreshold(nn.Module):
    """A deliberately masked model: binarize the input (zero gradient), then classify."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model((x > 0.5).float())


def test_audit_passes_an_undefended_model(trained_digits, caplog):
    import logging

    model, data = trained_digits
    with caplog.at_level(logging.INFO, logger="saddlepoint"):
        report = audit(model, data.test.images[:100], data.test.labels[:100], eps=0.1, **FAST)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("audit check")]
    assert len(said) == 9 and said[-1].startswith("audit check 9/9")  # progress as it goes
    failed = [c.name for c in report.checks if not c.passed]
    assert report.passed, failed
    assert len(report.checks) == 9
    stronger = {c.name: c for c in report.checks}[STRONGER]
    assert stronger.passed  # an undefended model: APGD-CE and the rest agree within the tolerance
    assert report.robust_accuracy <= min(report.accuracies.values()) + 1e-9


def test_audit_flags_a_masked_model(trained_digits):
    model, data = trained_digits
    masked = HardThreshold(model)
    report = audit(masked, data.test.images[:100], data.test.labels[:100], eps=0.1, **FAST)
    assert not report.passed
    by_name = {c.name: c for c in report.checks}
    assert not by_name["gradients are not zero or NaN on many inputs"].passed
    assert not by_name["an unbounded attack reaches ~0%"].passed
    assert report.to_dict()["passed"] is False
    assert torch.is_tensor(data.test.images)


def test_stronger_attack_check_catches_a_pgd_number_that_overstates_robustness(trained_digits):
    model, data = trained_digits
    trap = OscillatingTemperature(model, features=64)
    x, y = data.test.images[:100], data.test.labels[:100]
    pgd = PGD(eps=0.1, steps=40, step=2.5 * 0.1 / 40, early_stop=True)(trap, x, y)
    dlr = build_attack("apgd-dlr", eps=0.1)(trap, x, y)
    pgd_accuracy = pgd.metrics()["robust_accuracy"]
    dlr_accuracy = dlr.metrics()["robust_accuracy"]
    assert pgd_accuracy >= dlr_accuracy + 0.15  # the model is built to mislead cross-entropy
    report = audit(trap, x, y, eps=0.1, **FAST)
    by_name = {c.name: c for c in report.checks}
    assert by_name["gradients are not zero or NaN on many inputs"].passed  # not check 6's case
    check = by_name[STRONGER]
    assert not check.passed and not report.passed
    later = next(v for k, v in check.numbers.items() if k.endswith("broken by the later attacks"))
    assert later >= 0.15
    assert "misleads cross-entropy gradients" in check.meaning
    # One robust accuracy: the lowest of everything the audit ran, well under PGD-40's.
    assert report.robust_accuracy <= check.numbers[STRONGEST_LABEL] + 1e-9
    assert report.robust_accuracy <= check.numbers["PGD-40"] - 0.15
    assert report.to_dict()["robust_accuracy"] == report.robust_accuracy
    assert f"{report.robust_accuracy:.1%}" in report.summary() and STRONGER in report.summary()


def test_stronger_attack_check_passes_on_a_pgd_trained_model(digits):
    trained = train_classifier(
        digits,
        "cnn",
        TrainConfig(epochs=10, device="cpu"),
        transform=AdversarialTraining("pgd", eps=0.1, steps=5),
        progress=False,
    )
    x, y = digits.test.images[:60], digits.test.labels[:60]
    report = audit(trained.model, x, y, eps=0.1, **FAST)
    check = {c.name: c for c in report.checks}[STRONGER]
    assert check.passed, check.numbers
    assert report.robust_accuracy > 0.5  # it is robust, and the summary says how much


def test_convergence_check_says_one_loss_is_not_the_attack(trained_digits):
    model, data = trained_digits
    report = audit(model, data.test.images[:30], data.test.labels[:30], eps=0.1, **FAST)
    check = {c.name: c for c in report.checks}[
        "more steps and restarts do not keep lowering accuracy"
    ]
    assert "not that the attack has" in check.meaning


def test_worst_case_is_never_above_any_attack(trained_digits):
    model, data = trained_digits
    x, y = data.test.images[:60], data.test.labels[:60]
    results = {
        "FGSM": build_attack("fgsm", eps=0.15)(model, x, y),
        "PGD": build_attack("pgd", eps=0.15, steps=10)(model, x, y),
        "Square": build_attack("square", eps=0.15, queries=50)(model, x, y),
    }
    combined = worst_case(results)
    accuracies = {k: r.metrics()["robust_accuracy"] for k, r in results.items()}
    assert combined.accuracy <= min(accuracies.values()) + 1e-9
    assert combined.per_attack == accuracies
    assert combined.attack in accuracies or combined.attack.startswith("worst case of")


@pytest.mark.parametrize(
    "name, settings",
    [
        ("apgd-ensemble", {"steps": 20}),
        ("autoattack", {"steps": 10, "target_classes": 3, "queries": 100}),
        ("adaptive", {"steps": 10}),
    ],
)
def test_ensemble_is_never_above_any_of_its_members(trained_digits, name, settings):
    model, data = trained_digits
    x, y = data.test.images[:60], data.test.labels[:60]
    ensemble = build_attack(name, eps=0.1, **settings)
    # a focused member runs on part of the survivors only: the bound is against the others
    members = [
        member(model, x, y)
        for member, share in zip(ensemble.attacks, ensemble.shares)
        if share is None
    ]
    result = ensemble(model, x, y)
    together = result.metrics()["robust_accuracy"]
    assert all(together <= m.metrics()["robust_accuracy"] + 1e-9 for m in members)
    steps = ensemble.progression(result)  # robust accuracy after each attack, as AutoAttack's
    assert [label for label, _ in steps] == ensemble.labels()
    values = [value for _, value in steps]
    assert values == sorted(values, reverse=True)
    assert values[-1] == pytest.approx(together)
    assert values[0] <= members[0].metrics()["robust_accuracy"] + 1e-6


def test_sanity_checks_flag_a_randomized_model_and_a_softmax_output(trained_digits):
    from saddlepoint.defenses.eot import RandomNoiseInput
    from saddlepoint.evaluate.audit import output_sanity

    model, data = trained_digits
    x = data.test.images[:50]
    plain = output_sanity(model, x)
    assert plain["largest change between two passes"] == 0.0
    assert plain["share of rows that are probabilities"] == 0.0
    noisy = output_sanity(RandomNoiseInput(model, scale=0.1), x)
    assert noisy["largest change between two passes"] > 1e-3
    softmax = output_sanity(nn.Sequential(model, nn.Softmax(dim=1)), x)
    assert softmax["share of rows that are probabilities"] == 1.0


def test_a_randomized_model_is_also_attacked_through_its_expectation(trained_digits):
    from saddlepoint.defenses.eot import RandomNoiseInput
    from saddlepoint.evaluate.audit import RAND_LABEL

    model, data = trained_digits
    torch.manual_seed(0)  # the noise layer draws from the global generator
    noisy = RandomNoiseInput(model, scale=0.05)
    x, y = data.test.images[:40], data.test.labels[:40]
    report = audit(noisy, x, y, eps=0.1, steps=10, queries=50, strong_steps=10, strong_queries=50)
    checks = {c.name: c for c in report.checks}
    assert not checks["the model is deterministic"].passed
    assert RAND_LABEL in report.accuracies
    assert report.robust_accuracy <= report.accuracies[RAND_LABEL] + 1e-9
    # re-scored over several draws, and the number of draws recorded
    assert report.rescoring_draws == RESCORING_DRAWS > 1
    assert report.to_dict()["rescoring_draws"] == RESCORING_DRAWS
    assert any("re-scored over" in note for note in report.notes)
    plain = audit(model, x, y, eps=0.1, steps=10, queries=50, strong_steps=10, strong_queries=50)
    assert plain.rescoring_draws == 1 and not any("re-scored" in n for n in plain.notes)


class CoinFlip(nn.Module):
    """Right with probability 1/2 on every pass: a model no single lucky draw should vouch for."""

    def forward(self, x):
        logits = torch.zeros(len(x), 3)
        right = torch.rand(len(x)) < 0.5
        logits[right, 0] = 1.0
        logits[~right, 1] = 1.0
        return logits + 0 * x.flatten(1).sum(1, keepdim=True)


def test_rescoring_counts_an_image_robust_only_if_every_draw_is_correct():
    model = CoinFlip()
    x, y = torch.rand(400, 1, 4, 4), torch.zeros(400, dtype=torch.long)
    torch.manual_seed(1)
    result = build_attack("fgsm", eps=0.01)(model, x, y)
    once = worst_case({"fgsm": result})
    state = torch.random.get_rng_state()
    again = worst_case({"fgsm": result}, model=model, draws=RESCORING_DRAWS, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is untouched
    assert 0.35 < once.accuracy < 0.65 and again.accuracy < 0.01 and again.draws == RESCORING_DRAWS
    same = worst_case({"fgsm": result}, model=model, draws=RESCORING_DRAWS, seed=3)
    assert same == again  # seeded: the same draws again
    with pytest.raises(ValueError, match="needs the 'model'"):
        worst_case({"fgsm": result}, draws=5)


def test_a_weak_pgd_on_a_plain_model_is_information_not_masking(trained_digits):
    """PGD with two steps overstates a plain model's robustness: the audit says by how much,
    as a note, and does not call it gradient masking (APGD-CE, the same loss with a better
    optimizer, closes the gap); the trap model above fails the check."""
    model, data = trained_digits
    x, y = data.test.images[:100], data.test.labels[:100]
    report = audit(model, x, y, eps=0.1, **{**FAST, "steps": 2})
    check = {c.name: c for c in report.checks}[STRONGER]
    assert check.passed, check.numbers
    assert check.numbers["PGD-2"] - report.robust_accuracy > 0.02  # PGD-2 is weak here
    (note,) = report.notes
    assert "PGD-2 alone overstates robustness by" in note and note in report.summary()
    assert report.to_dict()["notes"] == report.notes
