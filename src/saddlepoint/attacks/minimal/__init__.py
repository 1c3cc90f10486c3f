"""Minimal-norm attacks: the smallest perturbation that flips the label (DeepFool, CW-L2, FAB;
FAB also runs within a radius, as AutoAttack uses it)."""

from saddlepoint.attacks.minimal.cw import CarliniWagnerL2
from saddlepoint.attacks.minimal.deepfool import DeepFool
from saddlepoint.attacks.minimal.fab import FAB, FABMinimal

__all__ = ["FAB", "CarliniWagnerL2", "DeepFool", "FABMinimal"]
