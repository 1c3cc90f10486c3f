"""HopSkipJump, the hard-label boundary walk: it reads only the model's label, counts every query,
returns only points the model called adversarial, and on a linear classifier closes in on the
exact L2 and Linf distances to the boundary."""

import pytest
import torch

from saddlepoint.attacks import HopSkipJump, HopSkipJumpMinimal
from tests.attacks.models import two_class_linear
from tests.attacks.test_rays import LabelOnly


def _linear_case(n=6, dims=16):
    torch.manual_seed(1)
    w = torch.randn(dims)
    x = 0.4 + 0.2 * torch.rand(n, 1, 4, dims // 4)
    b = -float((x.flatten(1) @ w).mean())
    model = two_class_linear(w, b)
    labels = model(x).argmax(1)
    margin = (x.flatten(1) @ w + b).abs()
    return model, x, labels, margin / w.norm(), margin / w.abs().sum()


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_on_a_linear_classifier_the_distance_closes_in_on_the_exact_one(norm):
    model, x, labels, exact_l2, exact_linf = _linear_case()
    exact = exact_l2 if norm == "l2" else exact_linf
    # pixels in [0.4, 0.6] and distances under 0.02: the bounds [0, 1] never clip a probe
    found = HopSkipJumpMinimal(norm=norm, queries=3000)(model, x, labels)
    distance = found.extras["distance"].double()
    assert torch.all(distance >= exact.double() * (1 - 1e-4))  # nothing beats the exact one
    assert torch.all(distance <= exact.double() * (1.05 if norm == "l2" else 1.25))
    assert torch.all(found.success)


def test_it_reads_only_labels_counts_every_query_and_reports_confirmed_successes():
    model, x, labels, exact, _ = _linear_case()
    eps = float(exact.median()) * 1.02
    hidden = LabelOnly(model)
    on_labels = HopSkipJump(norm="l2", eps=eps, queries=500)(hidden, x, labels)
    calls = hidden.calls
    on_scores = HopSkipJump(norm="l2", eps=eps, queries=500)(model, x, labels)
    assert torch.equal(on_labels.adversarial, on_scores.adversarial)  # only the label mattered
    assert int(on_labels.queries.sum()) == calls  # every call counted, nothing else sent
    assert on_labels.success.any() and not on_labels.success.all()
    with torch.no_grad():
        predicted = model(on_labels.adversarial).argmax(1)
    assert torch.equal(on_labels.success, predicted != labels)  # successes re-checked
    distance = (on_labels.adversarial - x).flatten(1).norm(dim=1)
    assert torch.all(distance <= eps * (1 + 1e-5))  # inside the ball
    assert torch.all(on_labels.queries <= 500)


def test_a_larger_budget_never_ends_farther_and_an_image_stops_inside_the_ball():
    model, x, labels, exact, _ = _linear_case()
    bounds = (-10.0, 10.0)
    distances = [
        HopSkipJumpMinimal(queries=q, bounds=bounds)(model, x, labels).extras["distance"]
        for q in (100, 400, 1600)
    ]
    assert torch.all(distances[1] <= distances[0]) and torch.all(distances[2] <= distances[1])
    # fixed-eps: each image stops as soon as its boundary point is inside the ball
    loose = HopSkipJump(eps=float(exact.max()) * 3, queries=1600, bounds=bounds)(model, x, labels)
    assert torch.all(loose.success) and int(loose.queries.max()) < 1600


def test_bad_settings_name_the_argument():
    with pytest.raises(ValueError, match="'queries'"):
        HopSkipJump(queries=0)
    with pytest.raises(ValueError, match="'gamma'"):
        HopSkipJump(gamma=0)
    with pytest.raises(ValueError, match="norm"):
        HopSkipJump(norm="l1")


def test_the_boundary_attack_walks_to_the_exact_distance_on_labels_alone():
    """Brendel et al.'s random walk: on a linear classifier it closes in on the exact L2
    distance, reads only labels, counts every query and returns only confirmed adversarials."""
    from saddlepoint.attacks import Boundary, BoundaryMinimal

    model, x, labels, exact, _ = _linear_case()
    found = BoundaryMinimal(queries=3000)(model, x, labels)
    distance = found.extras["distance"].double()
    assert torch.all(found.success)
    assert torch.all(distance >= exact.double() * (1 - 1e-4))
    assert torch.all(distance <= exact.double() * 1.15)
    shorter = BoundaryMinimal(queries=300)(model, x, labels).extras["distance"].double()
    assert torch.all(distance <= shorter + 1e-9)  # more queries never end farther
    eps = float(exact.median()) * 1.1
    hidden = LabelOnly(model)
    on_labels = Boundary(eps=eps, queries=1500)(hidden, x, labels)
    assert int(on_labels.queries.sum()) == hidden.calls and torch.all(on_labels.queries <= 1500)
    on_scores = Boundary(eps=eps, queries=1500)(model, x, labels)
    assert torch.equal(on_labels.adversarial, on_scores.adversarial)
    with torch.no_grad():
        assert torch.equal(on_labels.success, model(on_labels.adversarial).argmax(1) != labels)
    assert torch.all((on_labels.adversarial - x).flatten(1).norm(dim=1) <= eps * (1 + 1e-5))
    assert on_labels.success.any()
