"""Image grids: original, amplified perturbation and adversarial image, with predictions."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from saddlepoint.attacks.result import AttackResult
from saddlepoint.validation import check_number
from saddlepoint.viz.style import plt, save_figure


def _show(ax: Axes, image: torch.Tensor) -> None:
    image = image.detach().cpu().float()
    if image.shape[0] == 1:
        ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def adversarial_grid(
    result: AttackResult,
    path: str | os.PathLike[str],
    *,
    count: int = 8,
    class_names: Sequence[str] | None = None,
    prefer_successes: bool = True,
    per_row: int = 2,
    title: str | None = None,
) -> list[int]:
    """Save a grid of ``count`` samples, ``per_row`` to a row, each as three panels: original
    with its prediction and confidence, the perturbation amplified to the full gray range
    (mid-gray = 0), and the adversarial image with its prediction and confidence. Only images
    the model classified correctly before the attack are shown (all of them if it got none
    right), the ones the attack fooled first. ``title`` names the attack (default: the
    result's). Returns the indices shown."""
    fig, shown = grid_figure(
        result,
        count=count,
        class_names=class_names,
        prefer_successes=prefer_successes,
        per_row=per_row,
        title=title,
    )
    save_figure(fig, path)
    return shown


def grid_figure(
    result: AttackResult,
    *,
    count: int = 8,
    class_names: Sequence[str] | None = None,
    prefer_successes: bool = True,
    per_row: int = 2,
    title: str | None = None,
) -> tuple[Figure, list[int]]:
    """The figure :func:`adversarial_grid` saves, and the indices it shows."""
    check_number("adversarial_grid", "per_row", per_row, low=1, integer=True)
    n = len(result.labels)
    order = torch.arange(n)
    correct = result.clean_correct.cpu()
    if bool(correct.any()):  # an image the model already got wrong shows no attack
        order = order[correct]
    if prefer_successes:
        fooled = result.success.cpu()[order]
        order = torch.cat([order[fooled], order[~fooled]])
    shown = order[: min(count, len(order))].tolist()
    names = list(class_names) if class_names else [str(i) for i in range(result.logits.shape[1])]
    clean_prob = result.clean_logits.softmax(1)
    adv_prob = result.logits.softmax(1)
    across = max(1, min(per_row, len(shown)))
    rows = -(-len(shown) // across)
    fig, grid = plt.subplots(
        rows,
        3 * across,
        figsize=(2.2 * 3 * across, 2.9 * rows),
        squeeze=False,
        layout="constrained",  # room for each row's two-line captions: none overlaps an image
    )
    for ax in grid.flat[3 * len(shown) :]:
        ax.axis("off")  # the last row's empty places
    for k, index in enumerate(shown):
        row, first = divmod(k, across)
        panels = grid[row, 3 * first : 3 * first + 3]
        delta = result.perturbation[index]
        scale = float(delta.abs().max())
        amplified = 0.5 + delta / (2 * scale) if scale > 0 else torch.full_like(delta, 0.5)
        clean_pred = int(clean_prob[index].argmax())
        adv_pred = int(adv_prob[index].argmax())
        _show(panels[0], result.inputs[index])
        panels[0].set_title(
            f"{names[clean_pred]} ({float(clean_prob[index, clean_pred]):.2f})\n"
            f"true {names[int(result.labels[index])]}",
            fontsize=9,
        )
        _show(panels[1], amplified)
        panels[1].set_title(
            f"perturbation x{0.5 / scale if scale else 0:.0f}\nL2 {float(delta.norm()):.3f}",
            fontsize=9,
        )
        _show(panels[2], result.adversarial[index])
        color = "crimson" if adv_pred != int(result.labels[index]) else "black"
        panels[2].set_title(
            f"{names[adv_pred]} ({float(adv_prob[index, adv_pred]):.2f})\nadversarial",
            fontsize=9,
            color=color,
        )
    name = title or result.attack
    fig.suptitle(f"{name}: original / perturbation / adversarial", fontsize=10)
    return fig, shown


def flip_map_figure(
    images: torch.Tensor,
    flip_maps: torch.Tensor,
    path: str | os.PathLike[str],
    *,
    labels: Sequence[str] | None = None,
) -> None:
    """Each image with the positions whose single-pixel change flips its prediction overlaid
    in red, titled with how many of the positions do."""
    n = images.shape[0]
    fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.4), squeeze=False)
    for k in range(n):
        ax = axes[0, k]
        _show(ax, images[k])
        flips = flip_maps[k].float().numpy()
        overlay = plt.cm.Reds(flips)
        overlay[..., 3] = 0.6 * flips
        ax.imshow(overlay)
        title = f"{int(flips.sum())}/{flips.size} flip"
        if labels is not None:
            title = f"{labels[k]}: {title}"
        ax.set_title(title, fontsize=8)
    save_figure(fig, path)


def generative_figure(
    attacked_by: dict, images: torch.Tensor, path: str | os.PathLike[str]
) -> None:
    """Per (mode, t) key of ``attacked_by`` (the attacker network's output on ``images``, for
    example ``modes.predict_logits(attacker, images)``): a row of originals, the perturbations and the attacked images (seed
    004's figure 2)."""
    keys = list(attacked_by)
    n = images.shape[0]
    fig, axes = plt.subplots(
        len(keys), 3 * n, figsize=(1.0 * 3 * n, 1.15 * len(keys)), squeeze=False
    )
    for row, key in enumerate(keys):
        attacked = attacked_by[key]
        delta = attacked - images
        for col in range(n):
            for offset, picture, cmap in (
                (0, images[col], "gray"),
                (1, 0.5 + delta[col] / (2 * key[1]), "coolwarm"),
                (2, attacked[col], "gray"),
            ):
                ax = axes[row, 3 * col + offset]
                shown = picture.clamp(0, 1)
                ax.imshow(
                    (shown[0] if shown.shape[0] == 1 else shown.permute(1, 2, 0)).numpy(),
                    cmap=cmap,
                    vmin=0,
                    vmax=1,
                )
                ax.set_xticks([])
                ax.set_yticks([])
        axes[row, 0].set_ylabel(f"{key[0][:4]} t={key[1]:g}", fontsize=7)
    fig.suptitle("original | perturbation (scaled to t) | attacked", fontsize=9)
    save_figure(fig, path)


def examples_figure(
    images: torch.Tensor,
    labels: torch.Tensor,
    probabilities: torch.Tensor,
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    title: str = "",
    per_row: int = 6,
) -> None:
    """Test images with the model's prediction, its confidence and the true class: a wrong
    prediction in red (the seed reports' example figures of correct and misclassified images)."""
    check_number("examples_figure", "per_row", per_row, low=1, integer=True)
    n = len(labels)
    names = list(class_names) if class_names else [str(i) for i in range(probabilities.shape[1])]
    across = max(1, min(per_row, n))
    rows = max(1, -(-n // across))
    fig, grid = plt.subplots(
        rows, across, figsize=(1.9 * across, 2.3 * rows), squeeze=False, layout="constrained"
    )
    for ax in grid.flat[n:]:
        ax.axis("off")
    for k in range(n):
        ax = grid.flat[k]
        _show(ax, images[k])
        predicted = int(probabilities[k].argmax())
        true = int(labels[k])
        ax.set_title(
            f"{names[predicted]} ({float(probabilities[k, predicted]):.2f})\ntrue {names[true]}",
            fontsize=9,
            color="crimson" if predicted != true else "black",
        )
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
