"""Helpers shared by the query-only attacks."""

from __future__ import annotations

import torch
from torch import nn

from saddlepoint.losses import cw_margin


@torch.no_grad()
def query(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One forward pass without gradients: a query of every sample in ``x``."""
    return model(x)


def ask_labels(
    model: nn.Module,
    points: torch.Tensor,
    labels: torch.Tensor,
    used: torch.Tensor,
    rows: torch.Tensor,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One query of each point, that of image ``rows[i]`` with label ``labels[i]``, counted in
    ``used[rows]`` (a row may repeat): (misclassified, logits). Sent ``chunk`` points at a
    time when given (a batch that outgrows the caches costs more per point)."""
    size = chunk or len(points)
    if len(points) <= size:
        logits = query(model, points)
    else:
        logits = torch.cat(
            [query(model, points[i : i + size]) for i in range(0, len(points), size)]
        )
    used.index_add_(0, rows, torch.ones_like(rows))
    return logits.argmax(1) != labels, logits


def true_class_probability(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return logits.softmax(dim=1).gather(1, labels[:, None]).squeeze(1)


def margin_to_success(
    logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None
) -> torch.Tensor:
    """Distance from success on the logits (<= 0 once it succeeded): z_y - max_{j!=y} z_j
    untargeted, max_{j!=t} z_j - z_t targeted."""
    if targets is None:
        return -cw_margin(logits, labels)
    return cw_margin(logits, targets)


def check_budget(owner: str, queries: int) -> int:
    from saddlepoint.validation import check_number

    return check_number(owner, "queries", queries, low=1, integer=True)
