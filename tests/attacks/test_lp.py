import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from saddlepoint import lp


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 5),
    d=st.integers(1, 30),
    eps=st.floats(1e-3, 5.0),
    norm=st.sampled_from(["linf", "l2"]),
    scale=st.floats(0.01, 100.0),
    seed=st.integers(0, 1000),
)
def test_projection_lands_in_ball_and_is_idempotent(n, d, eps, norm, scale, seed):
    g = torch.Generator().manual_seed(seed)
    delta = torch.randn(n, d, generator=g) * scale
    projected = lp.project(delta, norm, eps)
    assert (lp.norms(projected, norm) <= eps * (1 + 1e-5)).all()
    assert torch.allclose(lp.project(projected, norm, eps), projected, atol=1e-6)
    inside = delta * 0.0
    assert torch.equal(lp.project(inside, norm, eps), inside)


def test_l2_projection_is_the_nearest_point():
    delta = torch.tensor([[3.0, 4.0]])
    assert torch.allclose(lp.project(delta, "l2", 1.0), torch.tensor([[0.6, 0.8]]))


def test_directions_have_unit_norm_and_ascend():
    grad = torch.tensor([[3.0, -4.0, 0.0]])
    assert torch.equal(lp.direction(grad, "linf"), torch.tensor([[1.0, -1.0, 0.0]]))
    assert torch.allclose(lp.direction(grad, "l2"), torch.tensor([[0.6, -0.8, 0.0]]))
    assert float((lp.direction(grad, "l2") * grad).sum()) == pytest.approx(5.0)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_start_is_inside_the_ball_and_seeded(norm):
    a = lp.random_start(500, (3, 4), norm, 0.5, torch.Generator().manual_seed(1))
    b = lp.random_start(500, (3, 4), norm, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert (lp.norms(a, norm) <= 0.5 + 1e-6).all()


def test_l2_random_start_is_uniform_in_the_ball():
    # Uniform in a d-ball: P(||x|| <= r * eps) = r^d, so ||x||^d / eps^d ~ U(0, 1); and the
    # direction is isotropic, so each coordinate's sign is a fair coin.
    d, n, eps = 4, 20000, 2.0
    sample = lp.random_start(n, (d,), "l2", eps, torch.Generator().manual_seed(0))
    u = (lp.norms(sample, "l2") / eps).pow(d).sort().values
    ecdf = torch.arange(1, n + 1) / n
    ks = float((u - ecdf).abs().max())
    assert ks < 1.63 / math.sqrt(n)  # Kolmogorov-Smirnov at the 1% level
    positive = (sample > 0).float().mean(0)
    assert ((positive - 0.5).abs() < 0.02).all()


def test_project_and_clip_respects_both_sets():
    x = torch.tensor([[0.05, 0.5, 0.95]])
    far = torch.tensor([[-1.0, 0.9, 2.0]])
    out = lp.project_and_clip(far, x, "linf", 0.1, (0.0, 1.0))
    assert torch.allclose(out, torch.tensor([[0.0, 0.6, 1.0]]))
