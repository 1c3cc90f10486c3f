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
    """The unit-norm steepest-ascent direction for a gradient: sign for Linf, grad/||grad|| for L2
    (L1 has no dense one: its attacks choose sparse steps themselves)."""
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
    if norm == "l1":
        return _project_l1(delta, eps)
    raise ValueError(f"Unknown norm {norm!r}; choose 'linf', 'l2' or 'l1'.")


def _project_l1(delta: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto the L1 ball (Duchi et al., 2008): soft-threshold the
    magnitudes by the theta that makes them sum to eps; samples already inside are unchanged."""
    flat = _flat(delta)
    n = flat.shape[0]
    radius = eps.to(flat).reshape(n) if isinstance(eps, torch.Tensor) else flat.new_full((n,), eps)
    size = flat.abs()
    ranked = size.sort(dim=1, descending=True).values
    running = ranked.cumsum(dim=1) - radius[:, None]
    index = torch.arange(1, flat.shape[1] + 1, device=flat.device, dtype=flat.dtype)
    count = (ranked * index > running).sum(dim=1).clamp_min(1)
    theta = running.gather(1, (count - 1)[:, None]).squeeze(1) / count.to(flat.dtype)
    shrunk = flat.sign() * (size - theta.clamp_min(0)[:, None]).clamp_min(0)
    shrunk = shrunk * _rounding_guard(shrunk, radius)[:, None]
    outside = size.sum(dim=1) > radius
    return torch.where(outside[:, None], shrunk, flat).view_as(delta)


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
    if norm == "l1":
        # Uniform in the L1 ball: d + 1 exponential spacings, normalized, the last one dropped,
        # with random signs.
        d = 1
        for s in shape:
            d *= int(s)
        spacing = -torch.rand((n, d + 1), generator=generator, dtype=dtype).clamp_min(1e-12).log()
        share = spacing[:, :d] / spacing.sum(dim=1, keepdim=True)
        signs = torch.randint(0, 2, (n, d), generator=generator).to(dtype) * 2 - 1
        return (eps * share * signs).view(n, *shape)
    raise ValueError(f"Unknown norm {norm!r}; choose 'linf', 'l2' or 'l1'.")


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

    For Linf and L1 this is the exact Euclidean projection onto the intersection (for L1: the
    soft-threshold clipped to the box, with the threshold found by bisection, as in Croce & Hein
    2021); for L2 the result is feasible (inside both sets), as every attack of this kind does it.
    """
    if norm == "l1":
        return x + _project_l1_box(x_adv - x, x, eps, bounds)
    return clip(x + project(x_adv - x, norm, eps), bounds)


def _project_l1_box(
    delta: torch.Tensor,
    x: torch.Tensor,
    eps: float | torch.Tensor,
    bounds: tuple[float, float],
    iterations: int = 60,
) -> torch.Tensor:
    """The nearest delta' to ``delta`` with ||delta'||_1 <= eps and x + delta' in bounds:
    delta'_j = sign(delta_j) min(max(|delta_j| - theta, 0), room_j), theta >= 0 the smallest
    value that meets the budget (found by bisection: the L1 size falls monotonically in theta)."""
    flat, base = _flat(delta), _flat(x)
    n = flat.shape[0]
    radius = eps.to(flat).reshape(n) if isinstance(eps, torch.Tensor) else flat.new_full((n,), eps)
    room = torch.where(flat > 0, bounds[1] - base, base - bounds[0]).clamp_min(0)
    size = flat.abs()

    def total(theta: torch.Tensor) -> torch.Tensor:
        return torch.minimum((size - theta[:, None]).clamp_min(0), room).sum(dim=1)

    low = torch.zeros(n, dtype=flat.dtype, device=flat.device)
    high = size.amax(dim=1) if flat.shape[1] else low.clone()
    over = total(low) > radius
    for _ in range(iterations if bool(over.any()) else 0):
        middle = (low + high) / 2
        too_big = total(middle) > radius
        low = torch.where(too_big, middle, low)
        high = torch.where(too_big, high, middle)
    theta = torch.where(over, high, low)
    moved = torch.minimum((size - theta[:, None]).clamp_min(0), room) * flat.sign()
    moved = moved * _rounding_guard(moved, radius)[:, None]
    return moved.view_as(delta)


def _rounding_guard(flat: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """A factor <= 1 per sample that puts an L1 size a few ulps over ``radius`` (cancellation
    in size - theta) back inside; 1 where it is inside already."""
    total = flat.abs().sum(dim=1)
    return torch.where(total > radius, radius / total.clamp_min(_TINY), torch.ones_like(total))


def dual(norm: str) -> str:
    """The dual norm: the distance to a hyperplane <w, z> = c in ``norm`` is |c| / ||w||_dual."""
    duals = {"linf": "l1", "l2": "l2", "l1": "linf"}
    if norm not in duals:
        raise ValueError(f"Unknown norm {norm!r}; choose 'linf', 'l2' or 'l1'.")
    return duals[norm]


def hyperplane_projection(
    x: torch.Tensor,
    w: torch.Tensor,
    c: torch.Tensor,
    norm: str,
    bounds: tuple[float, float],
) -> torch.Tensor:
    """Per sample, the smallest ``delta`` in ``norm`` with <w, delta> = c and x + delta in bounds.

    The exact minimizer of each norm over the hyperplane intersected with the box (FAB's
    projection step, Croce & Hein 2020): every coordinate moves in the direction of
    sign(c * w_j), by at most its distance to the bound. Linf moves all useful coordinates by
    one common amount (capped per coordinate), L2 moves coordinate j by lambda |w_j| (capped),
    L1 fills the coordinates with the largest |w_j| first. When the box does not let the
    hyperplane be reached, the coordinates all move to their bound (the closest reachable
    point). Found by sorting the breakpoints of a piecewise-linear function: batched, no loop.
    """
    flat_x, flat_w = _flat(x), _flat(w)
    target = c.reshape(-1).to(flat_w)
    side = torch.where(target < 0, -1.0, 1.0).to(flat_w)
    signed = flat_w * side[:, None]  # now the target is |c| >= 0
    need = target.abs()
    weight = signed.abs()
    low, high = bounds
    cap = torch.where(signed > 0, high - flat_x, flat_x - low).clamp_min(0)
    cap = torch.where(weight > 0, cap, torch.zeros_like(cap))  # unused coordinates stay put
    if norm == "l1":
        amount = _fill_greedy(weight, cap, need)
    elif norm in ("linf", "l2"):
        amount = _fill_level(weight, cap, need, norm)
    else:
        raise ValueError(f"Unknown norm {norm!r}; choose 'linf', 'l2' or 'l1'.")
    return (amount * signed.sign()).view_as(x)


def _fill_level(
    weight: torch.Tensor, cap: torch.Tensor, need: torch.Tensor, norm: str
) -> torch.Tensor:
    """t_j = min(level * s_j, cap_j) with sum weight_j t_j = need: s_j = 1 (Linf) or
    weight_j (L2); the level is found between the sorted breakpoints cap_j / s_j."""
    slope = torch.ones_like(weight) if norm == "linf" else weight
    slope = torch.where(weight > 0, slope, torch.zeros_like(slope))
    breaks = torch.where(slope > 0, cap / slope.clamp_min(_TINY), torch.zeros_like(cap))
    order = breaks.argsort(dim=1)
    b = breaks.gather(1, order)
    full = (weight * cap).gather(1, order)  # what a saturated coordinate contributes
    rate = (weight * slope).gather(1, order)  # d contribution / d level while not saturated
    saturated = full.cumsum(dim=1)
    free = rate.sum(dim=1, keepdim=True) - rate.cumsum(dim=1)  # rate of the ones after k
    reached = saturated + b * free  # the constraint's value at level b_k
    enough = reached >= need[:, None]
    feasible = enough.any(dim=1)
    k = enough.float().argmax(dim=1, keepdim=True)  # first breakpoint that is enough
    before = saturated.gather(1, k) - full.gather(1, k)
    moving = free.gather(1, k) + rate.gather(1, k)
    level = ((need[:, None] - before) / moving.clamp_min(_TINY)).clamp_min(0)
    amount = torch.minimum(level * slope, cap)
    return torch.where(feasible[:, None], amount, cap)


def _fill_greedy(weight: torch.Tensor, cap: torch.Tensor, need: torch.Tensor) -> torch.Tensor:
    """L1: saturate coordinates in order of decreasing weight until the need is met; the last
    one moves only as far as it must."""
    order = weight.argsort(dim=1, descending=True)
    w = weight.gather(1, order)
    full = (w * cap.gather(1, order)).cumsum(dim=1)
    before = full - w * cap.gather(1, order)
    rest = ((need[:, None] - before) / w.clamp_min(_TINY)).clamp_min(0)
    part = torch.minimum(rest, cap.gather(1, order))
    part = torch.where(before >= need[:, None], torch.zeros_like(part), part)
    amount = torch.empty_like(part).scatter_(1, order, part)
    return amount
