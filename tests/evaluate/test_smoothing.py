"""Randomized smoothing: Cohen et al.'s CERTIFY and PREDICT, checked against a closed form (a
linear classifier, whose smoothed version certifies at most its distance to the hyperplane), the
formula's own radius from the counts, determinism per image and abstention."""

import math

import pytest
import torch

from saddlepoint.evaluate.smoothing import (
    ABSTAIN,
    SmoothedClassifier,
    lower_confidence_bound,
    radius_from_counts,
)
from tests.attacks.models import two_class_linear

UNBOUNDED = (-1e9, 1e9)  # no clipping: the smoothed linear classifier keeps its closed form


def _points():
    torch.manual_seed(0)
    w = torch.randn(16)
    x = torch.randn(12, 1, 4, 4)
    return two_class_linear(w, 0.3), x, (x.flatten(1) @ w + 0.3).abs() / w.norm()


def test_the_certified_radius_never_exceeds_the_distance_to_a_linear_boundary():
    model, x, distance = _points()
    smoothed = SmoothedClassifier(model, sigma=0.5, bounds=UNBOUNDED, batch_size=4096)
    result = smoothed.certify(x, n0=100, n=20_000, alpha=0.001)
    truth = (model(x).argmax(1)).long()
    certified = result.prediction != ABSTAIN
    assert certified.sum() >= 6  # most points are far enough from the boundary to certify
    assert torch.equal(result.prediction[certified], truth[certified])
    assert torch.all(result.radius[certified] <= distance[certified].double() + 1e-9)
    far = distance > 1.5  # several sigmas away: the radius comes close to the distance
    assert torch.all(result.radius[far & certified] > 0.5 * distance[far & certified].double())


def test_the_radius_is_the_procedures_own_formula_from_the_counts_rounded_down():
    model, x, _ = _points()
    result = SmoothedClassifier(model, sigma=0.25, bounds=UNBOUNDED).certify(x, n0=50, n=2_000)
    for i in range(len(x)):
        formula = radius_from_counts(int(result.count[i]), result.n, result.alpha, 0.25)
        assert result.radius[i] <= formula and formula - result.radius[i] < 1e-12
        bound = lower_confidence_bound(int(result.count[i]), result.n, result.alpha)
        assert result.p_lower[i] == bound


def test_each_image_draws_its_own_noise_so_any_subset_gives_the_same_result():
    model, x, _ = _points()
    smoothed = SmoothedClassifier(model, sigma=0.5, bounds=UNBOUNDED, batch_size=333, seed=7)
    whole = smoothed.certify(x, n0=20, n=1_000)
    part = smoothed.certify(x[3:6], n0=20, n=1_000, first_index=3)
    assert torch.equal(whole.count[3:6], part.count) and torch.equal(whole.radius[3:6], part.radius)
    again = SmoothedClassifier(model, sigma=0.5, bounds=UNBOUNDED, seed=7).certify(
        x, n0=20, n=1_000
    )
    assert torch.equal(whole.count, again.count)  # the batch size does not change the draws


def test_a_point_on_the_boundary_is_not_certified_and_prediction_abstains():
    w = torch.zeros(16)
    w[0] = 1.0
    model = two_class_linear(w, 0.0)
    x = torch.zeros(3, 1, 4, 4)  # exactly on the boundary: either class half the time
    smoothed = SmoothedClassifier(model, sigma=0.5, bounds=UNBOUNDED)
    result = smoothed.certify(x, n0=100, n=2_000)
    assert torch.all(result.prediction == ABSTAIN) and torch.all(result.radius == 0)
    assert torch.all(smoothed.predict(x, n=1_000, alpha=0.001) == ABSTAIN)
    far = torch.full((2, 1, 4, 4), 3.0)
    assert torch.all(smoothed.predict(far, n=200, alpha=0.001) == 1)


def test_the_bound_and_the_curve():
    n, alpha = 1000, 0.001
    assert lower_confidence_bound(n, n, alpha) == pytest.approx(alpha ** (1 / n))
    assert lower_confidence_bound(0, n, alpha) == 0.0
    model, x, _ = _points()
    result = SmoothedClassifier(model, sigma=0.5, bounds=UNBOUNDED).certify(x, n0=50, n=2_000)
    labels = model(x).argmax(1)
    curve = result.curve(labels, [0.0, 0.5, 1.0, 100.0])
    values = [point["certified accuracy"] for point in curve]
    assert values == sorted(values, reverse=True) and values[-1] == 0.0
    assert math.isclose(values[0], float((result.prediction == labels).float().mean()))


def test_the_model_is_left_as_it_was(trained_digits):
    model, data = trained_digits
    was, grads = (
        model.training,
        [None if p.grad is None else p.grad.clone() for p in model.parameters()],
    )
    model.train()
    SmoothedClassifier(model, sigma=0.25).certify(data.test.images[:2], n0=10, n=50)
    assert model.training  # the mode it was in
    for p, before in zip(model.parameters(), grads, strict=True):  # no weight gradient taken
        assert (p.grad is None) == (before is None) and (
            before is None or torch.equal(p.grad, before)
        )
    model.train(was)
    with pytest.raises(ValueError, match="'sigma' parameter of SmoothedClassifier"):
        SmoothedClassifier(model, sigma=0)
