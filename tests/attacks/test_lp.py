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
    norm=st.sampled_from(["linf", "l2", "l1"]),
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


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
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


def test_l1_projection_is_the_nearest_point_of_the_ball():
    # Soft thresholding: (3, -1, 0.5) onto radius 2 subtracts theta = 1 from the magnitudes
    # above it: (2, 0, 0).
    delta = torch.tensor([[3.0, -1.0, 0.5], [0.2, -0.3, 0.1]])
    out = lp.project(delta, "l1", 2.0)
    assert torch.allclose(out, torch.tensor([[2.0, 0.0, 0.0], [0.2, -0.3, 0.1]]))
    # the nearest point: no random point of the ball is closer
    g = torch.Generator().manual_seed(0)
    others = lp.random_start(2000, (3,), "l1", 2.0, g)
    gap = (others - delta[:1]).norm(dim=1)
    assert float(gap.min()) >= float((out[0] - delta[0]).norm()) - 1e-6


def test_l1_random_start_fills_the_ball_uniformly():
    # Uniform in the d-dimensional L1 ball: P(||x||_1 <= r eps) = r^d, as for any ball.
    d, n, eps = 3, 20000, 1.5
    sample = lp.random_start(n, (d,), "l1", eps, torch.Generator().manual_seed(2))
    u = (lp.norms(sample, "l1") / eps).pow(d).sort().values
    ks = float((u - torch.arange(1, n + 1) / n).abs().max())
    assert ks < 1.63 / math.sqrt(n)


def _smallest_on_hyperplane(x, w, c, norm, bounds):
    """The same minimum by linear / quadratic programming (scipy), one sample."""
    import numpy as np
    from scipy.optimize import linprog, minimize

    x, w, c = x.double().numpy(), w.double().numpy(), float(c)
    d = len(x)
    low, high = bounds[0] - x, bounds[1] - x
    if norm == "l1":  # delta = p - q, p, q >= 0
        res = linprog(
            np.ones(2 * d),
            A_eq=[np.concatenate([w, -w])],
            b_eq=[c],
            bounds=[(0, h) for h in high] + [(0, -lo) for lo in low],
        )
        return res.fun if res.success else None
    if norm == "linf":  # min t with -t <= delta_j <= t
        rows = []
        for j in range(d):
            for sign in (1, -1):
                row = np.zeros(d + 1)
                row[j], row[d] = sign, -1
                rows.append(row)
        res = linprog(
            np.r_[np.zeros(d), 1],
            A_ub=rows,
            b_ub=np.zeros(2 * d),
            A_eq=[np.r_[w, 0]],
            b_eq=[c],
            bounds=list(zip(low, high)) + [(0, None)],
        )
        return res.fun if res.success else None
    res = minimize(
        lambda z: z @ z,
        np.zeros(d),
        jac=lambda z: 2 * z,
        constraints=[{"type": "eq", "fun": lambda z: w @ z - c, "jac": lambda z: w}],
        bounds=list(zip(low, high)),
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    return float(np.sqrt(res.fun)) if res.success else None


@settings(max_examples=30, deadline=None)
@given(
    d=st.integers(1, 12),
    norm=st.sampled_from(["linf", "l2", "l1"]),
    seed=st.integers(0, 10_000),
    scale=st.floats(0.05, 2.0),
)
def test_hyperplane_projection_is_the_smallest_feasible_step(d, norm, seed, scale):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, d, generator=g, dtype=torch.float64)
    w = torch.randn(1, d, generator=g, dtype=torch.float64)
    c = torch.randn(1, generator=g, dtype=torch.float64) * scale
    bounds = (0.0, 1.0)
    delta = lp.hyperplane_projection(x, w, c, norm, bounds)
    inside = x + delta
    assert float(inside.min()) >= -1e-12 and float(inside.max()) <= 1 + 1e-12
    best = _smallest_on_hyperplane(x[0], w[0], c[0], norm, bounds)
    reach = float(torch.where(w * c.sign() > 0, 1 - x, x).mul((w * c.sign()).abs()).sum())
    if reach < abs(float(c)) - 1e-9:  # the box cannot reach the hyperplane: go all the way
        assert torch.allclose(
            inside, torch.where(w * c.sign() > 0, 1.0, 0.0).to(x) * (w != 0) + x * (w == 0)
        )
        return
    assert float((w * delta).sum()) == pytest.approx(float(c), abs=1e-9)
    if best is not None:
        assert float(lp.norms(delta, norm)) == pytest.approx(best, rel=1e-5, abs=1e-7)


def test_dual_norms():
    assert [lp.dual(n) for n in ("linf", "l2", "l1")] == ["l1", "l2", "linf"]


@settings(max_examples=25, deadline=None)
@given(d=st.integers(1, 10), seed=st.integers(0, 10_000), eps=st.floats(0.01, 3.0))
def test_l1_projection_into_the_box_is_the_nearest_feasible_point(d, seed, eps):
    import numpy as np
    from scipy.optimize import minimize

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, d, generator=g, dtype=torch.float64)
    far = x + torch.randn(1, d, generator=g, dtype=torch.float64)
    out = lp.project_and_clip(far, x, "l1", eps, (0.0, 1.0))
    assert float(lp.norms(out - x, "l1")) <= eps * (1 + 1e-9)
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    v, x0 = far[0].numpy(), x[0].numpy()
    res = minimize(  # the same projection as a QP in (delta+, delta-)
        lambda z: ((z[:d] - z[d:] + x0 - v) ** 2).sum(),
        np.zeros(2 * d),
        constraints=[{"type": "ineq", "fun": lambda z: eps - z.sum()}],
        bounds=[(0, 1 - a) for a in x0] + [(0, a) for a in x0],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    ours = float(((out[0] - far[0]) ** 2).sum())
    assert ours <= res.fun + 1e-6
