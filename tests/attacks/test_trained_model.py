"""Properties of attacks on a trained model (scikit-learn digits, default CNN)."""

import pytest

from saddlepoint.attacks import APGD, PGD, CarliniWagnerL2, DeepFool, build_attack, fgsm


@pytest.fixture(scope="module")
def setup(trained_digits):
    model, data = trained_digits
    return model, data.test.images, data.test.labels


def test_pgd_is_at_least_as_strong_as_fgsm(setup):
    model, x, y = setup
    weak = fgsm(eps=0.1)(model, x, y).metrics()
    strong = PGD(eps=0.1, steps=20)(model, x, y).metrics()
    assert strong["robust_accuracy"] <= weak["robust_accuracy"]
    assert strong["loss"] >= weak["loss"]


def test_robust_accuracy_does_not_increase_with_eps(setup):
    model, x, y = setup
    accuracies = [
        PGD(eps=e, steps=10)(model, x, y).metrics()["robust_accuracy"]
        for e in (0.0, 0.05, 0.1, 0.2, 0.3)
    ]
    assert accuracies[0] == pytest.approx(
        PGD(eps=0.0, steps=1)(model, x, y).metrics()["clean_accuracy"]
    )
    assert all(b <= a + 1e-9 for a, b in zip(accuracies, accuracies[1:]))
    assert accuracies[-1] < 0.1


def test_more_steps_never_hurt_on_average(setup):
    model, x, y = setup
    few = PGD(eps=0.08, steps=2, random_start=False)(model, x, y)
    many = PGD(eps=0.08, steps=20, random_start=False)(model, x, y)
    assert many.metrics()["robust_accuracy"] <= few.metrics()["robust_accuracy"]
    assert float(many.loss.mean()) >= float(few.loss.mean())


def test_restarts_never_hurt_per_sample(setup):
    model, x, y = setup
    one = PGD(eps=0.08, steps=5, restarts=1, seed=3)(model, x, y)
    three = PGD(eps=0.08, steps=5, restarts=3, seed=3)(model, x, y)
    assert (three.success >= one.success).all()
    both_fail = ~one.success & ~three.success
    assert (three.loss[both_fail] >= one.loss[both_fail] - 1e-5).all()


def test_early_stop_gives_no_higher_robust_accuracy_for_fewer_passes(setup):
    model, x, y = setup
    full = PGD(eps=0.1, steps=20)(model, x, y)
    quick = PGD(eps=0.1, steps=20, early_stop=True)(model, x, y)
    assert quick.metrics()["robust_accuracy"] <= full.metrics()["robust_accuracy"]
    assert quick.grad_evals.sum() < full.grad_evals.sum()
    # A sample early-stopped is misclassified at its returned point.
    stopped = quick.grad_evals < 20
    assert quick.success[stopped].all()


def test_trace_starts_clean_and_ends_at_the_result(setup):
    model, x, y = setup
    result = PGD(eps=0.1, steps=6, random_start=False, trace=True)(model, x, y)
    assert [t["iteration"] for t in result.trace] == list(range(7))
    assert result.trace[0]["accuracy"] == pytest.approx(result.metrics()["clean_accuracy"])
    assert result.trace[-1]["accuracy"] == pytest.approx(result.metrics()["robust_accuracy"])
    assert result.trace[-1]["loss"] > result.trace[0]["loss"]


def test_convergence_tolerance_stops_early(setup):
    model, x, y = setup
    result = PGD(eps=0.1, steps=50, tol=1e9)(model, x, y)
    assert (result.grad_evals == 2).all()  # the change is measured between iterates 0 and 1
    converged = PGD(eps=0.1, steps=200, step=0.01, tol=1e-3)(model, x, y)
    assert converged.grad_evals.float().mean() < 200


def test_mse_and_cw_losses_attack_too(setup):
    model, x, y = setup
    for loss in ("mse", "cw", "dlr"):
        result = PGD(eps=0.1, steps=10, loss=loss)(model, x, y)
        assert result.metrics()["robust_accuracy"] < result.metrics()["clean_accuracy"] - 0.2


def test_targeted_pgd_reaches_targets(setup):
    model, x, y = setup
    targets = (y + 1) % 10
    result = PGD(eps=0.3, steps=20)(model, x, y, targets=targets)
    assert float((result.predictions == targets).float().mean()) > 0.9


def test_apgd_matches_or_beats_pgd(setup):
    model, x, y = setup
    pgd = PGD(eps=0.08, steps=20)(model, x, y).metrics()["robust_accuracy"]
    apgd = APGD(eps=0.08, steps=20)(model, x, y).metrics()["robust_accuracy"]
    ensemble = build_attack("apgd-ensemble", eps=0.08, steps=20)(model, x, y)
    assert apgd <= pgd + 0.01
    assert ensemble.metrics()["robust_accuracy"] <= apgd
    assert set(ensemble.extras["broken_by"].tolist()) <= {-2, -1, 0, 1}


def test_deepfool_always_succeeds_with_small_perturbations(setup):
    model, x, y = setup
    result = DeepFool()(model, x, y)
    metrics = result.metrics()
    assert metrics["success_rate"] == 1.0
    assert metrics["rho_adv"] < 0.3
    linf = DeepFool(norm="linf")(model, x, y)
    assert linf.metrics()["success_rate"] == 1.0
    assert linf.norms("linf").median() < result.norms("linf").median()


def test_cw_succeeds_moves_zero_pixels_and_beats_deepfool(setup):
    model, x, y = setup
    subset = slice(0, 120)
    deepfool = DeepFool()(model, x[subset], y[subset])
    cw = CarliniWagnerL2(steps=60, search_steps=5)(model, x[subset], y[subset])
    assert cw.metrics()["success_rate"] == 1.0
    assert cw.norms("l2").median() <= deepfool.norms("l2").median()
    zero = cw.inputs == 0  # most digit pixels sit exactly on the lower bound
    assert zero.float().mean() > 0.3
    assert (cw.perturbation[zero] > 1e-3).float().mean() > 0.05
