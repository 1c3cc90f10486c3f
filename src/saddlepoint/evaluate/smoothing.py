"""Randomized smoothing (Cohen, Rosenfeld and Kolter, 2019): a certified L2 radius for any model.

The smoothed classifier g(x) returns the class the base model f most often gives to x + N(0,
sigma^2 I). Cohen et al.'s CERTIFY picks the candidate class from ``n0`` noisy samples, counts how
often f gives it among ``n`` fresh samples, takes the one-sided Clopper-Pearson lower bound
p_A of that probability at confidence 1 - ``alpha``, and certifies the L2 radius
sigma * Phi^-1(p_A) when p_A > 1/2 (else abstains). PREDICT abstains when a binomial test cannot
tell the top two classes apart at level ``alpha``.

What floating point does to this, and what this implementation does about it. The guarantee
is about the exact Gaussian and the exact classifier; a computer samples float32 noise and
classifies in float32, so the estimated probability is that of a slightly different experiment
(Voracek and Hein, ICLR 2023, construct models whose certified radius is wrong for this reason).
Here: the counts are integers; the bound and the radius are computed in float64 from the counts
alone and the radius is rounded down (never up) when stored; every result records the counts, n,
alpha and the bound actually used, so anyone can recompute the radius; the base classifier is
``model`` after clipping its input to the pixel range (clipping is part of the base classifier,
which the guarantee allows for any f); and the sampling is seeded per image, so a result can be
reproduced exactly. The float32 gap itself is not closed: the radius is an estimate of that
precision, as in every published implementation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import beta, binomtest, norm
from torch import nn

from saddlepoint.modes import evaluating, model_device
from saddlepoint.progress import bar
from saddlepoint.validation import check_number

ABSTAIN = -1


def lower_confidence_bound(successes: int, trials: int, alpha: float) -> float:
    """The one-sided (1 - alpha) Clopper-Pearson lower bound of a binomial proportion."""
    if successes <= 0:
        return 0.0
    return float(beta.ppf(alpha, successes, trials - successes + 1))


def certified_radius(p_lower: float, sigma: float) -> float:
    """sigma * Phi^-1(p_lower), rounded toward zero; 0 when p_lower <= 1/2 (no certificate)."""
    if p_lower <= 0.5:
        return 0.0
    radius = float(sigma * norm.ppf(p_lower))
    return float(np.nextafter(radius, 0.0)) if radius > 0 else 0.0


@dataclass
class Certificate:
    """Per image: the prediction (ABSTAIN = -1), the certified L2 radius, the lower bound used,
    the count of the predicted class among ``n`` samples, and the selection counts."""

    prediction: torch.Tensor
    radius: torch.Tensor
    p_lower: torch.Tensor
    count: torch.Tensor
    n: int
    n0: int
    alpha: float
    sigma: float
    seconds: float = 0.0

    def certified_accuracy(self, labels: torch.Tensor, radius: float) -> float:
        """The share of images predicted correctly with a certified radius of at least ``radius``
        (radius 0: correct and not abstained)."""
        correct = (self.prediction == labels) & (self.radius >= radius)
        return float(correct.float().mean())

    def curve(self, labels: torch.Tensor, radii: list[float]) -> list[dict[str, float]]:
        return [
            {"radius": r, "certified accuracy": self.certified_accuracy(labels, r)} for r in radii
        ]


class SmoothedClassifier:
    """The smoothed version of ``model`` at noise level ``sigma``; noisy inputs are clipped to
    ``bounds`` as part of the base classifier. Samples go through the model ``batch_size`` at a
    time; image i's noise comes from a generator seeded by (``seed``, i), so any subset of the
    images gives the same per-image results."""

    def __init__(
        self,
        model: nn.Module,
        sigma: float,
        *,
        batch_size: int = 1000,
        seed: int = 0,
        bounds: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self.model = model
        self.sigma = check_number("SmoothedClassifier", "sigma", sigma, low=0, low_open=True)
        self.batch_size = check_number(
            "SmoothedClassifier", "batch_size", batch_size, low=1, integer=True
        )
        self.seed = int(seed)
        self.bounds = bounds

    def counts(self, image: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        """How often the base classifier gives each class to ``n`` noisy copies of ``image``."""
        device = model_device(self.model)
        image = image.to(device)
        totals: torch.Tensor | None = None
        with evaluating(self.model, freeze=True), torch.no_grad():
            for start in range(0, n, self.batch_size):
                size = min(self.batch_size, n - start)
                noise = torch.randn((size, *image.shape), generator=generator, device="cpu").to(
                    device
                )
                noisy = (image.unsqueeze(0) + self.sigma * noise).clamp(*self.bounds)
                logits = self.model(noisy)
                found = torch.bincount(logits.argmax(1).cpu(), minlength=logits.shape[1])
                totals = found if totals is None else totals + found
        assert totals is not None
        return totals

    def _generator(self, index: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + index)

    def predict(
        self, images: torch.Tensor, *, n: int = 100, alpha: float = 0.001, first_index: int = 0
    ) -> torch.Tensor:
        """Cohen et al.'s PREDICT for each image: the top class, or ABSTAIN when a two-sided
        binomial test cannot separate it from the runner-up at level ``alpha``."""
        check_number("SmoothedClassifier.predict", "n", n, low=1, integer=True)
        out = torch.full((len(images),), ABSTAIN, dtype=torch.long)
        for i, image in enumerate(images):
            counts = self.counts(image, n, self._generator(first_index + i))
            top = counts.topk(2)
            (first, second), winner = top.values.tolist(), int(top.indices[0])
            if binomtest(first, first + second, 0.5).pvalue <= alpha:
                out[i] = winner
        return out

    def certify(
        self,
        images: torch.Tensor,
        *,
        n0: int = 100,
        n: int = 100_000,
        alpha: float = 0.001,
        first_index: int = 0,
    ) -> Certificate:
        """Cohen et al.'s CERTIFY for each image: the class chosen from ``n0`` samples, its
        count among ``n`` fresh ones, the lower bound at confidence 1 - ``alpha`` and the
        radius (ABSTAIN and radius 0 when the bound is not above 1/2)."""
        check_number("SmoothedClassifier.certify", "n0", n0, low=1, integer=True)
        check_number("SmoothedClassifier.certify", "n", n, low=1, integer=True)
        check_number("SmoothedClassifier.certify", "alpha", alpha, low=0, high=1, low_open=True)
        start = time.perf_counter()
        size = len(images)
        prediction = torch.full((size,), ABSTAIN, dtype=torch.long)
        radius = torch.zeros(size, dtype=torch.float64)
        p_lower = torch.zeros(size, dtype=torch.float64)
        count = torch.zeros(size, dtype=torch.long)
        with bar(size, f"certify sigma {self.sigma:g}", unit="img") as shown:
            for i in range(size):
                generator = self._generator(first_index + i)
                chosen = int(self.counts(images[i], n0, generator).argmax())
                hits = int(self.counts(images[i], n, generator)[chosen])
                bound = lower_confidence_bound(hits, n, alpha)
                count[i], p_lower[i] = hits, bound
                if bound > 0.5:
                    prediction[i], radius[i] = chosen, certified_radius(bound, self.sigma)
                shown.update(1)
        seconds = time.perf_counter() - start
        return Certificate(prediction, radius, p_lower, count, n, n0, alpha, self.sigma, seconds)


def radius_from_counts(count: int, n: int, alpha: float, sigma: float) -> float:
    """The radius the procedure's own formula gives from the counts (for checking a result)."""
    bound = lower_confidence_bound(count, n, alpha)
    return sigma * norm.ppf(bound) if bound > 0.5 else 0.0


__all__ = [
    "ABSTAIN",
    "Certificate",
    "SmoothedClassifier",
    "certified_radius",
    "lower_confidence_bound",
    "radius_from_counts",
]
