"""Grad-CAM (Selvaraju et al., 2017): where a conv model looks when it decides.

For a conv layer with activations A_k (k channels), the map for class c is
ReLU(sum_k w_k A_k) with w_k the spatial mean of d z_c / d A_k, upsampled to the input size and
scaled to [0, 1] per image. Comparing maps of clean and adversarial images shows whether an
attack moved the model's attention. Only input-side gradients are formed (parameters stay frozen).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from saddlepoint.modes import evaluating, model_device
from saddlepoint.viz.grids import _show
from saddlepoint.viz.style import plt, save_figure


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the model's Conv2d layers, in definition order."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def _layer(model: nn.Module, layer: str | None) -> nn.Module:
    names = conv_layers(model)
    if layer is None:
        if not names:
            raise ValueError("Grad-CAM needs a model with a Conv2d layer; this model has none.")
        layer = names[-1]
    modules = dict(model.named_modules())
    if layer not in modules:
        raise ValueError(
            f"Grad-CAM: the model has no layer {layer!r}. Conv layers: {', '.join(names) or 'none'}."
        )
    return modules[layer]


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    classes: torch.Tensor | None = None,
    *,
    layer: str | None = None,
) -> torch.Tensor:
    """Grad-CAM maps (N, H, W) in [0, 1] of ``x`` for ``classes`` (default: the predicted class),
    at ``layer`` (a module name; default the last Conv2d)."""
    target = _layer(model, layer)
    captured: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output):
        captured["activation"] = output

    handle = target.register_forward_hook(keep)
    try:
        with evaluating(model, freeze=True), torch.enable_grad():
            inputs = x.detach().to(model_device(model)).requires_grad_(True)
            logits = model(inputs)
            chosen = logits.argmax(1) if classes is None else classes.to(logits.device)
            score = logits.gather(1, chosen.view(-1, 1)).sum()
            activation = captured["activation"]
            (grad,) = torch.autograd.grad(score, activation)
    finally:
        handle.remove()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    return (cam / peak).cpu()


def gradcam_figure(
    model: nn.Module,
    clean: torch.Tensor,
    adversarial: torch.Tensor,
    path: str | os.PathLike[str],
    *,
    layer: str | None = None,
    class_names: Sequence[str] | None = None,
    title: str = "",
) -> None:
    """Rows of: clean image, its Grad-CAM, adversarial image, its Grad-CAM; each map is for the
    class the model predicts on that image, named in the title with its confidence."""
    maps = [grad_cam(model, images, layer=layer) for images in (clean, adversarial)]
    with torch.no_grad(), evaluating(model):
        device = model_device(model)
        probs = [model(images.to(device)).softmax(1).cpu() for images in (clean, adversarial)]
    n = clean.shape[0]
    fig, axes = plt.subplots(n, 4, figsize=(7.6, 2.0 * n), squeeze=False)
    heads = ["clean", "Grad-CAM (clean)", "adversarial", "Grad-CAM (adversarial)"]
    for row in range(n):
        for part, (images, cam, prob) in enumerate(zip((clean, adversarial), maps, probs)):
            predicted = int(prob[row].argmax())
            name = class_names[predicted] if class_names else str(predicted)
            ax_image, ax_map = axes[row, 2 * part], axes[row, 2 * part + 1]
            _show(ax_image, images[row])
            _show(ax_map, images[row])
            ax_map.imshow(cam[row].numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
            ax_image.set_title(f"{name} ({float(prob[row, predicted]):.2f})", fontsize=8)
            if row == 0:
                ax_map.set_title(heads[2 * part + 1], fontsize=8)
    fig.suptitle(title or "Grad-CAM: clean vs adversarial", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
