"""Per-norm primitives shared by every Lp attack: norms, steepest-ascent directions,
projections onto the eps-ball, random starts and clipping to the input bounds.

Adding a norm means touching this file only. All functions work per sample on batches
(the first dimension is the batch).
"""

from __future__ import annotations

import torch

_TINY = 1e-12


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a (N,) tensor to broadcast against ``like`` (N, ...)."""
    return values.reshape(-1, *([1] * (like.dim() - 1)))


def norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample norm of ``delta``: 'linf', 'l2' or 'l1'."""
    flat = _flat(delta)
    if norm == "linf":
        return flat.abs().amax(dim=1)
    if norm == "l2":
        return flat.norm(p=2, dim=1)
    if norm == "l1":
        return flat.abs().sum(dim=1)
    raise ValueError(f"Unknown norm {norm!r}; choose 'linf', 'l2' or 'l1'.")


def direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The unit-norm steepest-ascent direction for a gradient: sign for Linf, grad/||grad|| for L2."""
    if norm == "linf":
        return grad.sign()
    if norm == "l2":
        return grad / _per_sample(norms(grad, "l2").clamp_min(_TINY), grad)
    raise ValueError(f"Unknown norm {norm!r}; choose 'linf' or 'l2'.")


def project(delta: torch.Tensor, norm: str, eps: float | torch.Tensor) -> torch.Tensor:
    """Project each perturbation onto the ``norm`` ball of radius ``eps`` (a float or per-sample)."""
    if norm == "linf":
        if isinstance(eps, torch.Tensor):
            bound = _per_sample(eps, delta)
            return torch.maximum(torch.minimum(delta, bound), -bound)
        return delta.clamp(-eps, eps)
    if norm == "l2":
        size = norms(delta, "l2")
        radius = eps if isinstance(eps, torch.Tensor) else torch.full_like(size, float(eps))
        factor = torch.where(size > radius, radius / size.clamp_min(_TINY), torch.ones_like(size))
        return delta * _per_sample(factor, delta)
    raise ValueError(f"Unknown norm {norm!r}; choose 'linf' or 'l2'.")


def random_start(
    n: int,
    shape: tuple[int, ...],
    norm: str,
    eps: float,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``n`` perturbations drawn uniformly from the ``norm`` ball of radius ``eps`` (on the CPU).

    L2: a Gaussian direction scaled to radius eps * U^(1/d), which is uniform in the ball
    (torchattacks' issue #161 shows the common shortcut is not).
    """
    if norm == "linf":
        return (torch.rand((n, *shape), generator=generator, dtype=dtype) * 2 - 1) * eps
    if norm == "l2":
        d = 1
        for s in shape:
            d *= int(s)
        gauss = torch.randn((n, *shape), generator=generator, dtype=dtype)
        unit = gauss / _per_sample(norms(gauss, "l2").clamp_min(_TINY), gauss)
        radius = eps * torch.rand(n, generator=generator, dtype=dtype).pow(1.0 / d)
        return unit * _per_sample(radius, unit)
    raise ValueError(f"Unknown norm {norm!r}; choose 'linf' or 'l2'.")


def clip(x: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    """Clip to the valid input range."""
    return x.clamp(bounds[0], bounds[1])


def project_and_clip(
    x_adv: torch.Tensor,
    x: torch.Tensor,
    norm: str,
    eps: float | torch.Tensor,
    bounds: tuple[float, float],
) -> torch.Tensor:
    """The point of the threat model's feasible set reached by projecting then clipping.

    For Linf this is the exact Euclidean projection onto the intersection (a box); for L2 the
    result is feasible (inside both sets), as every attack of this kind does it.
    """
    return clip(x + project(x_adv - x, norm, eps), bounds)
