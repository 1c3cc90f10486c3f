"""Gradient-based fixed-budget attacks: PGD and its presets (FGSM, FGM, BIM), and APGD."""

from saddlepoint.attacks.gradient.apgd import APGD
from saddlepoint.attacks.gradient.pgd import PGD, bim, fgm, fgsm

__all__ = ["APGD", "PGD", "bim", "fgm", "fgsm"]
