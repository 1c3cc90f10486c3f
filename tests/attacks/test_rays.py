"""RayS, the hard-label attack: it reads only the model's label, counts every query, reports only
successes the model confirms, and on a linear classifier finds the exact Linf distance."""

import torch
from torch import nn

from saddlepoint.attacks import RayS, build_attack
from tests.attacks.models import two_class_linear


class LabelOnly(nn.Module):
    """Lets nothing but the predicted label out of a two-class ``model`` (as a one-hot)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += len(x)
        labels = self.model(x).argmax(1)
        return nn.functional.one_hot(labels, 2).float()


def _linear_case():
    torch.manual_seed(0)
    w = torch.randn(16)
    x = 0.4 + 0.2 * torch.rand(6, 1, 4, 4)
    b = -float((x.flatten(1) @ w).mean())
    model = two_class_linear(w, b)
    labels = model(x).argmax(1)
    exact = (x.flatten(1) @ w + b).abs() / w.abs().sum()  # min Linf distance to the plane
    return model, x, labels, exact


def test_on_a_linear_classifier_the_radius_is_the_exact_linf_distance():
    model, x, labels, exact = _linear_case()
    bounds = (-10.0, 10.0)  # no clipping in the way of the closed form
    result = RayS(eps=1e-6, queries=3000, tol=1e-5, bounds=bounds)(model, x, labels)
    radius = result.extras["radius"].double()
    assert torch.all(radius >= exact.double() - 1e-4)  # nothing beats the exact distance
    assert torch.all(radius <= exact.double() * 1.02 + 1e-4)  # and RayS reaches it


def test_it_reads_only_labels_counts_every_query_and_reports_confirmed_successes():
    model, x, labels, exact = _linear_case()
    eps = float(exact.median())
    hidden = LabelOnly(model)
    on_labels = RayS(eps=eps, queries=400)(hidden, x, labels)
    calls = hidden.calls
    on_scores = RayS(eps=eps, queries=400)(model, x, labels)
    assert torch.equal(on_labels.adversarial, on_scores.adversarial)  # only the label mattered
    assert int(on_labels.queries.sum()) == calls  # every call counted, nothing else sent
    assert on_labels.success.any() and not on_labels.success.all()
    with torch.no_grad():
        predicted = model(on_labels.adversarial).argmax(1)
    assert torch.equal(on_labels.success, predicted != labels)  # successes re-checked
    distance = (on_labels.adversarial - x).abs().flatten(1).amax(1)
    assert torch.all(distance <= eps + 1e-6)  # inside the ball
    assert torch.all(on_labels.queries <= 400)


def test_rays_breaks_a_trained_model_within_its_budget(trained_digits):
    model, data = trained_digits
    x, y = data.test.images[:20], data.test.labels[:20]
    result = build_attack("rays", eps=0.3, queries=500)(model, x, y)
    assert result.metrics()["robust_accuracy"] < 0.5
    assert int(result.queries.max()) <= 500
