"""Stacked grid runs: many PGD settings through the model as one batch (the sweep engine's runner).

A grid of PGD configurations that differ only in step count, radius, step size, start and loss
needs one run, not one per configuration: ``record_at`` makes one run of max(k) steps answer
every step count k, and ``record_settings`` stacks a copy of the data per (eps, start, step,
loss) setting, each row carrying its own radius, step, start and loss. The engine asks an
attack's registry entry whether it is ``stackable`` before grouping its configurations here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from saddlepoint.attacks import PGD
from saddlepoint.attacks.base import BatchContext
from saddlepoint.attacks.runtime import memory_layout, plan_execution, precision_scope, to_layout
from saddlepoint.losses import get_loss
from saddlepoint.modes import evaluating
from saddlepoint.threat import parse_eps


def record_settings(
    attack: PGD,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    settings: Sequence[
        tuple[float, bool] | tuple[float, bool, float] | tuple[float, bool, float, str]
    ],
) -> torch.Tensor:
    """The ``record_at`` records of ``attack`` at several (eps, random_start), (eps,
    random_start, step) or (eps, random_start, step, loss) settings, as one stacked batch:
    shape (len(settings), N, len(record_at), 3).

    Every setting's copy of the data carries its own radius, step size and loss (the
    attack's when a setting gives none) and start (the random start a separate run at that
    eps draws), and the stacked rows go through the model in sub-batches
    of the planned size, so one forward/backward pass serves several settings while memory
    stays that of one sub-batch. Results equal separate runs' up to float rounding (exactly,
    when the sub-batches line up). Needs ``record_at``, one restart, no early stop or tol."""
    owner = type(attack).__name__
    if not attack.record_at or attack.restarts != 1 or attack.early_stop or attack.tol is not None:
        raise ValueError(
            f"record_settings: {owner} needs record_at, restarts=1, early_stop=False, tol=None."
        )
    if not settings:
        raise ValueError(f"record_settings: {owner} needs at least one (eps, random_start).")
    x, y, _ = attack._check(model, x, y, None)
    n, shape, context = len(x), tuple(x.shape[1:]), BatchContext(0, attack.seed)
    radii, steps, starts, loss_names = [], [], [], []
    for setting in settings:
        eps, random_start = setting[0], setting[1]
        step = parse_eps(setting[2], "step", owner) if len(setting) > 2 else attack.step
        loss_names.append(setting[3] if len(setting) > 3 else attack.loss_name)
        eps = parse_eps(eps, "eps", owner)
        radii.append(torch.full((n,), eps, device=x.device, dtype=x.dtype))
        steps.append(torch.full((n,), step, device=x.device, dtype=x.dtype))
        if random_start:
            starts.append(context.random_start(n, shape, attack.norm, eps, 0).to(x))
        else:
            starts.append(torch.zeros_like(x))
    stacked_x = x.repeat(len(settings), *([1] * (x.dim() - 1)))
    stacked_y, radius, start = y.repeat(len(settings)), torch.cat(radii), torch.cat(starts)
    step_sizes = torch.cat(steps)
    names = sorted(set(loss_names))
    loss_rows = torch.tensor(
        [names.index(name) for name in loss_names], device=x.device
    ).repeat_interleave(n)
    losses = [get_loss(name) for name in names]
    records = x.new_zeros((len(stacked_x), len(attack.record_at), 3))
    plan = plan_execution(
        model,
        x[: min(n, 2)],
        len(stacked_x),
        batch_size=attack.batch_size,
        memory_format=attack.memory_format,
        precision=attack._precision(),
    )
    layout = plan.channels_last
    with (
        evaluating(model, freeze=True),
        torch.enable_grad(),
        memory_layout(model, layout),
        precision_scope(x.device, plan.precision),
    ):
        for first in range(0, len(stacked_x), plan.batch_size):
            rows = slice(first, first + plan.batch_size)
            worker = attack
            if names != [attack.loss_name]:  # each row ascends its own setting's loss
                worker = copy.copy(attack)
                worker.loss_fn = RowLosses(losses, loss_rows[rows])
            worker._ascend(  # writes its records into the view records[rows]
                model,
                to_layout(stacked_x[rows], layout),
                stacked_y[rows],
                None,
                to_layout(start[rows], layout),
                None,
                records[rows],
                eps=radius[rows],
                step=step_sizes[rows],
            )
    return records.view(len(settings), n, len(attack.record_at), 3).cpu()


class RowLosses:
    """Several per-sample losses over one batch, row i taking loss ``losses[index[i]]``: the
    stacked settings of a grid ascend different losses in one pass (the gradient of the summed
    objective is still each row's own)."""

    def __init__(
        self,
        losses: Sequence[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]],
        index: torch.Tensor,
    ) -> None:
        self.losses, self.index = list(losses), index
        self.present = [int(i) for i in index.unique().tolist()]  # one device sync, not per step

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if len(self.present) == 1:
            return self.losses[self.present[0]](logits, labels)
        values = torch.zeros(len(labels), dtype=logits.dtype, device=logits.device)
        for i in self.present:
            rows = self.index == i
            values[rows] = self.losses[i](logits[rows], labels[rows]).to(values.dtype)
        return values
