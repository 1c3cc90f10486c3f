"""A generative attacker: a network that maps an image to a bounded perturbation (seed 004).

The attacker follows seed 004's encoder-decoder (after "pixel-level domain transfer"): four 5x5
stride-2 convolutions down (64-128-256-512 filters at ``width`` = 64; batch-norm from the second;
LeakyReLU), four 5x5 stride-2 transposed convolutions up (batch-norm and ReLU, then tanh). Output
paddings are derived from the input size, so any image size and channel count work. The
perturbation is bounded by the intensity t, by clamping to [-t, t] or by scaling tanh by t, and
attacked images are clipped to the bounds (``clip=False`` leaves them unclipped, up to t outside
the bounds: seed 004 adds the perturbation to the image and says nothing of clipping, so this is
offered to test that reading; it is not a valid-image threat model, and ``GenerativeAttack``
always clips).

``GenerativeAttack`` applies a trained attacker to a batch like any other attack (Linf threat
model with eps = t; one forward pass of the attacker, no gradient). Training the attacker against
classifiers C1 and C2 (the consecutive and alternating games) is training, and lives in
``saddlepoint.train.generative``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from saddlepoint.attacks.base import Attack, BatchContext, BatchOutput
from saddlepoint.validation import check_choice, check_number


def _halvings(size: int, levels: int) -> list[int]:
    sizes = [size]
    for _ in range(levels):
        sizes.append((sizes[-1] + 1) // 2)  # a 5x5 stride-2 conv with padding 2: ceil(s / 2)
    return sizes


class PerturbationGenerator(nn.Module):
    """Encoder-decoder producing a perturbation in [-t, t] for each input image; with
    ``final_norm`` the last transposed convolution is batch-normalised before the tanh."""

    def __init__(
        self,
        in_shape: Sequence[int] = (1, 28, 28),
        *,
        t: float = 0.16,
        width: int = 64,
        bound: str = "scale",
        bounds: tuple[float, float] = (0.0, 1.0),
        final_norm: bool = False,
        clip: bool = True,
    ) -> None:
        super().__init__()
        check_number("PerturbationGenerator", "t", t, low=0, low_open=True)
        check_number("PerturbationGenerator", "width", width, low=1, integer=True)
        self.bound = check_choice("PerturbationGenerator", "bound", bound, ["scale", "clamp"])
        self.t, self.bounds, self.clip = float(t), bounds, bool(clip)
        channels, height, wide = (int(s) for s in in_shape)
        filters = [width, 2 * width, 4 * width, 8 * width]
        heights, widths = _halvings(height, 4), _halvings(wide, 4)
        down: list[nn.Module] = []
        previous = channels
        for level, out in enumerate(filters):
            down.append(nn.Conv2d(previous, out, 5, stride=2, padding=2))
            if level > 0:
                down.append(nn.BatchNorm2d(out))
            down.append(nn.LeakyReLU(0.2, inplace=True))
            previous = out
        up: list[nn.Module] = []
        targets = list(zip(reversed(heights[:-1]), reversed(widths[:-1])))
        sources = list(zip(reversed(heights[1:]), reversed(widths[1:])))
        outs = [4 * width, 2 * width, width, channels]
        for (h_in, w_in), (h_out, w_out), out in zip(sources, targets, outs):
            padding = (h_out - 2 * h_in + 1, w_out - 2 * w_in + 1)
            up.append(
                nn.ConvTranspose2d(previous, out, 5, stride=2, padding=2, output_padding=padding)
            )
            if out != channels:
                up += [nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            elif final_norm:  # seed 004's FSConv4: batch norm, then the tanh
                up.append(nn.BatchNorm2d(out))
            previous = out
        self.encoder = nn.Sequential(*down)
        self.decoder = nn.Sequential(*up)

    def perturbation(self, x: torch.Tensor) -> torch.Tensor:
        raw = torch.tanh(self.decoder(self.encoder(x)))
        return self.t * raw if self.bound == "scale" else raw.clamp(-self.t, self.t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The attacked images: x plus the bounded perturbation, clipped to the bounds (unless
        built with ``clip=False``)."""
        attacked = x + self.perturbation(x)
        return attacked.clamp(*self.bounds) if self.clip else attacked


class GenerativeAttack(Attack):
    """Apply a trained :class:`PerturbationGenerator` to a batch (seed 004's attacker).

    Args:
        attacker: the trained generator; its intensity t is the Linf radius of the attack.
        **common: bounds, seed, batch_size and memory_format, as for every attack.

    The generator runs in eval mode (batch-norm with its running statistics) and is restored
    after; it never sees the labels, so one pass serves targeted and untargeted calls alike.
    """

    name = "generative"

    def __init__(self, attacker: PerturbationGenerator, **common: Any) -> None:
        if not isinstance(attacker, PerturbationGenerator):
            raise TypeError(
                "The 'attacker' parameter of GenerativeAttack must be a PerturbationGenerator. "
                f"Got {type(attacker).__name__} instead."
            )
        common.setdefault("norm", "linf")
        common.setdefault("eps", attacker.t)
        super().__init__(**common)
        self.attacker = attacker

    def config(self) -> dict:
        return {**super().config(), "t": self.attacker.t, "bound": self.attacker.bound}

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor | None,
        context: BatchContext,
    ) -> BatchOutput:
        attacker = self.attacker
        device, training = x.device, attacker.training
        moved = next(attacker.parameters()).device != device
        generator = attacker.to(device) if moved else attacker
        generator.eval()
        try:
            with torch.no_grad():
                adversarial = generator(x.contiguous()).clamp(*self.bounds)
        finally:
            generator.train(training)
        return BatchOutput(adversarial, queries=torch.zeros(len(x), dtype=torch.long))
