"""Attacks on linear models, where the answer is known exactly."""

import pytest
import torch

from saddlepoint import lp
from saddlepoint.attacks import APGD, FAB, DeepFool, FABMinimal, fgm, fgsm
from tests.attacks.models import Affine


def linear_model(classes: int, d: int, seed: int = 0) -> Affine:
    g = torch.Generator().manual_seed(seed)
    return Affine(
        torch.randn(classes, d, generator=g) * 0.3, torch.randn(classes, generator=g) * 0.1
    )


def ce_input_gradient(model: Affine, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Closed form: d CE / d x = W^T (softmax(Wx + b) - onehot(y))."""
    p = (x @ model.weight.T + model.bias).softmax(1)
    p[torch.arange(len(y)), y] -= 1
    return p @ model.weight


def test_fgsm_on_a_linear_classifier_is_the_closed_form():
    model = linear_model(5, 12)
    x = torch.rand(64, 12, generator=torch.Generator().manual_seed(1))
    y = torch.arange(64) % 5
    eps = 0.07
    expected = (x + eps * ce_input_gradient(model, x, y).detach().sign()).clamp(0, 1)
    result = fgsm(eps=eps)(model, x, y)
    assert torch.allclose(result.adversarial, expected, atol=1e-6)


def test_targeted_fgsm_descends_the_target_loss():
    model = linear_model(5, 12)
    x = torch.rand(32, 12, generator=torch.Generator().manual_seed(2))
    y = torch.zeros(32, dtype=torch.long)
    targets = torch.full((32,), 3)
    expected = (x - 0.05 * ce_input_gradient(model, x, targets).detach().sign()).clamp(0, 1)
    result = fgsm(eps=0.05)(model, x, y, targets=targets)
    assert torch.allclose(result.adversarial, expected, atol=1e-6)


def test_fgm_on_a_linear_classifier_is_the_closed_form():
    model = linear_model(3, 8)
    x = 0.25 + 0.5 * torch.rand(16, 8, generator=torch.Generator().manual_seed(3))
    y = torch.arange(16) % 3
    g = ce_input_gradient(model, x, y).detach()
    expected = x + 0.1 * g / g.norm(dim=1, keepdim=True)
    result = fgm(eps=0.1)(model, x, y)
    assert torch.allclose(result.adversarial, expected, atol=1e-6)


def test_deepfool_binary_affine_step_is_exact():
    # Two logits (0, w.x + b): the boundary is w.x + b = 0 and the minimal step is
    # -f(x) / ||w||^2 w, which DeepFool must take in a single iteration.
    g = torch.Generator().manual_seed(4)
    w = torch.randn(20, generator=g) * 0.1
    b = torch.tensor(0.3)
    model = Affine(torch.stack([torch.zeros(20), w]), torch.stack([torch.tensor(0.0), b]))
    x = 0.4 + 0.2 * torch.rand(10, 20, generator=g)
    f = x @ w + b
    y = (f > 0).long()
    expected = x - (f / w.pow(2).sum())[:, None] * w
    result = DeepFool(steps=1, overshoot=0.0, margin=0.0, bounds=(-5.0, 5.0))(model, x, y)
    assert torch.allclose(result.adversarial, expected, atol=1e-5)


def test_deepfool_multiclass_linear_reaches_nearest_boundary():
    model = linear_model(6, 30, seed=5)
    x = 0.3 + 0.4 * torch.rand(40, 30, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)
    w, z = model.weight.detach(), logits
    # Exact minimal L2 distance to the nearest pairwise boundary of an affine classifier.
    diffs = w[None, :, :] - w[y][:, None, :]
    gaps = (z - z.gather(1, y[:, None])).abs()
    dist = gaps / diffs.norm(dim=2)
    dist[torch.arange(40), y] = float("inf")
    nearest = dist.min(1).values
    result = DeepFool(overshoot=0.0, margin=1e-6)(model, x, y)
    assert result.success.all()
    assert torch.allclose(result.norms("l2"), nearest, rtol=1e-3, atol=1e-5)


def test_apgd_t_moves_toward_its_target_and_reaches_it_when_the_ball_allows():
    """On a linear model the targeted DLR ascent raises z_t - z_y; with a ball large enough to
    cross the boundary to the first target, the attack succeeds everywhere and
    the target is the prediction for most samples (success is untargeted, so a sample may stop in
    a third class it crossed on the way)."""
    from saddlepoint.attacks import APGDTargeted

    model = linear_model(6, 16, seed=2)
    x = torch.rand(40, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        clean = model(x)
    y = clean.argmax(1)
    ranked = clean.argsort(1, descending=True)
    target = ranked[:, 1]  # the first target APGD-T tries: the runner-up class

    def gap(logits: torch.Tensor) -> torch.Tensor:
        return logits.gather(1, target[:, None]).squeeze(1) - logits.gather(1, y[:, None]).squeeze(
            1
        )

    small = APGDTargeted(eps=0.01, steps=20, target_classes=1, bounds=(0, 1))(model, x, y)
    assert (gap(small.logits) >= gap(clean) - 1e-6).all()
    assert gap(small.logits).mean() > gap(clean).mean()
    large = APGDTargeted(eps=1.0, steps=20, target_classes=1)(model, x, y)
    assert (large.predictions == target).float().mean() >= 0.75
    assert bool(large.success.all())


def test_l2_sign_step_moves_every_pixel_by_eta_then_projects():
    """Seed 000's L2 PGD: a signed step of eta per pixel (L2 length eta * sqrt(p)), projected
    onto the L2 ball; with a ball large enough, one step is exactly x + eta * sign(grad)."""
    from saddlepoint.attacks import PGD

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.rand(5, 1, 4, 4) * 0.5 + 0.25
    y = torch.tensor([0, 1, 2, 0, 1])
    eta = 0.01
    big = PGD(norm="l2", eps=10.0, steps=1, step=eta, random_start=False, step_direction="sign")
    delta = big(model, x, y).perturbation
    assert torch.allclose(delta.abs(), torch.full_like(delta, eta), atol=1e-7)
    small = PGD(norm="l2", eps=0.02, steps=3, step=eta, random_start=False, step_direction="sign")
    assert (small(model, x, y).norms("l2") <= 0.02 + 1e-6).all()
    steepest = PGD(norm="l2", eps=10.0, steps=1, step=eta, random_start=False)
    assert torch.allclose(steepest(model, x, y).norms("l2"), torch.full((5,), eta), atol=1e-6)


def binary_affine(d: int = 20, seed: int = 4):
    """Logits (0, w.x + b), points near the middle of [0, 1] and their labels."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=g) * 0.3
    b = torch.tensor(0.2)
    model = Affine(torch.stack([torch.zeros(d), w]), torch.stack([torch.tensor(0.0), b]))
    x = 0.3 + 0.4 * torch.rand(10, d, generator=g)
    f = x @ w + b
    return model, x, (f > 0).long(), w, f


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
@pytest.mark.parametrize("targeted", [False, True])
def test_fab_on_a_binary_affine_classifier_finds_the_exact_minimal_perturbation(norm, targeted):
    # The boundary is the hyperplane w.x + b = 0, so the smallest perturbation inside the box
    # is the box-constrained projection onto it: FAB must find it up to its overshoot.
    model, x, y, w, f = binary_affine()
    exact = lp.norms(lp.hyperplane_projection(x, w.expand_as(x), -f, norm, (0.0, 1.0)), norm)
    result = FABMinimal(norm=norm, targeted=targeted)(model, x, y)
    assert result.success.all()
    found = result.norms(norm)
    assert (found >= exact * (1 - 1e-5)).all()  # nothing beats the minimum
    assert torch.allclose(found, exact, rtol=1e-2)
    if norm == "l2":  # the L2 minimizer is unique: the point itself must be close
        step = lp.hyperplane_projection(x, w.expand_as(x), -f, "l2", (0.0, 1.0))
        assert torch.allclose(result.adversarial, x + step, atol=2e-2 * float(exact.max()))


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_fab_within_a_radius_breaks_exactly_the_points_the_radius_reaches(norm):
    model, x, y, w, f = binary_affine(seed=7)
    exact = lp.norms(lp.hyperplane_projection(x, w.expand_as(x), -f, norm, (0.0, 1.0)), norm)
    radius = float(exact.median())
    result = FAB(norm=norm, eps=radius)(model, x, y)
    assert (result.norms(norm) <= radius * (1 + 1e-6)).all()
    assert torch.equal(result.success, exact <= radius * 0.99) or torch.equal(
        result.success, exact <= radius
    )


def test_fab_minimal_on_a_multiclass_linear_model_reaches_the_nearest_boundary():
    model = linear_model(6, 30, seed=5)
    x = 0.3 + 0.4 * torch.rand(40, 30, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)
    w = model.weight.detach()
    gaps = (logits - logits.gather(1, y[:, None])).abs()
    dist = gaps / (w[None, :, :] - w[y][:, None, :]).norm(dim=2)
    dist[torch.arange(40), y] = float("inf")
    result = FABMinimal(norm="l2", bounds=(-10.0, 10.0))(model, x, y)
    assert result.success.all()
    assert torch.allclose(result.norms("l2"), dist.min(1).values, rtol=1e-2)


def test_apgd_l1_breaks_a_binary_affine_classifier_exactly_when_the_ball_allows():
    # The smallest L1 perturbation of an affine binary classifier moves the coordinates with the
    # largest |w_j| first: APGD-L1's sparse steps must reach it with a little room, and no
    # attack can succeed inside a ball smaller than it.
    model, x, y, w, f = binary_affine(seed=11)
    exact = lp.norms(lp.hyperplane_projection(x, w.expand_as(x), -f, "l1", (0.0, 1.0)), "l1")
    roomy = APGD(norm="l1", eps=float(exact.max()) * 1.2, steps=50)
    assert roomy(model, x, y).success.all()
    tight = APGD(norm="l1", eps=float(exact.min()) * 0.95, steps=50)(model, x, y)
    assert not tight.success.any()
    assert (tight.norms("l1") <= float(exact.min()) * 0.95 * (1 + 1e-6)).all()
