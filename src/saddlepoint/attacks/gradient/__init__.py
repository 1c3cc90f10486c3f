"""Gradient-based fixed-budget attacks: PGD and its presets (FGSM, FGM, BIM), APGD, APGD-T."""

from saddlepoint.attacks.gradient.apgd import APGD
from saddlepoint.attacks.gradient.apgd_targeted import APGDTargeted
from saddlepoint.attacks.gradient.pgd import PGD, bim, fgm, fgsm

__all__ = ["APGD", "APGDTargeted", "PGD", "bim", "fgm", "fgsm"]
